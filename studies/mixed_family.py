"""The ``mixed`` family of ``docs/transfer-studies.md`` section 30: a ``vector`` variant whose
channels are mixed with one another in a degree each variant draws.

A spec imports it (``imports: [studies.mixed_family]``, from the repository root) to meta-train
on it. What a variant changes: ``vector``'s permutation, signs and log-uniform gains in [0.5, 2]
(the map ``P``), a Gaussian map ``G`` (entries of standard deviation ``1 / sqrt(D)``) and the
mixing degree ``m``, uniform in [0, 1]: the D feature channels read ``((1 - m) P + m G) s``,
followed by ``vector``'s ``NOISE_CHANNELS`` channels of uniform noise of amplitude up to 0.5.
``m = 0`` is a ``vector`` variant; ``m = 1`` a dense linear mix, as ``projected``'s before its
squashing. Observations: float32, shape (D + NOISE_CHANNELS,), clamped to [-2, 2].
"""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from metaxm.envs import Scene, SceneInfo
from metaxm.modalities import register
from metaxm.modalities.vector import MAX_NOISE, MAX_SCALE, NOISE_CHANNELS


def space(info: SceneInfo) -> gym.Space:
    return gym.spaces.Box(-MAX_SCALE, MAX_SCALE, (info.feature_dim + NOISE_CHANNELS,), np.float32)


def variant(generator: torch.Generator, info: SceneInfo) -> dict[str, Tensor]:
    d = info.feature_dim
    sign = torch.randint(0, 2, (d,), generator=generator).float() * 2.0 - 1.0
    log_scale = (torch.rand(d, generator=generator) * 2.0 - 1.0) * math.log(MAX_SCALE)
    wiring = torch.zeros(d, d)
    wiring[torch.arange(d), torch.randperm(d, generator=generator)] = sign * log_scale.exp()
    dense = torch.randn(d, d, generator=generator) / math.sqrt(d)
    mix = torch.rand((), generator=generator)
    return {
        "weight": (1.0 - mix) * wiring + mix * dense,  # (D, D): channel x feature
        "noise": torch.rand((), generator=generator) * MAX_NOISE,
    }


def render(scene: Scene, params: dict[str, Tensor], generator: torch.Generator) -> Tensor:
    x = torch.bmm(params["weight"], scene.features.unsqueeze(2)).squeeze(2)  # (B, D)
    u = torch.rand(x.shape[0], NOISE_CHANNELS, generator=generator, device=x.device)
    noise = (u * 2.0 - 1.0) * params["noise"].unsqueeze(1)
    return torch.cat((x, noise), 1).clamp_(-MAX_SCALE, MAX_SCALE)


register("mixed", render, space, variant=variant, overwrite=True)
