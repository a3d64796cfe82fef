"""The paired-fit learners: align a new modality's latent with a known one's, policy frozen.

Both play k episodes in the target modality with the agent's stochastic policy (each action a
uniformly random one with probability ``align.explore``), render every visited state in a
known (source) modality too, and fit what reads the target (its adapter, and its encoder where
:func:`metaxm.align.fewshot.fit_subset` says so) so that the target's latents meet the
source's; the policy above the latent is never trained.

* :class:`Align`: a hand-set fit (``align.fit_*``: Adam steps held near the start).
* :class:`MetaFit`: the meta-learned fit of a ``metafit`` run (:mod:`metaxm.align.metafit`):
  from the learned start, at the learned per-parameter rates. A family the meta-training never
  saw has no learned start; it gets :class:`Align`'s fit on the same agent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from metaxm.learners.base import Learner
from metaxm.learners.policy import AdaptedPolicy

if TYPE_CHECKING:
    import torch

    from metaxm.align.metafit import MetaFit as LearnedFit
    from metaxm.align.pairs import PairedBatch
    from metaxm.envs.task_env import TaskEnv
    from metaxm.nn.agent import Agent
    from metaxm.spec import Spec

Params = dict[str, "torch.Tensor"]


class Align(Learner):
    """Few-shot alignment: ``adapt`` plays ``episodes / env.num_envs`` rounds (one episode in
    every environment each), pairs every visited state with its render in the source modality
    (:func:`metaxm.align.fewshot.default_source`), and fits the target's adapter (and encoder)
    to them.

    Args:
        agent: a feed-forward agent.
        spec: gives the ``align`` settings, the source modality and which families are new.
    """

    name = "align"
    algos = ("ppo", "maml", "metafit")
    data = ("observations", "paired")

    def adapt(
        self, env: TaskEnv, episodes: int, seed: int = 0, fit_seed: int | None = None
    ) -> AdaptedPolicy:
        """The policy after fitting to the pairs of ``episodes`` episodes in ``env``.

        Args:
            env: environments of one modality of the spec's world.
            episodes: k, a multiple of ``env.num_envs`` (0: the agent as it is).
            seed: seeds the actions and renders of the pairs.
            fit_seed: seeds the fit (its minibatches); default ``seed``.
        """
        family, variant = self.target(env)
        rounds = self.rounds(env, episodes)
        policy = AdaptedPolicy(self.agent, self.spec, family, variant, learner=self.name)
        if rounds > 0:
            pairs = self.pairs(env, rounds, seed)
            self.fit_into(policy, pairs, seed if fit_seed is None else fit_seed)
            policy.episodes, policy.paired_steps = rounds * env.num_envs, pairs.batch_size
        return policy

    def fit_into(self, policy: AdaptedPolicy, pairs: PairedBatch, seed: int) -> None:
        """Fit to ``pairs`` and set what the fit gives on ``policy``: here its parameters."""
        policy.params = self.fit(pairs, seed)

    def pairs(self, env: TaskEnv, rounds: int, seed: int) -> PairedBatch:
        """Every state the agent's stochastic policy (with ``align.explore``) visits in
        ``rounds`` rounds of ``env``, rendered in the target modality and in the source
        modality (actions drawn from ``seed``, which also draws the renders)."""
        from metaxm.align.fewshot import default_source
        from metaxm.align.pairs import concat_scenes, render_pairs
        from metaxm.evaluate.episodes import visited_scenes

        family, variant = env.family.name, int(env.variants[0])
        gen = self.generator(env, seed)
        explore = self.spec.align.explore
        scenes = [visited_scenes(self.agent, env, family, gen, explore) for _ in range(rounds)]
        scene = scenes[0] if rounds == 1 else concat_scenes(scenes)
        target = (family, variant)
        return render_pairs(scene, [target, default_source(self.spec)], env.world.scene_info, gen)

    def fit(self, pairs: PairedBatch, seed: int) -> Params:
        """The fitted parameters for the target view (view 0) of ``pairs``."""
        from metaxm.align.fewshot import default_source, fit_adapter, fit_subset, source_params

        family = pairs.families[0]
        own = source_params(self.agent, default_source(self.spec))
        subset = fit_subset(self.spec, family)
        return fit_adapter(self.agent, pairs, self.spec.align, subset, seed, own).params


class MetaFit(Align):
    """The meta-learned paired fit of a ``metafit`` run, on :class:`Align`'s pairs.

    Args:
        agent: the metafit run's agent.
        spec: the evaluation spec (the source modality, the hand-set fit's settings).
        learned: the learned start and rates per family (:class:`metaxm.align.metafit.MetaFit`).
    """

    name = "metafit"
    algos = ("metafit",)

    def __init__(self, agent: Agent, spec: Spec, learned: LearnedFit) -> None:
        super().__init__(agent, spec)
        self.learned = learned

    @classmethod
    def from_trained(cls, agent: Agent, spec: Spec, learned: dict[str, Any]) -> MetaFit:
        from metaxm.align.metafit import MetaFit as LearnedFit

        if "metafit" not in learned:
            raise ValueError("this checkpoint holds no meta-learned fit (algo: metafit)")
        return cls(agent, spec, LearnedFit.from_state(learned["metafit"], spec.align))

    def fit(self, pairs: PairedBatch, seed: int) -> Params:
        """The learned fit where the family has a learned start, else :class:`Align`'s."""
        from metaxm.align.fewshot import default_source, source_params

        if pairs.families[0] not in self.learned.init:
            return super().fit(pairs, seed)
        own = source_params(self.agent, default_source(self.spec))
        return self.learned.fit(self.agent, pairs, own)
