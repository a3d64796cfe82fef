"""Reading a re-wired vector from the agent's own actions: no reward, no pair
(:func:`action_readers`, what :class:`~metaxm.learners.selfread.SelfRead` uses).

Each channel answers each action in its own way: an agent channel moves by one step (0 where a
wall stops it), a goal channel never moves within an episode, a noise channel moves by
different amounts. Matched against how the source modality's channels answer the same actions
(the translation context's ``moves``, drawn in the agent's own modality), that names every
agent channel with its gain and sign, and leaves each goal channel the readings whose gains put
the values it took on the source's values (``docs/transfer-studies.md`` section 15).
"""

from __future__ import annotations

import torch
from torch import Tensor

from metaxm.align.reading_set import CONSTANT, FIT


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


def source_answers(before: Tensor, acted: Tensor, after: Tensor) -> Tensor:
    """(n, S) how each source channel answers each action (:func:`_answers`), from the source's
    observations ``before`` and ``after`` one action ``acted`` in drawn states (the translation
    context's ``moves``; each row its own transition)."""
    before, after = before.double(), after.double()
    rows = torch.arange(len(before), device=before.device)
    both = torch.cat((before, after))
    n = int(acted.max()) + 1
    return _answers(both, torch.cat((acted, acted)), rows, rows + len(before), n)


def action_readers(
    x: Tensor, actions: Tensor, first: Tensor, second: Tensor, source: Tensor, sources: Tensor
) -> list[list[tuple[int, float]]]:
    """Per source channel, every target channel that reads it alone, from no reward and no
    pair: the same options as :func:`single_readers`, found from how channels answer actions.

    A channel that moves (the agent's) answers each action by one step, and a target channel
    reads a source channel where their steps have one ratio under every action both were seen
    under, and move under the same actions. A channel that never moves within an episode (the
    goal's) is read, at a ratio that puts every value it took over the episodes on a value the
    source channel takes, by every such target channel; by every one at every value the source
    takes where it read 0 throughout.

    Args:
        x: (N, D) the target's observations (scaled); ``actions`` (N,) the agent's; the
            transitions ``first`` -> ``second`` (M,) rows of ``x``.
        source: (n, S) how the source's channels answer each action (:func:`source_answers`).
        sources: (M', S) the source's observations of drawn states (their values).
    """
    target = _answers(x, actions, first, second, len(source))  # (n, D): the source's actions
    still_t = (target.nan_to_num(0.0) == 0).all(0) & ~target.isnan().all(0)  # held by episodes
    still_s = (source == 0).all(0)
    out: list[list[tuple[int, float]]] = [[] for _ in range(source.shape[1])]
    for j in range(source.shape[1]):
        sj = source[:, j]
        if bool(sj.isnan().any()):
            continue  # the source's noise
        if bool(still_s[j]):
            taken = sources[:, j].double().unique()
            top = float(taken.abs().max())
            for i in still_t.nonzero().flatten().tolist():
                out[j] += [(i, q) for q in _held_ratios(x[:, i].unique(), taken, top)]
            continue
        for i in range(target.shape[1]):
            ti = target[:, i]
            seen = ~ti.isnan()
            if not bool(seen.any()) or bool(still_t[i]):
                continue
            moves = seen & (ti != 0)
            if not bool(moves.any()) or bool(((ti[seen] != 0) != (sj[seen] != 0)).any()):
                continue
            ratio = sj[moves] / ti[moves]
            if float((ratio - ratio[0]).abs().max()) <= FIT * float(ratio[0].abs()):
                out[j].append((i, float(ratio[0])))
    return out


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
