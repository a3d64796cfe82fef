"""The ``projected`` family: a re-wired sensor bank, ``tanh(W s + b + noise)``.

Each of ``OUT_DIM`` sensors reads a random linear mix of the state features ``s``
(:attr:`~metaxm.envs.base.Scene.features`, so it renders layout scenes and layout-less ones
alike) and squashes it with ``tanh``.

What a variant changes: the projection ``W`` (Gaussian, gain drawn log-uniformly in
[``MIN_GAIN``, ``MAX_GAIN``] over ``sqrt(D)``), the bias ``b`` (uniform in ``[-MAX_BIAS,
MAX_BIAS]``), the effective width ``w`` drawn uniformly in [``MIN_WIDTH``, ``OUT_DIM``], and
the standard deviation (0 to ``MAX_NOISE``) of Gaussian noise added before the squashing.
Sensors ``w`` and beyond are dead: their weights, bias and noise are zero, so they read exactly
0. Observations: float32, shape (``OUT_DIM``,), in [-1, 1].

This is the "random re-wiring" modality of the sensory-substitution literature: the state is
all there, but mixed and squashed differently in every variant.
"""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from metaxm.envs.base import Scene, SceneInfo
from metaxm.modalities.base import Family, VariantParams

OUT_DIM = 32
MIN_WIDTH = 16
MIN_GAIN = 1.0
MAX_GAIN = 3.0
MAX_BIAS = 0.5
MAX_NOISE = 0.1


class ProjectedFamily(Family):
    """Random projections of the state features through ``tanh`` (see the module docstring)."""

    name = "projected"

    def observation_space(self, info: SceneInfo) -> gym.Space:
        return gym.spaces.Box(-1.0, 1.0, (OUT_DIM,), np.float32)

    def variant_params(self, generator: torch.Generator, info: SceneInfo) -> VariantParams:
        d = info.feature_dim
        width = int(torch.randint(MIN_WIDTH, OUT_DIM + 1, (), generator=generator))
        alive = (torch.arange(OUT_DIM) < width).float()  # (OUT_DIM,)
        log_gain = math.log(MIN_GAIN) + torch.rand((), generator=generator) * math.log(
            MAX_GAIN / MIN_GAIN
        )
        weight = torch.randn(OUT_DIM, d, generator=generator) * (log_gain.exp() / math.sqrt(d))
        bias = (torch.rand(OUT_DIM, generator=generator) * 2.0 - 1.0) * MAX_BIAS
        noise = torch.rand((), generator=generator) * MAX_NOISE
        return {
            "weight": weight * alive[:, None],  # (OUT_DIM, D)
            "bias": bias * alive,  # (OUT_DIM,)
            "noise": noise * alive,  # (OUT_DIM,) noise std per sensor
        }

    def render(self, scene: Scene, params: VariantParams, generator: torch.Generator) -> Tensor:
        s = scene.features.unsqueeze(2)  # (B, D, 1)
        z = torch.baddbmm(params["bias"].unsqueeze(2), params["weight"], s).squeeze(2)  # (B, OUT)
        eps = torch.randn(z.shape, generator=generator, device=z.device)
        return z.addcmul_(eps, params["noise"]).tanh_()
