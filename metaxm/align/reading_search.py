"""Every reading of the task that k episodes leave open, searched within an episode.

The goal's channels are constant within an episode. After one episode of a re-wired vector (its
features permuted, re-signed and re-scaled), the pairs show each goal channel of the source at
one value and each constant channel of the target at one value, and nothing in them says which
target channel reads which source channel: the goal's row and column are a coin flip, and a
goal on the grid's centre line (a source value of 0) leaves its gain unknown. Least squares
splits the difference and misreads the goal (validation vector variants at k = 1: 0.32
success; ``docs/transfer-studies.md`` section 14).

:class:`ReadingSearchTranslator` keeps them all instead. A vector variant reads every feature
from one channel with one gain, so each source channel is read from one target channel
(:func:`single_readers`): a channel that moves has one reader that fits every pair (its ratio
pins the gain), a constant one has every constant target channel (the ratio of their values),
and a source channel and a target channel that both read 0 have every value the source channel
takes. A *reading* picks one reader per source channel, no target channel reading two. On a new
episode every reading gives a source observation, snapped to the values each source channel
takes (a reading that lands between them is ruled out, which is what rules out most wrong
ratios). The agent acts on the cheapest reading not yet ruled out, where a reading is cheaper
the closer its gains (in log) lie to the gains the family's training variants showed for those
source channels (a prior learned once per context, :func:`gain_prior`) and the nearer its goal
lies to the agent (:data:`~metaxm.align.reading_set.NEAREST` per cell: a near plausible goal
is tried before a far one a little more plausible). A
reading is ruled out for the rest of the episode when the world says the state it reads would
have ended the episode with success, and the episode went on
(:meth:`~metaxm.envs.base.World.reached`): the agent has stood on the goal that reading named.
So a wrong reading costs the walk to its goal, not the episode. At k >= 2 the goals differ
and one reading is left, read exactly (no MLP, no steps).

This needs the world's test of success on features and a source channel that takes few values
(a grid); elsewhere (a continuous world, no test) the translator is
:class:`~metaxm.align.translate_vector.VectorTranslator`'s map and MLP as they were. A saved
policy keeps the readings; :meth:`ReadingSearchTranslator.attach` gives the loaded one the
world's test back (:meth:`metaxm.learners.AdaptedPolicy.load` does).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import torch
from torch import Tensor

from metaxm.align.action_readers import (
    action_readers,
    context_answers,
    held_readers,
    still_values,
    stopped_moves,
    unmoved_agent,
    unread_walls,
    wall_channels,
)
from metaxm.align.least_squares import fit_routing
from metaxm.align.reading_set import (
    CONSTANT,
    FIT,
    MAX_READINGS,
    MAX_UNMOVED_READINGS,
    ReadingSet,
)
from metaxm.align.translate_vector import VectorTranslator
from metaxm.config.align import AlignConfig


def gain_prior(pairs: list[tuple[Tensor, Tensor]], scale: float, width: int) -> Tensor:
    """(2, S) per source channel the mean log absolute gain by which the family's training
    variants read it (from the target channel that reads most of it), and (row 1) the pooled
    standard deviation of those logs; NaN means where no variant reads a channel."""
    logs: list[list[float]] = [[] for _ in range(width)]
    for target, source in pairs:
        routing = fit_routing(target.double().flatten(1) * scale, source.double())  # (D, S)
        peak = routing.abs().max(0).values
        for j in (peak > 0).nonzero().flatten().tolist():
            logs[j].append(float(peak[j].log()))
    prior = torch.full((2, width), float("nan"), dtype=torch.float64)
    spread = []
    for j, values in enumerate(logs):
        if values:
            v = torch.tensor(values, dtype=torch.float64)
            prior[0, j] = v.mean()
            spread.append(v - v.mean())
    if spread:
        prior[1] = torch.cat(spread).pow(2).mean().sqrt().clamp_min(0.1)
    return prior


class ReadingSearchTranslator(VectorTranslator):
    """A re-wired vector (D,) -> the source's (S,), keeping every reading the pairs leave open
    (see the module docstring).

    :meth:`prepare` keeps the context (the source's values, the world's test of success, the
    family's training variants for the gain prior); :meth:`start` finds each source channel's
    readers (:func:`single_readers`) and keeps the readings (:class:`ReadingSet`). Call
    :meth:`begin` before a new batch of episodes: it forgets the readings ruled out.
    """

    uses_context = True

    def __init__(self, space: gym.Space, out_dim: int, config: AlignConfig) -> None:
        super().__init__(space, out_dim, config)
        self.readings = ReadingSet(out_dim)
        self.context: Any = None
        # the last observation read and the action taken on it (observe), within an episode
        self.last: Tensor | None = None
        self.action: Tensor | None = None

    def prepare(self, context: Any) -> None:
        """Keep the context for :meth:`start` (the gain prior is learned once per context)."""
        self.context = context

    @property
    def searching(self) -> Tensor:
        """Whether it keeps readings (else: the least-squares map and MLP)."""
        return self.readings.active

    @torch.no_grad()
    def start(self, target: Tensor, source: Tensor) -> None:
        """Fit the map and list the readings from ``target`` (N, D) and ``source`` (N, S)."""
        super().start(target, source)
        self.readings.active.fill_(False)
        if self.context is None or self.context.reached is None:
            return
        x, y = target.double().flatten(1) * self.scale, source.double()
        if self._keep(single_readers(x, y), y.device) and self.context.moves is not None:
            self._keep_walls()  # no goal behind a wall a reading reads (inner walls)

    def _keep_walls(self) -> bool:
        """Where the source's channels tell walls (a world with inner walls), give the readings
        each action's source step and the walls the source tells, so that no goal is read
        behind a wall (:meth:`ReadingSet.behind_walls`); False (nothing given) elsewhere."""
        answers, walls = context_answers(self.context)
        told = wall_channels(walls)
        if not len(told):
            return False
        device = self.readings.active.device
        self.readings.moves = answers.nan_to_num(0.0).to(device)
        self.readings.wall_stops = torch.stack((told.to(walls), *walls[:2, told])).to(device)
        return True

    @torch.no_grad()
    def start_unpaired(self, obs: Tensor, actions: Tensor, first: Tensor, second: Tensor) -> bool:
        """List the readings from the target's observations and the agent's actions alone (no
        reward, no pair): ``obs`` (N, D), ``actions`` (N,), and the transitions ``first`` ->
        ``second`` (rows of ``obs``), matched against how the source answers each action
        (:func:`action_readers`, the context's ``moves``). True if it searches; False where
        the context cannot say (no world test, no moves) or nothing could be read (an episode
        of one step), and then it reads nothing (0)."""
        ctx = self.context
        self.readings.active.fill_(False)
        self.linear.zero_()
        if ctx is None or ctx.reached is None or ctx.moves is None:
            return False
        x = obs.double().flatten(1) * self.scale
        answers, walls = (a.to(x.device) for a in context_answers(ctx))
        options = action_readers(x, actions, first, second, answers, ctx.sources, walls)
        unmoved = unmoved_agent(options, answers, walls)  # an axis the walk never moved along
        if unmoved:
            options = held_readers(options, unmoved, x, actions, first, second, len(answers),
                                   ctx.sources.to(x.device))  # fmt: skip
        most = MAX_UNMOVED_READINGS if unmoved else MAX_READINGS
        kept = self._keep(options, obs.device, unread_walls(options, walls), most)
        self.readings.rule_out_walked(x)  # a goal the walk stood on, the episode going on
        if kept and unmoved:  # the measured episode's moves tell which reads the agent
            self.readings.moves = answers.nan_to_num(0.0).to(obs.device)
            self.readings.follow_moves.fill_(True)
        if not kept or not self._keep_walls():
            return kept
        # inner walls: no goal where a move the walk made was stopped, or behind a wall a
        # reading reads, over the walk and within each measured episode (observe)
        stopped, acted = stopped_moves(x, first, second), actions[first]
        self.readings.rule_out_stopped(x[first[stopped]], self.readings.moves[acted[stopped]])
        self.readings.still = still_values(x, first, second)
        self.readings.rule_out_walled(x)
        return kept

    @torch.no_grad()
    def keep_ended(self, obs: Tensor, actions: Tensor, ended: Tensor) -> None:
        """After :meth:`start_unpaired`: keep the readings that put the agent on the goal after
        the last move of every walk episode that ended before its horizon (``ended`` (N,), rows
        of ``obs`` (N, D) whose action ``actions`` (N,) ended one): in a world whose episodes
        end early only on success, that move ended it there. Nothing where no episode ended,
        or an axis the agent moves along has no reading (its cell would be read at 0)."""
        if not bool(self.readings.active) or not bool(ended.any()):
            return
        steps = context_answers(self.context)[0].nan_to_num(0.0).to(obs.device)
        moved = (steps != 0).any(0).nonzero().flatten()
        if not bool(torch.isin(moved, self.readings.channels).all()):
            return
        x = obs[ended].double().flatten(1) * self.scale
        self.readings.keep_ended(x, steps[actions[ended].long()])

    def _keep(
        self,
        options: list[list[tuple[int, float]]],
        device: torch.device,
        unread: Tensor | None = None,
        most: int = MAX_READINGS,
    ) -> bool:
        """Keep the readings of ``options`` with the family's gain prior (learned once per
        context), ``unread`` what a channel no reading reads takes (default 0); the MLP takes
        no steps then (closed form)."""
        ctx = self.context
        if "gain_prior" not in ctx.learned:  # once per context
            pairs = [(t.cpu(), s.cpu()) for t, s in ctx.family_pairs]
            ctx.learned["gain_prior"] = gain_prior(pairs, self.scale, len(options))
        prior = ctx.learned["gain_prior"]
        kept = self.readings.keep(options, ctx, prior, device, unread=unread, most=most)
        if kept:
            self.net.requires_grad_(False)  # closed form: no steps (fit_translator)
        return kept

    def attach(self, world: Any) -> None:
        """Take ``world``'s test of success (a loaded translator: the test is not saved)."""
        self.readings.attach(world)

    def begin(self) -> None:
        """New episodes start: no reading is ruled out."""
        self.readings.begin()
        self.last = self.action = None

    def observe(self, action: Tensor, done: Tensor) -> None:
        """The action taken on the last observation, and whether the episode ended with it: a
        move that was stopped rules out the readings whose goal it leads to
        (:meth:`ReadingSet.rule_out_blocked`)."""
        self.action = action.masked_fill(done.bool(), -1) if done is not None else action

    def candidates(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        """:meth:`ReadingSet.candidates` of ``obs`` (B, D)."""
        return self.readings.candidates(obs.double().flatten(1) * self.scale)

    def forward(self, obs: Tensor) -> Tensor:
        if not bool(self.readings.active):
            return super().forward(obs)
        x = obs.double().flatten(1) * self.scale
        if self.last is not None and self.action is not None and self.last.shape == x.shape:
            self.readings.rule_out_blocked(self.last, x, self.action)
            self.readings.rule_out_unmoved(self.last, x, self.action)
        self.last, self.action = x, None
        return self.readings.choose(x)


def single_readers(x: Tensor, y: Tensor) -> list[list[tuple[int, float]]]:
    """Per source channel of ``y`` (N, S), every target channel of ``x`` (N, D) that reads it
    alone: ``(i, ratio)`` where ``y_j = ratio * x_i`` fits every pair (to :data:`FIT`), or
    ``(i, NaN)`` where both read 0 in every pair (any ratio fits). A channel nothing reads (the
    source's noise) has none."""
    zero_t, zero_s = x.abs().amax(0) <= CONSTANT, y.abs().amax(0) <= CONSTANT
    ratio = (x.T @ y) / (x * x).sum(0).clamp_min(1e-300)[:, None]  # (D, S)
    misfit = (y[:, None, :] - ratio * x[:, :, None]).pow(2).mean(0).sqrt()  # (D, S)
    fits = (misfit <= FIT * y.abs().amax(0)) & ~zero_t[:, None] & ~zero_s
    both_zero = zero_t[:, None] & zero_s
    out: list[list[tuple[int, float]]] = []
    for j in range(y.shape[1]):
        found = [(i, float(ratio[i, j])) for i in fits[:, j].nonzero().flatten().tolist()]
        found += [(i, float("nan")) for i in both_zero[:, j].nonzero().flatten().tolist()]
        out.append(found)
    return out
