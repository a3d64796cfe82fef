"""``metaxm.make_env``'s arguments of the wrong kind are one-line errors naming them (a variant
given as a string is not split into characters), and ints of any kind are taken."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import metaxm
from metaxm.spec import spec_from_dict
from tests.test_pipeline import TINY

SPEC = spec_from_dict(TINY)


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (("vector", "7"), {}, "variants must be an int (e.g. 7, for audio:7) or a sequence"),
        (("vector", "vector:3"), {"num_envs": 2}, "variants must be an int"),
        (("vector", None), {}, "variants must be an int"),
        (("vector", 2.5), {}, "variants must be an int"),
        (("vector", [1, "2"]), {}, "variants must be an int"),
        (("vector", 3), {"num_envs": 2.5}, "num_envs must be an int, got 2.5"),
    ],
)
def test_arguments_of_the_wrong_kind_are_named(args, kwargs, message) -> None:
    with pytest.raises(TypeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        metaxm.make_env(SPEC, *args, **kwargs)


def test_a_spec_path_is_not_a_spec() -> None:
    with pytest.raises(TypeError, match="spec must be a Spec .* got str"):
        metaxm.make_env("tasks/gridnav.yaml", "vector", 3)


@pytest.mark.parametrize(
    "variants", [np.int64(3), torch.tensor(3), np.array([3, 4]), torch.tensor([3, 4]), range(3, 5)]
)
def test_numpy_and_torch_ints_are_ints(variants) -> None:
    env = metaxm.make_env(SPEC, "vector", variants, num_envs=np.int64(2))
    assert env.num_envs == 2 and env.variants[-1] in (3, 4)
    assert all(type(v) is int for v in env.variants)
