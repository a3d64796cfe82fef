"""A family with no prior of its own read as frames under one code (``priorfit``).

The prior for any family (:attr:`~metaxm.align.priorfit.MapPrior.unseen`) reads a new family's
observation flattened: a map with an entry per value. An observation whose last axis holds T
frames of F values each (a spectrogram: T time frames of F frequency bins) may instead play
every frame under one code, as ``audio`` plays each state feature as a tone whose pitch is the
value. A flattened map then has to learn each frame's code apart, and a frame that holds still
within an episode (GridNav's goal) shows its code only once per episode
(``docs/transfer-studies.md`` section 39). Read as frames, the map is

    W[f, t, s] = sum_r c[f, r] a[t, r, s]      (c: F x R, shared by every frame; a: T*R x S)

so the frames that move teach ``c``, and the still ones are read with it. ``c`` and ``a`` are
fitted to the pairs by alternating least squares (:func:`frame_solve`): ``a`` under the prior
for any family, on the T*R frame codes, and ``c`` by a ridge. The structure is an assumption
set by hand, not meta-learned; :func:`read` keeps it only where it predicts held-out pairs
better than the flattened map (:func:`choose`), so an image, whose columns share no code, stays
flattened when the pairs say so.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import gymnasium as gym
import torch
from torch import Tensor

from metaxm.align.least_squares import ridge

RANK = 1
"""Directions of the frames' shared code. Chosen on validation audio 100-101 (section 49):
at k = 2 / 4, 1 read 0.90 / 1.00 and 0.54 / 1.00, 2 read 0.70 / 1.00 and 0.20 / 0.99."""

ITERS = 100
"""Alternating least-squares rounds (30 rounds read validation audio 100 at k = 4 0.92, 100
rounds 1.00; section 49)."""

RIDGE = 1e-3
"""The code's ridge (:func:`~metaxm.align.least_squares.ridge`), as a share of its normal
equations' mean diagonal."""

Prior = Callable[[int], tuple[Tensor, Tensor]]
"""The prior's mean and log precisions (D, S) for D features (``MapPrior.unseen_prior``)."""


def frame_shape(space: gym.Space | None) -> tuple[int, int] | None:
    """(F, T) for a ``Box`` of rank 2 or more (F: the product of every axis but the last, T:
    the last axis), in the order ``obs.flatten(1)`` lays them out; None for anything else."""
    if not isinstance(space, gym.spaces.Box) or len(space.shape) < 2:
        return None
    return math.prod(space.shape[:-1]), space.shape[-1]


def frame_solve(
    x: Tensor, y: Tensor, frames: tuple[int, int], prior: Prior, rank: int = RANK,
    iters: int = ITERS,
) -> Tensor:  # fmt: skip
    """The frame-coded map (D, S) from ``x`` (N, F*T) to ``y`` (N, S) (module docstring).

    Alternating least squares is not convex, so it starts twice and keeps the start whose map
    fits the pairs better: from the top ``rank`` right singular vectors of every frame pooled
    (what the frames show most), and from the top ``rank`` left singular vectors of the
    flattened map (D, S) laid out as (F, T*S) (the code the flattened fit shares most)."""
    f, t = frames
    n, s = x.shape[0], y.shape[1]
    xf = x.double().reshape(n, f, t)
    pooled = xf.transpose(1, 2).reshape(n * t, f)
    flat = solve_pairs(x.double(), y.double(), *(p.double() for p in prior(f * t)))
    starts = [
        torch.linalg.svd(pooled, full_matrices=False).Vh[:rank].T,  # (F, R)
        torch.linalg.svd(flat.reshape(f, t * s), full_matrices=False).U[:, :rank],
    ]
    fits = [_alternate(xf, y.double(), code, prior, iters) for code in starts]
    w = min(fits, key=lambda w: float((x.double() @ w - y.double()).pow(2).sum()))
    return w.to(x.dtype)


def _alternate(xf: Tensor, yd: Tensor, code: Tensor, prior: Prior, iters: int) -> Tensor:
    """:func:`frame_solve`'s rounds from one start ``code`` (F, R): the map (F*T, S), float64."""
    n, f, t = xf.shape
    s, rank = yd.shape[1], code.shape[1]
    mean, log_prec = (p.double() for p in prior(t * rank))
    for _ in range(iters):
        a = solve_pairs(codes(xf, code), yd, mean, log_prec).reshape(t, rank, s)
        g = torch.einsum("nft,trs->nsfr", xf, a).reshape(n * s, f * rank)
        code = ridge(g, yd.reshape(-1, 1), RIDGE).reshape(f, rank)
        code = code / code.norm(dim=0, keepdim=True).clamp_min(1e-12)
    a = solve_pairs(codes(xf, code), yd, mean, log_prec).reshape(t, rank, s)
    return torch.einsum("fr,trs->fts", code, a).reshape(f * t, s)


def primal_solve(x: Tensor, y: Tensor, mean: Tensor, log_prec: Tensor) -> Tensor:
    """:func:`~metaxm.align.priorfit.prior_solve` in its primal form, per source channel j
    ``(X'X + diag p_j) w_j = X'y_j + p_j m_j`` (D x D), in float64: the same map, far cheaper
    where the pairs outnumber the features (a frame code's T*R against a few hundred pairs);
    the dual form solves N x N."""
    from metaxm.align.priorfit import units

    x, y, mean, log_prec = (t.double() for t in (x, y, mean, log_prec))
    r = units(x)
    xs = x / r
    prec = log_prec.exp().T  # (S, D)
    lhs = (xs.T @ xs).expand(prec.shape[0], -1, -1) + torch.diag_embed(prec)
    rhs = (xs.T @ y).T + prec * mean.T  # (S, D)
    return torch.linalg.solve(lhs, rhs.unsqueeze(-1)).squeeze(-1).T / r[:, None]


def solve_pairs(x: Tensor, y: Tensor, mean: Tensor, log_prec: Tensor) -> Tensor:
    """The MAP map (D, S) in whichever form is smaller: :func:`primal_solve` where the pairs
    outnumber the features, :func:`~metaxm.align.priorfit.prior_solve` (dual) otherwise."""
    from metaxm.align.priorfit import prior_solve

    if x.shape[1] < x.shape[0]:
        return primal_solve(x, y, mean, log_prec).to(mean.dtype)
    return prior_solve(x, y, mean, log_prec)


def codes(xf: Tensor, code: Tensor) -> Tensor:
    """(N, T*R) every frame of ``xf`` (N, F, T) read through ``code`` (F, R)."""
    return torch.einsum("nft,fr->ntr", xf, code).reshape(xf.shape[0], -1)


def choose(x: Tensor, y: Tensor, frames: tuple[int, int], prior: Prior) -> bool:
    """Whether the frame-coded map predicts held-out pairs better than the flattened one: each
    fitted on one half of the pairs (in the order they were played) and scored on the other,
    both ways, by its squared error per source channel in units of the channel's variance over
    the pairs (so a goal's channel, which moves only between episodes, weighs as much as the
    agent's; a channel the pairs hold still is not scored)."""
    half = x.shape[0] // 2
    if half < 1:
        return False
    var = y.double().var(0, correction=0)
    weight = torch.where(var > 1e-8, 1.0 / var.clamp_min(1e-8), 0.0)
    folds = [(slice(0, half), slice(half, None)), (slice(half, None), slice(0, half))]
    flat = framed = 0.0
    for fit, held in folds:
        w_flat = solve_pairs(x[fit], y[fit], *prior(x.shape[1]))
        w_frames = frame_solve(x[fit], y[fit], frames, prior)
        flat += float(((x[held] @ w_flat - y[held]).double().pow(2) * weight).sum())
        framed += float(((x[held] @ w_frames - y[held]).double().pow(2) * weight).sum())
    return framed < flat


def read(x: Tensor, y: Tensor, frames: tuple[int, int] | None, prior: Prior) -> Tensor:
    """The map (D, S) for a family with no prior of its own: frame-coded where ``frames`` is
    given and :func:`choose` keeps it, else flattened under ``prior``."""
    from metaxm.align.priorfit import prior_solve

    if frames is not None and choose(x, y, frames, prior):
        return frame_solve(x, y, frames, prior)
    return prior_solve(x, y, *prior(x.shape[1]))
