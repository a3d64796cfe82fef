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
ratios). The agent acts on the most probable reading not yet ruled out, where a reading is
more probable the closer its gains (in log) lie to the gains the family's training variants
showed for those source channels (a prior learned once per context, :func:`gain_prior`). A
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

import itertools
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import torch
from torch import Tensor, nn

from metaxm.align.least_squares import fit_routing, ridge
from metaxm.align.translate_vector import VectorTranslator
from metaxm.config.align import AlignConfig

CONSTANT = 1e-6
"""A channel whose standard deviation over the pairs is at most this is constant."""
MAX_LEVELS = 64
"""A source channel that takes more values over the drawn states is continuous: no search."""
MAX_READINGS = 4096
"""The most readings kept (more than this: no search, the least-squares map)."""
FIT = 1e-3
"""A target channel reads a source channel when one ratio fits every pair to this fraction of
the source channel's largest value."""


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


def channel_levels(sources: Tensor) -> Tensor | None:
    """(S, L) the values each source channel takes over ``sources`` (M, S), padded with NaN;
    None where a channel takes more than :data:`MAX_LEVELS` (a continuous one)."""
    columns = sources.double().round(decimals=5).T
    values = [torch.unique(column) for column in columns]
    if max(len(v) for v in values) > MAX_LEVELS:
        return None
    out = torch.full((len(values), max(len(v) for v in values)), float("nan"), dtype=torch.float64)
    for j, v in enumerate(values):
        out[j, : len(v)] = v
    return out


class ReadingSet(nn.Module):
    """Every reading one fit keeps, and the search over them within an episode (see the module
    docstring); what a translator that keeps readings holds (:class:`ReadingSearchTranslator`,
    the audio family's :class:`~metaxm.align.frame_values.FrameValueTranslator`).

    A reading gives each of ``channels`` (source channels) the value of one target value
    (``reader``) times a ``ratio``, or one of the values the channel takes (``level``, where
    both read 0). :meth:`candidates` snaps those values to ``levels`` and costs each reading;
    :meth:`choose` rules readings out with the world's test and picks the cheapest left.
    """

    def __init__(self, out_dim: int) -> None:
        super().__init__()
        self.register_buffer("active", torch.tensor(False))
        self.register_buffer("channels", torch.zeros(0, dtype=torch.long))  # (C,) source
        self.register_buffer("reader", torch.zeros(1, 0, dtype=torch.long))  # (R, C) target
        self.register_buffer("ratio", torch.zeros(1, 0, dtype=torch.float64))  # (R, C)
        self.register_buffer("level", torch.zeros(1, 0, dtype=torch.float64))  # (R, C)
        self.register_buffer("levels", torch.zeros(0, 1, dtype=torch.float64))  # (C, L)
        self.register_buffer("prior", torch.zeros(2, 0, dtype=torch.float64))  # (2, C)
        self.register_buffer("decode", torch.zeros(out_dim, 0, dtype=torch.float64))  # (S, F)
        self.register_buffer("zero", torch.tensor(CONSTANT, dtype=torch.float64))  # (D,) or ()
        self.register_buffer("snap_cost", torch.tensor(0.0, dtype=torch.float64))
        self.reached: Callable[[Tensor], Tensor] | None = None
        self.ruled_out: Tensor | None = None

    def keep(
        self,
        options: list[list[tuple[int, float]]],
        context: Any,
        prior: Tensor,
        device: torch.device,
        zero: Tensor | None = None,
        snap_cost: float = 0.0,
    ) -> bool:
        """Keep the readings of ``options`` (per source channel, its readers, as
        :func:`single_readers` gives them) with the gain ``prior`` (2, S) and the
        ``context``'s source values, features and world test. ``zero`` (D,): up to what a
        target value reads 0 (default :data:`CONSTANT`); ``snap_cost``: how much a reading's
        distance to the source's values adds to its cost (noisy readings). False (and nothing
        kept) where there are none, too many, or a channel is continuous."""
        self.active.fill_(False)
        self.ruled_out = None
        channels = [j for j, found in enumerate(options) if found]
        levels = channel_levels(context.sources[:, channels]) if channels else None
        if levels is None:
            return False
        readings = _readings([options[j] for j in channels], levels)
        if not readings or len(readings) > MAX_READINGS:
            return False
        dtype = torch.float64
        self.channels = torch.tensor(channels, device=device)
        self.reader = torch.tensor([[i for i, _, _ in row] for row in readings], device=device)
        self.ratio = torch.tensor([[q for _, q, _ in row] for row in readings], dtype=dtype,
                                  device=device)  # fmt: skip
        self.level = torch.tensor([[v for _, _, v in row] for row in readings], dtype=dtype,
                                  device=device)  # fmt: skip
        self.levels = levels.to(device)
        self.prior = prior[:, channels].to(device)
        sources, features = context.sources.double(), context.features.double()
        self.decode = ridge(sources.to(device), features.to(device))
        self.zero = (torch.tensor(CONSTANT) if zero is None else zero).double().to(device)
        self.snap_cost.fill_(snap_cost)
        self.reached = context.reached
        self.active.fill_(True)
        return True

    def attach(self, world: Any) -> None:
        """Take ``world``'s test of success (a loaded translator: the test is not saved)."""
        if world.reached(world.scene().features[:1]) is not None:
            self.reached = world.reached

    def begin(self) -> None:
        """New episodes start: no reading is ruled out."""
        self.ruled_out = None

    def candidates(self, x: Tensor, base: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``x`` (B, D) target values -> every reading's source observation (B, R, S), on
        ``base`` (B, S: the channels read otherwise; default 0), and its cost (B, R): squared
        standard deviations of its gains from the prior (plus ``snap_cost`` times its squared
        distance to the source's values in half gaps), ``inf`` where ruled out by the values
        (a constant channel that does not fit, a value off the source's)."""
        x = x.double()
        read = x[:, self.reader]  # (B, R, C): each reading's target values
        by_ratio = ~self.ratio.isnan()
        value = torch.where(by_ratio, self.ratio * read, self.level)
        zero = read.abs() <= (self.zero[self.reader] if self.zero.dim() else self.zero)
        fits = by_ratio | ((self.level.abs() <= CONSTANT) == zero)
        # snap each value to the nearest the source channel takes; ruled out between two
        gaps = (value[..., None] - self.levels).abs().nan_to_num(float("inf"))  # (B, R, C, L)
        near, which = gaps.min(-1)
        value = self.levels.expand_as(gaps).gather(-1, which[..., None])[..., 0]
        spacing = (self.levels[:, 1:] - self.levels[:, :-1]).nan_to_num(float("inf")).amin(1)
        half = 0.5 * spacing.clamp_max(1e9)
        fits = fits & (near <= half)
        gain = torch.where(by_ratio, self.ratio, value / read).abs().log()
        cost = ((gain - self.prior[0]) / self.prior[1]).pow(2).nan_to_num(0.0, 0.0, 0.0)
        cost = torch.where(~by_ratio & zero, 0.0, cost) + self.snap_cost * (near / half).pow(2)
        cost = torch.where(fits.all(-1), cost.sum(-1), float("inf"))
        full = x.new_zeros(x.shape[0], self.reader.shape[0], self.decode.shape[0])
        if base is not None:
            full += base.double()[:, None, :]
        full[..., self.channels] = value  # a channel no reading reads: its base (0)
        return full, cost

    def choose(self, x: Tensor, base: Tensor | None = None) -> Tensor:
        """(B, S) the source observation of each row's cheapest reading not ruled out; a
        reading whose state is a success state is ruled out for the episode (it goes on)."""
        full, cost = self.candidates(x, base)
        if self.reached is not None:
            if self.ruled_out is None or self.ruled_out.shape != cost.shape:
                self.ruled_out = torch.zeros_like(cost, dtype=torch.bool)
            self.ruled_out |= self.reached((full @ self.decode).float())
            open_cost = cost.masked_fill(self.ruled_out, float("inf"))
            cost = torch.where(open_cost.isinf().all(1, keepdim=True), cost, open_cost)
        best = cost.argmin(1)
        return full[torch.arange(len(best), device=best.device), best].float()

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # noqa: ANN001
        for name, value in self._buffers.items():
            saved = state_dict.get(prefix + name)
            if saved is None:  # a translator saved before it kept readings: none kept
                state_dict[prefix + name] = value
            else:  # its size is the saved fit's
                setattr(self, name, torch.empty_like(saved, device=self.active.device))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


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
        self._keep(single_readers(x, y), y.device)

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
        before, acted, after = (t.double() if t.is_floating_point() else t for t in ctx.moves)
        options = action_readers(x, actions, first, second, before, acted, after, ctx.sources)
        return self._keep(options, obs.device)

    def _keep(self, options: list[list[tuple[int, float]]], device: torch.device) -> bool:
        """Keep the readings of ``options`` with the family's gain prior (learned once per
        context); the MLP takes no steps then (closed form)."""
        ctx = self.context
        if "gain_prior" not in ctx.learned:  # once per context
            pairs = [(t.cpu(), s.cpu()) for t, s in ctx.family_pairs]
            ctx.learned["gain_prior"] = gain_prior(pairs, self.scale, len(options))
        kept = self.readings.keep(options, ctx, ctx.learned["gain_prior"], device)
        if kept:
            self.net.requires_grad_(False)  # closed form: no steps (fit_translator)
        return kept

    def attach(self, world: Any) -> None:
        """Take ``world``'s test of success (a loaded translator: the test is not saved)."""
        self.readings.attach(world)

    def begin(self) -> None:
        """New episodes start: no reading is ruled out."""
        self.readings.begin()

    def candidates(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        """:meth:`ReadingSet.candidates` of ``obs`` (B, D)."""
        return self.readings.candidates(obs.double().flatten(1) * self.scale)

    def forward(self, obs: Tensor) -> Tensor:
        if not bool(self.readings.active):
            return super().forward(obs)
        return self.readings.choose(obs.double().flatten(1) * self.scale)


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


def _answers(x: Tensor, actions: Tensor, first: Tensor, second: Tensor, n: int) -> Tensor:
    """(n, C) how each channel of ``x`` (N, C) answers each action over the transitions
    ``first`` -> ``second``: the one change it makes where it changes (a wall stops a move),
    0 where it never changes, NaN where it changes by different amounts (noise) or the
    action was never taken."""
    delta = x[second] - x[first]  # (M, C)
    scale = x.abs().amax(0).clamp_min(1e-12)
    out = torch.full((n, x.shape[1]), float("nan"), dtype=x.dtype, device=x.device)
    for a in range(n):
        taken = delta[actions[first] == a]
        if len(taken) == 0:
            continue
        moved = taken.abs() > CONSTANT * scale
        for c in range(x.shape[1]):
            steps = taken[moved[:, c], c]
            if len(steps) == 0:
                out[a, c] = 0.0
            elif float((steps - steps[0]).abs().max()) <= FIT * float(scale[c]):
                out[a, c] = steps[0]
    return out


def action_readers(
    x: Tensor, actions: Tensor, first: Tensor, second: Tensor, before: Tensor, acted: Tensor,
    after: Tensor, sources: Tensor,
) -> list[list[tuple[int, float]]]:  # fmt: skip
    """Per source channel, every target channel that reads it alone, from no reward and no
    pair: the same options as :func:`single_readers`, found from how channels answer actions.

    A channel that moves (the agent's) answers each action by one step, and a target channel
    reads a source channel where their steps have one ratio under every action both were seen
    under, and move under the same actions. A channel that never moves within an episode (the
    goal's) is read, at a ratio that puts every value it took over the episodes on a value the
    source channel takes, by every such target channel; by every one at every value the source
    takes where it read 0 throughout.

    Args:
        x: (N, D) the target's observations (scaled); ``actions`` (N,) the agent's; the
            transitions ``first`` -> ``second`` (M,) rows of ``x``.
        before, acted, after: the source's answers to random actions (the context's ``moves``).
        sources: (M', S) the source's observations of drawn states (their values).
    """
    n = int(max(int(actions.max()), int(acted.max()))) + 1
    rows = torch.arange(len(before), device=before.device)
    target = _answers(x, actions, first, second, n)  # (n, D)
    both = torch.cat((before, after))
    source = _answers(both, torch.cat((acted, acted)), rows, rows + len(before), n)  # (n, S)
    still_t = (target.nan_to_num(0.0) == 0).all(0) & ~target.isnan().all(0)  # held by episodes
    still_s = (source == 0).all(0)
    out: list[list[tuple[int, float]]] = [[] for _ in range(source.shape[1])]
    for j in range(source.shape[1]):
        sj = source[:, j]
        if bool(sj.isnan().any()):
            continue  # the source's noise
        if bool(still_s[j]):
            taken = sources[:, j].double().unique()
            top = float(taken.abs().max())
            for i in still_t.nonzero().flatten().tolist():
                out[j] += [(i, q) for q in _held_ratios(x[:, i].unique(), taken, top)]
            continue
        for i in range(target.shape[1]):
            ti = target[:, i]
            seen = ~ti.isnan()
            if not bool(seen.any()) or bool(still_t[i]):
                continue
            moves = seen & (ti != 0)
            if not bool(moves.any()) or bool(((ti[seen] != 0) != (sj[seen] != 0)).any()):
                continue
            ratio = sj[moves] / ti[moves]
            if float((ratio - ratio[0]).abs().max()) <= FIT * float(ratio[0].abs()):
                out[j].append((i, float(ratio[0])))
    return out


def _held_ratios(values: Tensor, taken: Tensor, top: float) -> list[float]:
    """The ratios that put every one of ``values`` (a held target channel's, over the episodes)
    on one of ``taken`` (a held source channel's values; ``top`` its largest absolute one);
    ``[NaN]`` where ``values`` are all 0 (any ratio: read as each value the source takes)."""
    tolerance = FIT * top
    nonzero = values[values.abs() > CONSTANT]
    if len(nonzero) == 0:
        return [float("nan")]
    out = []
    for level in taken[taken.abs() > tolerance].tolist():
        ratio = level / float(nonzero[0])
        if bool(((ratio * values)[:, None] - taken).abs().min(1).values.le(tolerance).all()):
            out.append(ratio)
    return out


def _readings(
    options: list[list[tuple[int, float]]], levels: Tensor
) -> list[list[tuple[int, float, float]]]:
    """Every reading: one of its ``options`` (:func:`single_readers`) per read channel, no
    target channel reading two; per channel (reader, ratio, NaN), or, where both read 0, one
    (reader, NaN, value) per value the channel takes (``levels`` (C, L), padded with NaN)."""
    nan = float("nan")
    expanded = []
    for found, values in zip(options, levels, strict=True):
        taken = [float(v) for v in values if not bool(v.isnan())]
        row = []
        for i, q in found:
            row += [(i, q, nan)] if q == q else [(i, nan, v) for v in taken]
        expanded.append(row)
    out: list[list[tuple[int, float, float]]] = []
    for reading in itertools.product(*expanded):
        readers = [i for i, _, _ in reading]
        if len(set(readers)) == len(readers):
            out.append(list(reading))
            if len(out) > MAX_READINGS:
                break
    return out
