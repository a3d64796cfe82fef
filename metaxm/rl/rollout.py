"""Batched rollout collection: T steps of all B environments of one family, no loop over B.

One :class:`~metaxm.envs.task_env.TaskEnv` holds every environment of a family (each with its
own task and variant); the agent acts on the whole batch at once. Episodes that end inside the
rollout are auto-reset by the TaskEnv; truncated ones are bootstrapped from their final
observation (see :mod:`metaxm.rl.gae`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from metaxm.envs.task_env import TaskEnv
from metaxm.nn.agent import Agent


@dataclass
class Rollout:
    """What T steps of B environments produced, each tensor (T, B, ...).

    Attributes:
        obs: observations the actions were taken in.
        actions: the actions taken.
        logprobs: their log-probabilities under the acting policy.
        values: V(obs).
        rewards: rewards received.
        terminated: the step reached a terminal state.
        done: the step ended the episode (terminated or truncated).
        next_values: the value of the state each step reached (see :func:`compute_gae`).
        variants: the variant seed of each environment at the step (the agent's per-variant
            adapters read it; tasks and variants change when episodes are resampled).
    """

    obs: Tensor
    actions: Tensor
    logprobs: Tensor
    values: Tensor
    rewards: Tensor
    terminated: Tensor
    done: Tensor
    next_values: Tensor
    variants: Tensor


@dataclass
class EpisodeStats:
    """Sums over the episodes that ended during a rollout (tensors, to avoid syncs per step)."""

    count: Tensor
    return_sum: Tensor
    success_sum: Tensor
    length_sum: Tensor

    @classmethod
    def zeros(cls, device: torch.device | str = "cpu") -> EpisodeStats:
        z = torch.zeros((), dtype=torch.float64, device=device)
        return cls(z.clone(), z.clone(), z.clone(), z.clone())

    def add(self, done: Tensor, info: dict[str, Tensor]) -> None:
        d = done.double()
        self.count += d.sum()
        self.return_sum += (info["episode_return"].double() * d).sum()
        self.success_sum += (info["success"].double() * d).sum()
        self.length_sum += (info["episode_length"].double() * d).sum()

    def merge(self, other: EpisodeStats) -> None:
        """Add another family's sums to these."""
        for k in ("count", "return_sum", "success_sum", "length_sum"):
            getattr(self, k).add_(getattr(other, k))

    def summary(self) -> dict[str, float]:
        """``episodes`` and, when any ended, mean ``return``, ``success`` and ``length``."""
        n = float(self.count)
        out = {"episodes": n}
        if n > 0:
            out["return"] = float(self.return_sum) / n
            out["success"] = float(self.success_sum) / n
            out["length"] = float(self.length_sum) / n
        return out


@torch.no_grad()
def collect(
    agent: Agent,
    env: TaskEnv,
    family: str,
    obs: Tensor,
    steps: int,
    generator: torch.Generator,
    stats: EpisodeStats,
) -> tuple[Rollout, Tensor]:
    """Run the agent's stochastic policy for ``steps`` steps in every environment of ``env``.

    Args:
        agent: a feed-forward agent.
        env: the family's TaskEnv, created with ``final_obs=True``.
        family: the family name (routes the agent's encoder and adapter).
        obs: (B, ...) the current observations.
        steps: T.
        generator: draws the actions.
        stats: accumulates the episodes that end.

    Returns:
        the rollout and the observations after its last step.
    """
    head = agent.head
    buf: dict[str, list[Tensor]] = {k: [] for k in Rollout.__dataclass_fields__}
    for _ in range(steps):
        variants = env.variant_ids()
        pd, value = agent(obs, family, variants=variants)
        action = head.sample(pd, generator)
        next_obs, reward, terminated, truncated, info = env.step(action)
        done = terminated | truncated
        buf["obs"].append(obs)
        buf["variants"].append(variants)
        buf["actions"].append(action)
        buf["logprobs"].append(head.log_prob(pd, action))
        buf["values"].append(value)
        buf["rewards"].append(reward)
        buf["terminated"].append(terminated)
        buf["done"].append(done)
        final_value = torch.zeros_like(value)
        if "final_obs" in info and bool(truncated.any()):
            # V(last observation) for truncated episodes; computed for the whole batch to keep
            # shapes fixed, used only where truncated
            final_value = agent(info["final_obs"], family, variants=variants)[1]
        buf["next_values"].append(torch.where(truncated, final_value, 0.0))
        stats.add(done, info)
        obs = next_obs
    last_value = agent(obs, family, variants=env.variant_ids())[1]
    out = {k: torch.stack(v) for k, v in buf.items()}
    # next_values: V(s_{t+1}) while the episode continues, V(final obs) where truncated
    following = torch.cat((out["values"][1:], last_value[None]))
    out["next_values"] = torch.where(out["done"], out["next_values"], following)
    return Rollout(**out), obs
