"""`scripts/reward_signal.py`: the rewarded episodes among maml's support episodes, beside a
random walk's, on a tiny trained run."""

from __future__ import annotations

from pathlib import Path

import pytest

from metaxm.evaluate.loading import load_agents
from metaxm.run.loop import train
from metaxm.spec import spec_from_dict

SPEC = {
    "seed": 0,
    "world": {"name": "gridnav", "size": 4, "horizon": 8, "step_cost": 0.05},
    "modalities": {
        "train": {"vector": 2},
        "heldout_variants": {"vector": 1},
        "heldout_families": {"projected": 1},
    },
    "algo": "maml",
    "agent": {"latent_dim": 8, "encoder_width": 8, "hidden": 8, "token_dim": 4},
    "maml": {"meta_batch": 2, "support_episodes": 2, "query_episodes": 2},
    "train": {"total_steps": 100, "num_envs": 1, "checkpoint_interval": 0, "eval_episodes": 0},
    "log": {"mode": "disabled", "progress": False},
}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("reward-signal")
    train(spec_from_dict(SPEC), root / "maml")
    return root


def test_counts_rewarded_episodes_and_every_other_returns_the_horizons_costs(
    run: Path, load_script
) -> None:
    script = load_script("reward_signal")
    agents = load_agents(run)
    modalities = ["vector:0", "projected:0"]
    rows = script.count(agents, modalities, episodes=6, draws=5)
    assert list(rows) == modalities
    for row in rows.values():
        for who in ("maml", "random"):
            got = row[who]
            assert 0 <= got["rewarded_per_k"] <= 6
            assert got["share"] == pytest.approx(got["rewarded_per_k"] / 6)
            assert 0 <= got["draws_with_none"] <= 1
        # an episode that misses the goal pays the step cost at every step of the horizon
        assert row["unrewarded_returns"] == [pytest.approx(-0.05 * 8)]
    # a random walk reads nothing: the same tasks and seeds give it the same goals found
    assert rows["vector:0"]["random"] == rows["projected:0"]["random"]
    assert rows["vector:0"]["random"]["rewarded_per_k"] > 0
