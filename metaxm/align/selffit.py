"""Meta-learned reward-free adaptation: a self-supervised inner loss (``algo: selffit``).

The case: a user fits a new sensor and has neither the old sensor running beside it (no paired
renders, which :mod:`metaxm.align.metafit` needs) nor a reward. What k episodes give is the
target modality's own observations and the agent's own actions. The inner loss is inverse
dynamics through the latent, as in PAD (Hansen et al. 2021, "Self-Supervised Policy
Adaptation during Deployment", arXiv:2007.04309): a head ``I_phi(z_t, z_{t+1})`` predicts the
action taken between two consecutive latents, and adapting the target's encoder and adapter
``theta`` to make the agent's own actions predictable makes its latent move as the aligned
latent moves. Every piece of that is meta-learned over fresh variants of every training family
(MAML / Meta-SGD, as :mod:`metaxm.align.metafit`)::

    inner (support: k episodes the source agent played in the variant; observations, actions)
        theta_{s+1} = theta_s - alpha * grad CE(I_phi(z_t, z_{t+1}), a_t),  s < S
    outer (query: paired renders of other episodes of the same variant)
        min_{theta_0, alpha, phi}  E_variants [ L_pair(theta_S; query)
                                                + CE(I_phi(zs_t, zs_{t+1}), a_t) ]

``L_pair`` is the paired fit loss of :func:`~metaxm.align.metafit.pair_loss` (InfoNCE plus
``fit_mse`` x squared distance to the source latents), so the adapted module is asked to land
on the aligned latent; the second term, on the *source* latents ``zs`` of the query, keeps
``phi`` an inverse-dynamics model of the aligned latent (PAD's head is trained on the source
domain). Pairs are used only in meta-training, on variants no split holds, where every
render is free; adapting uses the target's observations and the agent's actions alone.

What it cannot recover: inverse dynamics sees what the actions move. In GridNav that is the
agent's position; the goal does not move, so a new variant's goal channels are pinned only by
the learned start. For a ``vector`` variant (a permutation, signs and scales of the features)
the goal's two channels can be told apart from the agent's ones (they stay constant in an
episode), but not from each other nor in sign: the goal coordinates are distributed
symmetrically, so those readings are equally likely under every reward-free data set.

A family never trained on has no learned start (its encoder is new): :meth:`SelfFit.fit` then
runs ``align.fit_iters`` Adam steps at ``align.fit_lr`` on the same loss, with the learned head.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from metaxm.align.fewshot import Actor
from metaxm.align.losses import encode
from metaxm.align.metafit import load_tables
from metaxm.config.align import AlignConfig
from metaxm.envs.play import play, transitions
from metaxm.nn.agent import Agent

if TYPE_CHECKING:
    from metaxm.envs.task_env import TaskEnv

Params = dict[str, Tensor]

HEAD = "inverse_dynamics"
"""The head's name in a saved :class:`SelfFit` (its ``head`` table)."""


class InverseDynamics(nn.Module):
    """``I_phi(z_t, z_{t+1})``: logits over the actions taken between two latents.

    Args:
        latent_dim: the latent width d.
        hidden: the hidden width.
        actions: the number of discrete actions.
    """

    def __init__(self, latent_dim: int, hidden: int, actions: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(2 * latent_dim, hidden), nn.Tanh(), nn.Linear(hidden, actions)
        )

    def forward(self, z: Tensor, z_next: Tensor) -> Tensor:
        """z, z_next (M, d) -> logits (M, actions)."""
        return self.net(torch.cat((z, z_next - z), 1))


@dataclass(frozen=True)
class Transitions:
    """What a reward-free adaptation sees of k episodes in the target modality.

    Attributes:
        family: the target family.
        obs: (N, *obs shape) every observation of the episodes.
        actions: (N,) the action the agent took on each.
        first: (M,) rows of ``obs``; ``second`` (M,) the row that came next in the episode.
        episodes: how many episodes.
        ended: (N,) bool, the rows whose action ended the episode before its horizon (the
            world's ``terminated``: no reward is read, only that the episode stopped); None
            where it was not recorded.
    """

    family: str
    obs: Tensor
    actions: Tensor
    first: Tensor
    second: Tensor
    episodes: int
    ended: Tensor | None = None

    @staticmethod
    def concat(parts: Sequence[Transitions]) -> Transitions:
        """Several collections of one family as one (the rows of each part re-numbered)."""
        if len(parts) == 1:
            return parts[0]
        offsets = torch.tensor([0, *(p.obs.shape[0] for p in parts[:-1])]).cumsum(0).tolist()
        return Transitions(
            parts[0].family,
            torch.cat([p.obs for p in parts]),
            torch.cat([p.actions for p in parts]),
            torch.cat([p.first + o for p, o in zip(parts, offsets)]),
            torch.cat([p.second + o for p, o in zip(parts, offsets)]),
            sum(p.episodes for p in parts),
            None if any(p.ended is None for p in parts) else torch.cat([p.ended for p in parts]),
        )


@torch.no_grad()
def collect_transitions(
    agent: Agent, env: TaskEnv, family: str, generator: torch.Generator, explore: float = 0.0
) -> Transitions:
    """One episode of the agent's stochastic policy in every environment of ``env`` (a
    feed-forward agent; each action a uniformly random one with probability ``explore``), with
    its observations and actions; nothing else is recorded."""
    actor = Actor(agent, family, env.num_envs, explore=explore)
    return record_transitions(env, family, lambda obs: actor.act(obs, generator))


def record_transitions(env: TaskEnv, family: str, act: Callable[[Tensor], Tensor]) -> Transitions:
    """One episode in every environment of ``env`` played by ``act`` (observations -> actions),
    with its observations and actions, and which actions ended their episode before its
    horizon; nothing else is recorded."""
    played = play(env, act, record=("obs", "action", "alive", "count", "terminated"))
    alive, count = played.record["alive"], played.record["count"]
    first, second = transitions(alive, count)
    keep = alive.flatten()
    obs = played.record["obs"].flatten(0, 1)[keep]
    actions = played.record["action"].flatten(0, 1)[keep]
    ended = played.record["terminated"].flatten(0, 1)[keep].bool()
    return Transitions(family, obs, actions, first, second, env.num_envs, ended)


def inverse_loss(
    head: nn.Module, head_params: Mapping[str, Tensor], z: Tensor, actions: Tensor,
    first: Tensor, second: Tensor,
) -> Tensor:  # fmt: skip
    """Cross-entropy of the head's prediction of ``actions[first]`` from ``z[first]`` and
    ``z[second]``; 0 when there is no transition."""
    if first.numel() == 0:
        return z.sum() * 0.0
    logits = torch.func.functional_call(head, dict(head_params), (z[first], z[second]))
    return F.cross_entropy(logits, actions[first].long())


def selfsup_loss(
    agent: Agent, head: nn.Module, head_params: Mapping[str, Tensor],
    params: Mapping[str, Tensor], data: Transitions,
) -> Tensor:  # fmt: skip
    """The inner loss: inverse dynamics on the target view's latents through ``params``."""
    z = encode(agent, data.obs, data.family, params)
    return inverse_loss(head, head_params, z, data.actions, data.first, data.second)


def inner_selffit(
    agent: Agent,
    head: nn.Module,
    head_params: Mapping[str, Tensor],
    init: Mapping[str, Tensor],
    lrs: Mapping[str, Tensor],
    data: Transitions,
    config: AlignConfig,
    create_graph: bool = False,
) -> Params:
    """``align.meta_steps`` Meta-SGD steps from ``init`` on ``data``'s inverse dynamics;
    differentiable in ``init``, ``lrs`` and ``head_params`` (second order with
    ``create_graph``, else through the last step's use of the inner gradients as constants)."""
    params = dict(init)
    for _ in range(config.meta_steps):
        loss = selfsup_loss(agent, head, head_params, params, data)
        grads = torch.autograd.grad(loss, list(params.values()), create_graph=create_graph)
        params = {k: p - lrs[k] * g for (k, p), g in zip(params.items(), grads)}
    return params


@dataclass
class SelfFit:
    """A meta-learned reward-free fit: per training family ``theta_0`` and ``alpha``, and the
    inverse-dynamics head ``phi`` all families share.

    Attributes:
        init: ``{family: {name: theta_0}}`` (the family's encoder and adapter, agent's names).
        lrs: ``{family: {name: alpha}}``, same shapes.
        head: the head's parameters (``phi``), by :class:`InverseDynamics`' names.
        config: the ``align`` section (``meta_steps``; ``fit_iters`` and ``fit_lr`` for a
            family without a learned start).
    """

    init: dict[str, Params]
    lrs: dict[str, Params]
    head: Params
    config: AlignConfig

    def module(self, agent: Agent) -> InverseDynamics:
        """An :class:`InverseDynamics` of the agent's sizes, to run ``head`` through (its own
        initial weights are never used, and drawing them leaves the global RNG as it was)."""
        with torch.random.fork_rng(devices=[]):
            return InverseDynamics(
                agent.config.latent_dim, self.head["net.0.weight"].shape[0], agent.head.n
            )

    def fit(self, agent: Agent, data: Transitions) -> Params:
        """Adapt the target family's encoder and adapter to ``data``; detached parameters."""
        module = self.module(agent).to(data.obs.device)
        head = {k: v.detach() for k, v in self.head.items()}
        family = data.family
        with torch.enable_grad():
            if family in self.init:
                init = {k: v.detach().requires_grad_(True) for k, v in self.init[family].items()}
                params = inner_selffit(
                    agent, module, head, init, self.lrs[family], data, self.config
                )
            else:
                params = self._hand_set(agent, module, head, data)
        return {k: v.detach() for k, v in params.items()}

    def _hand_set(self, agent: Agent, module: nn.Module, head: Params, data: Transitions) -> Params:
        """A family without a learned start: Adam on the same loss from the agent's own
        encoder and adapter (``align.fit_iters`` steps at ``align.fit_lr``)."""
        own = agent.named_params("adapter+encoder", data.family)
        params = {k: v.detach().clone().requires_grad_(True) for k, v in own.items()}
        optimizer = torch.optim.Adam(params.values(), lr=self.config.fit_lr)
        for _ in range(self.config.fit_iters):
            loss = selfsup_loss(agent, module, head, params, data)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        return params

    def state_dict(self) -> dict[str, dict[str, Params]]:
        return {"init": self.init, "lrs": self.lrs, "head": {HEAD: self.head}}

    @classmethod
    def from_state(
        cls,
        state: Mapping[str, Mapping[str, Params]],
        config: AlignConfig,
        device: torch.device | str | None = None,
    ) -> SelfFit:
        """What :meth:`state_dict` saved, on ``device`` (default: where it is)."""
        tables = load_tables(state, device)
        return cls(tables["init"], tables["lrs"], tables["head"][HEAD], config)
