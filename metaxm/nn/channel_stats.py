"""What a sensory neuron remembers past its window: its channel's statistics over the trial.

With ``agent.sensory_memory: trial`` each sensory neuron (:mod:`metaxm.nn.sensory`) also sees
running statistics of its own channel since the trial started, the memory Tang & Ha's neurons
keep in an LSTM over the whole history. The window alone forgets in ``K`` steps how a channel
answered an action the agent has not taken since, and a trial's next episode starts with the
window empty of the last one's changes: what the agent had read of a wiring cannot reach the
next episode through the neurons, and the GRU, which only sees the pooled sum, cannot say which
channel it read. The statistics carry it, per channel:

* odd in the channel's sign (they flip with it): the mean change after each action, ``sum
  dx * e_a / (sum e_a^2 + 1)`` over the trial's steps (``e`` the previous action's encoding:
  one-hot for a discrete action, so the mean change after action ``a`` with one pseudo-count),
  divided by the channel's root mean square change (how the channel answers the agent); the
  channel's value when the agent chose each action, against its mean, divided by its spread
  (how the agent answers the channel: a goal's channel is high when the agent goes one way to
  reach it, which says in the agent's own actions which way it points); and the mean value;
* even: the value's standard deviation and the root mean square change;
* with ``agent.sensory_scaled``, one more odd statistic: the channel's current value divided by
  the root mean square of its values over the trial's steps so far. A channel's gain multiplies
  its value and that root mean square alike, so the ratio is the same whatever the gain, which
  a neuron that gets the value and its spread apart would have to divide out itself
  (``docs/transfer-studies.md`` section 45 found the agent reading a goal's channel as though
  its gain were about 1). What it says of a channel that holds still within an episode
  (GridNav's goal) grows over the trial: in the first episode it is only the sign (the value
  over its own size), and from the second on it places the goal against the goals before it,
  each weighted by its episode's steps. After a long stretch near zero it can reach the square
  root of the trial's steps.

A change is counted only between two steps of one episode (the done flag ``first`` is false),
so that the jump of a reset, or of a new task's goal, is not read as an answer to an action.

The sums are running sums restarted at a trial's start (:func:`running_sums`), the same to the
bit whether a chunk is replayed or acted one step at a time. They ride in the recurrent state
after the window (:attr:`ChannelStats.width`).
"""

from __future__ import annotations

import torch
from torch import Tensor

FLOOR = 1e-3
"""Added to a channel's root mean square change before dividing by it (a still channel: 0)."""


def running_sums(inc: Tensor, reset: Tensor | None, carry: Tensor) -> Tensor:
    """Sums that restart where a trial starts, step by step over a chunk.

    A loop over T, not a cumulative sum: each step adds its increment to the sum before it, the
    same additions as acting one step at a time, so a replayed chunk equals acting bit for bit
    (a cumulative sum rounds differently, and a variance near 0 turns that rounding into a
    visible difference). It runs once per rollout: the RL^2 trainer caches the windows.

    Args:
        inc: (T, B, F) what each step adds.
        reset: (T, B) bool, the sums restart at this step (which counts); None: nowhere.
        carry: (B, F) the sums before the first step.

    Returns:
        (T, B, F) the sums up to and including each step.
    """
    out = []
    for t in range(inc.shape[0]):
        if reset is not None:
            carry = torch.where(reset[t, :, None], 0.0, carry)
        carry = carry + inc[t]
        out.append(carry)
    return torch.stack(out)


class ChannelStats:
    """The trial statistics of one family's ``channels`` channels, ``actions`` wide actions.

    The carried sums are, per channel, ``sum dx * e_a`` (A), ``sum x_prev * e_a`` (A, the value
    before the action), ``sum dx^2``, ``sum x``, ``sum x^2``, and, shared by the channels, ``sum
    e_a^2`` over the counted changes (A), their count, and the count of steps. ``scaled`` adds
    the scaled value (from the same sums) to the statistics, not to the sums.
    """

    def __init__(self, channels: int, actions: int, scaled: bool = False) -> None:
        self.channels = channels
        self.actions = actions
        self.scaled = scaled

    @property
    def features(self) -> int:
        """What a neuron reads per channel: 2A + 1 odd in the sign (2A + 2 when ``scaled``),
        then 2 even."""
        return self.odd + 2

    @property
    def odd(self) -> int:
        """How many of :attr:`features` (the first ones) flip with the channel's sign."""
        return 2 * self.actions + 1 + int(self.scaled)

    @property
    def width(self) -> int:
        """The width of the carried sums."""
        return self.channels * (2 * self.actions + 3) + self.actions + 2

    def __call__(
        self,
        values: Tensor,
        before: Tensor,
        actions: Tensor,
        first: Tensor,
        reset: Tensor | None,
        carry: Tensor,
    ) -> tuple[Tensor, Tensor]:
        """values (T, B, C) each step's channels, before (T, B, C) each step's previous values
        (zero where a trial starts, as the window holds them), actions (T, B, A) the previous
        action's encoding at each step, first (T, B) bool the step starts an episode, reset
        (T, B) bool a trial starts there, carry (B, width) the sums before the chunk -> the
        statistics (T, B, C, features) and the sums after the last step (B, width)."""
        t, b, c = values.shape
        a = self.actions
        counted = (~first)[..., None].to(values.dtype)  # a change within one episode
        dx = (values - before) * counted  # (T, B, C)
        per_channel = torch.cat(
            (
                dx[..., None] * actions[:, :, None],
                (before * counted)[..., None] * actions[:, :, None],
                (dx * dx)[..., None],
                values[..., None],
                (values * values)[..., None],
            ),
            -1,
        )  # (T, B, C, 2A + 3)
        shared = torch.cat((actions * actions * counted, counted, torch.ones_like(counted)), -1)
        inc = torch.cat((per_channel.flatten(2), shared), -1)
        sums = running_sums(inc, reset, carry)
        own = sums[..., : c * (2 * a + 3)].unflatten(-1, (c, 2 * a + 3))
        pushes, moved, steps = sums[..., -a - 2 : -2], sums[..., -2:-1], sums[..., -1:]
        pushes = pushes[:, :, None]  # (T, B, 1, A)
        rms = (own[..., 2 * a] / moved.clamp(min=1)).sqrt()  # (T, B, C)
        slope = own[..., :a] / (pushes + 1) / (rms[..., None] + FLOOR)
        mean = own[..., 2 * a + 1] / steps
        square = own[..., 2 * a + 2] / steps  # the mean square of the values
        std = (square - mean * mean).clamp(min=0).sqrt()
        given = (own[..., a : 2 * a] - pushes * mean[..., None]) / (pushes + 1)
        given = given / (std[..., None] + FLOOR)
        odd = [slope, given, mean[..., None]]
        if self.scaled:  # the value on the scale of the values the trial has shown
            odd.append((values / (square.sqrt() + FLOOR))[..., None])
        stats = torch.cat((*odd, std[..., None], rms[..., None]), -1)
        return stats, sums[-1]
