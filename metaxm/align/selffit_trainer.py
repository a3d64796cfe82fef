"""SelfFitTrainer: meta-training the reward-free fit as a run-loop trainer (``algo: selffit``).

The run is a ``metafit`` run (:mod:`metaxm.align.metafit_trainer`: the same source agent from
``train.init_from``, never changed; the same fresh variants, ``align.meta_*`` settings,
counters and exact resume) with another task (:mod:`metaxm.align.selffit`): the support is k
episodes of the variant's observations and the agent's actions only, collected as the
``selffit`` learner collects them; the inner loop is inverse dynamics through the latent; the
outer loss is the paired fit loss on the query's renders plus the inverse-dynamics head's loss
on the query's source latents. Besides theta_0 and alpha it learns the head.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from metaxm.align.fewshot import collect_paired_steps
from metaxm.align.metafit import pair_loss
from metaxm.align.metafit_trainer import MetaFitTrainer
from metaxm.align.selffit import (
    InverseDynamics,
    SelfFit,
    collect_transitions,
    inner_selffit,
    inverse_loss,
)
from metaxm.build import make_env
from metaxm.errors import ConfigError
from metaxm.rl.trainer import derive_seed

if TYPE_CHECKING:
    from metaxm.spec import Spec


class SelfFitTrainer(MetaFitTrainer):
    """Meta-learns :class:`~metaxm.align.selffit.SelfFit` over fresh variants.

    Args:
        spec: the task spec (``align`` meta settings, ``modalities.train``, ``world``).

    Attributes:
        agent: the source agent (loaded by the run loop from ``train.init_from``; frozen).
        metafit: the learned :class:`SelfFit` (start, rates and head).
    """

    key = "selffit"

    def __init__(self, spec: Spec) -> None:
        super().__init__(spec)
        if not hasattr(self.agent.head, "n"):
            raise ConfigError(
                "algo: selffit predicts the agent's actions from its latents (inverse "
                "dynamics) and needs a discrete action space"
            )
        with torch.random.fork_rng(devices=[]):  # PyTorch's default init, from the run's seed
            torch.manual_seed(derive_seed(spec.seed, "selffit-head"))
            self.head = InverseDynamics(spec.agent.latent_dim, spec.agent.hidden, self.agent.head.n)
        self.head.to(self.device).requires_grad_(False)  # its values live in the learned fit

    def _fresh(self) -> SelfFit:
        head = {k: v.detach().clone() for k, v in self.head.named_parameters()}
        return SelfFit(*self._fresh_start(), head, self.config)

    def _restore(self, state: dict[str, Any]) -> SelfFit:
        return SelfFit.from_state(state, self.config, self.device)

    def task(self, family: str, variant: int, k: int, seed: int) -> tuple[Tensor, float, int]:
        """Support: ``k`` episodes' observations and actions; query: paired renders."""
        fit, cfg = self.metafit, self.config
        assert isinstance(fit, SelfFit)
        env = make_env(
            self.spec, family, variant, num_envs=k, seed=seed, device=self.device,
            resample_tasks=True,
        )  # fmt: skip
        g = torch.Generator(self.device).manual_seed(seed + 1)
        support = collect_transitions(self.agent, env, family, g, cfg.explore)
        query = collect_paired_steps(
            self.agent, self.spec, (family, variant), source=self.source, seed=seed + 2,
            episodes=cfg.meta_query_episodes,
        )  # fmt: skip
        self.episodes += support.episodes + query.episodes
        z_q = self._source_latents(query.batch.obs[1])
        params = inner_selffit(
            self.agent, self.head, fit.head, fit.init[family], fit.lrs[family], support, cfg,
            create_graph=not cfg.meta_first_order,
        )  # fmt: skip
        grounding = inverse_loss(self.head, fit.head, z_q, query.actions, *query.transitions)
        loss = pair_loss(self.agent, family, params, query.batch, z_q, cfg) + grounding
        with torch.no_grad():  # the same loss at the learned start, for the metrics
            start = pair_loss(self.agent, family, fit.init[family], query.batch, z_q, cfg)
        return loss, float(start + grounding.detach()), support.obs.shape[0] + query.steps
