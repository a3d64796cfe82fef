"""Channels that a family reads the same way from different readings: learned from the
family's training variants, used where the k episodes' pairs leave a channel open.

In an image the agent and the goal are two colours drawn on one grid, so whatever rotation,
flip and tile size a variant has, the goal's row is read from the goal colour's moments with
the weights the agent's row is read with from the agent colour's. The translator does not
assume this: :func:`learn_ties` finds such pairs of source channels in the routings fitted to
the family's training variants (where many states pin every channel), and keeps a tie only if
it holds in every variant. :func:`tied_readings` then reads a channel that the pairs leave open
(the goal's, constant over one episode) with its tied channel's weights, from the one group of
readings (colour) where those weights fit every open channel of the tie's group over the pairs.
(With the weights in proportion: the source's own channels have scales of their own.)

Readings come in groups of ``group`` consecutive ones (a colour's two moments); a channel is
*pinned* to a group when that group holds :data:`~metaxm.align.least_squares.PINNED` of its
routing's norm (:func:`~metaxm.align.least_squares.pinned_groups`).
"""

from __future__ import annotations

from torch import Tensor

from metaxm.align.least_squares import fit_tolerance, pinned_groups

SAME = 1e-3
"""Two channels' weights are in proportion when they differ from it by this share of their
norm, and two variants' proportions are the same when they differ by this share."""


def _block(routing: Tensor, group: int, g: int, channel: int) -> Tensor:
    return routing[g * group : (g + 1) * group, channel]


def learn_ties(
    routings: list[Tensor], group: int, keys: list[Tensor] | None = None
) -> dict[int, tuple[int, float]]:
    """``{j: (i, ratio)}``: source channel ``j`` is read with ``ratio`` times channel ``i``'s
    weights, from another group of readings than ``i``'s, in every one of ``routings`` ((F, S)
    each, one per training variant) with the same ``ratio`` (the ratio of the source's own
    scales of the two channels), and no other channel is. With ``keys`` ((F // group,) per
    routing: what marks each group, such as the word before a sentence's number), the two
    groups must also have the same key in every variant. Empty when ``routings`` is."""
    ties: dict[tuple[int, int], float] | None = None
    for n, routing in enumerate(routings):
        routing = routing.double()
        where = pinned_groups(routing, group)
        key = None if keys is None else keys[n]
        found = {}
        channels = (where >= 0).nonzero().flatten().tolist()
        for j in channels:
            wj = _block(routing, group, int(where[j]), j)
            for i in channels:
                wi = _block(routing, group, int(where[i]), i)
                ratio = float(wj @ wi / (wi @ wi))
                marked = key is None or (key[where[j]] == key[where[i]] and key[where[i]] >= 0)
                if where[i] != where[j] and marked and (wj - ratio * wi).norm() <= SAME * wj.norm():
                    found[(j, i)] = ratio
        if ties is None:
            ties = found
        else:
            ties = {
                pair: ratio
                for pair, ratio in ties.items()
                if pair in found and abs(found[pair] - ratio) <= SAME * abs(ratio)
            }
    partners: dict[int, list[tuple[int, float]]] = {}
    for (j, i), ratio in sorted((ties or {}).items()):
        partners.setdefault(j, []).append((i, ratio))
    return {j: tied[0] for j, tied in partners.items() if len(tied) == 1}


def tied_readings(
    x: Tensor,
    source: Tensor,
    routing: Tensor,
    ties: dict[int, tuple[int, float]],
    group: int,
    ranges: Tensor,
    real: Tensor | None = None,
    keys: Tensor | None = None,
) -> Tensor:
    """``routing`` with each channel the pairs leave open (not pinned to one reading) and tied
    to a pinned one re-read with that one's weights (times the tie's ratio), from the one group
    where they fit.

    The open channels tied to channels of one group (the goal's row and column, tied to the
    agent's, which a walk pins to the agent colour) are read together: a group of readings is
    taken when the tied weights on it fit every one of them over the pairs, to the tolerance of
    :func:`~metaxm.align.least_squares.fit_tolerance`, and no other group's do. Where none or
    several fit (a goal at the grid's centre, which every centred colour fits), the channels are
    left as they were. Only ``real`` groups are read from (a colour slot the pairs never
    showed reads 0 everywhere, and would fit a goal at the centre).

    Args:
        x: (N, F) the readings of the pairs, ``F`` a multiple of ``group``.
        source: (N, S) the source observations.
        routing: (F, S) the least-squares map (:func:`~metaxm.align.least_squares.fit_routing`).
        ties: :func:`learn_ties`'s.
        group: readings per group.
        ranges: (S,) each source channel's largest absolute value over the source's possible
            observations.
        real: (F // group,) bool, the groups that may be read from; all when None.
        keys: (F // group,) what marks each group (:func:`learn_ties`); where given, a channel
            is read only from a group with its tied channel's group's key.
    """
    x, source, routing = x.double(), source.double(), routing.double().clone()
    ranges = ranges.double().to(routing.device)
    if not ties:
        return routing
    single = pinned_groups(routing) >= 0  # pinned to one reading
    where = pinned_groups(routing, group)
    tolerance = fit_tolerance(x, source, routing, single & (ranges > 0), ranges)
    if tolerance is None:
        return routing
    groups = routing.shape[0] // group
    open_by_group: dict[int, list[tuple[int, int, float]]] = {}
    for j, (i, ratio) in ties.items():
        if not single[j] and where[i] >= 0 and ranges[j] > 0:
            open_by_group.setdefault(int(where[i]), []).append((j, i, ratio))
    for a, tied in open_by_group.items():
        fits = []
        for c in range(groups):
            if c == a or (real is not None and not bool(real[c])):
                continue
            if keys is not None and not (keys[c] == keys[a] and keys[a] >= 0):
                continue
            columns = routing.new_zeros(routing.shape[0], len(tied))
            for n, (_, i, ratio) in enumerate(tied):
                columns[c * group : (c + 1) * group, n] = ratio * _block(routing, group, a, i)
            js = [j for j, _, _ in tied]
            misfit = (x @ columns - source[:, js]).pow(2).mean(0).sqrt()
            if bool((misfit <= tolerance * ranges[js]).all()):
                fits.append(columns)
        if len(fits) == 1:
            routing[:, [j for j, _, _ in tied]] = fits[0]
    return routing
