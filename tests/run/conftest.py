"""A tiny PPO spec file for run-machinery tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

TINY = {
    "seed": 3,
    "world": {"name": "gridnav", "size": 4, "horizon": 12},
    "modalities": {"train": {"vector": 1}},
    "agent": {"latent_dim": 8, "encoder_width": 16, "hidden": 16},
    "ppo": {"num_steps": 16, "update_epochs": 2, "num_minibatches": 2},
    "train": {
        "total_steps": 1024,
        "num_envs": 8,
        "log_interval": 1,
        "checkpoint_interval": 2,
        "keep_checkpoints": 0,
        "eval_episodes": 16,
    },
    "log": {"mode": "disabled", "progress": False},
}


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    """A YAML spec of 8 PPO updates of 128 steps each, checkpointing every 2 updates."""
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return path
