"""The lattice a sensor bank's goals lie on, read from a walk (:func:`lattice_options`, what
:func:`~metaxm.align.sensor_walk.walk_readings` reads the goals by; step 3 of
:mod:`~metaxm.align.sensor_walk`'s docstring).

What is left of each walk episode off the agent's part of the sensors is one point per episode,
``W_g g + b`` up to the agent's start, and the goals lie on the grid: the points lie on a
lattice whose cells are the goals' shortest differences, or sums, differences or fractions of
them, as long as the agent's cells are (both parts are Gaussian weights). That gives every
goal's cell up to the square's 8 rotations and flips (:func:`dihedral`) and a shift.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

ROUND = 0.2
"""A lattice coordinate lies within this of a whole number (of a cell)."""
CELL_CANDIDATES = 6
"""This many of the shortest differences between goals, and their halves and thirds, are tried
as a lattice's first cell, and with each twice as many of the shortest differences (or those
fractions) not along it as the second."""
PLAUSIBLE = math.log(1.5)
"""A lattice's cells may be this much longer or shorter (in log) than the agent's: both are
columns of Gaussian weights, whose norms differ by a fifth or so (the square root of twice the
number of sensors); half or twice the cells (a finer lattice that also holds every point, or
a coarser one when the goals happen to lie on it) lie outside."""
STRAYS = 0.2
"""The largest share of episodes that may lie off the goals' lattice (left out)."""
SAME_GOAL = 0.3
"""Two episodes' goals closer than this share of a cell (the agent's, as a guide) are one."""
MAX_LATTICES = 4
"""The most lattices :func:`lattice_options` keeps, those whose cells are nearest the agent's."""


class _Lattice(NamedTuple):
    """A lattice :func:`lattice_options` found: how many points lie on it, whether its cells are
    as long as the agent's may be, its cell's area, its misfit, how far (log squared) its cells'
    lengths are from the agent's, the points' coordinates and which lie on it."""

    points: int
    plausible: bool
    area: float
    misfit: float
    nearness: float
    coords: Tensor
    on: Tensor


def lattice_options(points: Tensor, cell: float, size: int) -> list[tuple[Tensor, Tensor]]:
    """Every lattice the points (E, D) lie on that could be the goals', those whose cells are
    nearest ``cell`` (the agent's) first: per lattice, the points' coordinates in its cells
    (E, 2) long and which lie on it (E,) bool (:func:`_fit_cells`). The cells are two of their
    shortest differences, fractions of them, or half the sum or difference of two (eight goals
    of a validation walk whose shortest differences were two diagonals: k = 8 success 0.36 ->
    1.00); or one shortest difference and a sum or difference of two differences, or a half or
    third of it (:func:`_combined`; validation walks of eight episodes whose goals' columns were
    all 0, 3 or 6, or whose rows were 0, 3 or 5: 0.66 and 0.56 -> 1.00, section 36), refined
    by least squares on all points, and
    each such lattice's half-diagonal refinement where its cells come nearer ``cell``; which
    lattices of all those within ``size`` cells along each axis are kept is said in the code's
    comments (cells as long as ``cell`` within :data:`PLAUSIBLE`, the tightest fits). A few
    goals often lie on more than one: four whose differences' coordinates all sum to an even
    number lie on a lattice of cells a diagonal long, as plausible, and no difference, half or
    third of one is a true cell (only the refinement finds it). :func:`walk_readings` costs the
    readings of each (validation projected 100-103, 16 seeds, success after 4 episodes: 0.97 /
    0.67 / 0.80 / 0.75 reading the coarsest alone, as before; 0.97 / 0.89 / 0.86 / 0.94 costing
    them all; ``docs/transfer-studies.md`` section 34). Empty where the points do not span a
    plane or lie on none."""
    centred = points - points.mean(0)
    if len(points) < 3:
        return []
    _, s, vh = torch.linalg.svd(centred, full_matrices=False)
    if float(s[1]) < 1e-3 * float(s[0]):
        return []
    q = centred @ vh[:2].T  # (E, 2): the plane of the goals
    pairs = torch.triu_indices(len(q), len(q), 1)
    diffs = q[pairs[0]] - q[pairs[1]]
    diffs = diffs[diffs.norm(dim=1) > SAME_GOAL * cell]  # not one goal twice
    # a cell is a difference, or a half or third of one (no two goals a cell apart), or half
    # the sum or difference of two (the shortest differences two diagonals), or beside a
    # shortest difference, a combination of two differences (no goal's column or row one apart)
    shortest = diffs[diffs.norm(dim=1).argsort()[:CELL_CANDIDATES]]
    i, j = torch.triu_indices(len(shortest), len(shortest), 1)
    halves = torch.cat(((shortest[i] + shortest[j]) / 2, (shortest[i] - shortest[j]) / 2))
    firsts = torch.cat((shortest, shortest / 2, shortest / 3, halves))
    seconds = torch.cat((diffs, shortest / 2, shortest / 3))
    firsts = firsts[firsts.norm(dim=1) > SAME_GOAL * cell]
    seconds = seconds[seconds.norm(dim=1) > SAME_GOAL * cell]
    seconds = seconds[seconds.norm(dim=1).argsort()]
    combined = _combined(diffs, cell)
    found: list[_Lattice] = []
    finer: dict[tuple[float, ...], Tensor] = {}
    tried = [(u, seconds) for u in firsts] + [(u, combined) for u in shortest]
    for u, pool in tried:
        sines = (u[0] * pool[:, 1] - u[1] * pool[:, 0]).abs() / (pool.norm(dim=1) * u.norm())
        for v in pool[sines > 0.3][: 2 * CELL_CANDIDATES]:  # the first not along u
            cells = _consider(q, torch.stack((u, v)), cell, size, found)
            if cells is not None:  # its half-diagonal lattice, where nearer the agent's cells
                a, b = cells
                half = _reduce(torch.stack(((a + b) / 2, b)))
                if _nearness(half, cell) < _nearness(cells, cell):
                    finer[tuple((half / cell).round(decimals=3).flatten().tolist())] = half
    for half in finer.values():  # goals that all lie on every other diagonal (section 34)
        _consider(q, half, cell, size, found)
    if not found:
        return []
    # the lattices that hold the most points; of those, the plausible ones (else the one whose
    # cells are nearest the agent's); of those, the ones that fit as well as the best (a finer
    # lattice fits as well as the true one, a coarser one that happens to hold every point
    # fits worse, unless the points have no noise)
    most = max(f.points for f in found)
    found = [f for f in found if f.points == most]
    found = [f for f in found if f.plausible] or sorted(found, key=lambda f: f.nearness)[:1]
    tight = min(f.misfit for f in found)
    found = [f for f in found if f.misfit <= 2.0 * tight + 0.02 * cell]
    # one of each (one lattice comes from other differences, in other cells: the same by its
    # area and each goal's coordinates; two lattices of one area may place the same set of
    # coordinates on other goals), those whose cells are nearest the agent's first; ties, as
    # near to 1e-6, by their coordinates, not by which the last bits of a fit make nearer
    keyed = {(round(f.area / cell**2, 6), *_canonical_key(f)): f for f in found}
    order = sorted(keyed, key=lambda key: (round(keyed[key].nearness, 6), key))
    return [_canonical(keyed[key]) for key in order[:MAX_LATTICES]]


def _combined(diffs: Tensor, cell: float) -> Tensor:
    """The sums and differences of two differences ``diffs`` (N, 2), their halves and thirds,
    as long as ``cell`` within :data:`PLAUSIBLE`, one of each, nearest ``cell`` first: cells
    that no difference of two goals, half or third of one gives. Goals whose columns are all
    0, 3 or 6 differ by no single column, and (1, 0) is a third of (3, 1) less (0, 1); rows
    0, 3 and 5 differ by 2, 3 and 5, never 1, which is 3 less 2."""
    i, j = torch.triu_indices(len(diffs), len(diffs), 1)
    once = torch.cat((diffs[i] - diffs[j], diffs[i] + diffs[j]))
    out = torch.cat((once, once / 2, once / 3))
    out = out[(out.norm(dim=1) / cell).log().abs() < PLAUSIBLE]
    out = torch.where((out[:, :1] < 0) | ((out[:, :1] == 0) & (out[:, 1:] < 0)), -out, out)
    first: dict[tuple[int, ...], int] = {}  # one of each, to a tenth of a cell
    for n, key in enumerate((out / cell * 10).round().long().tolist()):
        first.setdefault(tuple(key), n)
    out = out[list(first.values())]
    return out[(out.norm(dim=1) / cell).log().abs().argsort(stable=True)]  # nearest a cell first


def _consider(
    q: Tensor, basis: Tensor, cell: float, size: int, found: list[_Lattice]
) -> Tensor | None:
    """Add the lattice ``basis`` (2, 2) refined on the points ``q`` (:func:`_fit_cells`) to
    ``found`` where it fits and is no wider than the grid; its cells, or None."""
    fitted = _fit_cells(q, basis)
    if fitted is None:
        return None
    cells, whole, on = fitted
    spread = whole[on].max(0).values - whole[on].min(0).values
    if int(spread.max()) > size - 1:
        return None  # wider than the grid
    off = (cells.norm(dim=1) / cell).log().abs()
    centred_coords = whole[on] - whole[on].double().mean(0)
    misfit = (q[on] - q[on].mean(0) - centred_coords @ cells).norm(dim=1)
    found.append(_Lattice(
        int(on.sum()), float(off.max()) < PLAUSIBLE, float(torch.linalg.det(cells).abs()),
        float(misfit.pow(2).mean().sqrt()), _nearness(cells, cell), whole, on,
    ))  # fmt: skip
    return cells


def _nearness(cells: Tensor, cell: float) -> float:
    """How far (log, squared, summed) the cells' (2, 2) lengths are from ``cell``."""
    return float((cells.norm(dim=1) / cell).log().pow(2).sum())


def _canonical(lattice: _Lattice) -> tuple[Tensor, Tensor]:
    """``lattice``'s coordinates in one orientation whichever cells it was found with (the same
    lattice, found from other differences, comes in another rotation or flip, and the
    readings, which tie, would be listed, and so searched, in another order), shifted to start
    at 0, and which points lie on it."""
    whole, on = lattice.coords, lattice.on
    turned = [whole @ turn.T for turn in dihedral()]
    turned = [c - c[on].min(0).values for c in turned]
    # by the sorted coordinates, then (a set of goals a turn maps onto itself) each goal's
    return min(turned, key=lambda c: (_listing(c, on), c[on].tolist())), on


def _canonical_key(lattice: _Lattice) -> tuple[tuple[tuple[int, ...], ...], ...]:
    """:func:`_canonical`'s sorted coordinates, then each goal's (the goals off it at -1)."""
    coords, on = _canonical(lattice)
    each = torch.where(on[:, None], coords, -1)
    return tuple(_listing(coords, on)), tuple(map(tuple, each.tolist()))


def _listing(coords: Tensor, on: Tensor) -> list[tuple[int, ...]]:
    """The coordinates ``coords`` (E, 2) shifted to start at 0 along each axis, sorted: what
    orders orientations and lattices."""
    return sorted(map(tuple, (coords - coords[on].min(0).values).tolist()))


def _fit_cells(q: Tensor, cells: Tensor) -> tuple[Tensor, Tensor, Tensor] | None:
    """The lattice cells (2, 2) refined by least squares on the whole-number coordinates of
    ``q`` (E, 2) in ``cells`` (a cell taken from two points carries their noise, which grows
    with the distance measured in it), those coordinates (E, 2) long, and which points lie on
    it, to :data:`ROUND` of a cell (E,) bool: all but at most a :data:`STRAYS` share (an
    episode whose walk was misread); None where more stray."""
    origin, cells = q[0], _reduce(cells)
    on = torch.ones(len(q), dtype=torch.bool)
    for _ in range(5):
        coords = (q - origin) @ torch.linalg.inv(cells)
        on = (coords - coords.round()).abs().amax(1) <= (ROUND if _ else 2 * ROUND)
        if float(on.double().mean()) < 1.0 - STRAYS:
            return None
        design = torch.cat((torch.ones(len(q), 1, dtype=q.dtype), coords.round()), 1)[on]
        if int(torch.linalg.matrix_rank(design)) < 3:
            return None
        fit = torch.linalg.lstsq(design, q[on]).solution  # (3, 2)
        origin, cells = fit[0], _reduce(fit[1:])
    coords = (q - origin) @ torch.linalg.inv(cells)
    on = (coords - coords.round()).abs().amax(1) <= ROUND
    if float(on.double().mean()) < 1.0 - STRAYS:
        return None
    return cells, coords.round().long(), on


def _reduce(basis: Tensor) -> Tensor:
    """Lagrange-Gauss reduction of a 2-d lattice basis (2, 2): the two shortest cells."""
    u, v = basis[0].clone(), basis[1].clone()
    for _ in range(100):
        if float(u.norm()) > float(v.norm()):
            u, v = v, u
        k = round(float(u @ v / (u @ u)))
        if k == 0:
            break
        v = v - k * u
    return torch.stack((u, v))


def dihedral() -> list[Tensor]:
    """The square's 8 rotations and flips, as (2, 2) long matrices."""
    out = []
    for swap in (False, True):
        for a in (1, -1):
            for b in (1, -1):
                m = torch.tensor([[a, 0], [0, b]])
                out.append(m.flip(1) if swap else m)
    return out
