"""Tiny specs and a tiny agent for the alignment tests (GridNav 3x3 or 4x4, vector variants)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from metaxm.spec import Spec, spec_from_dict


def tiny_spec(**sections: Any) -> Spec:
    """GridNav 4x4 through two vector variants, a small agent, no wandb, no progress bar."""
    data: dict[str, Any] = {
        "seed": 0,
        "world": {"name": "gridnav", "size": 4, "horizon": 12},
        "modalities": {"train": {"vector": 2}, "heldout_variants": {"vector": 1}},
        "agent": {"latent_dim": 16, "encoder_width": 32, "hidden": 32, "adapter_rank": 2},
        "train": {"num_envs": 4, "log_interval": 1, "checkpoint_interval": 2, "eval_episodes": 0},
        "log": {"mode": "disabled", "progress": False},
        "align": {"batch_size": 32, "views": 2, "eval_states": 64, "fit_iters": 20},
    }
    for key, value in sections.items():
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    return spec_from_dict(data)


@pytest.fixture
def make_spec() -> Callable[..., Spec]:
    """:func:`tiny_spec`, with sections merged over its defaults."""
    return tiny_spec


class TextEncode(torch.nn.Module):
    """An agent's text encoding as a module's forward (what ``higher`` patches)."""

    def __init__(self, agent: torch.nn.Module) -> None:
        super().__init__()
        self.agent = agent

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.agent.encode(obs, "text")


@pytest.fixture
def text_encode() -> type[TextEncode]:
    """:class:`TextEncode`, for the meta-gradient tests against ``higher``."""
    return TextEncode
