"""Batched worlds and their registry.

Built in: ``gridnav`` (:class:`GridNav`), ``pointnav`` (:class:`PointNav`), ``gridnav_lang``
(:class:`GridNavLang`, the goal given by an instruction) and ``minigrid`` (:class:`MiniGrid`,
MiniGrid/BabyAI levels; needs the ``minigrid`` extra). A new world is a
:class:`World` subclass plus a frozen config dataclass whose ``name`` field is a
``Literal["yourworld"]``, registered with :func:`register_world`.
"""

from __future__ import annotations

import sys
from typing import Any

import torch

from metaxm.envs.base import Layout, Scene, SceneInfo, TaskParams, World
from metaxm.envs.gridnav import GridNav, GridNavConfig
from metaxm.envs.gridnav_lang import GridNavLang, GridNavLangConfig
from metaxm.envs.gym_world import GymWorld, GymWorldConfig
from metaxm.envs.minigrid import MiniGrid, MiniGridConfig
from metaxm.envs.pointnav import PointNav, PointNavConfig

WORLDS: dict[str, tuple[type[World], type]] = {}


def register_world(name: str, world_cls: type[World], config_cls: type) -> None:
    """Register a world class and its config dataclass under ``name``, and its gymnasium id
    (``metaxm/<ConfigName>-v0``, e.g. ``LineNavConfig`` -> ``metaxm/LineNav-v0``)."""
    if name in WORLDS:
        raise ValueError(f"world {name!r} is already registered")
    WORLDS[name] = (world_cls, config_cls)
    if "metaxm.envs.gym_api" in sys.modules:  # else its import registers every world's id
        sys.modules["metaxm.envs.gym_api"].register_gym_envs()


def world_config_class(name: str) -> type:
    """The config dataclass of world ``name``; one-line ValueError naming the worlds otherwise."""
    if name not in WORLDS:
        raise ValueError(f"unknown world {name!r}; registered: {', '.join(sorted(WORLDS))}")
    return WORLDS[name][1]


def has_oracle(config: Any) -> bool:
    """Whether the world of ``config`` has a reference policy (:attr:`World.has_oracle`)."""
    return WORLDS[config.name][0].has_oracle


def make_world(
    config: Any, num_envs: int, device: torch.device | str = "cpu", seed: int = 0
) -> World:
    """Build the world described by ``config`` (a registered world's config dataclass).

    Raises:
        ConfigError: ``device`` is not available here (e.g. ``cuda`` without CUDA).
    """
    from metaxm.run.device import resolve_device

    world_cls, _ = WORLDS[config.name]
    return world_cls(config, num_envs, device=resolve_device(device), seed=seed)


register_world("gridnav", GridNav, GridNavConfig)
register_world("pointnav", PointNav, PointNavConfig)
register_world("gridnav_lang", GridNavLang, GridNavLangConfig)
register_world("minigrid", MiniGrid, MiniGridConfig)  # needs the minigrid extra to build
register_world("gym", GymWorld, GymWorldConfig)  # any gymnasium env, from YAML

__all__ = [
    "WORLDS",
    "GridNav",
    "GridNavConfig",
    "GridNavLang",
    "GridNavLangConfig",
    "Layout",
    "MiniGrid",
    "MiniGridConfig",
    "PointNav",
    "PointNavConfig",
    "Scene",
    "SceneInfo",
    "TaskParams",
    "World",
    "GymWorld",
    "GymWorldConfig",
    "has_oracle",
    "make_world",
    "register_world",
    "world_config_class",
]

from metaxm.envs import gym_api as _gym_api  # noqa: E402,F401  (registers the gymnasium ids)
