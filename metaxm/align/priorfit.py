"""A meta-learned paired fit solved in closed form: a linear map from a new variant's
observation to the source modality's, the MAP estimate under a Gaussian prior whose mean and
per-entry precisions are meta-learned over fresh variants of the family (``algo: priorfit``).

It is MAML's question asked of a fit whose inner problem is solved exactly: iMAML's proximal
inner problem (Rajeswaran et al. 2019, arXiv:1909.04630), whose prior mean plays the learned
start and whose precisions the per-parameter inner rates (a high precision: an entry the data
barely move), solved in closed form as in R2-D2 (Bertinetto et al. 2019, arXiv:1805.08136).
For a target variant, k episodes' paired steps give X (N, D), the target's observations
(flattened, scaled as the encoders scale them), and Y (N, S), the source's. Per source
channel j, with prior mean m_j and precisions p_j (D each)::

    w_j = argmin |X w - y_j|^2 + sum_i p_ij (w_i - m_ij)^2
        = m_j + P_j^-1 X' (X P_j^-1 X' + I)^-1 (y_j - X m_j)      (N x N: D may be large)

Each feature is measured in units of its root mean square over the pairs
(:func:`prior_solve`), so one prior serves a variant whatever its features' scales. The agent
reads ``X w`` with the source's encoder and adapter, as ``translate``'s policy
does (:class:`metaxm.learners.PriorFit`). Meta-training (:mod:`metaxm.align.priorfit_trainer`)
takes the squared error of the source latents the translation of query episodes gives, through
the exact solve, so the meta-gradient is the implicit one (``tests/align/test_priorfit.py``
checks it against ``higher`` unrolled to convergence). A family's own prior is learned for a
vector observation only (:func:`~metaxm.align.translate.is_vector`). A family with none
(never trained on, or an image or a spectrogram; not token ids, :func:`flat_readable`) is read
flattened under the prior for any family (:attr:`MapPrior.unseen`): mean 0 and, per source
channel j, one log precision ``u_j``, set on every feature as ``u_j + log D`` (so the prior
variance of the channel's reading summed over the D features is ``exp(-u_j)`` whatever D),
meta-learned on the training families' tasks beside their own priors; an observation with
frames (a spectrogram) may be read as frames under one shared code instead, where the pairs
prefer it (:mod:`metaxm.align.frame_code`: a structure set by hand). A family whose sensors
are ``tanh`` of a linear mix of the state (``projected``, :data:`SQUASHED`) is read unsquashed
(``atanh``), where the state is an affine map of them (the bias one more direction of the 32
sensors, which the map learns to send to 0); a prior records it
(:attr:`MapPrior.unsquashed`), so one meta-learned before that is read as it was learned.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor, nn

from metaxm.nn.encoders import _scale

MAP = "map"
"""The one tensor per family of a saved prior's tables (``{kind: {family: {MAP: tensor}}}``):
(D, S) for ``mean`` and ``log_prec``, and 1.0 in ``unsquashed`` for a family read unsquashed."""


def flat_readable(space: gym.Space | None) -> bool:
    """Whether a linear map reads observations of ``space`` flattened: a ``Box`` of any rank
    (a vector, an image, a spectrogram), not token ids."""
    return isinstance(space, gym.spaces.Box)


ANY = "any"
"""The family key of :attr:`MapPrior.unseen` in a saved prior's ``unseen`` table: any family
without a prior of its own."""


SQUASHED = {"projected"}
"""Families whose sensors are ``tanh`` of a linear mix of the state (and noise): a prior
meta-learned for one reads its observations unsquashed (:func:`unsquash`). A plugin family of
that kind adds its name here before its ``priorfit`` run."""


def unsquash(x: Tensor) -> Tensor:
    """``atanh`` of squashed sensors, clamped 1e-6 inside (-1, 1)."""
    return torch.atanh(x.clamp(-1.0 + 1e-6, 1.0 - 1e-6))


def features(obs: Tensor, space: gym.Space, unsquashed: bool = False) -> Tensor:
    """(N, D) the map's inputs: observations flattened and scaled as the encoders scale them,
    or with ``unsquashed``, flattened and unsquashed (:func:`unsquash`)."""
    x = obs.float().flatten(1)
    return unsquash(x) if unsquashed else x * _scale(space)


def map_solve(x: Tensor, y: Tensor, mean: Tensor, log_prec: Tensor) -> Tensor:
    """The MAP linear map (D, S) of the module docstring from ``x`` (N, D) to ``y`` (N, S),
    differentiable in ``mean`` and ``log_prec`` (both (D, S)); in ``mean``'s dtype, solved in
    float64 (a weak prior on many features, e.g. an image's 2,352 near least squares, makes
    the N x N system's entries 1e7 and more, past float32's precision)."""
    dtype = mean.dtype
    x, y, mean, log_prec = (t.double() for t in (x, y, mean, log_prec))
    inv = (-log_prec).exp().T  # (S, D): the prior variances per source channel
    gram = torch.einsum("nd,sd,md->snm", x, inv, x)  # (S, N, N): X P_j^-1 X'
    eye = torch.eye(x.shape[0], dtype=x.dtype, device=x.device)
    resid = (y - x @ mean).T  # (S, N)
    alpha = torch.linalg.solve(gram + eye, resid.unsqueeze(-1)).squeeze(-1)  # (S, N)
    return (mean + (inv * (alpha @ x)).T).to(dtype)


QUIET = 1e-2
"""A feature whose root mean square over the pairs is below this (a channel the pairs never
move off 0) is left in its own units by :func:`prior_solve`."""


def prior_solve(x: Tensor, y: Tensor, mean: Tensor, log_prec: Tensor) -> Tensor:
    """The map (D, S) from ``x`` to ``y`` the prior gives, the prior set on each feature in
    units of its root mean square over the pairs: :func:`map_solve` on ``x / r``, mapped back.

    So the prior is the same whatever a variant's scale of a feature: a feature the pairs move
    little (a CartPole state channel moves by hundredths) is read as firmly as one they move
    much, where a prior in the features' own units would hold it near its mean. A feature the
    pairs leave at 0 keeps its own units (:data:`QUIET`), where its weight is the prior mean's.
    """
    r = units(x)
    return map_solve(x / r, y, mean, log_prec) / r[:, None]


def units(x: Tensor) -> Tensor:
    """(D,) each feature's unit for the prior: its root mean square over ``x`` (N, D), or 1
    where that is below :data:`QUIET`."""
    rms = x.pow(2).mean(0).sqrt()
    return torch.where(rms > QUIET, rms, torch.ones_like(rms))


class LinearTranslator(nn.Module):
    """A target observation -> the source's: ``features(obs, space, unsquashed) @ weight``."""

    def __init__(self, weight: Tensor, space: gym.Space, unsquashed: bool = False) -> None:
        super().__init__()
        self.register_buffer("weight", weight.detach())
        self.register_buffer("unsquashed", torch.tensor(unsquashed))
        self.space = space
        self._unsquashed = unsquashed  # the buffer's value, read without a device sync

    @classmethod
    def blank(cls, space: gym.Space, width: int) -> LinearTranslator:
        """A map of zeros from ``space`` to ``width`` values, for a saved one to load into."""
        return cls(torch.zeros(int(np.prod(space.shape)), width), space)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # noqa: ANN001
        """A map saved before ``unsquashed`` was kept read its inputs as they are."""
        state_dict.setdefault(prefix + "unsquashed", torch.tensor(False))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._unsquashed = bool(state_dict[prefix + "unsquashed"])

    def forward(self, obs: Tensor) -> Tensor:
        return features(obs, self.space, self._unsquashed) @ self.weight


@dataclass
class MapPrior:
    """Per training family: the prior's mean and log precisions of the map, each (D, S).

    Attributes:
        mean: ``{family: (D, S)}``.
        log_prec: ``{family: (D, S)}``.
        unsquashed: the families whose observations the map reads unsquashed
            (:func:`features`): those of :data:`SQUASHED` when the prior was first made.
        unseen: (S,) the prior of a family with none of its own (:meth:`unseen_prior`), or
            None (a prior saved before it was learned: such a family is refused).
    """

    mean: dict[str, Tensor]
    log_prec: dict[str, Tensor]
    unsquashed: set[str] = field(default_factory=set)
    unseen: Tensor | None = None

    def unseen_prior(self, d: int) -> tuple[Tensor, Tensor]:
        """The mean (0) and log precisions (D, S) of a family with no prior of its own, read
        through ``d`` features: per source channel, :attr:`unseen` plus ``log d``, so the
        prior variance of the channel's reading, summed over the features (each in units of
        its root mean square, :func:`prior_solve`), is ``exp(-unseen)`` whatever ``d``."""
        assert self.unseen is not None, "a prior saved before the unseen one was learned"
        log_prec = (self.unseen + math.log(d)).expand(d, -1)
        return torch.zeros_like(log_prec), log_prec

    def inputs(self, family: str, obs: Tensor, space: gym.Space) -> Tensor:
        """(N, D) what ``family``'s map reads of ``obs`` (:func:`features`)."""
        return features(obs, space, family in self.unsquashed)

    def solve(
        self, family: str, x: Tensor, y: Tensor, frames: tuple[int, int] | None = None
    ) -> Tensor:
        """The MAP map of ``family`` from features ``x`` (N, D) to source observations ``y``
        (:func:`prior_solve`), under the family's own prior or, where it has none,
        :meth:`unseen_prior`, read as ``frames`` (F, T) under one code where the pairs keep
        that reading (:func:`metaxm.align.frame_code.read`).

        Raises:
            KeyError: no prior for the family (none of its own, and no :attr:`unseen`).
        """
        if family in self.mean:
            return prior_solve(x, y, self.mean[family], self.log_prec[family])
        if self.unseen is None:
            raise KeyError(f"no meta-learned prior for family {family!r}")
        from metaxm.align.frame_code import read

        return read(x, y, frames, self.unseen_prior)

    def state_dict(self) -> dict[str, dict[str, dict[str, Tensor]]]:
        state = {
            "mean": {f: {MAP: t} for f, t in self.mean.items()},
            "log_prec": {f: {MAP: t} for f, t in self.log_prec.items()},
            "unsquashed": {f: {MAP: torch.tensor(1.0)} for f in sorted(self.unsquashed)},
        }
        if self.unseen is not None:
            state["unseen"] = {ANY: {MAP: self.unseen}}
        return state

    @classmethod
    def from_state(
        cls, state: Mapping[str, Mapping[str, Mapping[str, Tensor]]], device: str | None = None
    ) -> MapPrior:
        """What :meth:`state_dict` saved, on ``device`` (default: where it is); a prior saved
        before :attr:`unsquashed` was kept reads every family as it is, and one saved before
        :attr:`unseen` was learned has none."""

        def load(table: Mapping[str, Tensor]) -> Tensor:  # a copy: training it leaves state be
            return table[MAP].to(device, copy=True)

        tables = [{f: load(p) for f, p in state[k].items()} for k in ("mean", "log_prec")]
        unsquashed = {f for f, p in state.get("unsquashed", {}).items() if bool(p[MAP])}
        unseen = state.get("unseen", {}).get(ANY)
        return cls(*tables, unsquashed, None if unseen is None else load(unseen))
