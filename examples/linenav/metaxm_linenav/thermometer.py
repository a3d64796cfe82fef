"""The ``thermometer`` family: each state feature as a thermometer code of ``LEVELS`` units.

A feature x in [-1, 1] lights the units whose threshold lies below it. What a variant changes:
the thresholds' order (a permutation of all units) and a per-unit gain in [0.5, 1.5].
Observations: float32, shape (D * LEVELS,), in [0, 1.5].
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from metaxm.envs import Scene, SceneInfo

LEVELS = 8


def space(info: SceneInfo) -> gym.Space:
    return gym.spaces.Box(0.0, 1.5, (info.feature_dim * LEVELS,), np.float32)


def variant(generator: torch.Generator, info: SceneInfo) -> dict[str, Tensor]:
    n = info.feature_dim * LEVELS
    return {
        "perm": torch.randperm(n, generator=generator),
        "gain": 0.5 + torch.rand(n, generator=generator),
    }


def render(scene: Scene, params: dict[str, Tensor], generator: torch.Generator) -> Tensor:
    x = scene.features  # (B, D) in [-1, 1]
    thresholds = torch.linspace(-1.0, 1.0, LEVELS + 2, device=x.device)[1:-1]
    code = (x.unsqueeze(2) > thresholds).float().flatten(1)  # (B, D * LEVELS)
    return code.gather(1, params["perm"]) * params["gain"]
