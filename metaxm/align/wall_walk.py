"""The walk ``selfread`` plays its k episodes with: to a wall, along the other axis to a wall,
a sweep of the grid from that corner, then at random (:class:`WallWalk`).

A reward-free reader learns where the agent is from how the target answers its moves, and some
readers need more: the projected reader (:mod:`~metaxm.align.sensor_walk`) places an episode
along an axis only where a wall stopped a move along it, and reads nothing before three
episodes are placed along each. A uniformly random walk of a 7 x 7 GridNav's 30 steps meets a
wall along both axes in few of its episodes (validation projected 100-103: success 0.13 after
four episodes). So each episode starts by repeating one action as many times as its feature
has cells, which walks into the wall it points to from anywhere (the far edge too), then an
action along another feature as many times: an episode the goal does not end in those steps
meets a wall along both axes, and ends in a corner. From there it sweeps the grid, back and
forth along the first feature with a step along the other between passes, where each action
has one that undoes it, and is a uniformly random walk after that. The sweep stands on more
cells than a random walk: each is a goal the walk rules out for every reading of the goals
that puts its episode's goal there (the episode went on). On validation projected 100-103 (16
seeds) success after 4 episodes goes from 0.97 / 0.89 / 0.86 / 0.94 to 0.97 / 0.94 / 0.87 /
0.95 with it (``docs/transfer-studies.md`` section 34). Which action
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
    wall, then one along another feature repeated to a wall, then a sweep of the grid from
    that corner, then uniformly random ones (see the module docstring); uniformly random
    throughout where the context's actions move no feature."""

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
        opposite = _opposites(steps)
        rows = []
        for f, s in zip(first.tolist(), second.tolist(), strict=True):
            along, across = int(cells[f]), int(cells[s])
            rows.append([f] * along + [s] * across + _sweep(f, s, opposite, along, across))
        self.plan = torch.full((n, max(map(len, rows))), -1, dtype=torch.long)
        for i, row in enumerate(rows):
            self.plan[i, : len(row)] = torch.tensor(row, dtype=torch.long)

    def act(self, obs: Tensor) -> Tensor:
        """The next actions (n,), for ``obs`` (n, ...) (which they do not depend on)."""
        device = self.generator.device
        draw = torch.randint(self.actions, (self.n,), generator=self.generator, device=device)
        if self.t < self.plan.shape[1]:
            planned = self.plan[:, self.t].to(device)
            draw = torch.where(planned >= 0, planned, draw)
        self.t += 1
        return draw.to(obs.device)


def _opposites(steps: Tensor) -> list[int]:
    """Per action (``steps`` (A, F), its features' step), the action whose step undoes it, or
    -1 where none does (or it moves nothing)."""
    out = []
    for step in steps:
        undo = ((steps + step).abs().sum(1) < 1e-9) & bool(step.abs().sum() > 0)
        out.append(int(undo.double().argmax()) if bool(undo.any()) else -1)
    return out


def _sweep(first: int, second: int, opposite: list[int], along: int, across: int) -> list[int]:
    """From the corner the walls of ``first`` and ``second`` pin, back and forth along
    ``first``'s feature (``along`` cells), a step away from ``second``'s wall between passes
    (``across`` cells): every cell once. Empty where both move one feature or one of them has
    no opposite."""
    back, away = opposite[first], opposite[second]
    if first == second or back < 0 or away < 0:
        return []
    out, go = [], back
    for _ in range(across - 1):
        out += [go] * (along - 1) + [away]
        go = first if go == back else back
    return out + [go] * (along - 1)


def _pick(allowed: Tensor, generator: torch.Generator) -> Tensor:
    """(n,) one action per row of ``allowed`` (n, A), drawn uniformly from those it allows."""
    weights = allowed.double().to(generator.device)
    return torch.multinomial(weights, 1, generator=generator)[:, 0].cpu()
