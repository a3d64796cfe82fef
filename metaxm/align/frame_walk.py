"""Reading an ``audio`` variant from the agent's own moves: no reward, no pair
(:func:`walk_pitch`, what ``selfread`` gives the audio translator).

An ``audio`` observation plays each scene feature as one time frame, in order, and one
variant's tone table sets every frame's pitch from its value by one line:
``pitch = origin + gain * value`` (:mod:`metaxm.modalities.audio`; the pitch is the frame's
fundamental, :func:`~metaxm.align.frame_values.frame_pitch`). So a reading is two numbers:

* the **gain** (pitch per unit of value, signed: a falling variant's is negative) is how far a
  frame's pitch moves when a move changes its feature by the step the source says that action
  makes (:func:`~metaxm.align.walk_features.feature_steps`); a wall stops some moves, which
  leave the pitch where it was. The agent's features are followed along each episode, and the
  pitches fitted to them with one gain;
* the **origin** (the pitch of a 0) is where a wall stopped a move: the agent stands on the
  edge the move points to, whose value the drawn states give, so the frame's pitch there less
  the gain times that value. Every frame of every row must then read a value inside its
  feature's range, which bounds the origin too; without a wall met, or where the walls'
  origins disagree (walls inside the grid), the origin is the lattice point nearest the middle
  of that bound. An origin off by whole cells moves the agent and the goal alike (where, as in
  GridNav, every feature's cell is as long), so their difference, what a grid policy walks by,
  is read right even then.

The goal's frames are read by the same line as the agent's: no pairing of features is needed.
The line is then refitted by least squares to every frame's pitch against the value it reads,
moved to the nearest its feature takes, and the translator moves every value it reads there too:
a narrow partial's pitch strays from the line by up to a third of a cell, which that undoes.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from metaxm.align.reading_set import channel_levels, snap
from metaxm.align.walk_features import feature_steps

MOVED_SHARE = 0.5
"""A move moved a frame when its pitch changed by this share of the walk's typical step."""
AGREE = 0.25
"""Pitch noise allowed at a range's end, in cells; walls' origins agree within twice it."""
MIN_AGREE = 0.8
"""The gain is read when at least this share of the moves that moved agree with its sign."""
REFITS = 2
"""Least-squares refits of the gain and origin to the values read (:func:`_refit`)."""


def walk_pitch(
    pitch: Tensor, actions: Tensor, first: Tensor, second: Tensor, context: Any
) -> tuple[float, float, Tensor] | None:
    """``(gain, origin, levels)``: each frame of ``pitch`` (N, T: every row's frame pitches)
    reads the value ``(pitch - origin) / gain`` of its scene feature, which takes the values
    ``levels`` (T, L, padded with NaN), read from the walk's ``actions`` (N,) and transitions
    ``first`` -> ``second`` (see the module docstring); None where the frames are not the
    context's features, the walk shows no move, or its moves disagree."""
    steps = feature_steps(context)  # (A, F)
    levels = channel_levels(context.features)
    if levels is None or pitch.shape[1] != steps.shape[1] or len(first) == 0:
        return None
    pitch, actions = pitch.double().cpu(), actions.cpu()
    first, second = first.cpu(), second.cpu()
    step = steps[actions[first]]  # (M, F): each transition's step
    feature = step.abs().argmax(1)  # the feature its action moves
    size = step[torch.arange(len(first)), feature]  # (M,)
    acts = size != 0
    first, second, feature, size = first[acts], second[acts], feature[acts], size[acts]
    ratio = (pitch[second, feature] - pitch[first, feature]) / size  # pitch per unit value
    typical = float(ratio.abs().quantile(0.9)) if len(ratio) else 0.0
    moved = ratio.abs() > MOVED_SHARE * typical
    if typical <= 0.0 or int(moved.sum()) < 2:
        return None
    gain = _walk_gain(pitch, first, second, feature, size, moved, steps.shape[1])
    if gain is None or float((ratio[moved] * gain > 0).double().mean()) < MIN_AGREE:
        return None
    low, high = levels.nan_to_num(float("inf")).amin(1), levels.nan_to_num(-float("inf")).amax(1)
    cell = float((levels[:, 1:] - levels[:, :-1]).nan_to_num(float("inf")).min())
    slack = AGREE * cell * abs(gain)  # pitch noise allowed at a range's end
    # every frame of every row reads inside its feature's range: the origin's bound
    ends = torch.stack((pitch - gain * low, pitch - gain * high))  # (2, N, T)
    bound = (float(ends.amin(0).amax()) - slack, float(ends.amax(0).amin()) + slack)
    if bound[0] > bound[1]:
        return None
    # where a wall stopped a move, the agent is on the edge it points to
    stopped = ratio.abs() < MOVED_SHARE * abs(gain)
    edge = torch.where(size[stopped] > 0, high[feature[stopped]], low[feature[stopped]])
    anchors = pitch[first[stopped], feature[stopped]] - gain * edge
    origin = float(anchors.median()) if len(anchors) else float("nan")
    agree = len(anchors) and float(anchors.max() - anchors.min()) <= 2.0 * slack
    if not (agree and bound[0] <= origin <= bound[1]):
        origin = _lattice_origin(pitch, gain, levels, bound)
    gain, origin = _refit(pitch, gain, origin, levels)
    return gain, origin, levels


def _walk_gain(
    pitch: Tensor, first: Tensor, second: Tensor, feature: Tensor, size: Tensor, moved: Tensor,
    width: int,
) -> float | None:  # fmt: skip
    """The pitch per unit of value: the agent's features are followed along each episode from
    its start (a transition that ``moved`` adds its ``size`` to its ``feature``), and every
    frame's pitch fitted to them with one gain and an intercept per episode and frame. A fit
    over whole episodes, not a median of single steps: one step's pitch change strays with the
    value (a narrow partial's peak), a run of steps' much less."""
    n = pitch.shape[0]
    rel = torch.zeros(n, width, dtype=torch.float64)
    episode = torch.arange(n)  # a row no transition reaches starts an episode
    for i in first.argsort().tolist():
        a, b = int(first[i]), int(second[i])
        rel[b] = rel[a]
        if bool(moved[i]):
            rel[b, feature[i]] += size[i]
        episode[b] = episode[a]
    _, episode = episode.unique(return_inverse=True)
    count = int(episode.max()) + 1
    members = torch.zeros(count, n, dtype=torch.float64)
    members[episode, torch.arange(n)] = 1.0
    members /= members.sum(1, keepdim=True)
    frames = (rel.abs() > 0).any(0)  # the frames the walk moved
    x = rel[:, frames] - (members @ rel[:, frames])[episode]  # centred within each episode
    y = pitch[:, frames] - (members @ pitch[:, frames])[episode]
    spread = float((x * x).sum())
    return float((x * y).sum()) / spread if spread > 0.0 else None


def _lattice_origin(
    pitch: Tensor, gain: float, levels: Tensor, bound: tuple[float, float]
) -> float:
    """The origin inside ``bound`` that puts the frame the walk moves most on its feature's
    values, nearest the bound's middle."""
    frame = int(pitch.std(0).argmax())
    values = levels[frame][~levels[frame].isnan()]
    middle = 0.5 * (bound[0] + bound[1])
    best, chosen = float("inf"), middle
    for value in values.tolist():  # each value the frame's first pitch could read
        origin = float(pitch[0, frame]) - gain * value
        near, _ = snap((pitch[:, frame : frame + 1] - origin) / gain, levels[frame : frame + 1])
        origin = float((pitch[:, frame] - gain * near[:, 0]).mean())
        if bound[0] <= origin <= bound[1] and abs(origin - middle) < best:
            best, chosen = abs(origin - middle), origin
    return chosen


def _refit(pitch: Tensor, gain: float, origin: float, levels: Tensor) -> tuple[float, float]:
    """``(gain, origin)`` refitted by least squares to every frame's pitch against the value it
    reads, moved to its feature's nearest (twice): a pitch is not quite linear in the value (a
    narrow partial's peak), and a median of steps is rougher than a fit to every row."""
    for _ in range(REFITS):
        values, _ = snap((pitch - origin) / gain, levels)
        x = torch.stack((values.flatten(), torch.ones(values.numel(), dtype=values.dtype)), 1)
        if int(torch.linalg.matrix_rank(x)) < 2:
            break
        gain, origin = torch.linalg.lstsq(x, pitch.flatten()[:, None]).solution[:, 0].tolist()
    return gain, origin
