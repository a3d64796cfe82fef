"""What the source modality says of the world's features that a reward-free reading needs: how
each action moves them, and which feature of the goal stands for which of the agent's.

Both come from the translation context alone (the source's observations of drawn states, their
features, the source's answers to random actions, the world's test of success), never from the
target: :func:`feature_steps` is the features' change under each action (in GridNav: up is the
agent's row less a cell), :func:`goal_pairing` the feature of the agent that each feature no
action moves must equal for the world to call the state a success (the goal's row the agent's
row). A reader that finds the agent's features in a target's walk from how it answers the
actions (:mod:`~metaxm.align.colour_walk`) reads the goal's through the pairing.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from metaxm.align.reading_set import CONSTANT


def feature_steps(context: Any) -> Tensor:
    """(A, F) float64: per action, the change of every feature in a move it makes (the most
    common non-zero change over the context's ``moves``, 0 for a feature it never changes),
    computed once per context."""
    if "feature_steps" not in context.learned:
        before, acted, after = context.moves
        decode = context.feature_map()
        delta = (after.double().cpu() - before.double().cpu()) @ decode
        delta = delta.round(decimals=6)
        out = torch.zeros(int(acted.max()) + 1, delta.shape[1], dtype=torch.float64)
        for a in range(len(out)):
            moved = delta[(acted.cpu() == a) & (delta.abs() > CONSTANT).any(1)]
            if len(moved):
                values, counts = moved.unique(dim=0, return_counts=True)
                out[a] = values[counts.argmax()]
        context.learned["feature_steps"] = out
    return context.learned["feature_steps"]


def moving_features(context: Any) -> list[int]:
    """The features some action moves (the agent's): where :func:`feature_steps` is not 0."""
    return (feature_steps(context).abs() > 0).any(0).nonzero().flatten().tolist()


def goal_pairing(
    context: Any, moving: list[int], ignore: Sequence[int] = ()
) -> dict[int, int] | None:
    """``{static feature: moving feature}``: the one pairing of the features no action moves
    (but those to ``ignore``: the walls', :func:`~metaxm.align.wall_tiles.wall_features`) with
    the ``moving`` ones under which every drawn state, given the goal on the agent's cell (each
    static feature set to its moving one), is a success state (the world's test); None where
    none or several are. Computed once per context, ``moving`` and ``ignore``."""
    key = f"goal_pairing {moving}" + (f" {list(ignore)}" if ignore else "")
    if key not in context.learned:
        context.learned[key] = _goal_pairing(context, moving, ignore)
    return context.learned[key]


def _goal_pairing(context: Any, moving: list[int], ignore: Sequence[int]) -> dict[int, int] | None:
    features = context.features.double().cpu()
    static = [f for f in range(features.shape[1]) if f not in moving and f not in ignore]
    found = []
    for order in itertools.permutations(moving, len(static)):
        placed = features.clone()
        placed[:, static] = features[:, list(order)]
        if bool(context.reached(placed.float()).all()):
            found.append(dict(zip(static, order, strict=True)))
    return found[0] if len(found) == 1 else None
