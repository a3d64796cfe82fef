"""Reading re-wired, squashed sensors by Bayesian inference: the ``translate`` learner's
translator for the ``projected`` family.

A ``projected`` sensor reads ``tanh(w . s + b + noise)`` (:mod:`metaxm.modalities.projected`),
so ``atanh`` gives back ``z = W s + b + noise``: linear in the state, with an offset. A
least-squares map from ``z`` to the source's channels
(:class:`~metaxm.align.translate.UnsquashTranslator`) needs three goals to pin the goal's part
of ``W`` and the offset; two episodes show two, and leave the goal's map unknown across the
line through them, which the least squares reads as 0: every new goal is read on that line.

:class:`SensorPosteriorTranslator` keeps what two goals do say and infers the rest:

    z = A [y, 1] + noise          y: the source's channels, standardised
    each sensor's row of A ~ N(0, diag(scale^2, ..., scale^2, bias_scale^2))

A Gaussian prior on every sensor's weights and offset (as the family draws them), updated by
the pairs into a Gaussian posterior (Bayesian linear regression, the same for every sensor),
gives for each of the source's possible observations ``y`` a predictive density of the new
sensors' reading, ``N(mean(y), var(y))``, whose variance grows with how far ``y`` lies along
what the pairs leave unknown. A new observation is translated to the most probable ``y``
among the source's observations of states drawn from the world (the candidates), so how far a
goal lies off the seen line is read from how much the sensors move (their number makes that
precise), and to which side from the offsets it would imply (which the prior keeps small).

The prior's weight scale and the noise are fitted to the pairs by maximising their marginal
likelihood (empirical Bayes). The offset's scale is a property of the family, which two
episodes pin poorly, so it is learned once from the family's training variants
(:func:`bias_scale`, a meta-learned prior), where the spec has any; a family without training
variants fits it to the pairs too. Everything is closed form or a 3-parameter L-BFGS; there are
no gradient steps on the translator (``docs/transfer-studies.md`` section 12).

After one episode the goal's channels are constant, and the posterior spreads over goals. Where
the world can tell success from features (the context's ``reached``), the candidates are then
every pairing of a part the pairs moved (the agent's) with a part they held constant (the
goal's), success states included, and the search of :mod:`metaxm.align.reading_search`
applies: when the most probable candidate is a success state and the episode goes on, its goal
part is ruled out for the rest of the episode, and the next most probable goal is read
(``docs/transfer-studies.md`` section 14). Where the context has the world's moves, the goal's
channels are also those no move changes, so the search runs after any number of episodes.
Told the action taken on each reading (:meth:`SensorPosteriorTranslator.observe`, which
:class:`~metaxm.learners.AdaptedPolicy` calls every step), the search reads the episode so far
rather than one step: the belief over (agent part, goal part) is carried over each move the
world makes (:mod:`metaxm.align.sensor_track`), so a wrong agent cell that a wall contradicts
loses its weight (section 32), and each episode starts with a walk into the walls of the
nearest corner, which gives the walls their say (section 33). Call
:meth:`SensorPosteriorTranslator.begin` before a new batch of episodes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor, nn

from metaxm.align.least_squares import explains, fit_routing, ridge
from metaxm.align.reading_set import CONSTANT, agent_goal_pairs
from metaxm.align.sensor_sweep import SweepSearch
from metaxm.align.sensor_track import agent_moves, forward_step, static_channels, wall_walk
from metaxm.align.sensor_walk import WalkSearch

MIN_NOISE = 1e-3
"""The noise's least standard deviation: a variant without noise (the pairs exactly on a
plane of the sensors' space) would drive the fitted noise, and the marginal likelihood's
covariance, to 0."""
LOG_SCALES = (-7.0, 5.0)
"""The range of the logs of the fitted scales (about 1e-3 to 150)."""
SEARCH_STEPS = 8
"""The most goal parts one step rules out (one at a time, the most probable first)."""
NOISE_FLOOR = 10.0
"""A principal direction of the sensors counts as signal if its variance is this many times
the median direction's (the noise's, since most of a sensor bank's directions are noise)."""


def unsquash(obs: Tensor) -> Tensor:
    """``atanh`` of squashed sensors (N, ...) -> (N, D), float64."""
    return torch.atanh(obs.double().flatten(1).clamp(-1.0 + 1e-6, 1.0 - 1e-6))


def signal_channels(z: Tensor, source: Tensor) -> Tensor:
    """(S,) bool: the source channels the sensors ``z`` (N, D) explain (not the source's
    noise channels).

    The test regresses the source on the sensors' principal directions above the noise floor
    (:data:`NOISE_FLOOR`) with an intercept, not on every sensor: with 32 sensors and a few dozen
    pairs, least squares on all of them explains half of a pure-noise channel by chance.
    """
    zc = z - z.mean(0)
    _, sv, vh = torch.linalg.svd(zc, full_matrices=False)
    ev = sv.pow(2)
    rank = int((ev > NOISE_FLOOR * ev.median() + 1e-9 * ev.max()).sum())
    x = torch.cat((zc @ vh[:rank].T, torch.ones_like(z[:, :1])), 1)
    return explains(x, ridge(x, source), source)


def evidence_fit(x: Tensor, z: Tensor, bias: float | None = None) -> tuple[float, float, float]:
    """The prior's weight scale, offset scale and the noise that maximise the marginal
    likelihood of sensors ``z`` (N, W) given regressors ``x`` (N, P), the last column ones.

    Args:
        bias: the offset's scale, held fixed; None fits it too.
    """
    n, p = x.shape
    zz = z @ z.T
    eye = torch.eye(n, dtype=x.dtype)
    free = torch.zeros(3 if bias is None else 2, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([free], max_iter=100, line_search_fn="strong_wolfe")

    def scales(v: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        v = v.clamp(LOG_SCALES[0], LOG_SCALES[1])  # a line search's long step stays finite
        b = v[1].exp() if bias is None else torch.tensor(bias, dtype=torch.float64)
        return v[0].exp(), b, v[-1].exp().clamp_min(MIN_NOISE)

    def loss() -> Tensor:
        optimizer.zero_grad()
        w, b, noise = scales(free)
        prior = torch.cat((w.pow(2).expand(p - 1), b.pow(2).view(1)))
        chol = torch.linalg.cholesky((x * prior) @ x.T + noise.pow(2) * eye)
        value = (
            z.shape[1] * chol.diagonal().log().sum()
            + 0.5 * torch.cholesky_solve(zz, chol).diagonal().sum()
        )
        value.backward()
        return value

    with torch.enable_grad():
        optimizer.step(loss)  # type: ignore[arg-type]
    w, b, noise = (float(v) for v in scales(free.detach()))
    return w, b, noise


def bias_scale(pairs: Sequence[tuple[Tensor, Tensor]], sources: Tensor) -> float:
    """The family's offset scale, learned from its training variants: the root mean square of
    every live sensor's fitted offset, with the source standardised as :meth:`start` does.

    Args:
        pairs: per training variant, (squashed sensors (N, D), source observations (N, S)) of
            the same N states, drawn from the world (many, so least squares pins every sensor).
        sources: (M, S) the source's observations of states drawn from the world.
    """
    offsets = []
    for target, source in pairs:
        z, y = unsquash(target), source.double()
        z = z[:, z.std(0) > 1e-6]
        keep = signal_channels(z, y)
        if not bool(keep.any()):  # the states drawn show the variant nothing it reads
            continue
        x = _regressors(y[:, keep], *_standard(sources.double()[:, keep]))
        offsets.append(torch.linalg.lstsq(x, z).solution[-1])
    return float(torch.cat(offsets).pow(2).mean().sqrt()) if offsets else float("nan")


def discrete(states: Tensor) -> bool:
    """Whether drawn observations (M, K) are of a world of few possible states: every channel
    takes at most sqrt(M) values (a 7 x 7 GridNav's 7, of 16,384 draws; a continuous state
    takes a new value at nearly every draw)."""
    return all(len(c.unique()) <= len(states) ** 0.5 for c in states.T)


def _standard(y: Tensor) -> tuple[Tensor, Tensor]:
    """Each channel's mean and spread over the drawn states; a channel they never vary (a
    world that starts every episode in one state) keeps its own scale, 1, rather than one
    that would blow the regressors up (and the evidence fit's Cholesky with them)."""
    sd = y.std(0)
    return y.mean(0), torch.where(sd > 1e-9, sd, torch.ones_like(sd))


def _regressors(y: Tensor, mu: Tensor, sd: Tensor) -> Tensor:
    """(N, K) source channels -> (N, K + 1): standardised by ``mu`` and ``sd``, then a column
    of ones (the offset)."""
    return torch.cat(((y - mu) / sd, torch.ones_like(y[:, :1])), 1)


class SensorPosteriorTranslator(nn.Module):
    """Squashed sensors (D,) -> the source's (S,): the most probable of the source's possible
    observations under a Bayesian linear model of the unsquashed sensors (see the module
    docstring). :meth:`prepare` gives it the source's candidates and the family's learned
    offset scale, :meth:`start` fits it; it has no parameters for gradient steps.

    Where the world's states are continuous (a wrapped gymnasium env: nearly every drawn state
    is new, :func:`discrete`), there is no set of possible observations to decode to, and it
    reads the sensors as :class:`~metaxm.align.translate.UnsquashTranslator` does: ``atanh``
    and least squares. The fit runs on the CPU (a few small matrices); the decoding on the
    observations' device.

    Attributes:
        uses_context: :func:`~metaxm.align.translate.fit_translator` calls :meth:`prepare`
            with a :class:`~metaxm.align.translate.TranslationContext` before :meth:`start`.
    """

    uses_context = True
    wall_walk = True
    """``selfread`` walks to the walls first (:class:`~metaxm.align.wall_walk.WallWalk`): the
    walk's reader places an episode only where a wall stopped a move."""

    def __init__(self, space: gym.Space, out_dim: int, config: object = None) -> None:
        super().__init__()
        d = int(np.prod(space.shape))
        self.register_buffer("alive", torch.zeros(d, dtype=torch.bool))
        self.register_buffer("candidates", torch.zeros(1, out_dim))
        self.register_buffer("mean", torch.zeros(1, d, dtype=torch.float64))
        self.register_buffer("var", torch.ones(1, dtype=torch.float64))
        self.register_buffer("bias", torch.tensor(float("nan"), dtype=torch.float64))
        self.register_buffer("routing", torch.zeros(d, out_dim, dtype=torch.float64))
        self.register_buffer("discrete", torch.tensor(True))
        self.register_buffer("group", torch.zeros(0, dtype=torch.long))  # (M,) goal part
        self.register_buffer("success", torch.zeros(0, dtype=torch.bool))  # (M,)
        # (U, A) per action, where it moves each agent part (none: each step read alone)
        self.register_buffer("moves", torch.zeros(0, 0, dtype=torch.long))
        # (A, P) and (G, P): the agent parts' and goal parts' paired features, and a cell's
        # length, for the wall walk at each episode's start (none: no walk)
        self.register_buffer("agent_cells", torch.zeros(0, 0, dtype=torch.float64))
        self.register_buffer("goal_cells", torch.zeros(0, 0, dtype=torch.float64))
        self.register_buffer("cell", torch.tensor(1.0, dtype=torch.float64))
        self.sources: Tensor | None = None
        self.context: Any = None
        self.ruled_out: Tensor | None = None
        self.belief: Tensor | None = None  # (N, A, G) over the episode (sensor_track)
        self.action: Tensor | None = None  # (N,) taken on the last reading
        self.restart: Tensor | None = None  # (N,) the last step ended an episode
        self.steps: Tensor | None = None  # (N,) the episode's steps so far (one call each)
        self.walk_from: Tensor | None = None  # (N, P) the agent read at the episode's start
        self.untold = False  # a step came without the last one's action: no tracking, no walk
        self._walked: Any = None  # what start_unpaired's walk read of the agent (keep_ended)
        self.walk = WalkSearch(d, out_dim)  # the readings a reward-free walk leaves
        self.sweep = SweepSearch(d, out_dim)  # a sweep for the goal, where it leaves none

    def prepare(self, context: Any) -> None:
        """Take the source's observations of drawn states and learn the offset scale from the
        family's training variants (:func:`bias_scale`), where there are any."""
        self.sources = context.sources.detach().double().cpu()
        self.context = context
        if context.family_pairs:
            if "offset_scale" not in context.learned:  # once per context
                pairs = [(t.cpu(), s.cpu()) for t, s in context.family_pairs]
                context.learned["offset_scale"] = bias_scale(pairs, self.sources)
            self.bias.fill_(context.learned["offset_scale"])

    @torch.no_grad()
    def start(self, target: Tensor, source: Tensor) -> None:
        """Fit the posterior to ``target`` (N, D) and ``source`` (N, S).

        Raises:
            RuntimeError: :meth:`prepare` was not called (no candidates).
        """
        if self.sources is None:
            raise RuntimeError("SensorPosteriorTranslator.prepare must give it candidates first")
        device = self.alive.device
        self.walk.active.fill_(False)
        self.sweep.active.fill_(False)
        self.group = torch.zeros(0, dtype=torch.long, device=device)  # no search until set
        self.moves = torch.zeros(0, 0, dtype=torch.long, device=device)
        self.agent_cells = self.goal_cells = torch.zeros(0, 0, dtype=torch.float64, device=device)
        self.success = torch.zeros(0, dtype=torch.bool, device=device)
        self.ruled_out = None
        z, y = unsquash(target.cpu()), source.detach().double().cpu()
        alive = z.std(0, unbiased=False) > 1e-6  # a dead sensor says nothing
        self.alive.copy_(alive)
        keep = signal_channels(z[:, alive], y) if bool(alive.any()) else alive[:0]
        if not bool(keep.any()):  # nothing moved (one state), or no channel read: all 0
            self.candidates = torch.zeros_like(self.candidates[:1])
            self.mean, self.var = torch.zeros_like(self.mean[:1]), torch.ones_like(self.var[:1])
            return
        self.discrete.fill_(discrete(self.sources[:, keep]))
        if not bool(self.discrete):
            self.routing.copy_(fit_routing(z, y))
            return
        z = z[:, alive]
        mu, sd = _standard(self.sources[:, keep])
        x = _regressors(y[:, keep], mu, sd)  # (N, P)
        fixed = None if bool(self.bias.isnan()) else float(self.bias)
        scale, offset, noise = evidence_fit(x, z, fixed)
        prior = torch.tensor([scale**2] * (x.shape[1] - 1) + [offset**2], dtype=x.dtype)
        cov = torch.linalg.inv(x.T @ x / noise**2 + torch.diag(1.0 / prior))  # (P, P)
        theta = cov @ x.T @ z / noise**2  # (P, W): the posterior mean of every sensor's row
        states = torch.unique(self.sources[:, keep], dim=0)  # (M, K) the possible observations
        held = y[:, keep].std(0, unbiased=False) <= CONSTANT  # (K,) the goal's, in one episode
        one_goal = bool(held.any())  # the pairs show one goal: the agent's cell needs the walls
        ctx, group = self.context, None
        searching = ctx is not None and ctx.reached is not None and ctx.features is not None
        if searching and ctx.moves is not None:  # and those no move changes, over any episodes
            held = held | static_channels(ctx.moves)[keep.to(ctx.moves[0].device)].cpu()
        if searching and bool(held.any()) and not bool(held.all()):
            states, group, parts = _pairings(states, held)
        xs = _regressors(states, mu, sd)
        candidates = torch.zeros(len(states), source.shape[1], dtype=source.dtype)
        candidates[:, keep] = states.to(source.dtype)
        if group is not None:
            features = candidates.double() @ ctx.feature_map()
            self.success = ctx.reached(features.float()).to(device)
            self.group = group.to(device)
            moves = agent_moves(candidates, parts, ctx)
            if moves is not None:
                self.moves = moves.to(device)
                if one_goal:  # from two goals on, the reading places the agent (section 33)
                    self._keep_cells(features, parts, ctx)
        mean = torch.zeros(len(states), alive.numel(), dtype=torch.float64)
        mean[:, alive] = xs @ theta
        self.candidates = candidates.to(device)
        self.mean = mean.to(device)
        self.var = (((xs @ cov) * xs).sum(1) + noise**2).to(device)

    @torch.no_grad()
    def start_unpaired(self, obs: Tensor, actions: Tensor, first: Tensor, second: Tensor) -> bool:
        """Fit from the target's observations and the agent's actions alone (no reward, no
        pair): the readings of the goals the walk leaves
        (:func:`~metaxm.align.sensor_walk.walk_readings`), searched within each episode; where
        it leaves none but reads the agent's part, a sweep for the goal
        (:class:`~metaxm.align.sensor_sweep.SweepSearch`). True if it reads; False where the
        walk shows too little (then it reads 0)."""
        from metaxm.align.sensor_walk import walk_agent, walk_readings

        ctx = self.context
        agent = walk = None
        if ctx is not None and None not in (ctx.reached, ctx.moves, ctx.features):
            agent = walk_agent(obs, actions, first, second, ctx)
        if agent is not None:
            scale = float("inf") if bool(self.bias.isnan()) else float(self.bias)
            walk = walk_readings(agent, scale)
        self.start(obs[:1], self.candidates.new_zeros(1, self.candidates.shape[1]))  # reads 0
        self._walked = agent
        if walk is not None:
            self.walk.fit(walk, ctx)
            return True
        if agent is None:
            return False
        self.sweep.fit(agent, ctx, float(self.bias))
        return True

    @torch.no_grad()
    def keep_ended(self, obs: Tensor, actions: Tensor, ended: Tensor) -> None:
        """After :meth:`start_unpaired`: a sweep conditions its goal's posterior on the walk
        episodes that ended before their horizon (``ended`` (N,), the rows of ``obs`` whose
        action ``actions`` (N,) ended one), on the goal their last move led to (where the
        walls placed their start, :func:`~metaxm.align.sensor_walk.ended_goals`). The walk's
        readings (three goals or more) are left as they are: dropping those that put such an
        episode's goal elsewhere changed 1 of 64 adaptations at k = 4 on validation projected
        100-103, for the worse (0.70 -> 0.44: its goal misplaced, or its reading not kept)."""
        from metaxm.align.sensor_walk import ended_goals

        if not bool(self.sweep.active) or self._walked is None or not bool(ended.any()):
            return
        steps = self.sweep.steps.cpu()  # each action's step on the agent's features
        ends = ended_goals(self._walked, actions.cpu(), ended.cpu(), steps)
        self.sweep.know_goals(self._walked, ends)

    def forward(self, obs: Tensor) -> Tensor:
        if bool(self.walk.active):
            return self.walk.choose(obs)
        if bool(self.sweep.active):
            out = self.sweep.choose(obs, self.action, self.restart)
            self.action = self.restart = None
            return out
        if not bool(self.discrete):
            return (unsquash(obs) @ self.routing).to(self.candidates.dtype)
        z = unsquash(obs)[:, self.alive]
        mean = self.mean[:, self.alive]  # (M, W)
        fit = 2.0 * z @ mean.T - mean.pow(2).sum(1) - z.pow(2).sum(1, keepdim=True)  # (N, M)
        log_density = fit / (2.0 * self.var) - 0.5 * z.shape[1] * self.var.log()
        if len(self.group) == 0:
            return self.candidates[log_density.argmax(1)]
        return self.candidates[self._search(log_density)]

    def _keep_cells(self, features: Tensor, parts: int, ctx: Any) -> None:
        """Keep the agent and goal parts' paired features (the context's pairing, where it has
        one) for the wall walk."""
        (goal_f, agent_f), cell = agent_goal_pairs(ctx)
        if len(goal_f) == 0:
            return
        device = self.alive.device
        goals = len(features) // parts
        self.agent_cells = features[::goals][:, agent_f].to(device)  # (A, P)
        self.goal_cells = features[:goals][:, goal_f].to(device)  # (G, P)
        self.cell.fill_(cell)

    def begin(self) -> None:
        """New episodes start: no goal part is ruled out, nothing is tracked."""
        self.ruled_out = self.belief = self.action = self.restart = None
        self.steps = self.walk_from = None
        self.walk.begin()
        self.sweep.begin()

    def attach(self, world: Any) -> None:
        """Take ``world``'s test of success (a loaded translator: the test is not saved)."""
        self.walk.attach(world)

    def observe(self, action: Tensor, done: Tensor) -> None:
        """The action taken on the last reading, and whether the episode ended with it: the
        goal search tracks the agent's cell over the episode with them
        (:mod:`metaxm.align.sensor_track`)."""
        self.action, self.restart, self.untold = action, done, False

    def _search(self, log_density: Tensor) -> Tensor:
        """(N, M) -> (N,) the most probable candidate whose goal part is not ruled out; a
        success state read while the episode goes on rules its goal part out. With the
        world's moves, the probability is the episode's so far (the belief
        :func:`~metaxm.align.sensor_track.forward_step` carries), not this step's alone."""
        n, parts = log_density.shape[0], int(self.group.max()) + 1
        if self.ruled_out is None or self.ruled_out.shape != (n, parts):
            self.ruled_out = torch.zeros(n, parts, dtype=torch.bool, device=log_density.device)
            self.belief = None
        if self.moves.numel():  # the belief over the episode so far (sensor_track)
            self._count_steps(n, log_density.device)
            # a caller that does not tell the actions gets no walk: untracked, it only costs
            # steps (it loses at most the walk's first step, before this is known)
            self.untold = self.untold or (self.action is None and bool(self.steps.gt(0).any()))
            self.belief = forward_step(self.belief, log_density, self.moves, self.action,
                                       self.restart)  # fmt: skip
            self.action = self.restart = None
            log_density = self.belief.reshape(n, -1)
        rows = torch.arange(n, device=log_density.device)
        for _ in range(SEARCH_STEPS):
            masked = log_density.masked_fill(self.ruled_out[:, self.group], float("-inf"))
            best = masked.argmax(1)
            hit = self.success[best] & masked[rows, best].isfinite()
            if not bool(hit.any()):
                break
            self.ruled_out[rows[hit], self.group[best[hit]]] = True
        masked = log_density.masked_fill(self.ruled_out[:, self.group], float("-inf"))
        best = masked.argmax(1)
        best = torch.where(masked[rows, best].isfinite(), best, log_density.argmax(1))
        if self.moves.numel() and self.agent_cells.numel() and not self.untold:  # walk first
            start = self.agent_cells[log_density.argmax(1) // len(self.goal_cells)]
            first = self.steps == 0
            self.walk_from = start if self.walk_from is None else torch.where(
                first[:, None], start, self.walk_from)  # fmt: skip
            walk = wall_walk(self.walk_from, self.agent_cells, self.goal_cells,
                             float(self.cell), self.steps)  # fmt: skip
            best = torch.where(walk >= 0, walk, best)
        return best

    def _count_steps(self, n: int, device: torch.device) -> None:
        """One more step of each row's episode (a call per step), 0 where one just ended."""
        if self.steps is None or len(self.steps) != n:
            self.steps = torch.zeros(n, dtype=torch.long, device=device)
            self.walk_from = None
        elif self.restart is not None:
            self.steps = torch.where(self.restart.bool().to(device), 0, self.steps + 1)
        else:
            self.steps = self.steps + 1

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # noqa: ANN001
        for name in ("group", "success"):  # a fit saved before the goal search: no search
            state_dict.setdefault(prefix + name, getattr(self, name)[:0])
        state_dict.setdefault(prefix + "moves", self.moves[:0, :0])  # saved before: no tracking
        for name in ("agent_cells", "goal_cells"):  # saved before the wall walk: none
            state_dict.setdefault(prefix + name, getattr(self, name)[:0, :0])
        state_dict.setdefault(prefix + "cell", self.cell)
        sized = ("candidates", "mean", "var", "group", "success", "moves", "agent_cells",
                 "goal_cells")  # fmt: skip
        for name in sized:  # the saved fit's sizes
            saved = state_dict.get(prefix + name)
            if saved is not None:
                setattr(self, name, torch.empty_like(saved, device=self.alive.device))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def _pairings(states: Tensor, held: Tensor) -> tuple[Tensor, Tensor, int]:
    """``states`` (M, K) -> every pairing of a part the pairs moved (columns ``~held``) with a
    part they held (``held``), success states included (the drawn states have none), moved
    part-major; each pairing's held part's index (P,); and the number of moved parts."""
    moved = torch.unique(states[:, ~held], dim=0)  # (A, .)
    parts = torch.unique(states[:, held], dim=0)  # (G, .)
    a, g = torch.cartesian_prod(torch.arange(len(moved)), torch.arange(len(parts))).T
    out = torch.empty(len(a), states.shape[1], dtype=states.dtype)
    out[:, ~held], out[:, held] = moved[a], parts[g]
    return out, g, len(moved)
