"""The MAML learner: policy-gradient steps from a (meta-learned) initialisation."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from torch import Tensor

from metaxm.learners.base import Learner
from metaxm.learners.policy import AdaptedPolicy

if TYPE_CHECKING:
    from metaxm.config.maml import MAMLConfig
    from metaxm.envs.task_env import TaskEnv
    from metaxm.nn.agent import Agent
    from metaxm.spec import Spec


class MAML(Learner):
    """``maml.inner_steps`` policy-gradient steps (:mod:`metaxm.meta.maml`), each on one round
    of fresh episodes (one in every environment of ``env``) played with the parameters adapted
    so far; rounds beyond ``inner_steps`` are not played. It adapts ``maml.adapt`` (the adapter
    by default; a family the agent was never trained on adapts its encoder too) at the inner
    rate, or at the per-parameter rates Meta-SGD learned.

    Any feed-forward agent can be adapted so; a MAML run's agent was meta-trained for it.

    Args:
        agent: a feed-forward agent.
        spec: the evaluation spec (which families are new).
        config: the MAML settings (default ``spec.maml``; a MAML run's own).
        inner_lrs: the learned Meta-SGD rates, ``{parameter name: rate}``.
    """

    name = "maml"
    algos = ("maml", "ppo")
    data = ("observations", "rewards")

    def __init__(
        self,
        agent: Agent,
        spec: Spec,
        config: MAMLConfig | None = None,
        inner_lrs: Mapping[str, Tensor] | None = None,
    ) -> None:
        super().__init__(agent, spec)
        self.config = spec.maml if config is None else config
        self.inner_lrs = None if inner_lrs is None else dict(inner_lrs)

    @classmethod
    def from_trained(cls, agent: Agent, spec: Spec, learned: dict[str, Any]) -> MAML:
        return cls(agent, spec, spec.maml, learned.get("inner_lrs"))

    def config_for(self, family: str) -> MAMLConfig:
        """The settings for ``family``: a family never trained on adapts its encoder too."""
        cfg = self.config
        if family not in self.spec.modalities.train and cfg.adapt == "adapter":
            cfg = dataclasses.replace(cfg, adapt="adapter+encoder")
        return cfg

    def adapt(self, env: TaskEnv, episodes: int, seed: int = 0) -> AdaptedPolicy:  # noqa: D102
        from metaxm.meta.maml import adapt_in_env

        family, variant = self.target(env)
        cfg = self.config_for(family)
        steps = min(cfg.inner_steps, self.rounds(env, episodes))
        params = None
        if steps > 0:
            gen = self.generator(env, seed)
            adapted = adapt_in_env(self.agent, env, family, 1, cfg, gen, steps, self.inner_lrs)
            params = {n: v[0] for n, v in adapted.params.items()}
        return AdaptedPolicy(
            self.agent, self.spec, family, variant, params, steps * env.num_envs, None, self.name
        )
