"""`scripts/sensory_cartpole.py` on a tiny sensory RL^2 run: every condition measured on the
same start states, and shuffling alone changes nothing (the encoder does not see the order)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from metaxm.run.loop import train
from metaxm.spec import spec_from_dict

ROOT = Path(__file__).resolve().parents[2]


def test_the_script_compares_unpermuted_shuffled_and_rewired(tmp_path: Path) -> None:
    spec = spec_from_dict(
        {
            "world": {"name": "gym", "env_id": "CartPole-v1", "max_steps": 30},
            "modalities": {"train": {"vector": 4}},
            "algo": "rl2",
            "rl2": {"episodes_per_trial": 1},
            "agent": {"encoder": "sensory", "latent_dim": 8, "hidden": 8, "token_dim": 8},
            "ppo": {"num_steps": 8, "update_epochs": 1, "num_minibatches": 1},
            "train": {
                "total_steps": 64,
                "num_envs": 4,
                "checkpoint_interval": 0,
                "eval_episodes": 0,
            },  # fmt: skip
            "log": {"mode": "disabled", "progress": False},
            "main": {"runs": {"rl2": {}}},
        }
    )
    train(spec, tmp_path / "run")
    out = tmp_path / "out"
    args = [str(tmp_path / "run"), "--episodes", "6", "--switch-at", "3", "--out", str(out)]
    proc = subprocess.run(
        [sys.executable, "scripts/sensory_cartpole.py", *args],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    data = json.loads((out / "sensory_cartpole.json").read_text())["conditions"]
    assert set(data) == {
        "unpermuted", "unpermuted, extra channels silent", "shuffled", "rewired",
        "rewired mid-episode", "unpermuted (ModalityObservation)",
        "rewired (ModalityObservation)", "rewired mid-episode (ModalityObservation)",
    }  # fmt: skip
    assert data["shuffled"]["mean_return"] == data["unpermuted"]["mean_return"]
    assert data["shuffled"]["ratio_ci95"] == [1.0, 1.0]
    for entry in data.values():  # the wrapper's env keeps the world's horizon, 30
        assert 1.0 <= entry["mean_return"] <= 30.0
    assert "| rewired |" in (out / "sensory_cartpole.md").read_text()
    bad = subprocess.run(
        [sys.executable, "scripts/sensory_cartpole.py", str(tmp_path / "run"), "--episodes", "1"],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert bad.returncode == 2 and "--episodes must be >= 2" in bad.stderr
