"""In-context study of an RL^2 agent: per-episode statistics, the splits, the script."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from metaxm.meta.rl2 import build_rl2_agent
from metaxm.meta.trial_eval import TrialResult
from metaxm.run.loop import train
from metaxm.spec import spec_from_dict
from studies.in_context import (
    FamilyTrials,
    in_context_study,
    in_context_table,
    summarize_study,
    summarize_trials,
    write_study,
)

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


def _result() -> TrialResult:
    """4 trials of 3 episodes: episode 2 beats episode 1 in trials 1 and 2, ties in 3 and 4."""
    return TrialResult(
        returns=torch.tensor([[0.0, 1.0, 0.0], [0.0, 1.0, 0.0], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]),
        success=torch.tensor([[False, True, False], [False, True, False]] + [[True] * 3] * 2),
        length=torch.tensor([[5, 2, 6], [6, 2, 6], [2, 4, 2], [3, 6, 3]]),
        optimal=torch.full((4, 3), 2),
    )


def test_summary_pairs_every_later_episode_with_the_first_of_its_trial() -> None:
    s = summarize_trials(_result())
    assert s["trials"] == 4
    assert s["episodes"][0]["return"][0] == 0.5
    assert s["episodes"][0]["length"] == pytest.approx((4.0, np.std([5, 6, 2, 3], ddof=1) / 2))
    assert [e["success"] for e in s["episodes"]] == [0.5, 1.0, 0.5]
    # Wilson, z = 1.96: 2 of 4 -> 0.5 -+ 0.3500; 4 of 4 -> 0.7551 - 0.2449 up to 1
    assert s["episodes"][0]["success_ci"] == pytest.approx((0.1500, 0.8500), abs=1e-4)
    assert s["episodes"][1]["success_ci"] == pytest.approx((0.5101, 1.0), abs=1e-4)
    ep2, ep3 = s["vs_first"]
    # ep 2 minus ep 1 per trial: 1, 1, 0, 0: t = 0.5 / (0.577 / 2) = sqrt(3), 3 degrees of freedom
    assert ep2["episode"] == 2
    assert ep2["return_diff"] == pytest.approx((0.5, np.std([1, 1, 0, 0], ddof=1) / 2))
    assert ep2["p_value"] == pytest.approx(0.1817, abs=1e-4)
    assert ep2["shorter"] == 0.5
    assert "by_variant" not in ep2  # no variant labels given
    assert ep3["return_diff"] == (0.0, 0.0) and math.isnan(ep3["p_value"])
    # trials 3 and 4 found the goal in episode 1: (2 + 3) / 2 steps, then (4 + 6) / 2
    assert s["after_found"] == {"trials": 2, "length": [2.5, 5.0], "success_ep2": 1.0}
    # trials 1 and 2 failed episode 1, and both succeeded in episode 2
    assert s["after_missed"] == {"trials": 2, "success_ep2": 1.0}


def test_summary_tests_across_variants_not_only_across_trials() -> None:
    # trials 1 and 3 are variant a (differences 1 and 0), trials 2 and 4 variant b (1 and 0)
    s = summarize_trials(_result(), variants=["a", "b", "a", "b"])
    v = s["vs_first"][0]["by_variant"]
    assert v["variants"] == 2 and v["improved"] == 2
    assert v["return_diff"] == (0.5, 0.0)  # both variants' mean difference is 0.5
    assert v["p_value"] == pytest.approx(0.0)  # no spread across variants
    # the same trials as one variant: nothing to test across variants
    one = summarize_trials(_result(), variants=["a"] * 4)["vs_first"][0]["by_variant"]
    assert one["variants"] == 1 and math.isnan(one["p_value"])
    with pytest.raises(ValueError, match="3 variant labels for 4 trials"):
        summarize_trials(_result(), variants=["a"] * 3)


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
        (t,) = by_family.values()
        assert t.result.returns.shape == t.result.length.shape == (6, 3)
        assert bool((t.result.length >= 1).all() and (t.result.length <= 6).all())
    # the trials cycle through the split's variants: the two training variants alternate
    labels = results["train"]["vector"].variants
    assert len(set(labels)) == 2 and labels[:2] * 3 == labels
    with pytest.raises(ValueError, match="one episode"):
        in_context_study(agent, spec, trials=6, episodes=0)
    again = in_context_study(agent, spec, trials=6, episodes=3, seed=7)
    assert torch.equal(
        again["train"]["vector"].result.returns, results["train"]["vector"].result.returns
    )
    table = in_context_table(summarize_study(results))
    assert table.count("\n| train | vector | 6 |") == 1
    assert "| heldout_variants | vector | 6 |" in table
    # GridNav has a shortest path: every row ends with the steps after a found goal
    assert all(" -> " in row for row in table.splitlines()[2:])
    with pytest.raises(ValueError, match="the study is empty"):
        in_context_table({"train": {}})


def test_summary_pools_the_families_of_a_split() -> None:
    steps = torch.ones(5, 2, dtype=torch.long)
    a = TrialResult(torch.ones(2, 2), torch.ones(2, 2, dtype=torch.bool), steps[:2], steps[:2])
    b = TrialResult(torch.zeros(3, 2), torch.zeros(3, 2, dtype=torch.bool), steps[2:], steps[2:])
    summary = summarize_study(
        {"train": {"vector": FamilyTrials(a, ["v:1"] * 2), "pixels": FamilyTrials(b, ["p:1"] * 3)}}
    )
    assert set(summary["train"]) == {"vector", "pixels", "all"}
    assert summary["train"]["all"]["trials"] == 5
    assert summary["train"]["all"]["episodes"][0]["return"][0] == pytest.approx(0.4)
    assert summary["train"]["all"]["vs_first"][0]["by_variant"]["variants"] == 2


def test_write_study_writes_standard_json(tmp_path: Path) -> None:
    summary = {"train": {"vector": summarize_trials(_result(), ["a", "b", "a", "b"])}}
    write_study(summary, tmp_path)
    saved = json.loads((tmp_path / "in_context.json").read_text())
    ep3 = saved["train"]["vector"]["vs_first"][1]
    assert ep3["p_value"] is None  # NaN (nothing to test) is written as null
    assert saved["train"]["vector"]["after_found"]["length"] == [2.5, 5.0]
    assert (tmp_path / "in_context.md").read_text().startswith("| split | family |")
    assert (tmp_path / "in_context.png").stat().st_size > 0


def _script_main(load_script, argv: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(sys, "argv", ["rl2_trials.py", *argv])
    return load_script("rl2_trials").main()


def test_script_writes_the_study_and_refuses_a_run_that_is_not_rl2(
    load_script, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    train(spec_from_dict(SPEC), tmp_path / "rl2")
    out = tmp_path / "ic"
    assert (
        _script_main(
            load_script, [str(tmp_path / "rl2"), "--trials", "4", "--out", str(out)], monkeypatch
        )
        == 0
    )
    assert "| heldout_variants | vector | 4 |" in capsys.readouterr().out
    assert json.loads((out / "in_context.json").read_text())["train"]["vector"]["trials"] == 4
    train(spec_from_dict(dict(SPEC, algo="ppo")), tmp_path / "ppo")
    assert _script_main(load_script, [str(tmp_path / "ppo"), "--trials", "4"], monkeypatch) == 2
    err = capsys.readouterr().err
    assert err.strip().count("\n") == 0 and "in-context trials need an rl2 run" in err
    assert _script_main(load_script, [str(tmp_path / "rl2"), "--episodes", "0"], monkeypatch) == 2
    assert "--episodes must be >= 1" in capsys.readouterr().err
