"""Tracking the agent's cell through an episode: the projected translator's goal search
(:class:`~metaxm.align.sensor_posterior.SensorPosteriorTranslator`) read as a filter.

After one paired episode the goal's sensors are pinned at one goal only, so in a new episode
the sensors' offset (what the goal adds to every reading) is known only up to the posterior's
spread. Read one step at a time, that spread lets a wrong agent cell paired with a wrong goal
explain the sensors better than the true state, and a policy that acts on the wrong cell walks
into a wall its reading does not show, where the observation stops changing and the reading
with it (``docs/transfer-studies.md`` section 31: 57 of 106 failures on validation projected
102). Over an episode the two differ: the agent moves by the actions, the goal stays.

The candidates pair every agent part with every goal part (agent-major). The world's moves
(the translation context's ``moves``: the source's observations before and after a random
action in drawn states) give, per action, the agent part each agent part goes to
(:func:`agent_moves`; a wall or the grid's edge keeps it). With the action the policy took on
its last reading (:meth:`metaxm.learners.AdaptedPolicy.observe`), the belief over (agent part,
goal part) is carried over that move and multiplied by the new step's density
(:func:`forward_step`, a hidden Markov model's forward step with the goal part fixed): an
agent part that the action would have moved while the sensors say it stayed loses its weight.
The belief restarts where an episode ends, and where no action was observed (a caller that
does not report them reads one step at a time, as before, and gets no wall walk below).

A wall is what tells the agent's cell from a reading shifted as a whole, and the source policy,
walking to the goal it reads, meets one only by chance. So each episode starts with a wall
walk (:func:`wall_walk`): the translator shows the policy a goal at the corner nearest the read
agent, with the agent one cell from it, so that the policy steps towards the walls, a few steps
past where the reading places them; the moves the walls stop pin the agent's cell in the
belief, and the search goes on from there (section 33). :func:`static_channels` names the
goal's channels from the same moves (those no move changes), so the search, and this, run
after two episodes and more too, where no channel is constant over the pairs
(``docs/transfer-studies.md`` section 32).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

SAME = 1e-4
"""Two observations whose agent channels differ by at most this are the same agent part."""
MARGIN = 2
"""Cells a wall walk goes past the wall its reading places: a reading off by up to this many
cells still meets the wall. Chosen on validation projected 100-103 (4 seeds, k = 1): margin 1
/ 2 read 1.00 / 0.85 / 0.87 / 0.91 and 1.00 / 0.87 / 0.88 / 0.88, a walk to one fixed corner
0.97 / 0.83 / 0.94 / 0.88 (``docs/transfer-studies.md`` section 33)."""


def agent_moves(candidates: Tensor, parts: int, context: Any) -> Tensor | None:
    """(U, A) long: per action, the agent part each of the ``parts`` agent parts moves to,
    from the context's drawn moves; None where the context has no moves, a drawn move is not
    one agent part to one (where the agent goes depends on more than its cell and the action),
    or some agent part and action were never drawn.

    Args:
        candidates: (A * G, S) the source observations of every (agent part, goal part),
            agent-major.
        parts: A.
        context: a :class:`~metaxm.align.translation_context.TranslationContext`.
    """
    if context is None or context.moves is None:
        return None
    before, acted, after = (t.cpu() for t in context.moves)
    agents = candidates.double().cpu()[:: len(candidates) // parts]  # (A, S): goal part 0 each
    moving = (agents - agents[:1]).abs().amax(0) > SAME  # the agent's channels
    src, dst = (
        _nearest(agents[:, moving], obs.double()[:, moving], SAME) for obs in (before, after)
    )
    seen = (src >= 0) & (dst >= 0)
    table = torch.full((int(acted.max()) + 1, parts), -1, dtype=torch.long)
    pairs = torch.stack((acted.long()[seen], src[seen], dst[seen]), 1).unique(dim=0)
    if len(pairs[:, :2].unique(dim=0)) < len(pairs):  # one part and action, two places
        return None
    table[pairs[:, 0], pairs[:, 1]] = pairs[:, 2]
    return None if bool((table < 0).any()) else table


def wall_walk(
    agent: Tensor, agent_cells: Tensor, goal_cells: Tensor, cell: float, steps_taken: Tensor
) -> Tensor:
    """(N,) per row, the candidate (agent-major, ``len(agent_cells) * len(goal_cells)``) that
    walks the agent into the walls of the corner nearest its reading, or -1 once the walk is
    over: the goal read at that corner and the agent one cell inward from it along one feature,
    so the policy steps along that feature towards the corner, for the read distance plus
    :data:`MARGIN` steps (at most the grid's span), then along the next feature.

    Args:
        agent: (N, P) the read agent's features (at the episode's first step).
        agent_cells: (A, P) each agent part's features; ``goal_cells``: (G, P) each goal
            part's, paired with them feature by feature.
        cell: a cell's length in the features.
        steps_taken: (N,) the steps of the episode so far.
    """
    lo, hi = agent_cells.amin(0), agent_cells.amax(0)
    span = int(((hi - lo) / cell).round().max())
    low = (agent - lo) <= (hi - agent)  # (N, P) the nearer edge, per feature
    corner = torch.where(low, lo, hi)
    inward = torch.where(low, cell, -cell)
    steps = (((agent - corner).abs() / cell).round().long() + MARGIN).clamp_max(span)
    ends = steps.cumsum(1)  # (N, P) the step each feature's walk ends at
    feature = (steps_taken[:, None] >= ends).sum(1)  # (N,) the feature walked now (P: done)
    walking = feature < agent.shape[1]
    along = torch.nn.functional.one_hot(feature.clamp_max(agent.shape[1] - 1), agent.shape[1])
    start = corner + inward * along  # (N, P): one cell inward along the feature walked
    a = _nearest(agent_cells, start, cell / 4)
    g = _nearest(goal_cells, corner, cell / 4)
    index = a * len(goal_cells) + g
    return torch.where(walking & (a >= 0) & (g >= 0), index, -1)


def _nearest(cells: Tensor, want: Tensor, tolerance: float) -> Tensor:
    """(N,) the row of ``cells`` (K, P) within ``tolerance`` of ``want`` (N, P) in every
    column, or -1 where none is."""
    gap = (want[:, None, :] - cells[None]).abs().amax(-1)  # (N, K)
    near, which = gap.min(1)
    return torch.where(near <= tolerance, which, -1)


def static_channels(moves: tuple[Tensor, Tensor, Tensor]) -> Tensor:
    """(S,) bool: the source channels no drawn move changes (the goal's), from a context's
    ``moves``; a channel with noise of its own changes at every move and is not one."""
    before, _, after = moves
    return (after.double() - before.double()).abs().amax(0) <= SAME


def forward_step(
    belief: Tensor | None, log_density: Tensor, moves: Tensor, action: Tensor | None,
    restart: Tensor | None,
) -> Tensor:  # fmt: skip
    """The log belief (N, A, G) over (agent part, goal part) after this step: ``belief`` (the
    last step's, or None) carried over each row's ``action`` (N,) by ``moves`` (U, A), times
    this step's density ``log_density`` (N, A * G); the density alone where there is no belief
    or action, and in the rows where ``restart`` (N,) says the last step ended an episode.
    Normalised so that each row's largest entry is 0."""
    n, parts = log_density.shape[0], moves.shape[1]
    density = log_density.view(n, parts, -1)
    if belief is None or action is None or belief.shape != density.shape:
        return density - density.amax((1, 2), keepdim=True)
    to = moves[action.long()][:, :, None].expand_as(belief)  # (N, A, G): where each part goes
    top = torch.full_like(belief, float("-inf")).scatter_reduce(1, to, belief, reduce="amax")
    weight = (belief - top.gather(1, to)).exp().nan_to_num(0.0)  # -inf - -inf: nothing there
    carried = top + torch.zeros_like(belief).scatter_add(1, to, weight).log()  # log-sum-exp
    out = carried + density
    if restart is not None:
        out = torch.where(restart.bool()[:, None, None], density, out)
    return out - out.amax((1, 2), keepdim=True)
