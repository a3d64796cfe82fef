"""Looking for the goal while a sensor bank's goals are still unread (:class:`SweepSearch`, what
the projected translator reads by when ``selfread``'s walk places the agent but shows too few
goals to read them).

The goals' lattice (:mod:`~metaxm.align.sensor_walk`) needs three episodes placed along each
axis; one or two episodes of the wall walk already place the agent. Unsquashed, the sensors
read ``z = W_a a + W_g g + b``; the walk gives ``W_a``, and where a wall placed an episode's
start it gives that episode's ``pinv(W_a) (W_g g + b)``, the goal's and offset's part along
the agent's: small (a fraction of a cell, mostly) and the same whatever the agent does. So a
new observation places the agent at ``pinv(W_a) z`` less the mean of those parts, rounded to
the nearest cell, while its goal stays unknown. The search then shows the source policy a goal
on the nearest cell the agent has not stood on in this episode, and the next one when it
stands there and the episode goes on: a sweep of the grid, nearest first, which ends where the
episode does, on the goal.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from metaxm.align.reading_set import SavedSizes
from metaxm.align.sensor_walk import AgentWalk


class SweepSearch(SavedSizes, nn.Module):
    """Squashed sensors (D,) -> the source's (S,): the agent's cell read from its part of the
    sensors, a goal on the nearest cell not stood on (see the module docstring). :meth:`fit`
    sets it from a walk; :meth:`begin` starts new episodes."""

    def __init__(self, dim: int, out_dim: int) -> None:
        super().__init__()
        self.register_buffer("active", torch.tensor(False))
        self.register_buffer("alive", torch.zeros(dim, dtype=torch.bool))
        self.register_buffer("reader", torch.zeros(0, 0, dtype=torch.float64))  # (m, D')
        self.register_buffer("offset", torch.zeros(0, dtype=torch.float64))  # (m,)
        self.register_buffer("cells", torch.zeros(0, 0, dtype=torch.float64))  # (C, m)
        self.register_buffer("render", torch.zeros(0, out_dim, dtype=torch.float64))  # (F, S)
        # the agent's features (a cell's columns, in order), the goal's, and the column of a
        # cell each goal feature takes (its partner's)
        self.register_buffer("agent_at", torch.zeros(0, dtype=torch.long))  # (m,)
        self.register_buffer("goal_at", torch.zeros(0, dtype=torch.long))  # (g,)
        self.register_buffer("goal_from", torch.zeros(0, dtype=torch.long))  # (g,)
        self.visited: Tensor | None = None  # (B, C) cells stood on in this episode

    def fit(self, walk: AgentWalk, context: Any) -> bool:
        """Read the agent's cell from ``walk``: False where no wall placed an episode along
        some axis (nothing places the agent)."""
        placed = ~walk.start.isnan()  # (E, m)
        if not bool(placed.any(0).all()):
            return False
        reader = torch.linalg.pinv(walk.weights)  # (m, D')
        along = walk.mean_z @ reader.T - walk.mean_rel - walk.start  # (E, m): W_g g + b along
        offset = torch.stack([along[placed[:, f], f].mean() for f in range(along.shape[1])])
        device = self.active.device
        self.alive = walk.alive.to(device)
        self.reader, self.offset = reader.to(device), offset.to(device)
        axes = [walk.levels[f] for f in walk.moving]
        self.cells = torch.cartesian_prod(*axes).reshape(-1, len(axes)).to(device)
        self.render = context.source_map().to(device)
        statics = sorted(walk.pairing)
        self.agent_at = torch.tensor(walk.moving, device=device)
        self.goal_at = torch.tensor(statics, device=device)
        self.goal_from = torch.tensor([walk.moving.index(walk.pairing[g]) for g in statics],
                                      device=device)  # fmt: skip
        self.visited = None
        self.active.fill_(True)
        return True

    def begin(self) -> None:
        """New episodes start: no cell has been stood on."""
        self.visited = None

    def choose(self, obs: Tensor) -> Tensor:
        """(B, S) the source observation of the agent on its cell and a goal on the nearest
        cell it has not stood on in this episode."""
        from metaxm.align.sensor_posterior import unsquash

        z = unsquash(obs)[:, self.alive]  # (B, D')
        at = z @ self.reader.T - self.offset  # (B, m)
        rows = torch.arange(len(z), device=z.device)
        if self.visited is None or self.visited.shape[0] != len(z):
            self.visited = torch.zeros(len(z), len(self.cells), dtype=torch.bool, device=z.device)
        here = (at[:, None, :] - self.cells).abs().sum(-1).argmin(1)  # (B,) nearest cell
        self.visited[rows, here] = True
        agent = self.cells[here]  # (B, m)
        gap = (agent[:, None, :] - self.cells).abs().sum(-1)  # (B, C)
        goal = self.cells[gap.masked_fill(self.visited, float("inf")).argmin(1)]
        features = agent.new_zeros(len(z), self.render.shape[0])
        features[:, self.agent_at] = agent
        features[:, self.goal_at] = goal[:, self.goal_from]
        return (features @ self.render).float()
