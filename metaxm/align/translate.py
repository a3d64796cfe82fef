"""Few-shot translation of a new modality into a known one (the ``translate`` learner).

:mod:`metaxm.align.fewshot` fits the new modality's own encoder so that its latents meet the
source modality's. Here a small *translator* is fitted instead, from the new modality's
observation to the **source modality's observation** of the same state, and the agent reads
the translation with the source's own encoder and adapter, which already know every state,
goals included. This is sensory substitution read literally: the new sensor is turned into
the old one.

Why it needs fewer episodes. The goal is constant within an episode, so k episodes show k
goals; a fitted encoder must learn how the latent moves with the goal from those k points.
A translator only has to learn how the new sensor shows a value, and every translator
here reads all the observation's parts with one shared reader (one reader for every time
frame of a spectrogram, one moment per colour of an image, one value per token id), so what it
learns from the agent's position, which moves at every step, reads the goal's parts too. What
is left for the k goals is a linear routing from the reader's outputs to the source's
channels.

The translators, by the target's observation space (:func:`make_translator`; a family may
register its own with :func:`register_translator`):

* a vector (``Box`` of rank 1): :class:`~metaxm.align.translate_vector.VectorTranslator`, a
  linear map without intercept (least squares) plus an MLP; the ``vector`` family's:
  :class:`~metaxm.align.reading_search.ReadingSearchTranslator`, one reader and gain per
  channel, with every reading one episode leaves open searched within the episode where the
  world can tell success from features; the ``projected`` family's squashed sensors:
  :class:`~metaxm.align.sensor_posterior.SensorPosteriorTranslator`, a Bayesian linear model
  of the unsquashed sensors decoded to the most probable of the source's observations;
  :class:`UnsquashTranslator`, ``atanh`` then the linear map in closed form, is the
  alternative for a family of continuous states, which it can register;
* the ``audio`` family's spectrograms (``(C, F, T)``):
  :class:`~metaxm.align.frame_values.FrameValueTranslator`, each time frame's pitch (or one
  linear reader for every frame), routed linearly, all fitted in closed form;
  :class:`FrameTranslator`, an MLP reader per frame fitted by Adam, is the alternative for
  features that take many values (a gymnasium env's continuous state), which a family can
  register;
* the ``pixels`` family's palette images:
  :class:`~metaxm.align.colour_moments.ColourMomentTranslator`, where each exact colour is (its
  summed pixel coordinates), routed linearly, all fitted in closed form;
* any other image (a ``Box`` of rank 3): :class:`KeypointTranslator`, a per-pixel colour reader
  whose maps are pooled by a spatial soft-argmax into coordinates (Levine et al. 2016,
  "End-to-End Training of Deep Visuomotor Policies"), which a rotation or flip of the grid
  turns into a linear map of the coordinates;
* token ids (``MultiDiscrete``): :class:`~metaxm.align.token_values.TokenValueTranslator`, one
  value per token id, shared by every place in the sentence, routed linearly, all fitted in
  closed form.

Besides the pairs, a translator with ``uses_context`` is given the source modality's
observations of states drawn from the world, and paired renders of the target family's
training variants (:mod:`metaxm.align.translation_context`): what the agent already knows,
none of it from the target variant.

The fit (:func:`fit_translator`) is Adam on the squared error to the source observations,
``align.translate_iters`` steps of ``align.batch_size`` rows at ``align.translate_lr``, after
a translator's closed-form ``start`` where it has one; the projected, audio, pixels and token
translators are all closed form and take no steps (``docs/transfer-studies.md`` sections 11
and 12).
The source modality must be a vector (``Box`` of rank 1); the default source, the first
variant of the first training family, is one in every shipped spec.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor, nn

from metaxm.align.colour_moments import ColourMomentTranslator
from metaxm.align.frame_values import FrameValueTranslator
from metaxm.align.least_squares import fit_routing
from metaxm.align.reading_search import ReadingSearchTranslator
from metaxm.align.sensor_posterior import SensorPosteriorTranslator
from metaxm.align.token_values import TokenValueTranslator
from metaxm.align.translate_vector import VectorTranslator
from metaxm.align.translation_context import TranslationContext
from metaxm.config.align import AlignConfig
from metaxm.errors import ConfigError
from metaxm.nn.encoders import standardize_image, time_frames
from metaxm.nn.layers import mlp

if TYPE_CHECKING:
    from metaxm.nn.agent import Agent
    from metaxm.spec import Spec

TranslatorBuilder = Callable[[gym.Space, int, AlignConfig], nn.Module]
"""``(target observation space, source observation width, align config) -> module``."""

KEYPOINTS = 8
"""Keypoint maps of :class:`KeypointTranslator`."""
READINGS = 4
"""Values :class:`FrameTranslator`'s reader gives per time frame."""


class UnsquashTranslator(nn.Module):
    """A vector of squashed sensors (D,) in (-1, 1) -> the source's (S,): ``atanh`` of each
    sensor, then a linear map without intercept, fitted in closed form
    (:func:`~metaxm.align.least_squares.fit_routing`); the ``projected`` family's.

    A ``projected`` sensor reads ``tanh(w . s + b + noise)``, so ``atanh`` gives back a linear
    mix of the state with an offset, which the map sends to the source's features as the
    vector translator's map does a re-wired vector's (validation projected variants at
    k = 2 / 4: 0.41-0.70 / 1.00 success, against 0.22-0.55 / 0.88-0.92 for
    :class:`VectorTranslator`'s map and MLP; ``docs/transfer-studies.md`` section 11).
    """

    def __init__(self, space: gym.Space, out_dim: int, config: object = None) -> None:
        super().__init__()
        self.register_buffer("routing", torch.zeros(int(np.prod(space.shape)), out_dim))

    @staticmethod
    def unsquash(obs: Tensor) -> Tensor:
        return torch.atanh(obs.float().flatten(1).clamp(-1.0 + 1e-6, 1.0 - 1e-6))

    @torch.no_grad()
    def start(self, target: Tensor, source: Tensor) -> None:
        """Fit the map to ``target`` (N, D) and ``source`` (N, S)."""
        self.routing.copy_(fit_routing(self.unsquash(target), source))

    def forward(self, obs: Tensor) -> Tensor:
        return self.unsquash(obs) @ self.routing


class FrameTranslator(nn.Module):
    """A spectrogram (C, F, T) -> (S,): one reader for every time frame, then a linear routing.

    The reader (an MLP of a frame's C x F spectrum to :data:`READINGS` values) is shared by
    the frames, so how it hears a value is learned from every frame that changes.
    """

    def __init__(self, space: gym.Space, out_dim: int, config: AlignConfig) -> None:
        super().__init__()
        c, f, t = space.shape
        self.read = mlp([c * f, config.translate_width, READINGS], "relu")
        self.route = nn.Linear(t * READINGS, out_dim)

    def forward(self, obs: Tensor) -> Tensor:
        return self.route(self.read(time_frames(obs)).flatten(1))  # frames (N, T, C * F)


class KeypointTranslator(nn.Module):
    """An image (C, H, W) -> (S,): keypoints of a per-pixel reader, then a linear routing.

    One MLP reads each pixel's colour into :data:`KEYPOINTS` maps (a 1 x 1 convolution); each map's
    softmax over the image gives the expected (x, y) of what it fires on (a spatial
    soft-argmax), and the coordinates are routed linearly to the source's channels. A colour
    learned anywhere in the image is read everywhere, so a goal shown at k places is found at
    every place.
    """

    def __init__(self, space: gym.Space, out_dim: int, config: AlignConfig) -> None:
        super().__init__()
        c, h, w = space.shape
        self.maps = mlp([c, config.translate_width // 4, KEYPOINTS], "relu")  # per pixel
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
        self.register_buffer("grid", torch.stack((xs.flatten(), ys.flatten()), 1), persistent=False)
        self.route = nn.Linear(2 * KEYPOINTS, out_dim)

    def forward(self, obs: Tensor) -> Tensor:
        pixels = standardize_image(obs).flatten(2).transpose(1, 2)  # (N, H * W, C)
        weights = self.maps(pixels).transpose(1, 2).softmax(-1)  # (N, K, H * W)
        return self.route((weights @ self.grid).flatten(1))  # (N, K, 2) -> (N, S)


TRANSLATORS: dict[str, TranslatorBuilder] = {
    "audio": FrameValueTranslator,
    "pixels": ColourMomentTranslator,
    "projected": SensorPosteriorTranslator,
    "text": TokenValueTranslator,
    "vector": ReadingSearchTranslator,
}
"""Family -> translator builder; families not here get one chosen from their space."""


def register_translator(family: str, builder: TranslatorBuilder, overwrite: bool = False) -> None:
    """Use ``builder(space, source_width, align_config)`` to translate ``family``."""
    if family in TRANSLATORS and not overwrite:
        raise ValueError(f"a translator for family {family!r} is already registered")
    TRANSLATORS[family] = builder


def make_translator(
    family: str, space: gym.Space, out_dim: int, config: AlignConfig, seed: int = 0
) -> nn.Module:
    """The translator of ``family``'s observations (``space``) into ``out_dim`` source values,
    its weights drawn from ``seed`` (the global RNG is left untouched).

    Raises:
        ConfigError: no translator fits ``space``.
    """
    if family in TRANSLATORS:
        builder = TRANSLATORS[family]
    elif isinstance(space, gym.spaces.MultiDiscrete):
        builder = TokenValueTranslator
    elif isinstance(space, gym.spaces.Box) and len(space.shape) == 1:
        builder = VectorTranslator
    elif isinstance(space, gym.spaces.Box) and len(space.shape) == 3:
        builder = KeypointTranslator
    else:
        raise ConfigError(
            f"no translator reads family {family!r}'s observations ({space}); register one "
            "with metaxm.align.translate.register_translator"
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return builder(space, out_dim, config)


def is_vector(space: gym.Space | None) -> bool:
    """``space`` is a vector (a ``Box`` of rank 1), what a translation can regress."""
    return isinstance(space, gym.spaces.Box) and len(space.shape) == 1


def cannot_translate(agent: Agent, spec: Spec) -> str | None:
    """Why ``translate`` cannot adapt ``agent`` under ``spec``, or None where it can."""
    from metaxm.align.fewshot import default_source

    if agent.instruction is not None:
        return (
            "an instruction world's observations carry the instruction beside the modality's "
            "own (use align)"
        )
    family = default_source(spec)[0]
    if not is_vector(agent.observation_spaces.get(family)):
        return f"the source modality, {family}, is not a vector"
    return None


def source_width(family: str, space: gym.Space) -> int:
    """The number of values a translation into ``family`` (observation ``space``) has.

    Raises:
        ConfigError: the source modality is not a vector, so it cannot be regressed.
    """
    if not is_vector(space):
        raise ConfigError(
            f"translate needs a vector source modality (a Box of rank 1) to translate into; "
            f"the source family {family!r} observes {space} (the source is the first variant of "
            "the first family in modalities.train: put a vector family first)"
        )
    return int(space.shape[0])


def fit_translator(
    translator: nn.Module,
    target: Tensor,
    source: Tensor,
    config: AlignConfig,
    seed: int = 0,
    context: TranslationContext | None = None,
) -> list[float]:
    """Train ``translator`` in place so that ``translator(target) ~ source``; the losses.

    A translator with a ``start(target, source)`` method has it called first (the vector
    translator's least-squares map); one without parameters is then fitted (the projected,
    audio, pixels and token translators, all closed form), and its loss on the pairs is the
    only one returned.

    Args:
        translator: from :func:`make_translator`.
        target: (N, *target shape) the new modality's observations.
        source: (N, S) the source modality's observations of the same states.
        config: ``translate_iters``, ``translate_lr``, ``batch_size``.
        seed: draws the minibatches.
        context: what a translator with ``uses_context`` is given (its ``prepare``) before
            the fit: the source's possible observations, the family's training variants
            (:func:`~metaxm.align.translation_context.translation_context`).
    """
    source = source.float()
    if context is not None and getattr(translator, "uses_context", False):
        translator.prepare(context)
    start = getattr(translator, "start", None)
    if callable(start):  # a closed-form part set from the pairs before the steps
        start(target, source)
    params = [p for p in translator.parameters() if p.requires_grad]
    if not params:
        translator.eval()
        with torch.no_grad():
            return [float((translator(target) - source).pow(2).mean())]
    optimizer = torch.optim.Adam(params, lr=config.translate_lr)
    g = torch.Generator().manual_seed(seed)
    n = target.shape[0]
    losses = []
    for _ in range(config.translate_iters):
        idx = torch.randperm(n, generator=g)[: config.batch_size].to(target.device)
        loss = (translator(target[idx]) - source[idx]).pow(2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    translator.eval()
    return losses
