"""A user-defined family, registered from one render function, works through the whole stack."""

from __future__ import annotations

from collections.abc import Iterator

import gymnasium as gym
import numpy as np
import pytest
import torch

from metaxm.envs import GridNav, GridNavConfig
from metaxm.envs.base import Scene, SceneInfo
from metaxm.envs.task_env import TaskEnv
from metaxm.modalities import FAMILIES, Modality, get_family, parse_modality_id, register

NAME = "test_scaled_reversed"


def render(scene: Scene, params: dict[str, torch.Tensor], generator: torch.Generator):
    return scene.features.flip(1) * params["scale"][:, None]  # (B, D)


def space(info: SceneInfo) -> gym.Space:
    return gym.spaces.Box(-1.0, 1.0, (info.feature_dim,), np.float32)


def variant(generator: torch.Generator, info: SceneInfo) -> dict[str, torch.Tensor]:
    return {"scale": 0.5 + 0.5 * torch.rand((), generator=generator)}


@pytest.fixture
def family() -> Iterator[str]:
    register(NAME, render, space, variant)
    yield NAME
    FAMILIES.pop(NAME)


def test_registered_family_renders_through_modality(family: str) -> None:
    world = GridNav(GridNavConfig(), 5, seed=0)
    modality = Modality(family, 3, world.scene_info)
    assert parse_modality_id(f"{family}:3") == (family, 3)
    scene = world.scene()
    obs = modality.render(scene, torch.Generator())
    scale = float(modality.params["scale"])
    assert torch.equal(obs, scene.features.flip(1) * scale)
    assert modality.observation_space.contains(obs[0].numpy())


def test_registered_family_steps_in_task_env_with_mixed_variants(family: str) -> None:
    env = TaskEnv(GridNav(GridNavConfig(), 4, seed=0), family, variants=[0, 1, 2, 3])
    scales = torch.stack(
        [get_family(family).variant(v, env.world.scene_info)["scale"] for v in range(4)]
    )
    obs = env.reset()
    for _ in range(4):
        features = env.world.scene().features
        assert torch.equal(obs, features.flip(1) * scales[:, None])
        obs, *_ = env.step(env.world.oracle_action())


def test_registering_twice_is_refused(family: str) -> None:
    with pytest.raises(ValueError, match="already registered"):
        register(family, render, space)
    with pytest.raises(ValueError, match="already registered"):
        register("pixels", render, space)
