"""Reading a re-wired vector from the agent's own actions: no reward, no pair
(:func:`action_readers`, what :class:`~metaxm.learners.selfread.SelfRead` uses).

Each channel answers each action in its own way: an agent channel moves by one step (0 where a
wall stops it), a goal channel never moves within an episode, a noise channel moves by
different amounts. Matched against how the source modality's channels answer the same actions
(the translation context's ``moves``, drawn in the agent's own modality), that names every
agent channel with its gain and sign, and leaves each goal channel the readings whose gains put
the values it took on the source's values (``docs/transfer-studies.md`` section 15). In a world
with inner walls (GridNav's ``walls: true``) a channel that tells a wall beside the agent
takes two values, and one of them holds exactly where a move one way is stopped
(:func:`wall_answers`): that names it, its side and its gain (section 35).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from metaxm.align.reading_set import CONSTANT, FIT

WALL_SEEN = 1
"""The fewest moves of an action, stopped and not, that name a channel telling a wall."""


def _answers(x: Tensor, actions: Tensor, first: Tensor, second: Tensor, n: int) -> Tensor:
    """(n, C) how each channel of ``x`` (N, C) answers each action over the transitions
    ``first`` -> ``second``: the one change it makes where it changes (a wall stops a move),
    0 where it never changes, NaN where it changes by different amounts (noise) or the
    action was never taken."""
    delta = x[second] - x[first]  # (M, C)
    scale = x.abs().amax(0).clamp_min(1e-12)
    out = torch.full((n, x.shape[1]), float("nan"), dtype=x.dtype, device=x.device)
    for a in range(n):
        taken = delta[actions[first] == a]
        if len(taken) == 0:
            continue
        moved = taken.abs() > CONSTANT * scale
        for c in range(x.shape[1]):
            steps = taken[moved[:, c], c]
            if len(steps) == 0:
                out[a, c] = 0.0
            elif float((steps - steps[0]).abs().max()) <= FIT * float(scale[c]):
                out[a, c] = steps[0]
    return out


def source_answers(before: Tensor, acted: Tensor, after: Tensor) -> tuple[Tensor, Tensor]:
    """How each source channel answers each action, from the source's observations ``before``
    and ``after`` one action ``acted`` in drawn states (the translation context's ``moves``;
    each row its own transition): (n, S) its step (:func:`_answers`) and (3, S) the wall it
    tells (:func:`wall_answers`)."""
    before, after = before.double(), after.double()
    rows = torch.arange(len(before), device=before.device)
    both, acts = torch.cat((before, after)), torch.cat((acted, acted))
    n = int(acted.max()) + 1
    answers = _answers(both, acts, rows, rows + len(before), n)
    return answers, wall_answers(both, acts, rows, rows + len(before), n)


def context_answers(context: Any) -> tuple[Tensor, Tensor]:
    """:func:`source_answers` of the translation ``context``'s ``moves``, computed once per
    context."""
    if "source_answers" not in context.learned:
        context.learned["source_answers"] = source_answers(*context.moves)
    return context.learned["source_answers"]


def wall_channels(walls: Tensor) -> Tensor:
    """(W,) the channels that tell a wall, of ``walls`` (3, C) (:func:`wall_answers`)."""
    return (~walls[0].isnan()).nonzero().flatten()


def _motion(x: Tensor, first: Tensor, second: Tensor) -> tuple[Tensor, Tensor]:
    """(M, C) whether each channel of ``x`` (N, C) changes over each transition ``first`` ->
    ``second``, and (M,) whether the move was stopped: no channel changed but those that change
    over every transition (noise)."""
    changed = (x[second] - x[first]).abs() > CONSTANT * x.abs().amax(0).clamp_min(1e-12)
    return changed, ~changed[:, ~changed.all(0)].any(1)


def stopped_moves(x: Tensor, first: Tensor, second: Tensor) -> Tensor:
    """(M,) whether each move ``first`` -> ``second`` (rows of ``x`` (N, C)) was stopped."""
    return _motion(x, first, second)[1]


def still_values(x: Tensor, first: Tensor, second: Tensor) -> Tensor:
    """(C,) up to how far each channel of ``x`` (N, C) moves where a move is stopped (as
    :func:`stopped_moves` tells it); inf for a channel that changes over every transition."""
    changed = _motion(x, first, second)[0]
    tolerance = CONSTANT * x.abs().amax(0).clamp_min(1e-12)
    return tolerance.masked_fill(changed.all(0), float("inf"))


def wall_answers(x: Tensor, actions: Tensor, first: Tensor, second: Tensor, n: int) -> Tensor:
    """(3, C) per channel of ``x`` (N, C) that tells a wall: the action whose move it tells
    stopped, the value it takes where that move is stopped and the one where it is not; NaN
    for a channel that tells none.

    A move is stopped where no channel changes over it but those that change over every
    transition (noise). A channel tells a wall for action ``a`` where it takes two values over
    ``x`` and, over at least :data:`WALL_SEEN` transitions of ``a`` stopped and as many not,
    one of them holds exactly before the stopped ones, and some move of ``a`` that was not
    stopped left it as it was (an agent's channel that took two values changes over every
    one); one that would tell two actions' walls tells none. A goal channel never changes
    within an episode and a noise channel takes more than two values, so neither does."""
    out = torch.full((3, x.shape[1]), float("nan"), dtype=x.dtype, device=x.device)
    scale = x.abs().amax(0).clamp_min(1e-12)
    changed, stopped = _motion(x, first, second)
    acted = actions[first]
    for c in changed.any(0).nonzero().flatten().tolist():  # a goal channel never changes
        lo, hi = float(x[:, c].min()), float(x[:, c].max())
        tolerance = FIT * float(scale[c])
        at_hi = (x[:, c] - hi).abs() <= tolerance
        if not bool((at_hi | ((x[:, c] - lo).abs() <= tolerance)).all()):
            continue  # more than two values
        before = at_hi[first]
        found = []
        for a in range(n):
            taken = acted == a
            s, b = stopped[taken], before[taken]
            if min(int(s.sum()), int((~s).sum())) < WALL_SEEN or bool(changed[taken][~s, c].all()):
                continue
            found += [(a, level) for level, flag in ((hi, b), (lo, ~b)) if bool((flag == s).all())]
        if len(found) == 1:  # two walls it might tell: neither
            a, level = found[0]
            out[:, c] = torch.tensor([a, level, lo + hi - level], dtype=x.dtype, device=x.device)
    return out


def action_readers(
    x: Tensor,
    actions: Tensor,
    first: Tensor,
    second: Tensor,
    source: Tensor,
    sources: Tensor,
    source_walls: Tensor | None = None,
) -> list[list[tuple[int, float]]]:
    """Per source channel, every target channel that reads it alone, from no reward and no
    pair: the same options as :func:`single_readers`, found from how channels answer actions.

    A channel that moves (the agent's) answers each action by one step, and a target channel
    reads a source channel where their steps have one ratio under every action both were seen
    under, and move under the same actions, the target's over every move of those actions that
    was not stopped (a wall's channel changes over some). A channel that never moves within an
    episode (the goal's) is read, at a ratio that puts every value it took over the episodes on
    a value the source channel takes, by every such target channel; by every one at every value
    the source takes where it read 0 throughout. A channel that tells a wall
    (:func:`wall_answers`) is read by each target channel that tells the same action's wall, at
    the ratio that puts its value where the move is stopped on the source's.

    Args:
        x: (N, D) the target's observations (scaled); ``actions`` (N,) the agent's; the
            transitions ``first`` -> ``second`` (M,) rows of ``x``.
        source: (n, S) how the source's channels answer each action (:func:`source_answers`).
        sources: (M', S) the source's observations of drawn states (their values).
        source_walls: (3, S) the walls the source's channels tell (:func:`source_answers`).
    """
    target = _answers(x, actions, first, second, len(source))  # (n, D): the source's actions
    if source_walls is not None:
        walls = wall_answers(x, actions, first, second, len(source))
    changed, stopped = _motion(x, first, second)
    acted = actions[first]
    # (n, D) whether each channel changed over every move of each action that was not stopped
    follows = torch.stack([changed[(acted == a) & ~stopped].all(0) for a in range(len(source))])
    # (n,) each action some move of which was not stopped: one whose every move was (at the
    # grid's edge) tells nothing of which channels it steps
    free = torch.stack([((acted == a) & ~stopped).any() for a in range(len(source))])
    still_t = _held_channels(target)
    still_s = (source == 0).all(0)
    out: list[list[tuple[int, float]]] = [[] for _ in range(source.shape[1])]
    for j in range(source.shape[1]):
        sj = source[:, j]
        if source_walls is not None and not bool(source_walls[0, j].isnan()):
            out[j] = _wall_readers(walls, source_walls[:, j])
            continue
        if bool(sj.isnan().any()):
            continue  # the source's noise
        if bool(still_s[j]):
            out[j] += _held_readers(x, still_t, sources[:, j])
            continue
        for i in range(target.shape[1]):
            ti = target[:, i]
            seen = ~ti.isnan()
            if not bool(seen.any()) or bool(still_t[i]):
                continue
            moves = seen & (ti != 0)
            told = seen & (free | moves)
            if not bool(moves.any()) or bool(((ti[told] != 0) != (sj[told] != 0)).any()):
                continue
            if bool((free & ~seen & (sj != 0)).any()):
                continue  # noise: it moved by different amounts under a move the source steps
            if not bool(follows[sj != 0, i].all()):
                continue  # a wall's channel: a move that was not stopped left it as it was
            ratio = sj[moves] / ti[moves]
            if float((ratio - ratio[0]).abs().max()) <= FIT * float(ratio[0].abs()):
                out[j].append((i, float(ratio[0])))
    return out


def held_readers(
    options: list[list[tuple[int, float]]],
    axes: list[int],
    x: Tensor,
    actions: Tensor,
    first: Tensor,
    second: Tensor,
    n: int,
    sources: Tensor,
) -> list[list[tuple[int, float]]]:
    """``options`` with each of the agent's source channels ``axes`` (:func:`unmoved_agent`)
    read, as a goal's channel is, by every target channel held over each episode, at each
    ratio that puts its values on the source channel's (``sources`` (M', S)); the arguments
    as :func:`action_readers`'."""
    still_t = _held_channels(_answers(x, actions, first, second, n))
    out = [list(found) for found in options]
    for j in axes:
        out[j] += _held_readers(x, still_t, sources[:, j])
    return out


def unmoved_agent(
    options: list[list[tuple[int, float]]], source: Tensor, source_walls: Tensor
) -> list[int]:
    """The source channels an action steps (the agent's) that no target channel was found to
    read: mostly a walk too short to move along that axis (or whose every move along it was
    stopped; a walk whose moves along it matched no channel is one too, and then the held
    channels offered are not its reader). Held over each episode, such an axis reads like a
    goal's channel, so the held target channels are offered for it too
    (:func:`held_readers`), and the measured episode's moves tell them apart
    (:meth:`~metaxm.align.reading_set.ReadingSet.rule_out_unmoved`). None where the source
    tells inner walls (``source_walls``, :func:`source_answers`): they stop a move anywhere,
    so the measured moves cannot tell the axis' reader (walled validation vector, k = 1: 2 of
    32 adaptations read less with them, none more)."""
    if len(wall_channels(source_walls)):
        return []
    return [
        j for j, found in enumerate(options)
        if not found and not bool(source[:, j].isnan().any()) and bool((source[:, j] != 0).any())
    ]  # fmt: skip


def unread_walls(options: list[list[tuple[int, float]]], source_walls: Tensor) -> Tensor | None:
    """(S,) what each source channel that tells a wall (``source_walls`` (3, S),
    :func:`source_answers`) and has no reader in ``options`` takes: its value where no wall
    stops the move (the more common); 0 for the others; None where there is no such channel
    (a world without inner walls)."""
    unread = torch.tensor([not found for found in options], device=source_walls.device)
    told = ~source_walls[0].isnan() & unread
    if not bool(told.any()):
        return None
    return torch.where(told, source_walls[2], 0.0)


def _wall_readers(walls: Tensor, told: Tensor) -> list[tuple[int, float]]:
    """Every target channel whose wall (``walls`` (3, D), :func:`wall_answers`) is the one the
    source channel tells (``told`` (3,)), with the ratio that puts both its values on the
    source channel's."""
    out = []
    for i in (walls[0] == told[0]).nonzero().flatten().tolist():
        ratio = float(told[1] / walls[1, i])
        if abs(ratio * float(walls[2, i]) - float(told[2])) <= FIT * float(told[1:].abs().max()):
            out.append((i, ratio))
    return out


def _held_channels(target: Tensor) -> Tensor:
    """(D,) bool: the target channels held over each episode, of their answers to the
    actions ``target`` (n, D, :func:`_answers`): 0 to every action seen."""
    return (target.nan_to_num(0.0) == 0).all(0) & ~target.isnan().all(0)


def _held_readers(x: Tensor, held: Tensor, values: Tensor) -> list[tuple[int, float]]:
    """Every target channel ``held`` (D,) of ``x`` (N, D), at each ratio that puts its values
    on one of those a source channel takes (``values`` (M',))."""
    taken = values.double().unique()
    top = float(taken.abs().max())
    return [
        (i, q) for i in held.nonzero().flatten().tolist()
        for q in _held_ratios(x[:, i].unique(), taken, top)
    ]  # fmt: skip


def _held_ratios(values: Tensor, taken: Tensor, top: float) -> list[float]:
    """The ratios that put every one of ``values`` (a held target channel's, over the episodes)
    on one of ``taken`` (a held source channel's values; ``top`` its largest absolute one);
    ``[NaN]`` where ``values`` are all 0 (any ratio: read as each value the source takes)."""
    tolerance = FIT * top
    nonzero = values[values.abs() > CONSTANT]
    if len(nonzero) == 0:
        return [float("nan")]
    out = []
    for level in taken[taken.abs() > tolerance].tolist():
        ratio = level / float(nonzero[0])
        if bool(((ratio * values)[:, None] - taken).abs().min(1).values.le(tolerance).all()):
            out.append(ratio)
    return out
