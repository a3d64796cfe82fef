"""The reward-free, pair-free learner: the meta-learned self-supervised fit of a ``selffit`` run.

It plays k episodes in the target modality with the agent's stochastic policy (each action a
uniformly random one with probability ``align.explore``), keeps only what the target gives
(its observations) and the agent's own actions, and adapts the target's encoder and adapter by
inverse dynamics through the latent, from the learned start at the learned rates with the
learned head (:mod:`metaxm.align.selffit`); the policy above the latent is never trained. No
reward is read and no other modality is rendered. A family the meta-training never saw gets a
hand-set fit of the same loss from the agent's own (new) encoder.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from metaxm.learners.base import Learner
from metaxm.learners.policy import AdaptedPolicy

if TYPE_CHECKING:
    from metaxm.align.selffit import SelfFit as LearnedFit
    from metaxm.envs.task_env import TaskEnv
    from metaxm.nn.agent import Agent
    from metaxm.spec import Spec


class SelfFit(Learner):
    """``adapt`` plays ``episodes / env.num_envs`` rounds (one episode in every environment
    each) and fits the target's encoder and adapter to their observations and actions.

    Args:
        agent: the ``selffit`` run's agent (its source agent, feed-forward).
        spec: the evaluation spec.
        learned: the learned start, rates and head (:class:`metaxm.align.selffit.SelfFit`).
    """

    name = "selffit"
    algos = ("selffit",)
    data = ("observations",)

    def __init__(self, agent: Agent, spec: Spec, learned: LearnedFit) -> None:
        super().__init__(agent, spec)
        self.learned = learned

    @classmethod
    def from_trained(cls, agent: Agent, spec: Spec, learned: dict[str, Any]) -> SelfFit:
        from metaxm.align.selffit import SelfFit as LearnedFit

        if "selffit" not in learned:
            raise ValueError("this checkpoint holds no meta-learned fit (algo: selffit)")
        return cls(agent, spec, LearnedFit.from_state(learned["selffit"], spec.align))

    def adapt(self, env: TaskEnv, episodes: int, seed: int = 0) -> AdaptedPolicy:
        """The policy after fitting to the observations and actions of ``episodes`` episodes.

        Args:
            env: environments of one modality of the spec's world.
            episodes: k, a multiple of ``env.num_envs`` (0: the agent as it is).
            seed: seeds the actions.
        """
        from metaxm.align.selffit import Transitions, collect_transitions

        family, variant = self.target(env)
        rounds = self.rounds(env, episodes)
        policy = AdaptedPolicy(self.agent, self.spec, family, variant, learner=self.name)
        if rounds > 0:
            gen = self.generator(env, seed)
            explore = self.spec.align.explore
            parts = [
                collect_transitions(self.agent, env, family, gen, explore) for _ in range(rounds)
            ]
            policy.params = self.learned.fit(self.agent, Transitions.concat(parts))
            policy.episodes = rounds * env.num_envs
        return policy
