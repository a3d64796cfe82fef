"""`scripts/rl2_failures.py`: success by the goal's distance and by variant, on constructed
trials and on a tiny trained rl2 run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from metaxm.envs import make_world
from metaxm.errors import ConfigError
from metaxm.meta.trials import TrialResult
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
    }
    s = script.summarize(results, horizon=8)
    assert s["by_episode"] == pytest.approx([0.75, 0.25])
    third = pytest.approx(1 / 3)
    assert s["by_distance"] == {1: (pytest.approx(2 / 3), 3), 2: (0.5, 2), 3: (third, 3)}
    # failed: 8, 8, 8, 5 steps; three of four cut at the horizon
    assert s["failed_length"] == pytest.approx(7.25) and s["failed_at_horizon"] == 0.75
    assert s["by_variant"] == {100: 0.75, 101: 0.25}
    text = script.report("projected", s, {100: {"gain": 1.0}, 101: {"gain": 2.0}})
    assert "0.75 / 0.25" in text and "0.25 to 0.75 over 2 variants" in text
    assert "Spearman with gain: -1.00" in text


def test_sensor_bank_reads_the_variants_live_sensors(load_script) -> None:
    script = load_script("rl2_failures")
    info = make_world(spec_from_dict(SPEC).world, 1).scene_info
    params = get_family("projected").variant(100, info)
    bank = script.sensor_bank(params)
    live = int((params["bias"] != 0).sum())
    assert bank["live sensors"] == live and 16 <= live <= 32
    assert bank["gain"] > 0 and 0 <= bank["|bias|"] <= 0.5 and 0 <= bank["noise"] <= 0.1


def test_variant_ranges_and_their_errors(load_script) -> None:
    script = load_script("rl2_failures")
    assert script.variant_range("100-103") == [100, 101, 102, 103]
    assert script.variant_range("7") == [7]
    for bad in ("a-b", "5-3", "-1"):
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
    monkeypatch.setattr("sys.argv", [*argv, "--family", "pixels"])
    assert script.main() == 2
    assert "no encoder for 'pixels'" in capsys.readouterr().err
