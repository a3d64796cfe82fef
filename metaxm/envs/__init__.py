"""Batched worlds and their registry.

Built in: ``gridnav`` (:class:`GridNav`), ``pointnav`` (:class:`PointNav`), ``gridnav_lang``
(:class:`GridNavLang`, the goal given by an instruction) and ``minigrid`` (:class:`MiniGrid`,
MiniGrid/BabyAI levels; needs the ``minigrid`` extra). A new world is a
:class:`World` subclass plus a frozen config dataclass whose ``name`` field is a
``Literal["yourworld"]``, registered with :func:`register_world`.
"""

from __future__ import annotations

from typing import Any

import torch

from metaxm.envs.base import Layout, Scene, SceneInfo, TaskParams, World
from metaxm.envs.gridnav import GridNav, GridNavConfig
from metaxm.envs.gridnav_lang import GridNavLang, GridNavLangConfig
from metaxm.envs.minigrid import MiniGrid, MiniGridConfig
from metaxm.envs.pointnav import PointNav, PointNavConfig

WORLDS: dict[str, tuple[type[World], type]] = {}


def register_world(name: str, world_cls: type[World], config_cls: type) -> None:
    """Register a world class and its config dataclass under ``name``."""
    if name in WORLDS:
        raise ValueError(f"world {name!r} is already registered")
    WORLDS[name] = (world_cls, config_cls)


def world_config_class(name: str) -> type:
    """The config dataclass of world ``name``; one-line ValueError naming the worlds otherwise."""
    if name not in WORLDS:
        raise ValueError(f"unknown world {name!r}; registered: {', '.join(sorted(WORLDS))}")
    return WORLDS[name][1]


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
    "make_world",
    "register_world",
    "world_config_class",
]

from metaxm.envs import gym_api as _gym_api  # noqa: E402,F401  (registers the gymnasium ids)
