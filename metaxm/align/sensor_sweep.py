"""Looking for the goal while a sensor bank's goals are still unread (:class:`SweepSearch`, what
the projected translator reads by when ``selfread``'s walk reads the agent's part of the
sensors but shows too few goals to read them).

The goals' lattice (:mod:`~metaxm.align.sensor_walk`) needs three episodes placed along each
axis; one or two episodes of the wall walk already place the agent (where the goal ended one
before its walls, the measured episode's walls do: below). Unsquashed, the sensors
read ``z = W_a a + W_g g + b``; the walk gives ``W_a``, and where a wall placed an episode's
start it gives that episode's ``pinv(W_a) (W_g g + b)``, the goal's and offset's part along
the agent's: small (a fraction of a cell, mostly) and the same whatever the agent does. So a
new observation places the agent at ``pinv(W_a) z`` less the mean of those parts, while its
goal stays unknown. The search then shows the source policy a goal on a cell the agent has
not stood on in this episode, and the next one when it stands there and the episode goes on: a
sweep of the grid, which ends where the episode does, on the goal. The cell shown is the most
likely one under the goal's posterior, a nearer one among near equals
(:mod:`~metaxm.align.goal_posterior`: the sensors off the agent's part, over the episode so
far, given the goals of the walk's episodes that ended on them; ``docs/transfer-studies.md``
section 37); without the family's offset scale (no training variants), or in a sweep saved
before it, the nearest cell.

The goal's part along the agent's is the same all episode and differs from those means by up
to a cell or so (it depends on the new goal), so read step by step the agent is often a cell
off, and a policy shown a goal beyond a wall it does not see pushes into that wall for the
rest of the episode (validation projected 101-102 after two episodes: the agent's cell read
right on 0.18-0.22 of the failed episodes' steps, and 51-66 of 135-140 failures ended stuck).
What the agent does within the episode is read exactly, though: a move changes the reading by
one of the actions' steps, a wall by nothing. So the sweep tracks the episode: each change of
the reading, rounded to the nearest step (or none), adds to where the agent is relative to the
episode's start; the start is the mean of the readings less those relative places, kept where
every place lies on the grid; and a move that did not happen (the action told, or where none is
told the one step the sweep showed) pins the start along its axis, at that wall. The cells
stood on are the start plus the relative places, so they follow the start as it is pinned.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from metaxm.align.goal_posterior import goal_predictive, log_likelihood, off_agent, within_noise
from metaxm.align.reading_set import SavedSizes
from metaxm.align.sensor_walk import AgentWalk
from metaxm.align.walk_features import feature_steps

NEAR = 2.0
"""Per cell between the agent and a cell, what it adds to the cell's cost as the goal (minus
its log-likelihood): a cell a little less likely but nearer is tried first. Tuned on validation
projected 100-103 (16 seeds x 64 episodes; mean success at k = 1 / 2 summed over the four, of
4): 0.0003 per cell, 3.04 / 3.31; 0.1, 3.18 / 3.43; 0.33, 3.33 / 3.58; 1, 3.36 / 3.63; 2, 3.39
/ 3.66; 4, 3.37 / 3.65; 10, 3.35 / 3.65 (the nearest cell first, no posterior: 2.21 / 2.41)."""


class SweepSearch(SavedSizes, nn.Module):
    """Squashed sensors (D,) -> the source's (S,): the agent's cell read from its part of the
    sensors, a goal on the most likely cell not stood on (see the module docstring).
    :meth:`fit` sets it from a walk, :meth:`know_goals` gives it the goals the walk's ended
    episodes give; :meth:`begin` starts new episodes."""

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
        # per action, the agent's features' step (none: a sweep saved before, read step by step)
        self.register_buffer("steps", torch.zeros(0, 0, dtype=torch.float64))  # (U, m)
        # the goal's posterior (goal_posterior): the projection off the agent's part, the
        # weights', offsets' and noise's variances, and the goals the walk ended on with their
        # readings and noise (none kept: the nearest cell first, as a sweep saved before)
        self.register_buffer("project", torch.zeros(0, 0, dtype=torch.float64))  # (D', D')
        self.register_buffer("prior", torch.zeros(0, dtype=torch.float64))  # (4,): and P's rank
        self.register_buffer("known", torch.zeros(0, 0, dtype=torch.float64))  # (L, g)
        self.register_buffer("known_r", torch.zeros(0, 0, dtype=torch.float64))  # (L, D')
        self.register_buffer("known_noise", torch.zeros(0, dtype=torch.float64))  # (L,)
        self.track: _Track | None = None
        self.heard: tuple[Tensor, Tensor] | None = None  # (B, D') sum of P z, (B,) count
        # each cell's predictive mean and variance (goal_predictive), kept until the next fit
        self.predictive: tuple[Tensor, Tensor] | None = None

    def fit(self, walk: AgentWalk, context: Any, bias_scale: float | None = None) -> None:
        """Read the agent's cell from ``walk``. Along an axis no wall placed an episode on,
        the episodes are taken to have started mid-grid (a start's mean), and the measured
        episode's first wall along it pins it (:class:`_Track`). With ``bias_scale`` (the
        offsets' scale), the goal is swept for in the order of its posterior
        (:mod:`~metaxm.align.goal_posterior`), the most likely cell first."""
        placed = ~walk.start.isnan()  # (E, m)
        reader = torch.linalg.pinv(walk.weights)  # (m, D')
        middle = torch.stack([walk.levels[f].mean() for f in walk.moving])  # (m,)
        start = torch.where(placed, walk.start, middle)
        along = walk.mean_z @ reader.T - walk.mean_rel - start  # (E, m): W_g g + b along
        placed = torch.where(placed.any(0), placed, True)  # no wall on an axis: every episode
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
        self.goal_from = torch.tensor(walk.partners(), device=device)
        self.steps = feature_steps(context)[:, walk.moving].to(device)
        self.track = self.heard = None
        self._fit_posterior(walk, bias_scale)
        self.active.fill_(True)

    def _fit_posterior(self, walk: AgentWalk, bias_scale: float | None) -> None:
        """Keep the goal's prior (:mod:`~metaxm.align.goal_posterior`); none without
        ``bias_scale`` (a finite one)."""
        device = self.active.device
        self.predictive = None
        empty = torch.zeros(0, 0, dtype=torch.float64, device=device)
        self.known, self.known_r, self.project = empty, empty, empty
        self.known_noise, self.prior = empty.new_zeros(0), empty.new_zeros(0)
        if bias_scale is None or not math.isfinite(bias_scale):
            return
        project = off_agent(walk.weights)
        rank = int(torch.linalg.matrix_rank(project))
        noise = within_noise(walk.z, walk.episodes, project, rank)
        weight_var = float(walk.weights.pow(2).mean())
        self.project = project.to(device)
        self.prior = torch.tensor([weight_var, bias_scale**2, noise, rank], dtype=torch.float64,
                                  device=device)  # fmt: skip

    def know_goals(self, walk: AgentWalk, ends: dict[int, Tensor]) -> None:
        """The goals of ``walk``'s episodes that ended on them (``ends``,
        :func:`~metaxm.align.sensor_walk.ended_goals`), each with its episode's mean reading
        off the agent's part and its noise, as the points the posterior is conditioned on."""
        if not self.prior.numel() or not ends:
            return
        device = self.active.device
        project = self.project.cpu()
        self.predictive = None
        self.known = torch.stack(list(ends.values())).to(device)
        self.known_r = torch.stack([walk.mean_z[e] @ project.T for e in ends]).to(device)
        noise = [float(self.prior[2]) / len(walk.episodes[e]) for e in ends]
        self.known_noise = torch.tensor(noise, dtype=torch.float64, device=device)

    def begin(self) -> None:
        """New episodes start: no cell has been stood on (and what was loaded is read anew)."""
        self.track = self.heard = self.predictive = None

    def choose(
        self, obs: Tensor, action: Tensor | None = None, restart: Tensor | None = None
    ) -> Tensor:
        """(B, S) the source observation of the agent on its cell and a goal on the most
        likely cell it has not stood on in this episode (the nearest, without a posterior);
        ``action`` (B,), where told, the action taken on the last reading, and ``restart``
        (B,) where that step ended an episode."""
        from metaxm.align.sensor_posterior import unsquash

        z = unsquash(obs)[:, self.alive]  # (B, D')
        at = z @ self.reader.T - self.offset  # (B, m)
        track = self.track
        if track is None or track.prev.shape != at.shape:
            track = self.track = _Track.start(at)
        elif not self.steps.numel():  # saved before the tracking: each step read alone
            track.trail = torch.cat((track.trail, (at - track.total)[:, None]), 1)
        else:
            intended = track.shown if action is None else self.steps[action.long()]
            track.step(at, self._moves(), intended, self.cells)
            if restart is not None:
                track.restart(restart.bool(), at)
        start = track.placed(self.cells) if self.steps.numel() else track.total  # (B, m)
        stood = track.trail + start[:, None, :]  # (B, T, m)
        visited = torch.zeros(len(z), len(self.cells), dtype=torch.bool, device=z.device)
        near = (stood[:, :, None, :] - self.cells).abs().sum(-1).argmin(-1)  # (B, T)
        visited.scatter_(1, near, True)
        agent = self.cells[near[:, -1]]  # (B, m)
        gap = (agent[:, None, :] - self.cells).abs().sum(-1)  # (B, C)
        if self.prior.numel():  # the most likely cell first, a nearer one among near equals
            gap = self._unlikely(z, restart) + NEAR / self._cell() * gap
        goal = self.cells[gap.masked_fill(visited, float("inf")).argmin(1)]
        if self.steps.numel():  # the step shown, where the goal is one step away
            step = goal - agent
            one = (step.abs().sum(1, keepdim=True) - self._cell()).abs() < 1e-9
            track.shown = torch.where(one & ((step.abs() > 1e-9).sum(1, keepdim=True) == 1),
                                      step, torch.zeros_like(step))  # fmt: skip
        features = agent.new_zeros(len(z), self.render.shape[0])
        features[:, self.agent_at] = agent
        features[:, self.goal_at] = goal[:, self.goal_from]
        return (features @ self.render).float()

    def _unlikely(self, z: Tensor, restart: Tensor | None) -> Tensor:
        """(B, C) minus the log-likelihood of each cell as the goal, from the episode's mean
        reading off the agent's part so far (:func:`~metaxm.align.goal_posterior.
        goal_log_likelihood`)."""
        off = z.double() @ self.project.T  # (B, D')
        ones = off.new_ones(len(off))
        if self.heard is None or self.heard[0].shape != off.shape:
            self.heard = (off, ones)
        else:
            total, count = self.heard
            fresh = restart.bool()[:, None] if restart is not None else off.new_zeros(1, 1).bool()
            self.heard = (torch.where(fresh, off, total + off),
                          torch.where(fresh[:, 0], ones, count + 1))  # fmt: skip
        total, count = self.heard
        if self.predictive is None:  # the same for every step until the next fit
            goals = self.cells[:, self.goal_from]  # (C, g)
            self.predictive = goal_predictive(goals, self.known, self.known_r, self.known_noise,
                                              self.prior, len(self.project))  # fmt: skip
        mean, var = self.predictive
        unlikely = -log_likelihood(total / count[:, None], self.prior[2] / count, mean, var,
                                   int(self.prior[3]))  # fmt: skip
        # rounded: cells the square's symmetries make equally likely tie, and the walk's least
        # squares' last bits vary with memory alignment, which would break the tie differently
        # run to run (validation projected 101 seed 7: 0.89 or 0.92 from one code)
        return unlikely.round(decimals=6)

    def _moves(self) -> Tensor:
        """(K, m) every step an action makes, and none."""
        return torch.cat((self.steps.new_zeros(1, self.steps.shape[1]), self.steps)).unique(dim=0)

    def _cell(self) -> float:
        """A cell's length along the agent's features (the smallest step an action makes)."""
        moving = self.steps.abs()
        return float(moving[moving > 0].min())


class _Track:
    """One episode's reading of where the agent is, per row: the last reading ``prev`` (B, m),
    the places relative to the episode's start ``trail`` (B, T, m, the last one now), the sum
    and count of the readings less those places, the start a wall pinned ``pinned`` (B, m, NaN
    where none), and the step the sweep last showed ``shown`` (B, m, 0 where none)."""

    def __init__(self, prev: Tensor, trail: Tensor, total: Tensor, count: Tensor,
                 pinned: Tensor) -> None:  # fmt: skip
        self.prev, self.trail, self.total, self.count = prev, trail, total, count
        self.pinned = pinned
        self.shown = torch.zeros_like(prev)

    @classmethod
    def start(cls, at: Tensor) -> _Track:
        """Episodes starting at the readings ``at`` (B, m)."""
        nan = torch.full_like(at, float("nan"))
        return cls(at, torch.zeros_like(at)[:, None], at.clone(), at.new_ones(len(at)), nan)

    def step(self, at: Tensor, moves: Tensor, intended: Tensor, cells: Tensor) -> None:
        """The next readings ``at``: the change rounded to the nearest of ``moves``; where
        ``intended`` (B, m) is a step and the reading did not change, a wall stopped it, and
        the start is pinned along that axis at that edge of ``cells``."""
        rel = self.trail[:, -1]
        moved = moves[((at - self.prev)[:, None, :] - moves).abs().sum(-1).argmin(1)]  # (B, m)
        stopped = (moved.abs().sum(1, keepdim=True) == 0) & (intended != 0)  # (B, m)
        edge = torch.where(intended > 0, cells.amax(0), cells.amin(0))
        self.pinned = torch.where(stopped, edge - rel, self.pinned)
        rel = rel + moved
        self.trail = torch.cat((self.trail, rel[:, None]), 1)
        self.total, self.count, self.prev = self.total + at - rel, self.count + 1, at

    def restart(self, rows: Tensor, at: Tensor) -> None:
        """The ``rows`` (B,) bool whose last step ended an episode start anew at ``at``."""
        fresh = _Track.start(at)
        keep = ~rows[:, None]
        self.trail = torch.where(keep[:, :, None], self.trail, 0.0)
        self.total = torch.where(keep, self.total, fresh.total)
        self.count = torch.where(rows, 1.0, self.count)
        self.pinned = torch.where(keep, self.pinned, fresh.pinned)
        self.shown = torch.where(keep, self.shown, 0.0)

    def placed(self, cells: Tensor) -> Tensor:
        """(B, m) where each episode started: pinned by a wall, else the mean reading less
        the places, kept where every place lies within ``cells``' span."""
        low = cells.amin(0) - self.trail.amin(1)
        high = cells.amax(0) - self.trail.amax(1)
        mean = self.total / self.count[:, None]
        start = torch.maximum(torch.minimum(mean, high), low)
        return torch.where(self.pinned.isnan(), start, self.pinned)
