"""The ``translate`` learner: a translator from the new modality into the source modality.

It plays and pairs k episodes exactly as :class:`~metaxm.learners.align.Align` does (the same
episodes, the same source renders, for the same seed), then fits a small translator from the
target's observations to the source's (:mod:`metaxm.align.translate`). The adapted policy
reads the translation as the source modality: the source family's encoder and the source
variant's own adapter, then the frozen policy. No weight of the agent changes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from metaxm.errors import ConfigError
from metaxm.learners.align import Align

if TYPE_CHECKING:
    import gymnasium as gym
    import torch

    from metaxm.align.pairs import PairedBatch
    from metaxm.align.translation_context import TranslationContext
    from metaxm.envs.task_env import TaskEnv
    from metaxm.learners.policy import AdaptedPolicy
    from metaxm.nn.agent import Agent
    from metaxm.spec import Spec


class Translate(Align):
    """Few-shot translation: :class:`Align`'s pairs, a translator fitted to them, the agent
    reading the translation as the source modality (see the module docstring).

    Args:
        agent: a feed-forward agent.
        spec: gives the ``align.translate_*`` settings and the source modality, which must be
            a vector family.
    """

    name = "translate"
    algos = ("ppo", "maml")
    data = ("observations", "paired")

    def __init__(self, agent: Agent, spec: Spec) -> None:
        super().__init__(agent, spec)
        self._contexts: dict[str, TranslationContext] = {}

    def context(self, family: str) -> TranslationContext:
        """What a translator of ``family`` may know besides the pairs (drawn once, from the
        spec's seed: :func:`~metaxm.align.translation_context.translation_context`)."""
        from metaxm.align.translation_context import translation_context

        if family not in self._contexts:
            self._contexts[family] = translation_context(self.spec, family, self.spec.seed)
        return self._contexts[family]

    def target(self, env: TaskEnv) -> tuple[str, int]:
        """:meth:`Align.target`, and refused before any episode is played where there is no
        translating (:func:`metaxm.align.translate.cannot_translate`)."""
        from metaxm.align.translate import cannot_translate

        why = cannot_translate(self.agent, self.spec)
        if why is not None:
            raise ConfigError(f"translate cannot adapt this agent: {why}")
        return super().target(env)

    @classmethod
    def blank_translator(
        cls, family: str, space: gym.Space, width: int, spec: Spec
    ) -> torch.nn.Module:
        """The translator :meth:`fit_into` gives ``family``'s policies, unfitted: what a saved
        policy's translator state loads into (:meth:`AdaptedPolicy.load`)."""
        from metaxm.align.translate import make_translator

        return make_translator(family, space, width, spec.align)

    def fit_into(self, policy: AdaptedPolicy, pairs: PairedBatch, seed: int) -> None:
        """Fit a translator from view 0 of ``pairs`` (the target) to view 1 (the source) and
        give it to ``policy``, with the source variant's adapter as its parameters."""
        from metaxm.align.fewshot import default_source, source_params
        from metaxm.align.translate import fit_translator, make_translator, source_width

        family = pairs.families[0]
        source = default_source(self.spec)
        spaces = self.agent.observation_spaces
        width = source_width(source[0], spaces[source[0]])
        translator = make_translator(family, spaces[family], width, self.spec.align, seed)
        translator.to(pairs.obs[0].device)
        context = self.context(family) if getattr(translator, "uses_context", False) else None
        fit_translator(translator, pairs.obs[0], pairs.obs[1], self.spec.align, seed, context)
        policy.translator, policy.reads = translator, source[0]
        policy.params = source_params(self.agent, source)
