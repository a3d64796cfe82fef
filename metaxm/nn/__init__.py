"""The agent: per-family encoders, per-family adapters, a shared core (see :mod:`.agent`)."""

from __future__ import annotations

from metaxm.nn.adapter import Adapter
from metaxm.nn.agent import Agent, AgentConfig, ParamSubset, build_agent, observation_spaces
from metaxm.nn.distributions import ActionHead, CategoricalHead, GaussianHead, action_head
from metaxm.nn.encoders import ENCODERS, make_encoder, register_encoder

__all__ = [
    "ENCODERS",
    "ActionHead",
    "Adapter",
    "Agent",
    "AgentConfig",
    "CategoricalHead",
    "GaussianHead",
    "ParamSubset",
    "action_head",
    "build_agent",
    "make_encoder",
    "observation_spaces",
    "register_encoder",
]
