"""The sensory encoder: every input channel through one shared sensory neuron, pooled by attention.

Selected with ``agent.encoder: sensory`` on a recurrent agent (``algo: rl2``). After Tang & Ha
(2021, "The Sensory Neuron as a Transformer: Permutation-Invariant Neural Networks for
Reinforcement Learning", the AttentionNeuron): a channel-structured observation (a 1-D vector
of ``C`` channels, or any box of at most :data:`MAX_CHANNELS` entries, flattened) is read one
channel at a time by the same small network, the *sensory neuron*. Neuron ``i`` sees

* its own channel's last ``agent.sensory_window`` values ``x_i(t-K+1), ..., x_i(t)``, and the
  changes between them divided by their root mean square (so that how a channel answers an
  action is of order 1 whatever its scale; the values keep the scale),
* how those changes co-vary with each action over the window, one step after it and, with
  ``agent.sensory_lags`` L > 1, up to L steps after it (a re-signed channel answers the other
  way; a position answers a push one step later than the velocity it moves), and
* the previous actions ``a(t-K), ..., a(t-1)`` (the action head's encoding; shared by all
  neurons),

so it can work out from the window what its channel measures: how it moves, and how it answers
the agent's actions (a re-signed channel answers a push the other way; a re-scaled one by more).
With ``agent.sensory_sign: invariant`` the neuron is the sum of one network over its channel's
part of those inputs and over that part negated (the actions as they are): everything of the
channel flips with its sign, so a channel and its negation give the same output by construction,
while its value still reads against how it answers the actions.
Attention pooling with learned queries (:class:`~metaxm.nn.layers.AttentionPool`) then sums the
neurons into a fixed-size vector, which a linear layer maps to the shared latent. Nothing
depends on the order of the channels: permuting them permutes the neurons, and the pooled sum
does not see the order.

One :class:`SensoryEncoder` (the neurons, the pooling, the map to the latent) serves every
channel-structured family of the agent; each family only has a parameter-free
:class:`SensoryChannels` that knows its channel count and scale and cuts its windows. So a
family the agent never trained on (``audio`` held out) is read by the trained neurons as it is,
zero-shot; only its adapter is new.

The window is the encoder's *memory*: the last ``K - 1`` steps' values and actions, carried in
the agent's recurrent state next to the GRU's (:meth:`Agent.initial_state`) and zeroed with it
at a trial's start. :meth:`SensoryChannels.windows` builds all windows of a (T, B) rollout at
once (no loop over time), which is what acting (T = 1) and the RL^2 replay both use.

Departures from Tang & Ha: the neuron is an MLP over a fixed window instead of an LSTM over the
whole history (a window is exact to replay in parallel, and PPO trains it by backpropagation
rather than evolution strategies); with ``agent.sensory_memory: trial`` it also reads fixed
statistics of its channel over the whole trial (:mod:`metaxm.nn.channel_stats`), the part of
that history a reading of the wiring needs; the queries are learned instead of fixed
positional codes; the values are the neurons' outputs instead of the raw channel values.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor, nn

from metaxm.nn.channel_stats import ChannelStats
from metaxm.nn.encoders import _out, _scale
from metaxm.nn.layers import AttentionPool, mlp

if TYPE_CHECKING:
    from metaxm.config.agent import AgentConfig

RMS_FLOOR = 1e-3
"""Added to the RMS of a window's changes before dividing by it (a still channel stays 0)."""
QUERY_STD = 1.0
"""The queries start large, so each attends to a few channels from the start: small ones would
average all channels alike and hide which value came from which."""
MAX_CHANNELS = 256
"""The most channels a sensory encoder reads; larger observations (pixels) keep their own."""


def sensory_channels(space: gym.Space) -> int | None:
    """The number of channels a sensory encoder would read from ``space``; None if it cannot
    (not a box, or more than :data:`MAX_CHANNELS` entries)."""
    if not isinstance(space, gym.spaces.Box):
        return None
    c = int(np.prod(space.shape))
    return c if 0 < c <= MAX_CHANNELS else None


def answers(steps: Tensor, actions: Tensor, lags: int) -> Tensor:
    """How each channel answers each action, 1 to ``lags`` steps after it: the covariance over
    the window of a channel's change with the action's deviation from its mean.

    Args:
        steps: (N, C, K - 1) each channel's changes between its K values, oldest first.
        actions: (N, K, A) the action encoding before each of the K values.
        lags: L, the latest step after an action counted.

    Returns:
        (N, C, L * A), lag 1's A columns first.
    """
    k = actions.shape[1]
    out = []
    for lag in range(1, lags + 1):
        moved = steps[:, :, lag - 1 :]  # change j + lag - 1 comes lag steps after action j + 1
        pushed = actions[:, 1 : k - lag + 1]
        pushed = pushed - pushed.mean(1, keepdim=True)
        out.append(torch.einsum("nct,nta->nca", moved, pushed) / max(k - lag, 1))
    return torch.cat(out, 2)


class SensoryChannels(nn.Module):
    """One family's channels for the shared :class:`SensoryEncoder`: how many, their scale, and
    the memory of their last steps. It has no parameters: a family it was not trained on is read
    with no new weights.

    Args:
        space: the family's observation space (a box of at most :data:`MAX_CHANNELS` entries).
        window: K, the steps each neuron sees (``agent.sensory_window``).
        action_dim: the width of the previous-action encoding (the action head's
            ``encoding_dim``).
        trial: also each channel's statistics over the trial (``agent.sensory_memory: trial``,
            :mod:`metaxm.nn.channel_stats`), as rows after the window's.
        scaled: with ``trial``, the statistics include the scaled value (``agent.sensory_scaled``).
    """

    def __init__(
        self,
        space: gym.Space,
        window: int,
        action_dim: int,
        trial: bool = False,
        scaled: bool = False,
    ) -> None:
        super().__init__()
        channels = sensory_channels(space)
        if channels is None:
            raise ValueError(
                f"the sensory encoder reads boxes of 1 to {MAX_CHANNELS} entries, not {space}"
            )
        self.channels = channels
        self.window = window
        self.action_dim = action_dim
        self.scale = _scale(space)
        self.stats = ChannelStats(channels, action_dim, scaled) if trial else None
        if trial and window < 2:  # a change needs the step before in the window
            raise ValueError("agent.sensory_memory: trial needs agent.sensory_window >= 2")

    @property
    def step_width(self) -> int:
        """What one step adds to the memory: the channels' values and the previous action."""
        return self.channels + self.action_dim

    @property
    def window_dim(self) -> int:
        """The width of the window's part of the memory: the last ``K - 1`` steps."""
        return (self.window - 1) * self.step_width

    @property
    def memory_dim(self) -> int:
        """The width of the carried memory: the window's part, then the trial's sums."""
        return self.window_dim + (self.stats.width if self.stats is not None else 0)

    def windows(
        self,
        obs: Tensor,
        prev_action: Tensor,
        reset: Tensor | None,
        memory: Tensor,
        first: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Every step's window, all at once: obs (T, B, *shape), prev_action (T, B, A), reset
        (T, B) bool (the memory is zeroed before this step: a trial starts; None: nowhere),
        memory (B, >= memory_dim) before the first step, first (T, B) bool the step starts an
        episode (the done flag; needed with trial statistics) -> windows (T, B, K, C + A),
        oldest step first, and the memory after the last step (B, memory_dim).

        The same as T steps that each append one step to the memory and drop the oldest, with
        the memory zeroed at resets. With trial statistics the windows have S more rows,
        (T, B, K + S, C + A): row K + s holds statistic s of every channel in the first C
        columns (:mod:`metaxm.nn.channel_stats`).
        """
        t, b = obs.shape[:2]
        values = obs.reshape(t, b, -1)
        if values.shape[-1] != self.channels:
            raise ValueError(
                f"the sensory encoder reads {self.channels} channels, got {values.shape[-1]}"
            )
        current = torch.cat((values.float() * self.scale, prev_action.float()), -1)  # (T, B, F)
        windows, after = self.step_windows(current, reset, memory)
        if self.stats is None:
            return windows, after
        if first is None:
            raise ValueError("agent.sensory_memory: trial needs the done flags (first)")
        carry = memory[:, self.window_dim : self.window_dim + self.stats.width]
        c = self.channels
        before = windows[:, :, -2, :c]  # each step's previous values, zeroed across a reset
        stats, sums = self.stats(
            current[..., :c], before, current[..., c:], first, reset, carry
        )  # (T, B, C, S)
        pad = stats.new_zeros(t, b, stats.shape[-1], self.action_dim)  # no action columns
        rows = torch.cat((stats.transpose(2, 3), pad), -1)
        return torch.cat((windows, rows), 2), torch.cat((after, sums), 1)

    def step_windows(
        self, current: Tensor, reset: Tensor | None, memory: Tensor
    ) -> tuple[Tensor, Tensor]:
        """current (T, B, step_width), what each step adds to the memory -> the windows of those
        entries (T, B, K, step_width), oldest first, entries from before a reset zeroed, and
        the memory after the last step (see :meth:`windows`)."""
        t, b = current.shape[:2]
        k = self.window
        past = memory[:, : self.window_dim].reshape(b, k - 1, self.step_width).transpose(0, 1)
        steps = torch.cat((past, current), 0)  # (K - 1 + T, B, F)
        windows = steps.unfold(0, k, 1).permute(0, 1, 3, 2)  # (T, B, K, F), oldest first
        if reset is not None:
            # an entry of step t's window is stale if a trial started after it: the last reset
            # at or before t (-k - 1 when none: then the carried memory is valid)
            device = current.device
            time = torch.arange(t, device=device)
            none = torch.full_like(time, -k - 1)
            last_reset = torch.cummax(torch.where(reset, time[:, None], none[:, None]), 0).values
            entry_time = time[:, None] - (k - 1) + torch.arange(k, device=device)  # (T, K)
            valid = entry_time[:, None, :] >= last_reset[:, :, None]  # (T, B, K)
            windows = windows * valid[..., None]
        return windows, windows[-1, :, 1:].flatten(1)


class SensoryEncoder(nn.Module):
    """The sensory neurons and their attention pooling, shared by every channel of every
    channel-structured family (each family's :class:`SensoryChannels` cuts its windows).

    Args:
        config: the agent's architecture: ``sensory_window`` (K), ``token_dim`` (the neuron's
            width), ``pool_queries``, ``encoder_width``, ``latent_dim``, ``activation``.
        action_dim: the width of the previous-action encoding (the action head's
            ``encoding_dim``).
    """

    def __init__(self, config: AgentConfig, action_dim: int) -> None:
        super().__init__()
        self.window = k = config.sensory_window
        self.lags = config.sensory_lags
        self.sign_invariant = config.sensory_sign == "invariant"
        self.action_dim = action_dim
        # the statistics' layout (how many, which are odd); the channel count is the family's
        trial = config.sensory_memory == "trial"
        self.stats = ChannelStats(0, action_dim, config.sensory_scaled) if trial else None
        d = config.token_dim
        inputs = 2 * k - 1 + (k + self.lags) * action_dim
        inputs += self.stats.features if self.stats is not None else 0
        self.neuron = mlp([inputs, d, d], config.activation, out_act=True)
        self.pool = AttentionPool(d, config.pool_queries, query_std=QUERY_STD)
        self.fc = mlp([self.pool.out_dim, config.encoder_width], config.activation, out_act=True)
        self.out = _out(config.encoder_width, config.latent_dim)

    def read(self, windows: Tensor) -> Tensor:
        """windows (N, K, C + A), oldest step first, any number C of channels (with trial
        statistics (N, K + S, C + A), :meth:`SensoryChannels.windows`) -> the latent
        (N, latent_dim)."""
        n, k, a = windows.shape[0], self.window, self.action_dim
        c = windows.shape[2] - a
        values = windows[:, :k, :c].transpose(1, 2)  # (N, C, K)
        steps = values.diff(dim=2)  # (N, C, K - 1)
        rms = steps.pow(2).mean(2, keepdim=True).sqrt()
        steps = steps / (rms + RMS_FLOOR)
        acts = windows[:, :k, c:]  # (N, K, A), the same for every neuron
        shared = acts.flatten(1)[:, None].expand(n, c, k * a)
        own = torch.cat((values, steps, answers(steps, acts, self.lags)), 2)  # odd in the sign
        if self.stats is not None:
            stats = windows[:, k:, :c].transpose(1, 2)  # (N, C, S)
            own = torch.cat((own, stats[..., : self.stats.odd]), 2)
            shared = torch.cat((shared, stats[..., self.stats.odd :]), 2)  # even in the sign
        neurons = self.neuron(torch.cat((own, shared), 2))
        if self.sign_invariant:
            neurons = neurons + self.neuron(torch.cat((-own, shared), 2))
        return self.out(self.fc(self.pool(neurons)))

    def sequence(
        self,
        channels: SensoryChannels,
        obs: Tensor,
        prev_action: Tensor,
        reset: Tensor | None,
        memory: Tensor,
        first: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """T steps of one family at once (see :meth:`SensoryChannels.windows` for the shapes)
        -> latents (T, B, latent_dim) and the memory after the last step."""
        windows, after = channels.windows(obs, prev_action, reset, memory, first)
        return self.read(windows.flatten(0, 1)).unflatten(0, obs.shape[:2]), after

    def step(
        self,
        channels: SensoryChannels,
        obs: Tensor,
        prev_action: Tensor,
        memory: Tensor,
        first: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """One step: obs (N, *shape), prev_action (N, A), memory (N, >= memory_dim), first (N,)
        -> the latent (N, latent_dim) and the memory after this step (N, memory_dim)."""
        first = None if first is None else first[None]
        z, after = self.sequence(channels, obs[None], prev_action[None], None, memory, first)
        return z[0], after
