"""Where a sensor bank's goal is likely, before its goals are read (what
:class:`~metaxm.align.sensor_sweep.SweepSearch` sweeps by).

Unsquashed, a ``projected`` variant reads ``z = W_a a + W_g g + b + noise``. Off the agent's part
(``P = I - W_a pinv(W_a)``, from the walk), ``P z = P (W_g g + b) + noise`` is the same at every
step of an episode. The family draws every row of ``[W_g, b]`` from one Gaussian (weights at the
agent's part's scale, offsets at the scale the family's training variants show), so over goals
``P z`` is a Gaussian process with the linear kernel ``k(g, g') = s_w g . g' + s_b`` in each
sensor. A walk episode that ended before its horizon ended on the goal (its last move led
there), so it gives one goal with its ``P z``; conditioned on those, the measured episode's mean
``P z`` says how likely each cell is as its goal (:func:`goal_log_likelihood`). Even with none,
``|P z|`` grows with the goal's distance from the grid's centre.
"""

from __future__ import annotations

import torch
from torch import Tensor


def off_agent(weights: Tensor) -> Tensor:
    """(D', D') the projection off the agent's part ``weights`` (D', m)."""
    return torch.eye(len(weights), dtype=weights.dtype) - weights @ torch.linalg.pinv(weights)


def within_noise(z: Tensor, episodes: list[list[int]], project: Tensor, rank: int) -> float:
    """The noise variance of one sensor: ``project`` (D', D', of rank ``rank``) times ``z``
    (N, D') varies within an episode only by it, by ``rank`` times it per row (pooled over
    ``episodes``' rows); 0 where no episode has two rows."""
    total, count = 0.0, 0
    for rows in episodes:
        if len(rows) < 2:
            continue
        r = z[rows] @ project.T
        total += float((r - r.mean(0)).pow(2).sum())
        count += len(rows) - 1
    return total / (count * rank) if count else 0.0


def goal_predictive(
    goals: Tensor, known: Tensor, known_r: Tensor, known_noise: Tensor, prior: Tensor,
    width: int,
) -> tuple[Tensor, Tensor]:  # fmt: skip
    """Per goal of ``goals`` (C, g), the mean (C, ``width``) and variance (C,) of its off-agent
    reading, given the goals ``known`` (L, g) with their readings ``known_r`` (L, width) and
    noise variances ``known_noise`` (L,). ``prior``: the weights' and the offsets' variances
    (its first two)."""
    weight_var, bias_var = float(prior[0]), float(prior[1])
    own = weight_var * goals.pow(2).sum(1) + bias_var  # (C,)
    if not len(known):
        return goals.new_zeros(len(goals), width), own
    gram = weight_var * known @ known.T + bias_var + torch.diag(known_noise)  # (L, L)
    cross = weight_var * goals @ known.T + bias_var  # (C, L)
    gain = torch.linalg.solve(gram, cross.T).T  # (C, L)
    return gain @ known_r, own - (gain * cross).sum(1)


def log_likelihood(r: Tensor, noise: Tensor, mean: Tensor, var: Tensor, dims: int) -> Tensor:
    """(B, C) the log-likelihood of each episode's mean off-agent reading ``r`` (B, D'), of
    noise variance ``noise`` (B,), under each goal's predictive ``mean`` (C, D') and ``var``
    (C,) (:func:`goal_predictive`); ``dims``: the sensors off the agent's part (the
    projection's rank)."""
    v = var.clamp_min(1e-12)[None] + noise[:, None]  # (B, C)
    sq = (r[:, None, :] - mean[None]).pow(2).sum(-1)
    return -0.5 * sq / v - 0.5 * dims * v.log()


def goal_log_likelihood(
    r: Tensor,
    noise: Tensor,
    goals: Tensor,
    known: Tensor,
    known_r: Tensor,
    known_noise: Tensor,
    prior: Tensor,
    dims: int,
) -> Tensor:
    """(B, C) :func:`log_likelihood` of ``r`` (B, D') under :func:`goal_predictive` of
    ``goals`` given the goals ``known``: how likely each cell is as each episode's goal."""
    mean, var = goal_predictive(goals, known, known_r, known_noise, prior, r.shape[1])
    return log_likelihood(r, noise, mean, var, dims)
