"""Reading a ``text`` variant from the agent's own moves: no reward, no pair
(:func:`walk_words`, what ``selfread`` gives the text translator's word search).

In a world without walls a sentence changes only where the agent moves, and then at the one
place that says the feature the move changes (the agent's row, or its column): which place
says which of the agent's features is read from which actions change it. Each move then says
that the word after it is worth the word before it plus the move's step (the features' steps,
:func:`~metaxm.align.walk_features.feature_steps`), which chains the words the walk said into
values relative to one another; a move that changed nothing was stopped by a wall, so the word
at its feature's place is that edge's value, which pins the chain. The goal's places are the
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
        chain = {root: pinned}
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
        for word, value in chain.items():
            if word in pins and abs(pins[word] - value) > SAME:
                return None
        values.update(chain)
    every = torch.cat(levels).unique()
    values = {w: float(every[(every - v).abs().argmin()]) for w, v in values.items()}
    if len(set(values.values())) != len(values):
        return None  # two words, one value
    return [found[f] for f in range(steps.shape[1])], values
