"""Reading a spectrogram one time frame at a time, linearly: the ``translate`` learner's
translator for the ``audio`` family.

An ``audio`` observation (:mod:`metaxm.modalities.audio`) plays each state feature as one time
frame, a harmonic tone whose pitch the value sets, with a variant's base pitch, pitch scale,
harmonics, partial width and noise. :class:`FrameValueTranslator` reads it as

    x_t = reader . spectrum of frame t        one linear reader, shared by every frame
    source = x @ routing                      a linear map without intercept

A grid world's features take few values (a 7 x 7 grid: 7), so their tones are a few fixed
spectra plus noise, and a linear reader of the 32 bins can give each of them any number: the
reader is fitted by ridge regression from the frame and source channel it explains best,
preferring the channel with the most distinct values (the agent's position, which a walk moves;
a goal's frame takes k values in k episodes, and would explain any quantity constant within an
episode). Every frame is then read with it, so the goal's frames are read by what the agent's
taught; the routing is least squares without intercept
(:func:`~metaxm.align.least_squares.fit_routing`), which two goals pin as they pin a re-wired
vector's channel. All closed form; there are no gradient steps. A feature that takes many
values (a gymnasium env's continuous state) would need a nonlinear reader:
:class:`~metaxm.align.translate.FrameTranslator`, which a family can register instead.
"""

from __future__ import annotations

import gymnasium as gym
import torch
from torch import Tensor, nn

from metaxm.align.least_squares import fit_routing, ridge
from metaxm.nn.encoders import time_frames

READER_RIDGE = 1e-2
"""The reader's ridge, times the mean diagonal of the frames' Gram matrix (the noise)."""
READER_SHARE = 0.9
"""The reader is fitted on a frame that explains this share of a channel's variance or more."""


def fit_reader(frames: Tensor, source: Tensor) -> Tensor | None:
    """The linear reader of one frame's spectrum, at unit norm (see the module docstring).

    Args:
        frames: (N, T, P) every row's time frames.
        source: (N, S) the source observations.

    Returns:
        (P,), or None when no frame explains :data:`READER_SHARE` of any channel.
    """
    variance = source.var(0, unbiased=False).clamp_min(1e-12)
    distinct = torch.tensor([torch.unique(column).numel() for column in source.T])
    best, reader = None, None
    for frame in range(frames.shape[1]):
        weights = ridge(frames[:, frame], source, READER_RIDGE)  # (P, S)
        residual = (frames[:, frame] @ weights - source).pow(2).mean(0)
        share = 1.0 - residual / variance
        for channel in (share >= READER_SHARE).nonzero().flatten().tolist():
            key = (int(distinct[channel]), float(share[channel]))
            if best is None or key > best:
                best, reader = key, weights[:, channel]
    return None if reader is None else reader / reader.norm()


class FrameValueTranslator(nn.Module):
    """A spectrogram (C, F, T) -> the source's (S,): one linear reader per time frame, shared,
    then a linear routing (see the module docstring); :meth:`start` fits it, and it has no
    parameters for gradient steps."""

    def __init__(self, space: gym.Space, out_dim: int, config: object = None) -> None:
        super().__init__()
        c, f, t = space.shape
        self.register_buffer("reader", torch.zeros(c * f))
        self.register_buffer("routing", torch.zeros(t, out_dim))

    @torch.no_grad()
    def start(self, target: Tensor, source: Tensor) -> None:
        """Fit the reader and the routing to ``target`` (N, C, F, T) and ``source`` (N, S)."""
        frames, source = time_frames(target).double(), source.double()
        reader = fit_reader(frames, source)
        if reader is None:  # nothing read: the translation stays 0
            return
        self.reader.copy_(reader)
        self.routing.copy_(fit_routing(frames @ reader, source))

    def forward(self, obs: Tensor) -> Tensor:
        return (time_frames(obs) @ self.reader) @ self.routing
