"""The least squares the closed-form translators share (:mod:`metaxm.align.token_values`,
:mod:`metaxm.align.colour_moments`, :mod:`metaxm.align.frame_values` and
:class:`~metaxm.align.translate.UnsquashTranslator`): a map without intercept, which
channels it explains, and (:func:`single_readings`) the channels it leaves undetermined read
from one reading each, within :func:`fit_tolerance` of the pairs."""

from __future__ import annotations

import torch
from torch import Tensor

EXPLAINED = 0.5
"""A channel the map explains less of (the source's noise channels) is not translated: 0."""


def ridge(x: Tensor, y: Tensor, lam: float = 1e-9) -> Tensor:
    """Least squares of ``y`` (N, S) on ``x`` (N, D), without intercept, with a ridge of ``lam``
    times the mean diagonal of x'x (so that a feature reading 0 in every row gets no weight)."""
    gram = x.T @ x
    reg = lam * gram.diagonal().mean().clamp_min(1e-12)
    eye = torch.eye(gram.shape[0], dtype=x.dtype, device=x.device)
    return torch.linalg.solve(gram + reg * eye, x.T @ y)


def explains(x: Tensor, routing: Tensor, source: Tensor) -> Tensor:
    """(S,) bool: the channels ``x @ routing`` explains :data:`EXPLAINED` of the variance of,
    or that are constant (read as a scale of the features that are constant too)."""
    variance = source.var(0, unbiased=False)
    residual = (x @ routing - source).pow(2).mean(0)
    return (residual < (1.0 - EXPLAINED) * variance) | (variance <= 1e-12)


def fit_routing(x: Tensor, source: Tensor) -> Tensor:
    """The map from features ``x`` (N, D) to ``source`` (N, S) by least squares, with the
    channels it does not explain set to 0 (float64)."""
    x, source = x.double(), source.double()
    routing = ridge(x, source)
    return routing * explains(x, routing, source)


PINNED = 0.99
"""A channel whose routing puts this share of its norm on one reading is read from that one."""


def pinned_groups(routing: Tensor, group: int = 1) -> Tensor:
    """(S,) long: the group of ``group`` consecutive readings each channel of ``routing``
    (F, S) is pinned to (it holds :data:`PINNED` of the channel's norm), or -1 (no weight, or
    spread over groups); with ``group`` 1, the one reading a channel is read from."""
    blocks = routing.reshape(-1, group, routing.shape[1]).norm(dim=1)  # (G, S)
    peak, where = blocks.max(0)
    norm = routing.norm(dim=0)
    return torch.where((norm > 0) & (peak >= PINNED * norm), where, torch.full_like(where, -1))


def fit_tolerance(
    x: Tensor, source: Tensor, routing: Tensor, pinned: Tensor, ranges: Tensor
) -> float | None:
    """The misfit over the pairs, as a share of a channel's range, within which a reading fits
    a channel: three times the ``pinned`` channels' own misfit (their noise), at least 1e-3;
    None where no channel is pinned (float64 ``x``, ``source``, ``routing`` and ``ranges``)."""
    if not bool(pinned.any()):
        return None
    residual = (x @ routing[:, pinned] - source[:, pinned]).pow(2).mean(0).sqrt()
    return max(1e-3, 3.0 * float((residual / ranges[pinned]).max()))


def single_readings(x: Tensor, source: Tensor, routing: Tensor, ranges: Tensor) -> Tensor:
    """``routing`` with each explained channel that it spreads over several readings re-read
    from one reading, where exactly one (with a sign) fits the pairs at the shared scale.

    Readings that share one scale (the number words' values of a sentence, the colours'
    moments of an image) read each source channel from one reading, ``source_j = +-ratio *
    range_j * x_f``, with one ``ratio`` for all. Least squares finds it where the pairs pin it;
    where they do not (the goal's channels after goals on one line through the grid's centre,
    which move both of the goal's readings in proportion), the minimum-norm map spreads the
    channel over the readings and misreads a goal off that line. The ratio is learned from
    the channels least squares pins to one reading (the agent's, which a walk moves), and a
    spread channel is re-read from the one reading and sign that fit its pairs at that scale (to
    three times the pinned channels' own misfit, their noise); where none or several do (a goal
    on a diagonal through the centre), it is left as it was. Where least squares pins a channel,
    the one exact fit is its own, so nothing it determined changes.

    Args:
        x: (N, F) the readings of the pairs.
        source: (N, S) the source observations.
        routing: (F, S) the least-squares map (:func:`fit_routing`).
        ranges: (S,) each source channel's largest absolute value over the source's possible
            observations.
    """
    x, source, routing = x.double(), source.double(), routing.double().clone()
    ranges = ranges.double().to(routing.device)
    peak = routing.abs().max(0).values  # (S,)
    explained = (routing.norm(dim=0) > 0) & (ranges > 0)
    pinned = explained & (pinned_groups(routing) >= 0)
    tolerance = fit_tolerance(x, source, routing, pinned, ranges)
    if tolerance is None:
        return routing
    ratio = (peak[pinned] / ranges[pinned]).median()
    signs = torch.tensor([1.0, -1.0], dtype=x.dtype, device=x.device)
    for j in (explained & ~pinned).nonzero().flatten().tolist():
        size = ratio * ranges[j]
        # (F, 2) the root mean square misfit over the pairs of reading f at sign s
        misfit = (x[:, :, None] * (signs * size) - source[:, j, None, None]).pow(2).mean(0).sqrt()
        fits = (misfit <= tolerance * ranges[j]).nonzero()
        if len(fits) == 1:
            f, s = fits[0].tolist()
            routing[:, j] = 0.0
            routing[f, j] = signs[s] * size
    return routing
