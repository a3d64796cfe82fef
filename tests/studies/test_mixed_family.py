"""`studies/mixed_family.py`: the `mixed` family of transfer-studies section 30."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from types import ModuleType

import pytest
import torch

from metaxm.envs.base import Scene, SceneInfo
from metaxm.modalities import FAMILIES, get_family
from metaxm.modalities.base import expand_params
from metaxm.modalities.vector import NOISE_CHANNELS


@pytest.fixture
def mixed_family() -> Iterator[ModuleType]:
    """The study's module, its family registered for this test only (the registry is global)."""
    module = importlib.reload(importlib.import_module("studies.mixed_family"))
    yield module
    FAMILIES.pop("mixed", None)


def test_a_variant_mixes_a_signed_permutation_with_a_dense_map(mixed_family: ModuleType) -> None:
    info = SceneInfo(feature_dim=4, layout_size=7)
    family = get_family("mixed")
    weights = torch.stack([family.variant(seed, info)["weight"] for seed in range(200)])
    assert weights.shape == (200, 4, 4)
    # some variants are nearly a vector variant (one feature per channel), some dense
    top = weights.abs().amax(2) / weights.abs().sum(2)  # (200, 4) the largest share per channel
    assert top.mean(1).max() > 0.9 and top.mean(1).min() < 0.6
    features = torch.rand(6, 4) * 2 - 1
    params = expand_params(family.variant(7, info), 6, "cpu")
    obs = family.render(Scene(features=features, layout=None), params, torch.Generator())
    assert obs.shape == (6, 4 + NOISE_CHANNELS)
    assert family.observation_space(info).contains(obs[0].numpy())
    expected = (params["weight"] @ features.unsqueeze(2)).squeeze(2).clamp(-2, 2)
    torch.testing.assert_close(obs[:, :4], expected)
    assert mixed_family.space(info).shape == (8,)
