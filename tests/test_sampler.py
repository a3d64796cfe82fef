from __future__ import annotations

from pathlib import Path

import pytest
import torch

from metaxm.config import ConfigError
from metaxm.sampler import TaskSampler, batch_params
from metaxm.spec import load_spec, spec_from_dict

ROOT = Path(__file__).resolve().parents[1]

SPEC = {
    "seed": 3,
    "modalities": {
        "train": {"vector": 6},
        "heldout_variants": {"vector": 3},
    },
}


def test_heldout_variants_never_in_train() -> None:
    for seed in range(20):
        sampler = TaskSampler(spec_from_dict({**SPEC, "seed": seed}))
        train = set(sampler.splits["train"]["vector"])
        held = set(sampler.splits["heldout_variants"]["vector"])
        assert len(train) == 6 and len(held) == 3
        assert not train & held
        drawn = {t.variant for t in sampler.sample("train", 64)}
        assert drawn <= train and not drawn & held


def test_same_seed_same_tasks_and_different_seed_differs() -> None:
    a = TaskSampler(spec_from_dict(SPEC)).sample("train", 8)
    b = TaskSampler(spec_from_dict(SPEC)).sample("train", 8)
    c = TaskSampler(spec_from_dict({**SPEC, "seed": 4})).sample("train", 8)
    assert [t.modality_id for t in a] == [t.modality_id for t in b]
    assert all(torch.equal(x.params["goal"], y.params["goal"]) for x, y in zip(a, b))
    assert [t.modality_id for t in a] != [t.modality_id for t in c]


def test_batch_params_repeats_task_major() -> None:
    tasks = TaskSampler(spec_from_dict(SPEC)).sample("train", 3)
    goal = batch_params(tasks, repeat=2)["goal"]
    assert goal.shape == (6, 2)
    assert torch.equal(goal[0], goal[1]) and torch.equal(goal[2], tasks[1].params["goal"])


def test_sampling_a_split_without_that_family_is_an_error() -> None:
    sampler = TaskSampler(spec_from_dict(SPEC))
    with pytest.raises(ValueError, match="split 'heldout_families' has no variants"):
        sampler.sample("heldout_families", 2)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"world": {"name": "maze"}}, "world.name: unknown world 'maze'; registered: "),
        ({"world": {"name": "gridnav", "sise": 7}}, "unknown key 'world.sise'"),
        ({"world": {"size": "big"}}, "world.size: expected an integer, got 'big'"),
        ({"world": {"size": 1}}, "world.size: 1 is out of range; allowed 2 to 64"),
        ({"world": {"name": "pointnav", "walls": True}}, "unknown key 'world.walls'"),
        (
            {"modalities": {"train": {"smell": 2}}},
            "modalities.train.smell: unknown modality family",
        ),
        ({"modalities": {"train": {"vector": 0}}}, "modalities.train.vector: 0 is out of range"),
        ({"modalities": {"train": {}}}, "modalities.train: name at least one family"),
        (
            {"modalities": {"train": {"vector": 1}, "heldout_families": {"vector": 1}}},
            "a held-out family cannot also be in train",
        ),
        ({"modalities": {"tran": {"vector": 1}}}, "unknown key 'modalities.tran'"),
        ({"seed": 1.5}, "seed: expected an integer, got 1.5"),
    ],
)
def test_spec_errors_are_one_line_and_name_the_key(data: dict, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        spec_from_dict(data)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("path", sorted((ROOT / "tasks").glob("*.yaml")), ids=lambda p: p.name)
def test_every_task_spec_loads_and_splits(path: Path) -> None:
    spec = load_spec(path)
    sampler = TaskSampler(spec)
    assert sampler.splits["train"], "no training modalities"
    for family, seeds in sampler.splits["heldout_variants"].items():
        assert not set(seeds) & set(sampler.splits["train"].get(family, []))
