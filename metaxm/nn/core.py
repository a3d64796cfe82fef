"""Modality-independent cores: latent ``z`` -> policy parameters ``pd`` and value ``V``.

:class:`MLPCore` is the feed-forward core of PPO and MAML: separate policy and value MLPs on
the latent (separate networks as in the PPO paper's continuous-control set-up, Schulman et al.
2017). :class:`GRUCore` is the recurrent core of RL^2 (Duan et al. 2016): its input per step is
the latent, the previous action, the previous reward and the done flag, its hidden state
carries over episode boundaries within a trial, and resetting it is the caller's job.

The GRU is written out with two linear layers (the gates of ``torch.nn.GRUCell``) instead of
``nn.GRU`` so that ``torch.func.functional_call`` and ``vmap`` can run it; the sequence form
applies the input projection to all steps at once and loops over time only for the recurrence.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from metaxm.nn.distributions import ActionHead, GaussianHead
from metaxm.nn.layers import Activation, init_weights, mlp


class MLPCore(nn.Module):
    """Policy and value MLPs on the latent.

    Args:
        latent_dim: the latent width.
        hidden: the width of the hidden layers.
        layers: the number of hidden layers of each MLP.
        act: the activation.
        head: the action head (sets the policy output width).
        init_log_std: the initial log standard deviation of a Gaussian policy.
    """

    def __init__(
        self,
        latent_dim: int,
        hidden: int,
        layers: int,
        act: Activation,
        head: ActionHead,
        init_log_std: float,
    ) -> None:
        super().__init__()
        self.gaussian = isinstance(head, GaussianHead)
        out = head.action_dim if self.gaussian else head.pd_dim
        self.pi = mlp([latent_dim] + [hidden] * layers + [out], act)
        self.v = mlp([latent_dim] + [hidden] * layers + [1], act)
        if self.gaussian:
            self.log_std = nn.Parameter(torch.full((head.action_dim,), float(init_log_std)))

    def reset_parameters(self, generator: torch.Generator) -> None:
        _init_heads(self.pi, self.v, generator)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """z: (N, latent) -> pd (N, pd_dim), value (N,)."""
        pd = self.pi(z)
        if self.gaussian:
            pd = torch.cat((pd, self.log_std.expand_as(pd)), -1)
        return pd, self.v(z).squeeze(-1)


class GRUCore(nn.Module):
    """A GRU over (latent, previous action, previous reward, done), then policy and value heads.

    Args:
        latent_dim: the latent width.
        hidden: the GRU state width (and the heads' hidden width).
        act: the activation of the heads.
        head: the action head.
        init_log_std: the initial log standard deviation of a Gaussian policy.
        reward_input: read the previous reward; False feeds 0 in its place (the input keeps
            its width, so the weights have the same shapes either way).
    """

    def __init__(
        self,
        latent_dim: int,
        hidden: int,
        act: Activation,
        head: ActionHead,
        init_log_std: float,
        reward_input: bool = True,
    ) -> None:
        super().__init__()
        self.head = head
        self.reward_input = reward_input
        self.hidden_dim = hidden
        self.gaussian = isinstance(head, GaussianHead)
        in_dim = latent_dim + head.encoding_dim + 2
        self.ih = nn.Linear(in_dim, 3 * hidden)
        self.hh = nn.Linear(hidden, 3 * hidden)
        out = head.action_dim if self.gaussian else head.pd_dim
        self.pi = mlp([hidden, hidden, out], act)
        self.v = mlp([hidden, hidden, 1], act)
        if self.gaussian:
            self.log_std = nn.Parameter(torch.full((head.action_dim,), float(init_log_std)))

    def reset_parameters(self, generator: torch.Generator) -> None:
        init_weights(self, generator, gain=1.0)
        _init_heads(self.pi, self.v, generator)

    def initial_state(self, batch: int, device: torch.device | str = "cpu") -> Tensor:
        """Zeros (batch, hidden): the state at the start of a trial."""
        return torch.zeros(batch, self.hidden_dim, device=device)

    def extra_inputs(self, prev_reward: Tensor, done: Tensor) -> Tensor:
        """(..., 2): the previous reward (0 without ``reward_input``) and the done flag, as the
        GRU reads them; the replay of a rollout (:func:`metaxm.meta.trials.replay_hidden`)
        builds its inputs with this too."""
        reward = prev_reward.float() if self.reward_input else torch.zeros_like(prev_reward).float()
        return torch.stack((reward, done.float()), -1)

    def _inputs(self, z: Tensor, prev_action: Tensor, prev_reward: Tensor, done: Tensor) -> Tensor:
        a = self.head.encode(prev_action)  # (..., encoding_dim)
        return self.ih(torch.cat((z, a, self.extra_inputs(prev_reward, done)), -1))

    def _cell(self, x: Tensor, h: Tensor) -> Tensor:
        # the gate equations of torch.nn.GRUCell (Cho et al. 2014)
        xr, xz, xn = x.chunk(3, -1)
        hr, hz, hn = self.hh(h).chunk(3, -1)
        r = torch.sigmoid(xr + hr)
        u = torch.sigmoid(xz + hz)
        n = torch.tanh(xn + r * hn)
        return (1.0 - u) * n + u * h

    def heads(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """The policy's distribution parameters and the value from GRU states h (..., H)."""
        pd = self.pi(h)
        if self.gaussian:
            pd = torch.cat((pd, self.log_std.expand_as(pd)), -1)
        return pd, self.v(h).squeeze(-1)

    def step(
        self, z: Tensor, prev_action: Tensor, prev_reward: Tensor, done: Tensor, hidden: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """One step for a batch: z (B, latent), hidden (B, H) -> pd, value (B,), new hidden."""
        h = self._cell(self._inputs(z, prev_action, prev_reward, done), hidden)
        pd, v = self.heads(h)
        return pd, v, h

    def sequence(
        self, z: Tensor, prev_action: Tensor, prev_reward: Tensor, done: Tensor, hidden: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """T steps: z (T, B, latent), hidden (B, H) -> pd (T, B, .), value (T, B), last hidden."""
        x = self._inputs(z, prev_action, prev_reward, done)  # (T, B, 3H), one matmul for all T
        hs = []
        h = hidden
        for t in range(x.shape[0]):
            h = self._cell(x[t], h)
            hs.append(h)
        pd, v = self.heads(torch.stack(hs))
        return pd, v, h


def _init_heads(pi: nn.Sequential, v: nn.Sequential, generator: torch.Generator) -> None:
    """Hidden layers orthogonal(sqrt 2), policy output 0.01, value output 1 (Huang et al. 2022)."""
    init_weights(pi, generator, gain=math.sqrt(2))
    init_weights(v, generator, gain=math.sqrt(2))
    nn.init.orthogonal_(pi[-1].weight, 0.01, generator=generator)
    nn.init.orthogonal_(v[-1].weight, 1.0, generator=generator)
