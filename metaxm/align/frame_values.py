"""Reading a spectrogram one time frame at a time: the ``translate`` learner's translator for
the ``audio`` family.

An ``audio`` observation (:mod:`metaxm.modalities.audio`) plays each state feature as one time
frame, a harmonic tone whose pitch the value sets, with a variant's base pitch, pitch scale,
harmonics, partial width and noise. :class:`FrameValueTranslator` reads it as

    x_t = pitch of frame t - origin           one reading, shared by every frame
    source = x @ routing                      a linear map without intercept

The pitch (:func:`frame_pitch`) is the position of a frame's lowest strong peak, the tone's
fundamental, which the value sets linearly; the origin, the pitch of a 0, is fitted from the
frame and channel the pitch explains best (:func:`pitch_origin`). A pitch reads a value the walk
never played as well as one it did, which the linear reader below does not: validation audio
at k = 1 rose from 0.62 to 0.92 (``docs/transfer-studies.md`` section 14). Where no frame's
pitch explains a channel (not a tone), it reads each frame with a linear reader instead:

    x_t = reader . spectrum of frame t        one linear reader, shared by every frame

A grid world's features take few values (a 7 x 7 grid: 7), so their tones are a few fixed
spectra plus noise, and a linear reader of the 32 bins can give each of them any number: the
reader is fitted by ridge regression from the frame and source channel it explains best,
preferring the channel with the most distinct values (the agent's position, which a walk moves;
a goal's frame takes k values in k episodes, and would explain any quantity constant within an
episode). Every frame is then read with it, so the goal's frames are read by what the agent's
taught; the routing is least squares without intercept
(:func:`~metaxm.align.least_squares.fit_routing`), which two goals pin as they pin a re-wired
vector's channel. All closed form; there are no gradient steps. A feature that takes many
values (a gymnasium env's continuous state) would need a nonlinear reader:
:class:`~metaxm.align.translate.FrameTranslator`, which a family can register instead.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import torch
from torch import Tensor, nn

from metaxm.align.least_squares import fit_routing, ridge
from metaxm.align.reading_set import CONSTANT, ReadingSet, snap
from metaxm.nn.encoders import time_frames

READER_RIDGE = 1e-2
"""The reader's ridge, times the mean diagonal of the frames' Gram matrix (the noise)."""
PEAK_SHARE = 0.5
"""A frame's pitch is its lowest peak reaching this share of its loudest bin."""
ZERO_NOISE = 3.0
"""A held frame whose mean reading is within this many times the noise of 0 reads 0..."""
ZERO_FLOOR = 0.1
"""... or within this share of the largest reading a moving frame shows (noise-free pitches)."""
SCALE_SPREAD = 0.15
"""The spread (in log) of :func:`scale_prior`'s gain."""
READER_SHARE = 0.9
"""The reader is fitted on a frame that explains this share of a channel's variance or more."""


def fit_reader(frames: Tensor, source: Tensor) -> Tensor | None:
    """The linear reader of one frame's spectrum, at unit norm (see the module docstring).

    Args:
        frames: (N, T, P) every row's time frames.
        source: (N, S) the source observations.

    Returns:
        (P,), or None when no frame explains :data:`READER_SHARE` of any channel.
    """
    variance = source.var(0, unbiased=False).clamp_min(1e-12)
    distinct = torch.tensor([torch.unique(column).numel() for column in source.T])
    best, reader = None, None
    for frame in range(frames.shape[1]):
        weights = ridge(frames[:, frame], source, READER_RIDGE)  # (P, S)
        residual = (frames[:, frame] @ weights - source).pow(2).mean(0)
        share = 1.0 - residual / variance
        for channel in (share >= READER_SHARE).nonzero().flatten().tolist():
            key = (int(distinct[channel]), float(share[channel]))
            if best is None or key > best:
                best, reader = key, weights[:, channel]
    return None if reader is None else reader / reader.norm()


def frame_pitch(frames: Tensor) -> Tensor:
    """(N, T, F) spectra -> (N, T) each frame's pitch: the position, in bins, of its lowest
    peak that reaches :data:`PEAK_SHARE` of its loudest bin (a harmonic tone's fundamental,
    which the background noise stays under), refined by a parabola through the peak and its
    two neighbours."""
    s = frames.double()
    left = torch.cat((torch.zeros_like(s[..., :1]), s[..., :-1]), -1)
    right = torch.cat((s[..., 1:], torch.zeros_like(s[..., :1])), -1)
    peak = (s >= left) & (s >= right) & (s >= PEAK_SHARE * s.amax(-1, keepdim=True))
    at = peak.double().argmax(-1, keepdim=True)  # the first such bin
    c, lo, hi = s.gather(-1, at), left.gather(-1, at), right.gather(-1, at)
    curve = lo - 2.0 * c + hi
    shift = torch.where(curve.abs() > 1e-9, 0.5 * (lo - hi) / curve, torch.zeros_like(curve))
    return (at + shift.clamp(-0.5, 0.5))[..., 0]


def pitch_origin(pitch: Tensor, source: Tensor) -> float | None:
    """The pitch at which a frame reads 0: from the frame and source channel that pitch
    explains best with an intercept (at least :data:`READER_SHARE` of its variance, the channel
    with the most distinct values first: the agent's), the pitch where that channel is 0. None
    where no frame's pitch explains a channel (not a tone whose pitch the value sets)."""
    distinct = torch.tensor([torch.unique(column).numel() for column in source.T])
    variance = source.var(0, unbiased=False)
    best, origin = None, None
    for frame in range(pitch.shape[1]):
        x = torch.stack((pitch[:, frame], torch.ones_like(pitch[:, frame])), 1)  # (N, 2)
        weights = torch.linalg.lstsq(x, source).solution  # (2, S)
        share = 1.0 - (x @ weights - source).pow(2).mean(0) / variance.clamp_min(1e-12)
        for channel in ((share >= READER_SHARE) & (variance > 1e-12)).nonzero().flatten().tolist():
            key = (int(distinct[channel]), float(share[channel]))
            slope = float(weights[0, channel])
            if abs(slope) > 1e-9 and (best is None or key > best):
                best, origin = key, -float(weights[1, channel]) / slope
    return origin


class FrameValueTranslator(nn.Module):
    """A spectrogram (C, F, T) -> the source's (S,): each frame's pitch (or one linear reader
    per frame, shared), then a linear routing (see the module docstring); :meth:`start` fits
    it, and it has no parameters for gradient steps.

    Given a context whose world tells success from features, the source channels the pairs hold
    constant (the goal's, in one episode) are not routed by least squares: every frame the
    pairs hold constant may read each of them, at the ratio of their values, and the readings
    are searched within the episode as a re-wired vector's are
    (:class:`~metaxm.align.reading_set.ReadingSet`; ranked by how close each lands to the
    source's values, since the family has no training variants to learn a gain prior from).
    """

    uses_context = True

    def __init__(self, space: gym.Space, out_dim: int, config: object = None) -> None:
        super().__init__()
        c, f, t = space.shape
        self.register_buffer("reader", torch.zeros(c * f))
        self.register_buffer("routing", torch.zeros(t, out_dim))
        self.register_buffer("reads_pitch", torch.tensor(False))
        self.register_buffer("origin", torch.tensor(0.0, dtype=torch.float64))
        # a reward-free reading: the pitch per unit of value, and each frame's values (T, L)
        self.register_buffer("gain", torch.tensor(1.0, dtype=torch.float64))
        self.register_buffer("levels", torch.zeros(t, 0, dtype=torch.float64))
        self.tonal = c == 1  # one spectrum per frame: a pitch to read
        self.readings = ReadingSet(out_dim)
        self.context: Any = None

    def prepare(self, context: Any) -> None:
        """Keep the context (the source's values, the world's test) for :meth:`start`."""
        self.context = context

    @torch.no_grad()
    def start(self, target: Tensor, source: Tensor) -> None:
        """Fit the reading (each frame's pitch, else a linear reader) and the routing to
        ``target`` (N, C, F, T) and ``source`` (N, S)."""
        frames, source = time_frames(target).double(), source.double()
        self.readings.active.fill_(False)
        self.reads_pitch.fill_(False)
        self.gain.fill_(1.0)
        self.levels = self.levels.new_zeros(self.levels.shape[0], 0)
        pitch = frame_pitch(frames) if self.tonal else None
        origin = None if pitch is None else pitch_origin(pitch, source)
        if origin is not None:  # every frame read by its pitch, which extrapolates
            self.reads_pitch.fill_(True)
            self.origin.fill_(origin)
            self.fit_values(pitch - origin, source)
            return
        reader = fit_reader(frames, source)
        if reader is None:  # nothing read: the translation stays 0
            return
        self.reader.copy_(reader)
        self.fit_values(frames @ reader, source)

    @torch.no_grad()
    def start_unpaired(self, obs: Tensor, actions: Tensor, first: Tensor, second: Tensor) -> bool:
        """Fit from the target's observations and the agent's actions alone (no reward, no
        pair): every frame's pitch read by one line whose gain and origin the walk's moves and
        walls give (:func:`~metaxm.align.frame_walk.walk_pitch`), its values rendered in the
        source. True if it reads; False where the walk shows too little (then it reads 0)."""
        from metaxm.align.frame_walk import walk_pitch

        self.readings.active.fill_(False)
        self.reads_pitch.fill_(False)
        self.routing.zero_()
        self.gain.fill_(1.0)
        self.levels = self.levels.new_zeros(self.levels.shape[0], 0)
        ctx = self.context
        if ctx is None or ctx.reached is None or ctx.moves is None or not self.tonal:
            return False
        read = walk_pitch(frame_pitch(time_frames(obs).double()), actions, first, second, ctx)
        if read is None:
            return False
        gain, origin, levels = read
        self.reads_pitch.fill_(True)
        self.origin.fill_(origin)
        self.gain.fill_(gain)
        self.levels = levels.to(self.origin.device)
        self.routing.copy_(ctx.source_map())
        return True

    def fit_values(self, values: Tensor, source: Tensor) -> None:
        """Fit the routing (and, after one episode, the readings) from each frame's reading
        ``values`` (N, T) to ``source`` (N, S)."""
        self.routing.copy_(fit_routing(values, source))
        ctx = self.context
        if ctx is None or ctx.reached is None or len(values) < 2:
            return
        sources = ctx.sources.double().to(source.device)
        # (S,) the channels the pairs hold that the world moves: the goal's, in one episode
        held = (source.std(0, unbiased=False) <= CONSTANT) & (sources.std(0) > CONSTANT)
        if not bool(held.any()):
            return
        spread = values.std(0)  # (T,): a held frame moves by its noise alone
        count = int(held.sum())  # a frame plays one feature: as many held frames as channels
        if count >= len(spread):
            return
        still = torch.zeros_like(spread, dtype=torch.bool)
        still[spread.argsort()[:count]] = True  # the quietest frames
        noise = spread[still].max()
        routing = torch.zeros_like(self.routing, dtype=torch.float64)
        moving = (~still).nonzero()
        routing[moving, ~held] = fit_routing(values[:, ~still], source[:, ~held])
        edge = values[:, ~still].abs().max()  # a moving frame's largest reading: the grid's edge
        zero = torch.maximum(ZERO_NOISE * noise, ZERO_FLOOR * edge).expand_as(spread)  # (T,)
        options = held_readers(values.mean(0), source[0], held, still, zero)
        prior = scale_prior(routing, sources)
        if self.readings.keep(options, ctx, prior, source.device, zero, snap_cost=1.0):
            self.routing.copy_(routing)

    def attach(self, world: Any) -> None:
        """Take ``world``'s test of success (a loaded translator: the test is not saved)."""
        self.readings.attach(world)

    def begin(self) -> None:
        """New episodes start: no reading is ruled out."""
        self.readings.begin()

    def forward(self, obs: Tensor) -> Tensor:
        frames = time_frames(obs)
        if bool(self.reads_pitch):
            values = (frame_pitch(frames) - self.origin) / self.gain
            if self.levels.shape[1]:  # a reward-free reading: each value to its nearest level
                values, _ = snap(values, self.levels)
            return self.route(values.to(self.routing.dtype))
        return self.route(frames @ self.reader)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # noqa: ANN001
        for name in ("reads_pitch", "origin"):  # a fit saved before pitches were read
            state_dict.setdefault(prefix + name, getattr(self, name).clone())
        # a fit saved before reward-free readings: none (no gain, no values to move to)
        state_dict.setdefault(prefix + "gain", torch.tensor(1.0, dtype=torch.float64))
        state_dict.setdefault(prefix + "levels", self.levels.new_zeros(self.levels.shape[0], 0))
        self.levels = torch.empty_like(state_dict[prefix + "levels"], device=self.origin.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def route(self, values: Tensor) -> Tensor:
        """Each frame's reading ``values`` (B, T) -> the source's (B, S)."""
        if not bool(self.readings.active):
            return values @ self.routing
        return self.readings.choose(values, values.double() @ self.routing.double())


def scale_prior(routing: Tensor, sources: Tensor) -> Tensor:
    """(2, S) the log gain at which a held frame reads each source channel, and its spread.

    Every frame is read by one reader and plays its feature with one pitch mapping, so a frame
    reads ``k * feature`` with one ``k`` for all. A channel the walk moves is routed from its
    frame with weight ``w = g / k`` (``g``: the source channel's gain, its largest absolute
    value over ``sources``), which gives ``|k|``; a held channel of gain ``g_j`` is then read
    at ``|g_j / k|``. The spread (:data:`SCALE_SPREAD`) allows for a reader not quite linear."""
    top = sources.abs().amax(0)  # (S,) each channel's gain
    weight = routing.abs().amax(0)  # (S,) the moved channels' routing weights
    moved = weight > 0
    prior = torch.full((2, routing.shape[1]), float("nan"), dtype=torch.float64)
    if bool(moved.any()):
        log_k = (top[moved].log() - weight[moved].log()).mean()
        prior[0] = top.clamp_min(1e-12).log() - log_k
        prior[1] = SCALE_SPREAD
    return prior


def held_readers(
    mean: Tensor, source: Tensor, held: Tensor, still: Tensor, zero: Tensor
) -> list[list[tuple[int, float]]]:
    """Per source channel, the frames that may read it: for a ``held`` channel (value
    ``source[j]``) every ``still`` frame, at the ratio of their values (``mean``: each frame's
    mean reading), or at any value where both read 0 (``zero``: per frame, the reading that
    counts as 0); none for the other channels (routed by least squares)."""
    out: list[list[tuple[int, float]]] = [[] for _ in range(len(source))]
    for j in held.nonzero().flatten().tolist():
        for i in still.nonzero().flatten().tolist():
            nothing = bool(mean[i].abs() <= zero[i])
            if abs(float(source[j])) > CONSTANT and not nothing:
                out[j].append((i, float(source[j] / mean[i])))
            elif abs(float(source[j])) <= CONSTANT and nothing:
                out[j].append((i, float("nan")))
    return out
