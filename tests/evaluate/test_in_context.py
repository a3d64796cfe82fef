"""In-context study of an RL^2 agent: per-episode statistics, the splits, the script."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from metaxm.evaluate.in_context import (
    in_context_study,
    in_context_table,
    summarize_study,
    summarize_trials,
    write_study,
)
from metaxm.meta.rl2 import build_rl2_agent
from metaxm.meta.trials import TrialResult
from metaxm.run.loop import train
from metaxm.spec import spec_from_dict

ROOT = Path(__file__).resolve().parents[2]
SPEC = {
    "seed": 3,
    "world": {"name": "gridnav", "size": 4, "horizon": 6, "goal_visible": False},
    "modalities": {
        "train": {"vector": 2},
        "heldout_variants": {"vector": 1},
        "heldout_families": {"audio": 1},
    },
    "algo": "rl2",
    "rl2": {"episodes_per_trial": 2},
    "agent": {"latent_dim": 8, "encoder_width": 16, "hidden": 16},
    "ppo": {"num_steps": 6, "update_epochs": 1, "num_minibatches": 1},
    "train": {"total_steps": 96, "num_envs": 8, "checkpoint_interval": 0, "eval_episodes": 0},
    "log": {"mode": "disabled", "progress": False},
}


def test_summary_pairs_every_later_episode_with_the_first_of_its_trial() -> None:
    result = TrialResult(
        returns=torch.tensor([[0.0, 1.0, 0.0], [0.0, 1.0, 0.0], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]),
        success=torch.tensor([[False, True, False], [False, True, False]] + [[True] * 3] * 2),
        length=torch.tensor([[5, 2, 6], [6, 2, 6], [2, 2, 2], [3, 3, 3]]),
        optimal=torch.full((4, 3), 2),
    )
    s = summarize_trials(result)
    assert s["trials"] == 4
    assert s["episodes"][0]["return"][0] == 0.5
    assert s["episodes"][0]["length"] == pytest.approx((4.0, np.std([5, 6, 2, 3], ddof=1) / 2))
    assert [e["success"] for e in s["episodes"]] == [0.5, 1.0, 0.5]
    ep2, ep3 = s["vs_first"]
    # ep 2 minus ep 1 per trial: 1, 1, 0, 0
    assert ep2["episode"] == 2
    assert ep2["return_diff"] == pytest.approx((0.5, np.std([1, 1, 0, 0], ddof=1) / 2))
    assert 0.0 < ep2["p_value"] < 1.0
    assert ep2["shorter"] == 0.5
    assert ep3["return_diff"] == (0.0, 0.0) and math.isnan(ep3["p_value"])
    # trials 3 and 4 reached the goal in both episodes: (2 + 3) / 2 steps, then (2 + 3) / 2
    assert s["return_trip"] == {"trials": 2, "length": [2.5, 2.5]}


def test_study_covers_the_splits_the_agent_reads_and_repeats_with_its_seed() -> None:
    spec = spec_from_dict(SPEC)
    agent = build_rl2_agent(spec, seed=0)
    results = in_context_study(agent, spec, trials=6, episodes=3, seed=7)
    assert set(results) == {"train", "heldout_variants", "heldout_families"}
    # an agent without an encoder for the held-out family: that split is left out
    modalities = dict(SPEC["modalities"], heldout_families={})
    narrow = build_rl2_agent(spec_from_dict(dict(SPEC, modalities=modalities)), seed=0)
    narrow_results = in_context_study(narrow, spec, trials=2, episodes=1)
    assert set(narrow_results) == {"train", "heldout_variants"}
    for by_family in results.values():
        (r,) = by_family.values()
        assert r.returns.shape == r.length.shape == (6, 3)
        assert bool((r.length >= 1).all() and (r.length <= 6).all())
    with pytest.raises(ValueError, match="one episode"):
        in_context_study(agent, spec, trials=6, episodes=0)
    again = in_context_study(agent, spec, trials=6, episodes=3, seed=7)
    assert torch.equal(again["train"]["vector"].returns, results["train"]["vector"].returns)
    summary = summarize_study(results)
    table = in_context_table(summary)
    assert table.count("\n| train | vector | 6 |") == 1
    assert "| heldout_variants | vector | 6 |" in table
    # GridNav has a shortest path: every row ends with the return trip, "a -> b (n)"
    assert all(" -> " in row for row in table.splitlines()[2:])


def test_summary_pools_the_families_of_a_split() -> None:
    steps = torch.ones(5, 2, dtype=torch.long)
    a = TrialResult(torch.ones(2, 2), torch.ones(2, 2, dtype=torch.bool), steps[:2], steps[:2])
    b = TrialResult(torch.zeros(3, 2), torch.zeros(3, 2, dtype=torch.bool), steps[2:], steps[2:])
    summary = summarize_study({"train": {"vector": a, "pixels": b}})
    assert set(summary["train"]) == {"vector", "pixels", "all"}
    assert summary["train"]["all"]["trials"] == 5
    assert summary["train"]["all"]["episodes"][0]["return"][0] == pytest.approx(0.4)


def test_script_writes_the_study_and_refuses_a_run_that_is_not_rl2(tmp_path: Path) -> None:
    train(spec_from_dict(SPEC), tmp_path / "rl2")
    script = [sys.executable, str(ROOT / "scripts" / "rl2_trials.py")]
    done = subprocess.run(
        [*script, str(tmp_path / "rl2"), "--trials", "4", "--out", str(tmp_path / "ic")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "| heldout_variants | vector | 4 |" in done.stdout
    saved = json.loads((tmp_path / "ic" / "in_context.json").read_text())
    assert saved["train"]["vector"]["trials"] == 4
    assert (tmp_path / "ic" / "in_context.png").stat().st_size > 0
    ppo = dict(SPEC, algo="ppo")
    train(spec_from_dict(ppo), tmp_path / "ppo")
    done = subprocess.run(
        [*script, str(tmp_path / "ppo"), "--trials", "4"], capture_output=True, text=True,
        check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0
    assert "in-context trials need an rl2 run" in done.stderr


def test_write_study_round_trips_the_summary(tmp_path: Path) -> None:
    spec = spec_from_dict(SPEC)
    summary = summarize_study(in_context_study(build_rl2_agent(spec, seed=0), spec, trials=4))
    write_study(summary, tmp_path)
    assert json.loads((tmp_path / "in_context.json").read_text())["train"]["vector"][
        "episodes"
    ] == [json.loads(json.dumps(e)) for e in summary["train"]["vector"]["episodes"]]
    assert (tmp_path / "in_context.md").read_text().startswith("| split | family |")
