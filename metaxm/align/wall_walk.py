"""The walk ``selfread`` plays its k episodes with: to a wall, along the other axis to a wall,
then at random (:class:`WallWalk`).

A reward-free reader learns where the agent is from how the target answers its moves, and some
readers need more: the projected reader (:mod:`~metaxm.align.sensor_walk`) places an episode
along an axis only where a wall stopped a move along it, and reads nothing before three
episodes are placed along each. A uniformly random walk of a 7 x 7 GridNav's 30 steps meets a
wall along both axes in few of its episodes (validation projected 100-103: success 0.13 after
four episodes). So each episode starts by repeating one action as many times as its feature
has cells, which walks into the wall it points to from anywhere (the far edge too), then an
action along another feature as many times, and is a uniformly random walk after that: an
episode the goal does not end in those steps meets a wall along both axes. Which action
moves which feature, and by how much, comes from the source's account of the actions
(:func:`~metaxm.align.walk_features.feature_steps`), so nothing here knows GridNav.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from metaxm.align.reading_set import column_levels
from metaxm.align.walk_features import feature_steps


class WallWalk:
    """Actions for ``n`` environments, one episode each (``act`` as
    :func:`~metaxm.envs.play.play`'s: called once per step): the first action repeated to a
    wall, then one along another feature repeated to a wall, then uniformly random ones (see
    the module docstring); uniformly random throughout where the context's actions move no
    feature."""

    def __init__(self, context: Any, n: int, generator: torch.Generator) -> None:
        self.generator, self.n, self.t = generator, n, 0
        steps = feature_steps(context)  # (A, F)
        self.actions = steps.shape[0]
        levels = column_levels(context.features)
        moving = steps.abs().amax(1) > 0
        self.plan = torch.zeros(n, 0, dtype=torch.long)  # (n, P): -1 where random
        if levels is None or not bool(moving.any()):
            return
        axis = steps.abs().argmax(1)  # (A,) the feature each action moves
        # moves to cross its feature and be stopped once: from the far edge too
        cells = torch.tensor([len(levels[int(f)]) for f in axis])
        first = _pick(moving.expand(n, -1), generator)
        other = moving & (axis != axis[first][:, None])  # (n, A): along another feature
        second = torch.where(other.any(1), _pick(other | ~other.any(1, keepdim=True), generator),
                             first)  # fmt: skip
        length = int(cells[first].max() + cells[second].max())
        k = torch.arange(length)
        plan = torch.where(k < cells[first][:, None], first[:, None], -1)
        in_second = (k >= cells[first][:, None]) & (k < (cells[first] + cells[second])[:, None])
        self.plan = torch.where(in_second, second[:, None], plan)

    def act(self, obs: Tensor) -> Tensor:
        """The next actions (n,), for ``obs`` (n, ...) (which they do not depend on)."""
        device = self.generator.device
        draw = torch.randint(self.actions, (self.n,), generator=self.generator, device=device)
        if self.t < self.plan.shape[1]:
            planned = self.plan[:, self.t].to(device)
            draw = torch.where(planned >= 0, planned, draw)
        self.t += 1
        return draw.to(obs.device)


def _pick(allowed: Tensor, generator: torch.Generator) -> Tensor:
    """(n,) one action per row of ``allowed`` (n, A), drawn uniformly from those it allows."""
    weights = allowed.double().to(generator.device)
    return torch.multinomial(weights, 1, generator=generator)[:, 0].cpu()
