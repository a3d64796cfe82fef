"""A family with no prior of its own read as frames under one code (``priorfit``,
:mod:`metaxm.align.frame_code`): the map recovered from pairs a frame-coded map made, the
reading kept only where held-out pairs prefer it, and a family's own prior left as it was."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch

from metaxm.align.frame_code import choose, frame_shape, frame_solve, primal_solve, read
from metaxm.align.priorfit import MapPrior, prior_solve

F, T, S = 16, 6, 3


def _weak(d: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A prior near least squares on d features (mean 0, log precision -8 on each)."""
    return torch.zeros(d, S, dtype=torch.float64), torch.full((d, S), -8.0, dtype=torch.float64)


def _frames(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, F, T, generator=g, dtype=torch.float64)


def _coded_map(seed: int = 0) -> torch.Tensor:
    """(F*T, S): one code over every frame, each source channel reading two frames."""
    g = torch.Generator().manual_seed(seed)
    code = torch.randn(F, generator=g, dtype=torch.float64)
    a = torch.zeros(T, S, dtype=torch.float64)
    for s in range(S):
        a[s, s], a[T - 1 - s, s] = 1.5, -0.7
    return torch.einsum("f,ts->fts", code, a).reshape(F * T, S)


def test_frames_are_the_last_axis_of_a_box_of_rank_two_or_more() -> None:
    box = gym.spaces.Box(0.0, 1.0, (1, 32, 8), np.float32)
    assert frame_shape(box) == (32, 8)
    assert frame_shape(gym.spaces.Box(0.0, 1.0, (3, 28, 28), np.float32)) == (84, 28)
    assert frame_shape(gym.spaces.Box(-1.0, 1.0, (8,), np.float32)) is None
    assert frame_shape(gym.spaces.MultiDiscrete([7] * 4)) is None
    assert frame_shape(None) is None
    x = torch.arange(2 * 32 * 8.0).reshape(2, 1, 32, 8)  # flatten(1)'s order: f * T + t
    assert torch.equal(x.flatten(1).reshape(2, 32, 8), x[:, 0])


def test_a_frame_coded_map_is_recovered_from_fewer_pairs_than_its_entries() -> None:
    """40 pairs, 96 entries: least squares on the flattened frames cannot pin the map, the
    frame-coded solve (16 + 18 unknowns) predicts fresh frames to within 1e-4 (its ridge)."""
    w = _coded_map()
    x, xq = _frames(40, 1).reshape(40, -1), _frames(200, 2).reshape(200, -1)
    y = x @ w
    framed = frame_solve(x, y, (F, T), _weak)
    flat = prior_solve(x, y, *_weak(F * T))
    err = [float((xq @ m - xq @ w).pow(2).mean() / (xq @ w).pow(2).mean()) for m in (framed, flat)]
    assert err[0] < 1e-4, err
    assert err[1] > 0.01, err


def test_held_out_pairs_keep_frames_only_where_the_frames_share_a_code() -> None:
    x = _frames(60, 3).reshape(60, -1)
    assert choose(x, x @ _coded_map(), (F, T), _weak)
    g = torch.Generator().manual_seed(4)
    unshared = torch.randn(F * T, S, generator=g, dtype=torch.float64)
    x = _frames(400, 5).reshape(400, -1)
    y = x @ unshared
    assert not choose(x, y, (F, T), _weak)
    assert torch.allclose(read(x, y, (F, T), _weak), unshared, atol=1e-4)
    assert torch.equal(read(x, y, None, _weak), prior_solve(x, y, *_weak(F * T)))


def test_a_familys_own_prior_reads_it_flattened_whatever_its_frames() -> None:
    d = F * T
    zeros = torch.zeros(d, S)
    own = MapPrior({"own": zeros}, {"own": zeros}, set(), torch.full((S,), -8.0))
    x = _frames(30, 6).reshape(30, -1).float()
    y = x @ _coded_map().float()
    assert torch.equal(own.solve("own", x, y, (F, T)), own.solve("own", x, y))
    framed = frame_solve(x, y, (F, T), own.unseen_prior)
    assert torch.equal(own.solve("new", x, y, (F, T)), framed)  # a family with none: frames
    assert not torch.allclose(framed, own.solve("new", x, y), atol=1e-3)


def test_the_primal_solve_is_the_dual_one() -> None:
    """:func:`primal_solve` (D x D per channel) gives :func:`prior_solve`'s map (N x N)."""
    g = torch.Generator().manual_seed(7)
    for n, d in ((40, 6), (9, 20)):
        x = torch.randn(n, d, generator=g, dtype=torch.float64) * torch.linspace(0.1, 3.0, d)
        y = torch.randn(n, S, generator=g, dtype=torch.float64)
        mean = torch.randn(d, S, generator=g, dtype=torch.float64)
        log_prec = torch.randn(d, S, generator=g, dtype=torch.float64)
        assert torch.allclose(primal_solve(x, y, mean, log_prec), prior_solve(x, y, mean, log_prec))
