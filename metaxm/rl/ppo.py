"""Proximal Policy Optimization with a clipped surrogate (Schulman et al. 2017, arXiv:1707.06347).

The update follows the paper's Algorithm 1 with the implementation details of the reference
code as catalogued by Huang et al. (2022, "The 37 Implementation Details of PPO"): GAE
advantages, minibatch epochs over a shuffled rollout, per-minibatch advantage normalisation,
a clipped value loss, an entropy bonus, global gradient-norm clipping, Adam with eps 1e-5 and a
linearly annealed learning rate.

Departures from the paper:

* Several modality families train at once (the ``finetune`` baseline pre-trains on all of a
  spec's training families). Their observations have different shapes, so each family keeps
  its own rollout; a minibatch takes the same share of every family's rollout, advantages are
  normalised within each family, and the losses of the families are *summed* before one
  optimizer step. With one family this is plain PPO.
* Truncated episodes are bootstrapped from their last observation (see :mod:`metaxm.rl.gae`).
* A NaN or inf loss raises :class:`~metaxm.errors.DivergenceError` before the optimizer step,
  so the parameters are never overwritten by a diverged update.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor

from metaxm.config.ppo import PPOConfig
from metaxm.errors import DivergenceError
from metaxm.nn.agent import Agent
from metaxm.nn.distributions import ActionHead
from metaxm.rl.rollout import Rollout
from metaxm.run import distributed


@dataclass
class Batch:
    """One family's flattened rollout, (N, ...) with N = T * B."""

    obs: Tensor
    actions: Tensor
    logprobs: Tensor
    values: Tensor
    advantages: Tensor
    returns: Tensor
    variants: Tensor | None = None

    @classmethod
    def from_rollout(cls, rollout: Rollout, advantages: Tensor, returns: Tensor) -> Batch:
        return cls(
            obs=rollout.obs.flatten(0, 1),
            actions=rollout.actions.flatten(0, 1),
            logprobs=rollout.logprobs.flatten(0, 1),
            values=rollout.values.flatten(0, 1),
            advantages=advantages.flatten(),
            returns=returns.flatten(),
            variants=rollout.variants.flatten(0, 1),
        )

    def __len__(self) -> int:
        return self.advantages.shape[0]

    def index(self, idx: Tensor) -> Batch:
        return Batch(
            *(
                None if (v := getattr(self, k)) is None else v[idx]
                for k in self.__dataclass_fields__
            )
        )


def ppo_loss(
    agent: Agent, family: str, mb: Batch, config: PPOConfig
) -> tuple[Tensor, dict[str, Tensor]]:
    """The clipped PPO objective on one family's minibatch (to be minimised).

    Returns:
        the loss and detached diagnostics (see :func:`ppo_objective`).
    """
    pd, value = agent(mb.obs, family, variants=mb.variants)
    return ppo_objective(
        agent.head, pd, value, mb.actions, mb.logprobs, mb.values, mb.advantages, mb.returns,
        config,
    )  # fmt: skip


def ppo_objective(
    head: ActionHead,
    pd: Tensor,
    value: Tensor,
    actions: Tensor,
    old_logprobs: Tensor,
    old_values: Tensor,
    advantages: Tensor,
    returns: Tensor,
    config: PPOConfig,
) -> tuple[Tensor, dict[str, Tensor]]:
    """The clipped PPO loss from the current policy's ``pd`` and ``value`` on N samples.

    Shared by the feed-forward :func:`ppo_loss` and recurrent losses that compute ``pd`` and
    ``value`` by replaying sequences (:mod:`metaxm.meta.rl2`).

    Returns:
        the loss and detached diagnostics: ``policy_loss``, ``value_loss``, ``entropy``,
        ``approx_kl`` (the low-variance estimator of Schulman's blog, "Approximating KL
        divergence") and ``clipfrac``.
    """
    logp = head.log_prob(pd, actions)
    entropy = head.entropy(pd).mean()
    log_ratio = logp - old_logprobs
    ratio = log_ratio.exp()
    adv = advantages
    if config.norm_adv:
        adv = (adv - adv.mean()) / (adv.std(unbiased=False) + 1e-8)
    # the paper's L^CLIP (eq. 7), negated
    pg_loss = torch.max(
        -adv * ratio, -adv * ratio.clamp(1.0 - config.clip_coef, 1.0 + config.clip_coef)
    ).mean()
    v_err = (value - returns).pow(2)
    if config.clip_vloss:
        clipped = old_values + (value - old_values).clamp(-config.clip_coef, config.clip_coef)
        v_err = torch.max(v_err, (clipped - returns).pow(2))
    v_loss = 0.5 * v_err.mean()
    loss = pg_loss - config.ent_coef * entropy + config.vf_coef * v_loss
    with torch.no_grad():
        stats = {
            "policy_loss": pg_loss.detach(),
            "value_loss": v_loss.detach(),
            "entropy": entropy.detach(),
            "approx_kl": ((ratio - 1.0) - log_ratio).mean(),
            "clipfrac": ((ratio - 1.0).abs() > config.clip_coef).float().mean(),
        }
    return loss, stats


class Minibatchable(Protocol):
    """What :func:`ppo_update` shuffles: N rows (steps, or whole sequences) and their index."""

    advantages: Tensor

    def __len__(self) -> int: ...

    def index(self, idx: Tensor) -> Any: ...


LossFn = Callable[[Agent, str, Any, PPOConfig], tuple[Tensor, dict[str, Tensor]]]
"""``loss_fn(agent, family, minibatch, config) -> (loss, diagnostics)``, like :func:`ppo_loss`."""


def ppo_update(
    agent: Agent,
    optimizer: torch.optim.Optimizer,
    batches: Mapping[str, Minibatchable],
    config: PPOConfig,
    generator: torch.Generator,
    where: str = "",
    loss_fn: LossFn = ppo_loss,
    families: Sequence[str] | None = None,
) -> dict[str, float]:
    """Minibatch epochs of PPO over every family's batch (losses summed over families).

    Args:
        agent: the agent being trained.
        optimizer: its optimizer (its learning rate is set by the caller).
        batches: ``{family: Batch}``, all of the same length N (a recurrent learner passes
            batches whose rows are whole sequences, and its own ``loss_fn``).
        config: the hyper-parameters.
        generator: shuffles the minibatches (CPU).
        where: names the update in a divergence message (e.g. ``"update 12 (step 98304)"``).
        loss_fn: the loss of one family's minibatch (default :func:`ppo_loss`).
        families: every training family, in order, when ``batches`` holds only this rank's
            share under torchrun (:mod:`metaxm.run.distributed`): the minibatch permutations
            are drawn for all of them, so the generator stays in step on every rank, and the
            gradients and diagnostics are summed over the ranks before clipping. None: the
            families of ``batches``.

    Returns:
        the diagnostics averaged over minibatches (and summed over families for the losses).

    Raises:
        DivergenceError: a loss is NaN or inf; no parameter has been changed by that minibatch.
    """
    n = len(next(iter(batches.values())))
    mb_size = max(n // config.num_minibatches, 1)
    totals: dict[str, float] = {}
    count = 0
    params = [p for p in agent.parameters() if p.requires_grad]
    order = list(batches) if families is None else list(families)
    for _ in range(config.update_epochs):
        perms = {f: torch.randperm(n, generator=generator) for f in order}
        kl_sum, kl_count = 0.0, 0
        for start in range(0, n - mb_size + 1, mb_size):
            loss: Tensor | float = 0.0
            mb_stats: dict[str, Tensor] = {}
            for family, batch in batches.items():
                idx = perms[family][start : start + mb_size].to(batch.advantages.device)
                f_loss, f_stats = loss_fn(agent, family, batch.index(idx), config)
                loss = loss + f_loss
                for k, v in f_stats.items():
                    mb_stats[k] = mb_stats.get(k, 0.0) + v / (1 if "loss" in k else len(order))
            values = distributed.all_reduce_sum({k: float(v) for k, v in mb_stats.items()})
            _check_finite(values, where)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            distributed.all_reduce_gradients(params)
            grad_norm = torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
            values["grad_norm"] = float(grad_norm)
            _check_finite({"grad_norm": values["grad_norm"]}, where)
            optimizer.step()
            for k, v in values.items():
                totals[k] = totals.get(k, 0.0) + v
            count += 1
            kl_sum += values["approx_kl"]
            kl_count += 1
        if config.target_kl is not None and kl_sum / kl_count > config.target_kl:
            break
    return {k: v / count for k, v in totals.items()}


def _check_finite(values: dict[str, float], where: str) -> None:
    for k, v in values.items():
        if v != v or v in (float("inf"), float("-inf")):
            raise DivergenceError(f"{where or 'PPO update'}: {k} is {v}; stopping training")
