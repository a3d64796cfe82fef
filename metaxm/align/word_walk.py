"""Reading a ``text`` variant from the agent's own moves: no reward, no pair
(:func:`walk_words`, what ``selfread`` gives the text translator's word search).

In a world without walls a sentence changes only where the agent moves, and then at the one
place that says the feature the move changes (the agent's row, or its column): which place
says which of the agent's features is read from which actions change it. Each move then says
that the word after it is worth the word before it plus the move's step (the features' steps,
:func:`~metaxm.align.walk_features.feature_steps`), which chains the words the walk said into
values relative to one another; a move that changed nothing was stopped by a wall, so the word
at its feature's place is that edge's value, which pins the chain. A chain no wall pinned (a
walk that met none) is placed as near the middle of the values as it fits: its offset is
unknown, but an agent and a goal said by one chain are then read shifted alike, and the policy
still heads the right way (validation text 100-103, seeds 1-16, at k = 1: 0.84 -> 0.90; where
it was left unread, every word was searched). The goal's places are the
ones after the same words as the agent's (:func:`~metaxm.align.word_search.tied_places`), and
its words, where the walk never said them, are searched within the measured episode with every
other unsaid word (:class:`~metaxm.align.word_search.WordSearch`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from metaxm.align.walk_features import feature_steps, moving_features
from metaxm.align.word_search import place_keys, tied_places

SAME = 1e-3
"""Two values of a word closer than this are one (the steps are rounded to 1e-6)."""


def walk_words(
    ids: Tensor, actions: Tensor, first: Tensor, second: Tensor, context: Any,
    levels: list[Tensor], ties: dict[int, list[int]],
) -> tuple[list[int], dict[int, float]] | None:  # fmt: skip
    """Each feature's place and the value of every word a pinned chain reaches (see the module
    docstring), from ``ids`` (N, L), the agent's ``actions`` (N,) and the transitions
    ``first`` -> ``second``; None where a moved feature has no one place, or the chains
    contradict themselves."""
    steps = feature_steps(context)  # (A, F)
    changed = ids[first] != ids[second]  # (M, L)
    moved = changed.any(1)
    step = steps[actions[first]]  # (M, F)
    places: dict[int, int] = {}
    for f in moving_features(context):
        mine = moved & (step[:, f] != 0)
        if not bool(mine.any()):
            return None
        always = changed[mine].all(0) & ~changed[moved & (step[:, f] == 0)].any(0)
        if int(always.sum()) != 1:
            return None
        places[f] = int(always.nonzero())
    found = tied_places(places, place_keys(ids), ties, steps.shape[1])
    if found is None:
        return None
    # chains: value(after) = value(before) + step; a stopped move pins its word to the edge
    links: dict[int, list[tuple[int, float]]] = {}
    pins: dict[int, float] = {}
    for t in range(len(first)):
        for f, p in places.items():
            if float(step[t, f]) == 0:
                continue
            before, after = int(ids[first[t], p]), int(ids[second[t], p])
            if bool(moved[t]):
                links.setdefault(before, []).append((after, float(step[t, f])))
                links.setdefault(after, []).append((before, -float(step[t, f])))
            else:
                edge = levels[f].max() if step[t, f] > 0 else levels[f].min()
                if pins.setdefault(before, float(edge)) != float(edge):
                    return None
    values: dict[int, float] = {}
    for root, pinned in pins.items():
        if root in values:
            continue
        chain = _chain(root, pinned, links)
        if chain is None or any(abs(pins[w] - v) > SAME for w, v in chain.items() if w in pins):
            return None
        values.update(chain)
    every = torch.cat(levels).unique()
    values = {w: _nearest(every, v) for w, v in values.items()}
    for root in links:  # a chain no wall pinned: placed in the middle of the values
        if root in values:
            continue
        chain = _chain(root, 0.0, links)
        if chain is None:
            return None
        values.update(_centred(chain, every, set(values.values())))  # on ``every`` already
    if len(set(values.values())) != len(values):
        return None  # two words, one value
    return [found[f] for f in range(steps.shape[1])], values


def _chain(
    root: int, value: float, links: dict[int, list[tuple[int, float]]]
) -> dict[int, float] | None:
    """Every word linked to ``root`` and its value, ``root`` worth ``value``; None where two
    paths give a word two values."""
    chain = {root: value}
    todo = [root]
    while todo:
        word = todo.pop()
        for other, delta in links.get(word, []):
            value = chain[word] + delta
            if other not in chain:
                chain[other] = value
                todo.append(other)
            elif abs(chain[other] - value) > SAME:
                return None
    return chain


def _nearest(every: Tensor, value: float) -> float:
    """The one of ``every`` nearest ``value``."""
    return float(every[(every - value).abs().argmin()])


def _centred(chain: dict[int, float], every: Tensor, taken: set[float]) -> dict[int, float]:
    """``chain`` shifted onto the values ``every`` (sorted), as near their middle as it goes,
    no value ``taken``; empty where no shift fits. Its words' values relative to one another
    are known, their offset is not: an agent and a goal said by one chain are read shifted
    alike, so the policy still heads the right way."""
    low, high = min(chain.values()), max(chain.values())
    middle = 0.5 * float(every[0] + every[-1])
    best: tuple[float, dict[int, float]] | None = None
    for start in every.tolist():  # the chain's least value on each of them
        shifted = {w: v - low + start for w, v in chain.items()}
        near = {w: _nearest(every, v) for w, v in shifted.items()}
        fits = all(abs(near[w] - v) <= SAME for w, v in shifted.items())
        if not fits or any(abs(v - t) <= SAME for v in near.values() for t in taken):
            continue
        off = abs(start + 0.5 * (high - low) - middle)
        if best is None or off < best[0] - SAME:
            best = (off, near)
    return {} if best is None else best[1]
