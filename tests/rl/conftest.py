"""Tiny specs for fast PPO tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from metaxm.spec import Spec, spec_from_dict


def tiny_spec(**sections: Any) -> Spec:
    """GridNav 4x4 through ``vector``, a small agent, short rollouts, no wandb, no progress bar."""
    data: dict[str, Any] = {
        "seed": 0,
        "world": {"name": "gridnav", "size": 4, "horizon": 12},
        "modalities": {"train": {"vector": 1}},
        "agent": {"latent_dim": 16, "encoder_width": 32, "hidden": 32},
        "ppo": {"lr": 0.002, "num_steps": 32, "update_epochs": 3, "num_minibatches": 2},
        "train": {"total_steps": 4096, "num_envs": 16, "checkpoint_interval": 2},
        "log": {"mode": "disabled", "progress": False},
    }
    for key, value in sections.items():
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    return spec_from_dict(data)


@pytest.fixture
def make_spec() -> Callable[..., Spec]:
    """:func:`tiny_spec`, with sections merged over its defaults."""
    return tiny_spec
