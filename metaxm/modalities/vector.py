"""The ``vector`` family: the state features, re-ordered, re-signed, re-scaled, with noise.

What a variant changes: a permutation of the features, a sign and a scale in [0.5, 2] per
feature, and the amplitude (0 to 0.5) of ``NOISE_CHANNELS`` extra channels of uniform noise
appended after the features. Observations: float32, shape (D + NOISE_CHANNELS,), in [-2, 2].
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from metaxm.envs.base import Scene, SceneInfo
from metaxm.modalities.base import Family, VariantParams

NOISE_CHANNELS = 4
MAX_SCALE = 2.0
MAX_NOISE = 0.5


class VectorFamily(Family):
    name = "vector"

    def observation_space(self, info: SceneInfo) -> gym.Space:
        shape = (info.feature_dim + NOISE_CHANNELS,)
        return gym.spaces.Box(-MAX_SCALE, MAX_SCALE, shape, np.float32)

    def variant_params(self, generator: torch.Generator, info: SceneInfo) -> VariantParams:
        d = info.feature_dim
        sign = torch.randint(0, 2, (d,), generator=generator).float() * 2.0 - 1.0
        # log-uniform scale in [1 / MAX_SCALE, MAX_SCALE]
        log_scale = (torch.rand(d, generator=generator) * 2.0 - 1.0) * np.log(MAX_SCALE)
        return {
            "perm": torch.randperm(d, generator=generator),
            "gain": sign * log_scale.exp(),
            "noise": torch.rand((), generator=generator) * MAX_NOISE,
        }

    def render(self, scene: Scene, params: VariantParams, generator: torch.Generator) -> Tensor:
        x = scene.features.gather(1, params["perm"]) * params["gain"]  # (B, D)
        u = torch.rand(
            x.shape[0], NOISE_CHANNELS, generator=generator, device=x.device
        )  # (B, NOISE_CHANNELS)
        noise = (u * 2.0 - 1.0) * params["noise"].unsqueeze(1)
        return torch.cat((x, noise), 1).clamp_(-MAX_SCALE, MAX_SCALE)
