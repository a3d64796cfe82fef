"""`scripts/rl2_failures.py`: success by the goal's distance and by variant, on constructed
trials and on a tiny trained rl2 run."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch

from metaxm.build import make_env
from metaxm.envs import make_world
from metaxm.errors import ConfigError
from metaxm.evaluate.loading import load_agent
from metaxm.meta.trial_eval import TrialResult, run_trial
from metaxm.modalities import get_family
from metaxm.run.loop import train
from metaxm.spec import spec_from_dict

SPEC = {
    "seed": 0,
    "world": {"name": "gridnav", "size": 4, "horizon": 8},
    "modalities": {"train": {"vector": 2, "projected": 2}, "heldout_variants": {"vector": 1}},
    "algo": "rl2",
    "rl2": {"episodes_per_trial": 2},
    "agent": {"latent_dim": 8, "encoder_width": 8, "hidden": 8},
    "ppo": {"num_steps": 8, "update_epochs": 1, "num_minibatches": 1},
    "train": {"total_steps": 64, "num_envs": 4, "checkpoint_interval": 0, "eval_episodes": 0},
    "log": {"mode": "disabled", "progress": False},
}


def trials(success: list[list[int]], optimal: list[list[int]], length: list[list[int]]):
    t = torch.tensor
    return TrialResult(t(success, dtype=torch.float32), t(success), t(length), t(optimal))


def test_summary_counts_success_by_distance_episode_and_variant(load_script) -> None:
    script = load_script("rl2_failures")
    results = {
        100: trials([[1, 0], [1, 1]], [[1, 3], [3, 1]], [[1, 8], [3, 1]]),
        101: trials([[0, 0], [1, 0]], [[1, 2], [2, 3]], [[8, 8], [2, 5]]),
        102: trials([[1, 1], [1, 1]], [[2, 2], [1, 1]], [[2, 2], [1, 1]]),
    }
    banks = {100: {"gain": 2.0}, 101: {"gain": 3.0}, 102: {"gain": 1.0}}
    f = script.summarize(results, banks)
    assert f.by_episode == pytest.approx([5 / 6, 0.5])
    third = pytest.approx(1 / 3)
    assert f.by_distance == {1: (0.8, 5), 2: (0.75, 4), 3: (third, 3)}
    assert f.by_variant == {100: 0.75, 101: 0.25, 102: 1.0}
    assert f.spearman["gain"][0] == pytest.approx(-1.0)  # success falls as gain rises
    text = script.report("projected", f)
    assert "0.83 / 0.50" in text and "0.25 to 1.00 over 3 variants" in text
    assert "Spearman with gain: -1.00" in text
    assert script.summarize(results).spearman == {}


def test_rings_and_the_failed_episodes_coverage(load_script) -> None:
    script = load_script("rl2_failures")
    cells = torch.arange(49)
    rings = script.ring(cells, 7).view(7, 7)
    assert rings[3, 3] == 0 and rings[2, 4] == 1 and rings[1, 3] == 2 and rings[0, 6] == 3
    assert script.ring(torch.arange(16), 4).view(4, 4).tolist()[0] == [1, 1, 1, 1]  # even side
    result = trials([[1, 0], [0, 1]], [[1, 2], [3, 1]], [[1, 8], [8, 2]])
    result.goal_cell = torch.tensor([[24, 8], [0, 24]])  # rings 0, 2 / 3, 0 on a 7 x 7 grid
    result.cells = torch.tensor([[1, 7], [5, 2]])
    f = script.summarize({100: result}, size=7)
    assert f.by_ring == {0: (1.0, 2), 2: (0.0, 1), 3: (0.0, 1)}
    assert f.ring_by_episode[0] == [1.0, 1.0]
    assert f.ring_by_episode[2][1] == 0.0 and f.ring_by_episode[2][0] != f.ring_by_episode[2][0]
    assert f.failed_cells == 6.0  # the two failed episodes: 7 and 5 cells
    text = script.report("vector", f)
    assert "by the goal's ring (0: the centre; success, episodes): 0: 1.00 (2)" in text
    assert "ring 2 by episode of the trial: nan / 0.00" in text and "6.0 distinct cells" in text
    assert script.summarize({100: result}).by_ring == {}  # no layout size: no rings
    result.goal_cell = torch.tensor([[-1, 8], [-1, -1]])  # a layout that hides the goal: -1
    assert script.summarize({100: result}, size=7).by_ring == {2: (0.0, 1)}
    result.goal_cell = torch.full((2, 2), -1)
    hidden = script.summarize({100: result}, size=7)
    assert hidden.by_ring == {} and hidden.ring_by_episode == {}


def test_gain_sets_only_the_named_features_channels(load_script) -> None:
    script = load_script("rl2_failures")
    spec = spec_from_dict(SPEC)
    env = make_env(spec.world, "vector", [100, 101, 102], num_envs=3, seed=0)
    perm, gain = env.params["perm"].clone(), env.params["gain"].clone()
    script.set_gains(env, {"goal_row": 1.0, "goal_col": 2.0})
    names = env.world.scene_info.feature_names
    row, col = perm == names.index("goal_row"), perm == names.index("goal_col")
    assert torch.equal(env.params["gain"][row], gain[row].sign())
    assert torch.equal(env.params["gain"][col], 2 * gain[col].sign())
    assert torch.equal(env.params["gain"][~(row | col)], gain[~(row | col)])
    assert bool((gain[row | col].abs() != 1).all())  # the variants' own scales were not 1
    obs = env.reset()
    features = env.world.scene().features
    for b, j in (row | col).nonzero().tolist():
        want = features[b, perm[b, j]] * env.params["gain"][b, j]
        assert obs[b, j] == pytest.approx(float(want))
    with pytest.raises(ConfigError, match="has no feature 'goal_x'"):
        script.set_gains(env, {"goal_x": 1.0})
    projected = make_env(spec.world, "projected", 100, num_envs=1, seed=0)
    with pytest.raises(ConfigError, match="needs the vector family, not 'projected'"):
        script.set_gains(projected, {"goal_row": 1.0})
    assert script.gain_setting("goal_row=0.5") == ("goal_row", 0.5)
    for bad in ("goal_row", "goal_row=", "=2", "goal_row=-1", "goal_row=x", "goal_row=inf"):
        with pytest.raises(ConfigError, match="--gain must be NAME=G"):
            script.gain_setting(bad)


def test_a_world_without_shortest_paths_is_refused(load_script) -> None:
    script = load_script("rl2_failures")
    with pytest.raises(ConfigError, match="no shortest path"):
        script.summarize({0: trials([[1, 0]], [[-1, -1]], [[3, 8]])})


def test_sensor_bank_reads_live_sensors_only(load_script) -> None:
    script = load_script("rl2_failures")
    params = {
        "weight": torch.tensor([[3.0, 4.0], [0.0, 1.0], [0.0, 0.0]]),  # norms 5, 1; one dead
        "bias": torch.tensor([0.5, -0.1, 0.0]),
        "noise": torch.tensor([0.05, 0.05, 0.0]),
    }
    bank = script.sensor_bank(params)
    assert bank == {
        "live sensors": 2.0,
        "gain": 3.0,
        "|bias|": pytest.approx(0.3),
        "noise": pytest.approx(0.05),
    }
    info = make_world(spec_from_dict(SPEC).world, 1).scene_info
    real = get_family("projected").variant(100, info)
    assert script.sensor_bank(real)["live sensors"] == int((real["bias"] != 0).sum())


def test_variant_ranges_and_their_errors(load_script) -> None:
    script = load_script("rl2_failures")
    assert script.variant_range("100-103") == [100, 101, 102, 103]
    assert script.variant_range("7") == [7]
    for bad in ("a-b", "5-3", "-1", "100-"):
        with pytest.raises(ConfigError, match="--variants"):
            script.variant_range(bad)


def test_runs_on_a_trained_agent_and_refuses_a_family_it_cannot_read(
    tmp_path: Path, load_script, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    script = load_script("rl2_failures")
    train(spec_from_dict(SPEC), tmp_path / "rl2")
    argv = ["rl2_failures.py", str(tmp_path / "rl2"), "--variants", "100-101", "--trials", "4"]
    written = tmp_path / "failures.json"
    monkeypatch.setattr("sys.argv", [*argv, "--family", "projected", "--json", str(written)])
    assert script.main() == 0
    out = capsys.readouterr().out
    assert "projected: success by episode of the trial" in out and "over 2 variants" in out
    assert "Spearman with live sensors" in out
    summary = json.loads(written.read_text())["projected"]
    assert len(summary["by_episode"]) == 6 and set(summary["by_variant"]) == {"100", "101"}
    assert sum(n for _, n in summary["by_distance"].values()) == 2 * 4 * 6
    assert set(summary["spearman"]) == {"live sensors", "gain", "|bias|", "noise"}
    assert sum(n for _, n in summary["by_ring"].values()) == 2 * 4 * 6  # rings 0..1 of 4 x 4
    cells = summary["failed_cells"]
    assert ("distinct cells on average" in out) == (cells is not None)
    # the same trials as the evaluator's few-shot API plays with new tasks every episode
    agent, spec, _, _ = load_agent(str(tmp_path / "rl2"))
    args = argparse.Namespace(trials=4, episodes=6, mode=False, gains={})
    mine = script.play(agent, spec, "projected", 100, args)
    theirs = run_trial(agent, spec.world, "projected", 100, episodes=6, num_trials=4,
                       seed=script.SEED, new_tasks=True)  # fmt: skip
    assert torch.equal(mine.success, theirs.success) and torch.equal(mine.length, theirs.length)
    assert mine.goal_cell is not None and theirs.goal_cell is None
    monkeypatch.setattr("sys.argv", [*argv, "--gain", "goal_row=1", "--gain", "goal_col=2"])
    assert script.main() == 0
    assert "by the goal's ring" in capsys.readouterr().out
    monkeypatch.setattr("sys.argv", [*argv, "--family", "projected", "--gain", "goal_row=1"])
    assert script.main() == 2
    assert "--gain needs the vector family, not 'projected'" in capsys.readouterr().err
    monkeypatch.setattr("sys.argv", [*argv, "--json", str(tmp_path / "no" / "such" / "x.json")])
    assert script.main() == 2
    assert "cannot write --json" in capsys.readouterr().err
    monkeypatch.setattr("sys.argv", [*argv, "--family", "pixels"])
    assert script.main() == 2
    assert "no encoder for 'pixels'" in capsys.readouterr().err
