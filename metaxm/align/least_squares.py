"""The least squares the closed-form translators share (:mod:`metaxm.align.token_values`,
:mod:`metaxm.align.colour_moments`, :mod:`metaxm.align.frame_values` and
:class:`~metaxm.align.translate.UnsquashTranslator`): a map without intercept, and which
channels it explains."""

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
