"""Reading a ``projected`` variant from the agent's own moves: no reward, no pair
(:func:`walk_agent`, :func:`walk_readings` and :class:`WalkSearch`, what ``selfread`` gives the
projected translator).

Unsquashed, a projected sensor bank reads ``z = W_a a + W_g g + b + noise``: the agent's
features ``a``, the goal's ``g``, an offset. Read from a random walk's observations and actions:

1. **The agent's part** (:func:`agent_map`). An action moves ``a`` by a known step (the
   features' steps, :func:`~metaxm.align.walk_features.feature_steps`), or by nothing where a
   wall stops it; so ``z`` moves by ``W_a`` times the step, or by its noise. The steps that
   moved are the ones closer to that than to standing still; summing them places the agent
   within its episode, and ``W_a`` is fitted again on the sensors' levels within episodes.
2. **Where the agent started** (:func:`agent_features`): a move a wall stopped says it stood on
   that edge, which places an episode along that axis.
3. **The goals, up to the grid's symmetries**
   (:func:`~metaxm.align.goal_lattice.lattice_options`). What is left of an episode, ``W_a
   start + W_g g + b``, off the agent's part, is one point per episode, and the goals lie on
   the grid: the points lie on a lattice, whose cells are the goals' shortest differences or
   fractions of them, as long as the agent's cells are (both parts are Gaussian weights).
   That gives every goal's cell up to the square's 8 rotations and flips and a shift, which
   the grid's size narrows down. A few goals may lie on more than one such lattice (four
   goals whose differences' coordinates all sum to an even number lie on one of cells a
   diagonal long too), so up to four are kept.
4. **Which of those** (:func:`walk_readings`). Each is fitted (``W_g`` and ``b``, from the
   episodes a wall placed along each axis, which then place the others' starts) and costed by
   a Gaussian prior on the weights and the offset, at the weights' scale the agent's part
   shows and the offsets' scale the family's training variants show (which picks the shift).
   A reading that puts an episode's goal on a cell the agent stood on while the episode went
   on is ruled out: the test the search within an episode uses.

The rotations and flips cost the same (the prior is symmetric), so a few readings are usually
left. :class:`WalkSearch` keeps them: each decodes an observation to the possible state whose
sensors it predicts closest, and the cheapest reading not ruled out within the episode is read,
the nearest goal first among equals (:func:`~metaxm.align.reading_set.search`). With fewer
than three episodes placed along an axis nothing is read; ``selfread`` therefore walks each
episode to a wall along both axes first (:class:`~metaxm.align.wall_walk.WallWalk`). On
validation projected variants 100-103 (seeds 1-16), success after 3 / 4 / 8 / 16 episodes of
that walk, these readings alone: 0.32 / 0.84 / 0.99 / 1.00 (``docs/transfer-studies.md``
section 17; of a uniformly random walk: 0.06 / 0.15 / 0.89). Where a walk places the agent but
shows fewer than three goals, :class:`~metaxm.align.sensor_sweep.SweepSearch` looks for the
goal instead (:func:`walk_agent` is what both share).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from metaxm.align.goal_lattice import dihedral, lattice_options
from metaxm.align.goal_posterior import off_agent
from metaxm.align.reading_set import SavedSizes, column_levels, level_spacing, search, world_test
from metaxm.align.walk_features import feature_steps, goal_pairing, moving_features

SATURATED = 1.0 - 1e-5
"""A sensor reading beyond this is too squashed to unsquash (float32 rounding)."""
MAX_READINGS = 64
"""The most readings kept, the cheapest."""
NEAREST = 1e-3
"""Per unit of distance between the agent and the goal a reading reads, what it adds to the
reading's cost: among readings the prior cannot tell apart, the nearest goal is tried first."""
STAY = 1e-2
"""What the reading chosen one step before takes off its cost: the walk to its goal is not
abandoned for another the prior cannot tell apart that has come nearer (more than the
nearest-first term can add, far less than the prior's gaps)."""


def episode_rows(first: Tensor, second: Tensor, n: int) -> list[list[int]]:
    """The rows of each episode in order, following the transitions ``first`` -> ``second``
    from every row that no transition leads to (``n`` rows)."""
    after = dict(zip(first.tolist(), second.tolist(), strict=True))
    starts = sorted(set(range(n)) - set(second.tolist()))
    out = []
    for row in starts:
        rows = [row]
        while rows[-1] in after:
            rows.append(after[rows[-1]])
        out.append(rows)
    return out


def agent_map(delta: Tensor, want: Tensor) -> tuple[Tensor, Tensor] | None:
    """(D, m) the agent's part ``W_a`` and (M,) which transitions moved, from the sensors'
    changes ``delta`` (M, D) and the features' steps each action makes ``want`` (M, m) (see
    the module docstring); None where the moves do not span the agent's features."""
    moved = torch.ones(len(delta), dtype=torch.bool)
    for _ in range(10):
        if int(torch.linalg.matrix_rank(want[moved])) < want.shape[1]:
            return None
        weights = torch.linalg.lstsq(want[moved], delta[moved]).solution  # (m, D)
        now = (delta - want @ weights).pow(2).sum(1) < delta.pow(2).sum(1)
        if torch.equal(now, moved):
            break
        moved = now
    return weights.T, moved


def agent_features(
    episodes: list[list[int]], step_of: dict[int, tuple[Tensor, bool]], levels: list[Tensor],
    n: int,
) -> tuple[Tensor, Tensor]:  # fmt: skip
    """(n, m) the agent's features at every row relative to where its episode started, and
    (E, m) where each episode started, NaN along an axis where no move was stopped (no edge
    to place it by). ``step_of[row]``: the features' step of the action taken at ``row`` and
    whether it moved (else a wall stopped it, on the edge it points to)."""
    m = len(levels)
    rel = torch.zeros(n, m, dtype=torch.float64)
    start = torch.full((len(episodes), m), float("nan"), dtype=torch.float64)
    for e, rows in enumerate(episodes):
        anchors: list[list[float]] = [[] for _ in range(m)]
        for row, after in zip(rows[:-1], rows[1:], strict=True):
            step, moved = step_of[row]
            rel[after] = rel[row] + step if moved else rel[row]
            for f in [] if moved else step.nonzero().flatten().tolist():
                edge = levels[f].max() if step[f] > 0 else levels[f].min()
                anchors[f].append(float(edge - rel[row, f]))
        for f in range(m):
            if anchors[f] and max(anchors[f]) - min(anchors[f]) < 1e-6:
                column = rel[rows, f] + anchors[f][0]
                low, high = float(levels[f].min()), float(levels[f].max())
                if low - 1e-6 <= float(column.min()) and float(column.max()) <= high + 1e-6:
                    start[e, f] = anchors[f][0]
    return rel, start


@dataclass
class WalkFit:
    """What a walk reads of a projected variant (:func:`walk_readings`): the sensors read
    (``alive`` (D,) bool), the agent's part ``agent`` (D', m) of features ``moving``, and per
    reading left its goal part ``goal`` (R, D', g) of features ``statics``, offset ``bias``
    (R, D') and prior ``cost`` (R,), cheapest first; ``partners``: per goal feature, the
    index in ``moving`` of the agent's feature it pairs with."""

    alive: Tensor
    agent: Tensor
    goal: Tensor
    bias: Tensor
    cost: Tensor
    moving: list[int]
    statics: list[int]
    partners: list[int]


class AgentWalk(NamedTuple):
    """What a walk says of the agent (:func:`walk_agent`): the sensors read (``alive`` (D,)),
    the agent's features ``moving`` and the goal's
    ``pairing`` ({goal feature: agent feature}), every feature's ``levels``, the agent's part
    ``weights`` (D', m), the ``episodes``' rows, the agent's features relative to each
    episode's start ``rel`` (N, m), the starts the walls placed ``start`` (E, m, NaN where
    none), each episode's mean sensors and relative features (``mean_z`` (E, D'),
    ``mean_rel`` (E, m)), and the sensors read, unsquashed (``z`` (N, D'))."""

    alive: Tensor
    moving: list[int]
    pairing: dict[int, int]
    levels: list[Tensor]
    weights: Tensor
    episodes: list[list[int]]
    rel: Tensor
    start: Tensor
    mean_z: Tensor
    mean_rel: Tensor
    z: Tensor

    def partners(self) -> list[int]:
        """Per goal feature (``sorted(pairing)``), its agent feature's place in ``moving``."""
        return [self.moving.index(self.pairing[f]) for f in sorted(self.pairing)]


def walk_agent(
    obs: Tensor, actions: Tensor, first: Tensor, second: Tensor, context: Any
) -> AgentWalk | None:
    """The agent's part of the sensors and where the walls place each episode (steps 1 and 2
    of the module docstring); None where the world is not a grid of two axes (an agent and a
    goal of two features each) or the moves do not span the agent's features."""
    from metaxm.align.sensor_posterior import unsquash

    squashed = obs.double().flatten(1).cpu()
    alive = (squashed.abs() > 0).any(0) & ((squashed.abs() > SATURATED).double().mean(0) < 0.02)
    z = unsquash(squashed)[:, alive]
    first, second, actions = first.cpu(), second.cpu(), actions.cpu()
    steps = feature_steps(context)
    moving = moving_features(context)
    pairing = goal_pairing(context, moving)
    levels = column_levels(context.features)
    if pairing is None or levels is None or len(moving) + len(pairing) != steps.shape[1]:
        return None
    if len(moving) != 2:  # the lattice and its symmetries are those of a square grid
        return None
    want = steps[actions[first]][:, moving]
    found = agent_map(z[second] - z[first], want)
    if found is None:
        return None
    weights, moved = found
    step_of = {row: (want[t], bool(moved[t])) for t, row in enumerate(first.tolist())}
    episodes = episode_rows(first, second, len(obs))
    rel, start = agent_features(episodes, step_of, [levels[f] for f in moving], len(obs))
    # the agent's part again, from the sensors' levels within each episode (each reading
    # once, where the changes count each twice): the noise left in it would blur the lattice
    rows = [torch.tensor(r) for r in episodes]
    mean_z = torch.stack([z[r].mean(0) for r in rows])  # (E, D')
    mean_rel = torch.stack([rel[r].mean(0) for r in rows])  # (E, m)
    z_in = torch.cat([z[r] - m for r, m in zip(rows, mean_z, strict=True)])
    rel_in = torch.cat([rel[r] - m for r, m in zip(rows, mean_rel, strict=True)])
    weights = torch.linalg.lstsq(rel_in, z_in).solution.T  # (D', m)
    return AgentWalk(alive, moving, pairing, levels, weights, episodes, rel, start, mean_z,
                     mean_rel, z)  # fmt: skip


def walk_readings(found: AgentWalk, bias_scale: float) -> WalkFit | None:
    """Every reading of the goals a walk leaves, costed (see the module docstring), from what
    it says of the agent (:func:`walk_agent`); None where it shows too little (fewer than three
    walls met along an axis, or no lattice)."""
    alive, moving, pairing, levels, weights, episodes, rel, start, mean_z, mean_rel, _ = found
    if int((~start.isnan()).sum(0).min()) < 3:  # fewer than three walls met along an axis
        return None
    # W_a start + W_g g + b per episode; off the agent's part, the goals' lattice alone
    rest = mean_z - mean_rel @ weights.T  # (E, D')
    spacing = level_spacing(levels)
    cell = float(weights.norm(dim=0).mean()) * spacing  # a cell of the agent's, in sensors
    statics = sorted(pairing)
    goal_levels = [levels[f] for f in statics]
    size = min(len(v) for v in goal_levels)
    partners = found.partners()
    weight_var = float(weights.pow(2).mean())
    kept: list[tuple[float, Tensor, Tensor, Tensor]] = []
    for coords, on in lattice_options(rest @ off_agent(weights), cell, size):
        kept_episodes = on.nonzero().flatten().tolist()  # an episode off the lattice: left out
        walk = _Walk([episodes[e] for e in kept_episodes], rel, start[on], weights,
                     [levels[f] for f in moving])  # fmt: skip
        for turn in dihedral():
            turned = coords[on] @ turn.T
            low, high = turned.min(0).values, turned.max(0).values
            if bool((high - low > size - 1).any()):
                continue
            for r in range(int(-low[0]), int(size - 1 - high[0]) + 1):
                for c in range(int(-low[1]), int(size - 1 - high[1]) + 1):
                    at = turned + torch.tensor([r, c])
                    goal = torch.stack([goal_levels[j][at[:, j]] for j in range(2)], 1)
                    fitted = walk.fit_goal(rest[on], goal)
                    if fitted is None or walk.stood_on(fitted[2], goal, partners):
                        continue
                    w_goal, bias, _ = fitted
                    cost = float(w_goal.pow(2).sum()) / (2 * weight_var)
                    cost += float(bias.pow(2).sum()) / (2 * bias_scale**2)
                    # rounded: the rotations and flips tie, and least squares' last bits vary
                    # with memory alignment, which would break the tie differently run to run
                    kept.append((round(cost, 6), w_goal, bias))
    if not kept:
        return None
    kept.sort(key=lambda item: item[0])
    kept = kept[:MAX_READINGS]
    return WalkFit(
        alive, weights, torch.stack([k[1] for k in kept]), torch.stack([k[2] for k in kept]),
        torch.tensor([k[0] for k in kept], dtype=torch.float64), moving, statics, partners,
    )  # fmt: skip


def ended_goals(
    found: AgentWalk, actions: Tensor, ended: Tensor, steps: Tensor
) -> dict[int, Tensor]:
    """{episode: its goal's features (g,)} for each walk episode that ended before its horizon
    (``ended`` (N,), the rows whose action ``actions`` (N,) ended one) and whose start the
    walls placed along both axes: the agent's cell its last move (``steps`` (A, m), per
    action, in the agent's features) led to, in the goal features' order."""
    partners = found.partners()
    out = {}
    for e, rows in enumerate(found.episodes):
        last = rows[-1]
        if bool(ended[last]) and not bool(found.start[e].isnan().any()):
            cell = found.start[e] + found.rel[last] + steps[int(actions[last])]
            out[e] = cell[partners]
    return out


class _Walk:
    """A walk's episodes with the agent placed as far as the walls place it: where each
    started (NaN along an axis no wall placed), and the starts its walk allows."""

    def __init__(
        self, episodes: list[list[int]], rel: Tensor, start: Tensor, weights: Tensor,
        levels: list[Tensor],
    ) -> None:  # fmt: skip
        self.episodes, self.rel, self.start, self.weights = episodes, rel, start, weights
        self.starts = []  # per episode, the starts its walk allows: (K, m)
        for e, rows in enumerate(episodes):
            axes = []
            for f, values in enumerate(levels):
                if not bool(start[e, f].isnan()):
                    axes.append(start[e, f : f + 1])
                    continue
                low, high = float(values.min()), float(values.max())
                lo, hi = float(rel[rows, f].min()), float(rel[rows, f].max())
                axes.append(values[(values + lo >= low - 1e-6) & (values + hi <= high + 1e-6)])
            self.starts.append(torch.cartesian_prod(*axes).reshape(-1, len(levels)))

    def fit_goal(self, rest: Tensor, goal: Tensor) -> tuple[Tensor, Tensor, Tensor] | None:
        """The goal's part ``W_g`` (D', g) and offset ``b`` (D',) that put every episode's
        goal (``goal`` (E, g)) on ``rest`` (E, D': ``W_a start + W_g g + b``), and every
        episode's start (E, m). Off the agent's part, every episode fits them; along it, the
        episodes a wall placed along that axis do (three at least, their goals not on a line),
        and place the others' starts there, on the nearest start their walk allows (an episode
        none fits, a stopped move misread, is left out: its start NaN). None where too few."""
        design = torch.cat((goal, torch.ones(len(goal), 1, dtype=goal.dtype)), 1)  # (E, g + 1)
        if int(torch.linalg.matrix_rank(design)) < design.shape[1]:
            return None
        inverse = torch.linalg.pinv(self.weights)  # (m, D')
        across = torch.linalg.lstsq(design, rest - rest @ inverse.T @ self.weights.T).solution
        along = rest @ inverse.T  # (E, m): start + (the goal's part and offset along W_a)
        fit_along = torch.zeros(design.shape[1], len(inverse), dtype=rest.dtype)
        for f in range(len(inverse)):
            known = ~self.start[:, f].isnan()
            if int(torch.linalg.matrix_rank(design[known])) < design.shape[1]:
                return None
            target = along[known, f] - self.start[known, f]
            fit_along[:, f] = torch.linalg.lstsq(design[known], target[:, None]).solution[:, 0]
        guess = along - design @ fit_along  # (E, m) each episode's start
        starts = torch.full_like(self.start, float("nan"))
        for e, allowed in enumerate(self.starts):
            if len(allowed):
                starts[e] = allowed[(allowed - guess[e]).pow(2).sum(1).argmin()]
        placed = ~starts.isnan().any(1)
        points = rest[placed] - starts[placed] @ self.weights.T
        fit = torch.linalg.lstsq(design[placed], points).solution
        if int(placed.sum()) < design.shape[1]:
            fit = across + fit_along @ self.weights.T
        return fit[:-1].T, fit[-1], starts

    def stood_on(self, starts: Tensor, goal: Tensor, partners: list[int]) -> bool:
        """Whether an episode's goal is a cell its agent stood on while the episode went on."""
        for rows, start, at_goal in zip(self.episodes, starts, goal, strict=True):
            if bool(start.isnan().any()):
                continue
            at = (self.rel[rows] + start)[:, partners]
            if bool(((at - at_goal).abs() < 1e-6).all(1).any()):
                return True
        return False


class WalkSearch(SavedSizes, nn.Module):
    """Squashed sensors (D,) -> the source's (S,) under the readings a walk leaves
    (:func:`walk_readings`): each reading decodes a new observation to the possible state whose
    sensors it predicts closest, and the cheapest reading not ruled out within the episode is
    read (:func:`~metaxm.align.reading_set.search`). :meth:`fit` keeps the readings."""

    def __init__(self, dim: int, out_dim: int) -> None:
        super().__init__()
        self.register_buffer("active", torch.tensor(False))
        self.register_buffer("alive", torch.zeros(dim, dtype=torch.bool))
        self.register_buffer("means", torch.zeros(0, 0, 0, dtype=torch.float64))  # (R, M, D')
        self.register_buffer("states", torch.zeros(0, 0, dtype=torch.float64))  # (M, F)
        self.register_buffer("candidates", torch.zeros(0, out_dim))  # (M, S)
        self.register_buffer("cost", torch.zeros(0, dtype=torch.float64))  # (R,)
        self.register_buffer("gap", torch.zeros(0, dtype=torch.float64))  # (M,) agent to goal
        self.reached: Callable[[Tensor], Tensor] | None = None
        self.ruled_out: Tensor | None = None
        self.last: Tensor | None = None  # (B,) the reading chosen one step before

    def fit(self, walk: WalkFit, context: Any) -> None:
        """Keep ``walk``'s readings, decoding to the possible states of ``context`` (every
        agent part it drew with every goal part) rendered in the source."""
        device = self.active.device
        # every agent part with every goal part, success states included (the world never
        # shows them, but a wrong reading reads one when the agent stands on its goal)
        features = context.features.double().cpu()
        agents = features[:, walk.moving].unique(dim=0)
        goals = features[:, walk.statics].unique(dim=0)
        states = features.new_zeros(len(agents) * len(goals), features.shape[1])  # (M, F)
        states[:, walk.moving] = agents.repeat_interleave(len(goals), 0)
        states[:, walk.statics] = goals.repeat(len(agents), 1)
        agent = states[:, walk.moving] @ walk.agent.T  # (M, D')
        goal = torch.einsum("mg,rdg->rmd", states[:, walk.statics], walk.goal)
        self.alive = walk.alive.to(device)
        self.means = (agent + goal + walk.bias[:, None]).to(device)
        self.states = states.to(device)
        self.candidates = (states @ context.source_map()).float().to(device)
        self.cost = walk.cost.to(device)
        partners = [walk.moving[i] for i in walk.partners]
        self.gap = (states[:, partners] - states[:, walk.statics]).abs().sum(1).to(device)
        self.reached, self.ruled_out = context.reached, None
        self.active.fill_(True)

    def attach(self, world: Any) -> None:
        """Take ``world``'s test of success (a loaded translator: the test is not saved)."""
        self.reached = world_test(world) or self.reached

    def begin(self) -> None:
        """New episodes start: no reading is ruled out, none was chosen."""
        self.ruled_out, self.last = None, None

    def choose(self, obs: Tensor) -> Tensor:
        """(B, S) the source observation of each row's reading (see the class docstring)."""
        from metaxm.align.sensor_posterior import unsquash

        z = unsquash(obs)[:, self.alive]  # (B, D')
        misfit = self.means.pow(2).sum(-1) - 2.0 * torch.einsum("bd,rmd->brm", z, self.means)
        best = misfit.argmin(2)  # (B, R)
        cost = self.cost + NEAREST * self.gap[best]  # (B, R)
        rows = torch.arange(len(z), device=z.device)
        if self.last is not None and len(self.last) == len(z):
            cost = cost.index_put((rows, self.last), cost[rows, self.last] - STAY)
        chosen, self.ruled_out = search(
            self.candidates[best], cost, self.states[best], self.reached, self.ruled_out
        )
        open_cost = cost if self.ruled_out is None else cost.masked_fill(self.ruled_out, 1e300)
        self.last = open_cost.argmin(1)
        return chosen
