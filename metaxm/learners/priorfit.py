"""The closed-form meta-learned paired learner: a ``priorfit`` run's prior, solved on the pairs.

It plays and pairs k episodes exactly as :class:`~metaxm.learners.translate.Translate` does
(the same episodes, the same source renders, for the same seed), solves for the linear map
from the target's observations to the source's that is most probable under the family's
meta-learned Gaussian prior (:mod:`metaxm.align.priorfit`), and reads the translation with the
source's encoder and adapter, then the frozen policy. Unlike ``translate`` it searches nothing
within the measured episode. A family with no prior of its own (never trained on, or an image)
is read under the run's prior for any family (:attr:`~metaxm.align.priorfit.MapPrior.unseen`),
as frames under one shared code where its observation has frames and the pairs prefer that
(:mod:`metaxm.align.frame_code`); token ids, or any family where the run has no such prior
(saved before it was learned), are refused before any episode is played.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from metaxm.errors import ConfigError
from metaxm.learners.translate import Translate

if TYPE_CHECKING:
    import gymnasium as gym

    from metaxm.align.pairs import PairedBatch
    from metaxm.align.priorfit import MapPrior
    from metaxm.envs.task_env import TaskEnv
    from metaxm.learners.policy import AdaptedPolicy
    from metaxm.nn.agent import Agent
    from metaxm.spec import Spec


class PriorFit(Translate):
    """``adapt`` plays k episodes, pairs them with the source's renders and solves the map.

    Args:
        agent: the ``priorfit`` run's agent (its source agent, feed-forward).
        spec: the evaluation spec.
        prior: the learned prior (:class:`metaxm.align.priorfit.MapPrior`).
    """

    name = "priorfit"
    algos = ("priorfit",)
    data = ("observations", "paired")

    def __init__(self, agent: Agent, spec: Spec, prior: MapPrior) -> None:
        super().__init__(agent, spec)
        self.prior = prior

    @classmethod
    def from_trained(cls, agent: Agent, spec: Spec, learned: dict[str, Any]) -> PriorFit:
        from metaxm.align.priorfit import MapPrior

        if "priorfit" not in learned:
            raise ValueError("this checkpoint holds no meta-learned prior (algo: priorfit)")
        return cls(agent, spec, MapPrior.from_state(learned["priorfit"], spec.device))

    def cannot_read(self, family: str) -> str | None:
        """Why ``family`` is not read (no prior for it, or token ids), or None."""
        from metaxm.align.priorfit import flat_readable

        if family in self.prior.mean:
            return None
        if self.prior.unseen is None:
            return (
                f"no meta-learned prior for {family}: the priorfit run learned one per vector "
                f"family it trained on ({', '.join(self.prior.mean)}), and none for others"
            )
        space = self.agent.observation_spaces.get(family)
        if space is None:
            return f"the agent has no observation space for {family}"
        if not flat_readable(space):
            return f"a linear map does not read {family}'s observations ({space})"
        return None

    def target(self, env: TaskEnv) -> tuple[str, int]:
        """:meth:`Translate.target`, and refused where the family has no prior."""
        family, variant = super().target(env)
        why = self.cannot_read(family)
        if why is not None:
            raise ConfigError(f"priorfit cannot adapt to {family}:{variant}: {why}")
        return family, variant

    @classmethod
    def blank_translator(
        cls, family: str, space: gym.Space, width: int, spec: Spec
    ) -> torch.nn.Module:
        """A linear map of zeros (:meth:`LinearTranslator.blank`), not the family's own
        translator: what a saved ``priorfit`` policy's map loads into."""
        from metaxm.align.priorfit import LinearTranslator

        return LinearTranslator.blank(space, width)

    def fit_into(self, policy: AdaptedPolicy, pairs: PairedBatch, seed: int) -> None:
        """Solve the map from view 0 of ``pairs`` (the target) to view 1 (the source) under
        the family's prior and give it to ``policy``, with the source variant's adapter."""
        from metaxm.align.fewshot import default_source, source_params
        from metaxm.align.frame_code import frame_shape
        from metaxm.align.priorfit import LinearTranslator, features

        family = pairs.families[0]
        space = self.agent.observation_spaces[family]
        source = default_source(self.spec)
        unsquashed = family in self.prior.unsquashed  # the solve's inputs and the map's alike
        with torch.no_grad():
            x = features(pairs.obs[0], space, unsquashed)
            y = pairs.obs[1].float().flatten(1)
            weight = self.prior.solve(family, x, y, frame_shape(space))
        policy.translator = LinearTranslator(weight, space, unsquashed).to(x.device)
        policy.reads = source[0]
        policy.params = source_params(self.agent, source)
