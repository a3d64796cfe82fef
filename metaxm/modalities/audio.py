"""The ``audio`` family: a spectrogram-like rendering of the state as a sequence of tones.

Every feature of :attr:`~metaxm.envs.base.Scene.features` is played as one time frame (so
layout scenes and layout-less ones render alike; a layout's walls reach audio through the
world's wall features): the feature's value sets the pitch of a harmonic tone, drawn over
``NUM_BINS`` linear frequency bins as a Gaussian bump per partial. The partials sit at whole
multiples of the fundamental, so the higher ones fall off the top of the spectrum as the pitch
rises. Background noise is added and the result clipped to [0, 1].

Observations: float32, shape (1, F, T) with ``F = NUM_BINS`` frequency bins (low to high) and
``T = D`` time frames, one per feature in order, in [0, 1].

What a variant changes: the base frequency (``MIN_BASE`` to ``MAX_BASE`` bins, the pitch of
the lowest value), the pitch scale (``MIN_SPAN`` to ``MAX_SPAN`` bins between the lowest and the
highest value, rising or falling with the value), the number of harmonics (1 to
``MAX_HARMONICS``) and their decay (each partial ``MIN_DECAY`` to ``MAX_DECAY`` times as loud
as the one below), the width of a partial, and the noise level (0 to ``MAX_NOISE``).

The noise is a random spectrum (a uniform per bin) times a random loudness per frame (a uniform
per frame) times the noise level, fresh each render: drawing F + T numbers per observation
instead of F x T keeps rendering cheap on CPU, where drawing random numbers dominates.

Rendering is row copies: a variant tabulates its spectrum column at ``PITCH_LEVELS`` evenly
spaced values, and a render interpolates linearly between the two nearest columns, which keeps
the pitch a continuous function of the value.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from metaxm.envs.base import Scene, SceneInfo
from metaxm.modalities.base import Family, VariantParams

NUM_BINS = 32
PITCH_LEVELS = 128
MIN_BASE, MAX_BASE = 1.5, 4.0
MIN_SPAN, MAX_SPAN = 5.0, 12.0
MAX_HARMONICS = 4
MIN_DECAY, MAX_DECAY = 0.3, 0.8
MIN_WIDTH, MAX_WIDTH = 0.5, 1.0
MAX_NOISE = 0.2


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return low + float(torch.rand((), generator=generator)) * (high - low)


class AudioFamily(Family):
    """Harmonic tones, one frame per feature (see the module docstring)."""

    name = "audio"

    def observation_space(self, info: SceneInfo) -> gym.Space:
        return gym.spaces.Box(0.0, 1.0, (1, NUM_BINS, info.feature_dim), np.float32)

    def variant_params(self, generator: torch.Generator, info: SceneInfo) -> VariantParams:
        base = _uniform(generator, MIN_BASE, MAX_BASE)
        span = _uniform(generator, MIN_SPAN, MAX_SPAN)
        rising = bool(torch.randint(0, 2, (), generator=generator))
        harmonics = int(torch.randint(1, MAX_HARMONICS + 1, (), generator=generator))
        decay = _uniform(generator, MIN_DECAY, MAX_DECAY)
        width = _uniform(generator, MIN_WIDTH, MAX_WIDTH)
        noise = _uniform(generator, 0.0, MAX_NOISE)

        partials = torch.zeros(MAX_HARMONICS)  # loudness of each partial
        partials[:harmonics] = decay ** torch.arange(harmonics, dtype=torch.float32)
        params = {
            "noise": torch.tensor(noise),
            # what the table is made from, for display and tests
            "base": torch.tensor(base),
            "span": torch.tensor(span if rising else -span),
            "width": torch.tensor(width),
            "partials": partials,  # (MAX_HARMONICS,)
        }
        level = torch.linspace(-1.0, 1.0, PITCH_LEVELS)
        params["table"] = tone(level[:, None], params)[:, :, 0]  # (PITCH_LEVELS, NUM_BINS)
        return params

    def render(self, scene: Scene, params: VariantParams, generator: torch.Generator) -> Tensor:
        x = scene.features.clamp(-1.0, 1.0)  # (B, T)
        b, t = x.shape
        device = x.device
        pos = (x + 1.0) * (0.5 * (PITCH_LEVELS - 1))  # (B, T) in [0, Q - 1]
        low = pos.floor().clamp_(max=PITCH_LEVELS - 2)
        frac = (pos - low).unsqueeze(2)  # (B, T, 1)
        rows = low.long()
        table = params["table"]  # (B, Q, F)
        if table.stride(0) == 0:  # one variant for the whole batch: index its table directly
            flat = table[0]
        else:
            flat = table.reshape(b * PITCH_LEVELS, NUM_BINS)
            rows = rows + torch.arange(0, b * PITCH_LEVELS, PITCH_LEVELS, device=device)[:, None]
        rows = rows.view(-1)
        clean = torch.lerp(
            flat.index_select(0, rows), flat.index_select(0, rows + 1), frac.view(-1, 1)
        ).view(b, t, NUM_BINS)  # (B, T, F)
        spectrum = torch.rand(b, 1, NUM_BINS, generator=generator, device=device)
        loudness = torch.rand(b, t, 1, generator=generator, device=device)
        clean.addcmul_(spectrum, loudness.mul_(params["noise"].view(b, 1, 1)))  # + noise >= 0
        return clean.clamp_max_(1.0).transpose(1, 2).unsqueeze(1).contiguous()


def tone(x: Tensor, params: VariantParams) -> Tensor:
    """The noise-free spectrum of feature values ``x`` (..., T) as (..., F, T), computed exactly.

    The reference the render's interpolated table approximates; ``params`` is one unstacked
    variant.
    """
    u = (x.clamp(-1.0, 1.0).double() + 1.0) * 0.5
    span = params["span"].double()
    pitch = params["base"].double() + torch.where(span > 0, u * span, (u - 1.0) * span)
    k = torch.arange(1, MAX_HARMONICS + 1, dtype=torch.float64)  # (K,)
    bins = torch.arange(NUM_BINS, dtype=torch.float64)
    dist = bins[:, None, None] - pitch[..., None, :, None] * k  # (..., F, T, K)
    bump = torch.exp(-0.5 * (dist / params["width"].double()) ** 2)
    return (bump * params["partials"].double()).sum(-1).clamp(0.0, 1.0).float()
