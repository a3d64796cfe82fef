"""The alignment loss as an auxiliary objective of PPO, MAML and RL^2 training.

:class:`AuxAlignment` bundles what a trainer needs: a paired sampler over the spec's training
variants (its own seeded generators), the :class:`~metaxm.align.losses.AlignmentLoss` of the
``align`` section, and the weight. Two ways to use it:

* add :meth:`AuxAlignment.loss` to the trainer's own loss before its backward (MAML's outer
  loss, RL^2's PPO loss)::

      aux = AuxAlignment.from_spec(spec, agent, seed=derive_seed(spec.seed, "align"))
      loss = outer_loss + aux.loss(agent)[0]     # already multiplied by align.weight

* or take a separate gradient step after the trainer's update with :meth:`AuxAlignment.step`
  (PPO: its update is a loop of minibatch steps inside :func:`~metaxm.rl.ppo.ppo_update`).
  The step uses the trainer's optimizer for the agent's parameters, so ``weight`` scales the
  alignment gradient against the RL gradients in the same Adam moments, as an auxiliary phase
  (Cobbe et al. 2021, "Phasic Policy Gradient", arXiv:2009.04416, runs its auxiliary objective
  in separate steps too).

:func:`prepare_alignment` is the one call a trainer makes at construction: it returns the
:class:`AuxAlignment` when ``align.weight`` > 0 (None otherwise, so a trainer with the default
spec runs exactly as without alignment). Starting from a pretraining run (``align.init_from``)
is the run loop's job, for every trainer alike (:func:`metaxm.run.init.initialise_agent`).

The loss module's own parameters (a learned temperature, the VAE's decoders) get their own
Adam at ``align.lr``; :meth:`state_dict` holds them, that optimizer and the sampler's
generators, so a resumed run continues exactly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from metaxm.align.losses import AlignmentLoss
from metaxm.align.pairs import PairedSampler
from metaxm.config.align import AlignConfig
from metaxm.nn.agent import Agent

if TYPE_CHECKING:
    from metaxm.spec import Spec


class AuxAlignment:
    """Weighted alignment loss on fresh paired batches of the training modalities.

    Args:
        config: the ``align`` section.
        sampler: draws the paired batches.
        agent: the agent being trained (its families size the VAE).
        seed: seeds the loss module.
    """

    def __init__(
        self, config: AlignConfig, sampler: PairedSampler, agent: Agent, seed: int = 0
    ) -> None:
        self.config = config
        self.weight = config.weight
        self.sampler = sampler
        device = next(agent.parameters()).device
        self.module = AlignmentLoss(config, agent, seed=seed).to(device)
        own = [p for p in self.module.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(own, lr=config.lr) if own else None

    @classmethod
    def from_spec(cls, spec: Spec, agent: Agent, seed: int = 0) -> AuxAlignment:
        """Over the spec's training variants, with the ``align`` section's settings."""
        return cls(spec.align, PairedSampler.from_spec(spec, seed=seed), agent, seed)

    def loss(self, agent: Agent) -> tuple[Tensor, dict[str, float]]:
        """``weight * loss`` on a fresh paired batch, and the unweighted diagnostics."""
        loss, stats = self.module(agent, self.sampler.sample())
        return self.weight * loss, {k: float(v) for k, v in stats.items()}

    def step(
        self, agent: Agent, optimizer: torch.optim.Optimizer, max_grad_norm: float | None = None
    ) -> dict[str, float]:
        """One gradient step of ``weight * loss`` on the agent (with the trainer's optimizer)
        and on the loss module's own parameters; returns the diagnostics."""
        loss, stats = self.loss(agent)
        optimizer.zero_grad(set_to_none=True)
        if self.optimizer is not None:
            self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        clip = self.config.max_grad_norm if max_grad_norm is None else max_grad_norm
        torch.nn.utils.clip_grad_norm_([p for p in agent.parameters() if p.requires_grad], clip)
        optimizer.step()
        if self.optimizer is not None:
            self.optimizer.step()
        return stats

    def state_dict(self) -> dict[str, Any]:
        return {
            "module": self.module.state_dict(),
            "optimizer": None if self.optimizer is None else self.optimizer.state_dict(),
            "sampler": self.sampler.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state["module"])
        if self.optimizer is not None and state["optimizer"] is not None:
            self.optimizer.load_state_dict(state["optimizer"])
        self.sampler.load_state_dict(state["sampler"])


def prepare_alignment(spec: Spec, agent: Agent, seed: int = 0) -> AuxAlignment | None:
    """The auxiliary loss if ``align.weight`` is > 0 (see the module docstring). The run loop,
    not the trainer, applies ``align.init_from`` (:func:`metaxm.run.init.initialise_agent`)."""
    if spec.align.weight <= 0:
        return None
    return AuxAlignment.from_spec(spec, agent, seed)
