"""Reading a ``pixels`` variant from the agent's own moves: no reward, no pair
(:func:`colour_reader`, what ``selfread`` gives the pixels translator).

Of the image's colours (:meth:`~metaxm.align.colour_moments.ColourMomentTranslator.read_colours`,
each one's moment about the grid's centre), the agent's is the one whose centroid moves on most
steps of the walk. How it moves under each action, against how the actions move the scene's
features (:func:`~metaxm.align.walk_features.feature_steps`), gives the one linear map from a
centroid to the agent's features: the variant's rotation, flip and tile size. The goal is drawn
on the same grid, so the same map reads the goal's centroid: the goal's colour is the one that
never moves within an episode and covers one tile as the agent's does (shown in the most
images: the occluder's shows only now and then), and its features are the agent's features it
pairs with in the world's test (:func:`~metaxm.align.walk_features.goal_pairing`). The
translator reads the two colours' moments through that map and renders the features in the
source (the context's least-squares map from features to source observations): no pairs, no
fit, and so none of the paired fit's trouble with a goal on the grid's centre row.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from metaxm.align.reading_set import FIT
from metaxm.align.walk_features import feature_steps, goal_pairing
from metaxm.align.wall_tiles import agent_features, wall_features

MOVED = 1e-6
"""A centroid that changes by more than this between two images has moved."""
AGENT_MOVES = 0.25
"""The agent's colour moves on at least this share of the walk's steps (walls stop the rest)."""


def colour_reader(
    translator: Any, obs: Tensor, actions: Tensor, first: Tensor, second: Tensor, context: Any
) -> Tensor | None:
    """(2 * K, F) float64: the map from each of ``translator``'s colours' moments (which it
    takes from ``obs`` (N, C, H, W)) to the scene's features, read from the walk's ``actions``
    (N,) and transitions ``first`` -> ``second`` (see the module docstring); None where the
    walk does not show the agent moving along both axes, or no goal."""
    moments, counts = translator.read_colours(obs)
    moments, counts = moments.double().cpu(), counts.cpu()
    centroids = moments / counts.clamp_min(1)[..., None]  # (N, K, 2)
    # each colour's usual count where it shows (an occluder may hide it in most images)
    modal = torch.stack([c[c > 0].mode().values if bool((c > 0).any()) else c.new_zeros(())
                         for c in counts.T])  # fmt: skip
    whole = (counts == modal) & (modal > 0)  # (N, K)
    first, second, actions = first.cpu(), second.cpu(), actions.cpu()
    both = whole[first] & whole[second]  # (M, K)
    moved = (centroids[second] - centroids[first]).abs().amax(-1) > MOVED  # (M, K)
    share = (moved & both).sum(0) / both.sum(0).clamp_min(1)
    agent = int(share.argmax())
    if float(share[agent]) < AGENT_MOVES:
        return None
    steps = feature_steps(context)  # (A, F)
    moving = agent_features(context)
    walls = wall_features(context)  # inner walls: read by looking (wall_tiles)
    pairing = goal_pairing(context, moving, walls)
    if pairing is None or len(moving) + len(pairing) + len(walls) != steps.shape[1]:
        return None
    # the map from the agent's centroid to its features, from the steps it made
    made = both[:, agent] & moved[:, agent]
    delta = centroids[second, agent] - centroids[first, agent]  # (M, 2)
    want = steps[actions[first]][:, moving]  # (M, moving)
    if int(torch.linalg.matrix_rank(delta[made])) < 2:
        return None  # the agent moved along one axis only
    reader = torch.linalg.lstsq(delta[made], want[made]).solution  # (2, moving)
    misfit = (delta[made] @ reader - want[made]).abs().max()
    if not float(misfit) <= FIT * float(want[made].abs().max()):
        return None
    # the goal's colour: never moves within an episode, one tile, shown the most
    still = ~(moved & both).any(0) & both.any(0) & (modal == modal[agent])
    still[agent] = False
    if not bool(still.any()):
        return None
    goal = int(torch.where(still, whole.sum(0), -1).argmax())
    out = torch.zeros(2 * len(modal), steps.shape[1], dtype=torch.float64)
    out[2 * agent : 2 * agent + 2, moving] = reader / modal[agent]
    for static, partner in pairing.items():
        out[2 * goal : 2 * goal + 2, static] = reader[:, moving.index(partner)] / modal[goal]
    return out
