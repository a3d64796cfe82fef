"""The readings a translator keeps, and their search within an episode (:class:`ReadingSet`).

A *reading* gives each of some source channels the value of one target value times a ratio,
or one of the values the channel takes; :mod:`metaxm.align.reading_search` says why a
translator keeps several and how the search rules them out. The vector family's translator
(:class:`~metaxm.align.reading_search.ReadingSearchTranslator`) and the audio family's
(:class:`~metaxm.align.frame_values.FrameValueTranslator`) hold one.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

CONSTANT = 1e-6
"""A channel whose standard deviation over the pairs is at most this is constant."""
FIT = 1e-3
"""A ratio or a step fits the pairs to this fraction of the channel's largest value."""
MAX_LEVELS = 64
"""A source channel that takes more values over the drawn states is continuous: no search."""
MAX_READINGS = 4096
"""The most readings kept (more than this: no search)."""
MAX_UNMOVED_READINGS = 16384
"""The most kept where a walk left an agent axis unread (``keep(..., most=...)``): each held
target channel is then also that axis' reader, which multiplies the readings (validation
vector 100-103 at k = 1: up to 8,520), and the measured moves rule them out."""
MAX_PAIRED = 4
"""The most agent features, and goal features, :func:`agent_goal_pairs` pairs."""
NEAREST = 1.0
"""What each cell between the agent and the goal a reading reads adds to the reading's cost
(in the prior's squared standard deviations): the search tries a near plausible goal before a
far one a little more plausible. Tuned on validation vector 100-103 (seeds 1-8, ``selfread``
at k = 1): 0 / 0.3 / 1 / 3 gave success 0.61 / 0.88 / 0.92 / 0.91 (0.3 and 3 measured with a
discount of 0.5 on the last choice, which at 1 made no difference)."""


def world_test(world: Any) -> Callable[[Tensor], Tensor] | None:
    """``world``'s test of success on scene features (:meth:`~metaxm.envs.base.World.reached`),
    or None where it cannot tell success from features."""
    return world.reached if world.reached(world.scene().features[:1]) is not None else None


def column_levels(x: Tensor) -> list[Tensor] | None:
    """Per column of ``x`` (M, C), the values it takes (float64, rounded to 1e-5); None where
    one takes more than :data:`MAX_LEVELS` (a continuous one)."""
    values = [column.unique() for column in x.double().round(decimals=5).T]
    return None if max(len(v) for v in values) > MAX_LEVELS else values


def level_spacing(levels: list[Tensor]) -> float:
    """The smallest gap between two values one of ``levels`` takes (a cell)."""
    return min(float((v[1:] - v[:-1]).min()) for v in levels if len(v) > 1)


def channel_levels(sources: Tensor) -> Tensor | None:
    """(S, L) the values each source channel takes over ``sources`` (M, S), padded with NaN;
    None where a channel takes more than :data:`MAX_LEVELS` (a continuous one)."""
    values = column_levels(sources)
    if values is None:
        return None
    out = torch.full((len(values), max(len(v) for v in values)), float("nan"), dtype=torch.float64)
    for j, v in enumerate(values):
        out[j, : len(v)] = v
    return out


def snap(values: Tensor, levels: Tensor) -> tuple[Tensor, Tensor]:
    """``values`` (..., C) each moved to the nearest of its column's ``levels`` (C, L, padded
    with NaN, as :func:`channel_levels` gives them), and how far each moved."""
    gaps = (values[..., None] - levels).abs().nan_to_num(float("inf"))  # (..., C, L)
    near, which = gaps.min(-1)
    return levels.expand_as(gaps).gather(-1, which[..., None])[..., 0], near


class SavedSizes:
    """Loads buffers whose sizes are a fit's (the readings kept): each takes the saved size,
    and a buffer the saved state lacks (a translator saved before it kept readings) keeps its
    unfitted value, so nothing is kept. Mixed in before ``nn.Module``, with an ``active``
    buffer."""

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # noqa: ANN001
        for name, value in self._buffers.items():
            saved = state_dict.get(prefix + name)
            if saved is None:
                state_dict[prefix + name] = value
            else:
                setattr(self, name, torch.empty_like(saved, device=self.active.device))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class ReadingSet(SavedSizes, nn.Module):
    """Every reading one fit keeps, and the search over them within an episode (see the module
    docstring); what a translator that keeps readings holds
    (:class:`~metaxm.align.reading_search.ReadingSearchTranslator`,
    the audio family's :class:`~metaxm.align.frame_values.FrameValueTranslator`).

    A reading gives each of ``channels`` (source channels) the value of one target value
    (``reader``) times a ``ratio``, or one of the values the channel takes (``level``, where
    both read 0). :meth:`candidates` snaps those values to ``levels`` and costs each reading;
    :meth:`choose` rules readings out with the world's test and picks the cheapest left, a
    reading's distance from the agent to its goal counted in its cost (:data:`NEAREST`).
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
        # (S,) what a source channel no reading reads takes (empty: 0)
        self.register_buffer("unread", torch.zeros(0, dtype=torch.float64))
        # (n, S) each action's step on the source channels, and (D,) up to how far each target
        # value moves where a move is stopped (inf: noise): the stopped moves within an episode
        # rule readings out (empty: they do not)
        self.register_buffer("moves", torch.zeros(0, 0, dtype=torch.float64))
        self.register_buffer("still", torch.zeros(0, dtype=torch.float64))
        # whether a reading must follow each measured move (rule_out_unmoved; a walk that left
        # an agent axis unread), by ``moves``
        self.register_buffer("follow_moves", torch.tensor(False))
        # (3, W) each source channel that tells a wall: the channel, the action whose move it
        # stops, its value there (empty: no wall is read)
        self.register_buffer("wall_stops", torch.zeros(3, 0, dtype=torch.float64))
        self.register_buffer("zero", torch.tensor(CONSTANT, dtype=torch.float64))  # (D,) or ()
        self.register_buffer("snap_cost", torch.tensor(0.0, dtype=torch.float64))
        # (2, P) each goal feature and the agent's feature it pairs with, and a cell's length:
        # the distance the search weighs (none where the context cannot say)
        self.register_buffer("pairs", torch.zeros(2, 0, dtype=torch.long))
        self.register_buffer("cell", torch.tensor(1.0, dtype=torch.float64))
        self.reached: Callable[[Tensor], Tensor] | None = None
        self.ruled_out: Tensor | None = None
        self._last: tuple[Tensor, Tensor, Tensor] | None = None  # (x, full, cost) choose read

    def keep(
        self,
        options: list[list[tuple[int, float]]],
        context: Any,
        prior: Tensor,
        device: torch.device,
        zero: Tensor | None = None,
        snap_cost: float = 0.0,
        unread: Tensor | None = None,
        most: int = MAX_READINGS,
    ) -> bool:
        """Keep the readings of ``options`` (per source channel, its readers, as
        :func:`~metaxm.align.reading_search.single_readers` gives them) with the gain
        ``prior`` (2, S) and the ``context``'s source values, feature map and world test.
        ``zero`` (D,): up to what a target value reads 0 (default :data:`CONSTANT`);
        ``snap_cost``: how much a reading's distance to the source's values adds to its cost
        (noisy readings); ``unread`` (S,): what a channel no reading reads takes (default 0);
        ``most``: the most readings kept. False (and nothing kept) where there are none, more
        than ``most``, or a channel is continuous."""
        self.active.fill_(False)
        self.follow_moves.fill_(False)
        self.ruled_out = self._last = None
        channels = [j for j, found in enumerate(options) if found]
        levels = channel_levels(context.sources[:, channels]) if channels else None
        if levels is None:
            return False
        readings = readings_of([options[j] for j in channels], levels, most)
        if not readings or len(readings) > most:
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
        self.decode = context.feature_map().to(device)
        self.zero = (torch.tensor(CONSTANT) if zero is None else zero).double().to(device)
        self.snap_cost.fill_(snap_cost)
        self.unread = (
            torch.zeros(0, dtype=torch.float64, device=device)
            if unread is None
            else unread.double().to(device)
        )
        self.pairs, cell = agent_goal_pairs(context)
        self.pairs = self.pairs.to(device)
        self.cell.fill_(cell)
        self.reached = context.reached
        self.active.fill_(True)
        return True

    def attach(self, world: Any) -> None:
        """Take ``world``'s test of success (a loaded translator: the test is not saved)."""
        self.reached = world_test(world) or self.reached

    def begin(self) -> None:
        """New episodes start: no reading is ruled out."""
        self.ruled_out = self._last = None

    def candidates(
        self, x: Tensor, base: Tensor | None = None, walked: bool = False
    ) -> tuple[Tensor, Tensor]:
        """``x`` (B, D) target values -> every reading's source observation (B, R, S), on
        ``base`` (B, S: the channels read otherwise; default what :meth:`keep` was told, or
        0), and its cost (B, R): squared standard deviations of its gains from the prior (plus
        ``snap_cost`` times its squared distance to the source's values in half gaps), ``inf``
        where ruled out by the values (a constant channel that does not fit, a value off the
        source's). ``walked``: ``x`` are the observations the readings were read from, where a
        channel read with no ratio (0 there: any gain) reads 0, not the value the reading
        names for a new episode."""
        x = x.double()
        read = x[:, self.reader]  # (B, R, C): each reading's target values
        by_ratio = ~self.ratio.isnan()
        zero = read.abs() <= (self.zero[self.reader] if self.zero.dim() else self.zero)
        level = torch.where(zero, 0.0, self.level) if walked else self.level
        value = torch.where(by_ratio, self.ratio * read, level)
        fits = by_ratio | ((self.level.abs() <= CONSTANT) == zero)
        # snap each value to the nearest the source channel takes; ruled out between two
        value, near = snap(value, self.levels)
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
        elif self.unread.numel():
            full += self.unread
        full[..., self.channels] = value  # a channel no reading reads: its base
        return full, cost

    def _drop(self, seen: Tensor) -> None:
        """Drop the readings ``seen`` (R,) marks, unless that is every one (or none)."""
        if bool(seen.all()) or not bool(seen.any()):
            return
        keep = ~seen
        self.reader, self.ratio, self.level = self.reader[keep], self.ratio[keep], self.level[keep]
        self._last = None

    def rule_out_walked(self, x: Tensor) -> None:
        """Drop every reading whose state, at one of the walk's observations ``x`` (N, D), is a
        success state: the episode went on there, so that reading's goal is not the goal (the
        test :meth:`choose` applies within an episode, applied to the k episodes read). Where
        that would drop every reading, none is dropped."""
        if self.reached is None or not bool(self.active):
            return
        full, _ = self.candidates(x, walked=True)
        seen = self.reached((full @ self.decode).float()).any(0)  # (R,)
        self._drop(seen)

    def rule_out_stopped(self, x: Tensor, steps: Tensor) -> None:
        """Drop every reading that reads, at one of the walk's observations ``x`` (N, D) before
        a move that was stopped, the goal where that move leads: the move would have ended the
        episode there with success. ``steps`` (N, S): each move's step on the source channels
        (0 for a channel the move does not step). Each reading is judged as the walk read it
        (``walked``: a channel read with no ratio reads 0). Where that would drop every reading,
        none is dropped."""
        if self.reached is None or not bool(self.active) or not len(x):
            return
        self._drop(self._led(x, steps).any(0))

    def keep_ended(self, x: Tensor, steps: Tensor) -> None:
        """Drop every reading that does not read a success state where the move from each of
        ``x`` (N, D) leads: the walk's last observations of episodes that ended before their
        horizon, whose last move therefore ended them on the goal (``steps`` (N, S): each
        move's step on the source channels, as :meth:`rule_out_stopped` takes them). Where that
        would drop every reading, none is dropped."""
        if self.reached is None or not bool(self.active) or not len(x):
            return
        self._drop(~self._led(x, steps).all(0))

    def _led(self, x: Tensor, steps: Tensor) -> Tensor:
        """(N, R) whether each reading reads a success state where the move ``steps`` (N, S)
        from each of the walk's observations ``x`` (N, D) leads, as the walk read it
        (:meth:`candidates` with ``walked``)."""
        full, _ = self.candidates(x, walked=True)
        return self.reached(((full + steps[:, None, :]) @ self.decode).float())

    def behind_walls(self, full: Tensor) -> Tensor:
        """(..., R) whether each reading's source observation ``full`` (..., R, S) reads a wall
        beside the agent that stops the move to its goal (the goal is never behind a wall:
        that move would end the episode with success); False where no wall is read."""
        out = torch.zeros(full.shape[:-1], dtype=torch.bool, device=full.device)
        if not self.wall_stops.shape[1] or not self.moves.numel() or self.reached is None:
            return out
        for j, a, level in self.wall_stops.T.tolist():
            walled = (full[..., int(j)] - level).abs() <= FIT * abs(level)
            led = full + self.moves[int(a)]
            out |= walled & self.reached((led @ self.decode).float())
        return out

    def rule_out_walled(self, x: Tensor) -> None:
        """Drop every reading that reads, at one of the walk's observations ``x`` (N, D), its
        goal behind a wall it reads beside the agent (:meth:`behind_walls`), judged as the walk
        read it (``walked``). Where that would drop every reading, none is dropped."""
        if not bool(self.active) or not len(x) or not self.wall_stops.shape[1]:
            return
        seen = self.behind_walls(self.candidates(x, walked=True)[0]).any(0)  # (R,)
        self._drop(seen)

    def rule_out_blocked(self, last: Tensor, x: Tensor, action: Tensor) -> None:
        """Within the episode: where the move ``action`` (B,; -1 where the row's episode ended
        with it) from ``last`` (B, D) to ``x`` was stopped (no target value moved beyond
        ``still``), rule out for the episode every reading whose goal that move leads to (as
        :meth:`rule_out_stopped` does for the walk's moves). Nothing where ``still`` was not
        kept (a reading from pairs) or no search is under way."""
        if not self.still.numel() or self.ruled_out is None or self.reached is None:
            return
        if self.ruled_out.shape[0] != len(x):
            return
        stopped = ((x - last).abs() <= self.still).all(1) & (action >= 0)
        if not bool(stopped.any()):
            return
        full, _ = self.candidates(last[stopped])
        led = full + self.moves[action[stopped].long()][:, None, :]
        self.ruled_out[stopped] |= self.reached((led @ self.decode).float())

    def _candidates(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """:meth:`candidates` of ``x``, kept for the same tensor's next call: within an
        episode each observation is read by :meth:`rule_out_unmoved` twice (after its move and
        before the next) and by :meth:`choose` once."""
        if self._last is None or self._last[0] is not x:
            self._last = (x, *self.candidates(x))
        return self._last[1], self._last[2]

    def rule_out_unmoved(self, last: Tensor, x: Tensor, action: Tensor) -> None:
        """Within the episode: rule out for the episode every reading whose source observation
        did not follow the move ``action`` (B,; -1 where the row's episode ended with it) from
        ``last`` (B, D) to ``x``: a channel the move does not step changed, or one it steps
        neither took the step nor was stopped where its step leaves the source's values (the
        grid's edge: it is kept only without inner walls, which stop a move anywhere). Nothing
        unless ``follow_moves``, or where no search is under way."""
        if not bool(self.follow_moves) or self.ruled_out is None:
            return
        if self.ruled_out.shape[0] != len(x):
            return
        rows = action >= 0
        if not bool(rows.any()):
            return
        before = self._candidates(last)[0][rows][..., self.channels]  # (b, R, C)
        after = self._candidates(x)[0][rows][..., self.channels]
        step = self.moves[action[rows].long()][:, None, self.channels]  # (b, 1, C)
        tolerance = FIT * self.levels.nan_to_num(0.0).abs().amax(1)  # (C,)
        change = after - before
        still = change.abs() <= tolerance
        low = self.levels.nan_to_num(float("inf")).amin(1)
        high = self.levels.nan_to_num(float("-inf")).amax(1)
        led = before + step
        off = (led < low - tolerance) | (led > high + tolerance)
        follows = ((change - step).abs() <= tolerance) | (still & off)
        self.ruled_out[rows] |= ~follows.all(-1)

    def choose(self, x: Tensor, base: Tensor | None = None) -> Tensor:
        """(B, S) the source observation of each row's cheapest reading not ruled out, each
        cell from the agent to the reading's goal adding :data:`NEAREST` to its cost; a
        reading whose state is a success state is ruled out for the episode (it goes on), as
        is one that reads its goal behind a wall beside the agent (:meth:`behind_walls`)."""
        full, cost = self.candidates(x, base) if base is not None else self._candidates(x)
        states = full @ self.decode
        if self.wall_stops.shape[1]:  # a goal behind a wall the reading reads: out
            walled = self.behind_walls(full)
            same = self.ruled_out is not None and self.ruled_out.shape == walled.shape
            self.ruled_out = self.ruled_out | walled if same else walled
        if self.pairs.shape[1]:  # the nearest plausible goal first
            gap = (states[..., self.pairs[0]] - states[..., self.pairs[1]]).abs().sum(-1)
            cost = cost + NEAREST * gap / self.cell
        chosen, self.ruled_out = search(full, cost, states, self.reached, self.ruled_out)
        return chosen


def agent_goal_pairs(context: Any) -> tuple[Tensor, float]:
    """(2, P) long: each goal feature and the agent's feature it pairs with in the world's test
    (:func:`~metaxm.align.walk_features.goal_pairing`), and the features' smallest step (a
    cell), computed once per context; (2, 0) where the context has no moves or no pairing, or
    more than :data:`MAX_PAIRED` features to pair (the pairings tried grow as a factorial)."""
    from metaxm.align.walk_features import goal_pairing
    from metaxm.align.wall_tiles import agent_features, wall_features

    if "agent_goal_pairs" in context.learned:
        return context.learned["agent_goal_pairs"]
    out = torch.zeros(2, 0, dtype=torch.long), 1.0
    if context.moves is not None and context.features is not None:
        moving, walls = agent_features(context), wall_features(context)
        width = context.features.shape[1] - len(walls)  # inner walls: neither agent nor goal
        small = 0 < len(moving) <= MAX_PAIRED and width - len(moving) <= MAX_PAIRED
        pairing = goal_pairing(context, moving, walls) if small else None
        levels = column_levels(context.features)
        if pairing and levels is not None:
            cell = level_spacing(levels)
            out = torch.tensor([list(pairing), list(pairing.values())]), cell
    context.learned["agent_goal_pairs"] = out
    return out


def search(
    full: Tensor,
    cost: Tensor,
    states: Tensor,
    reached: Callable[[Tensor], Tensor] | None,
    ruled_out: Tensor | None,
) -> tuple[Tensor, Tensor | None]:
    """One step of the search within an episode: (B, S) each row's cheapest reading of
    ``full`` (B, R, S) by ``cost`` (B, R) not ruled out, and the readings ruled out so far
    (B, R): one whose state ``states`` (B, R, F) is a success state (the world's ``reached``)
    is ruled out for the episode, since the episode goes on. Where all are, the cheapest."""
    if reached is not None:
        if ruled_out is None or ruled_out.shape != cost.shape:
            ruled_out = torch.zeros_like(cost, dtype=torch.bool)
        ruled_out = ruled_out | reached(states.float())
        open_cost = cost.masked_fill(ruled_out, float("inf"))
        cost = torch.where(open_cost.isinf().all(1, keepdim=True), cost, open_cost)
    best = cost.argmin(1)
    return full[torch.arange(len(best), device=best.device), best].float(), ruled_out


def readings_of(
    options: list[list[tuple[int, float]]], levels: Tensor, most: int = MAX_READINGS
) -> list[list[tuple[int, float, float]]]:
    """Every reading: one of its ``options`` (per read channel, its readers) per channel, no
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
            if len(out) > most:
                break
    return out
