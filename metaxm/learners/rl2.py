"""The RL^2 learner: adaptation in context, by the hidden state of a recurrent agent."""

from __future__ import annotations

from typing import TYPE_CHECKING

from metaxm.learners.base import Learner, check_episodes
from metaxm.learners.policy import AdaptedPolicy

if TYPE_CHECKING:
    from metaxm.envs.task_env import TaskEnv
    from metaxm.meta.trial_eval import TrialResult


class RL2(Learner):
    """RL^2 (Duan et al. 2016): no gradient step; the agent's recurrent state, carried across
    the episodes of a trial, is the adaptation.

    Every environment of ``env`` is one trial: ``adapt(env, episodes=k)`` plays k episodes in
    *each* of them (unlike the other learners, whose k episodes are shared out over the
    environments) with the stochastic policy, and returns the policy holding each trial's
    state after its k-th episode, ready for its next episode.
    """

    name = "rl2"
    algos = ("rl2",)
    data = ("observations", "rewards")
    recurrent = True

    def rounds(self, env: TaskEnv, episodes: int) -> int:
        check_episodes(episodes)
        return int(episodes)

    def adapt(self, env: TaskEnv, episodes: int, seed: int = 0) -> AdaptedPolicy:  # noqa: D102
        from metaxm.meta.trial_eval import run_trials
        from metaxm.meta.trials import TrialState

        family, variant = self.target(env)
        k = self.rounds(env, episodes)
        if k == 0:
            carry = TrialState.start(self.agent, env.reset()).state_dict()
        else:
            result = run_trials(self.agent, env, family, k, generator=self.generator(env, seed))
            carry = result.final_state
        keep = ("hidden", "prev_action", "prev_reward", "first")
        return AdaptedPolicy(
            self.agent, self.spec, family, variant, None, k, {n: carry[n] for n in keep},
            self.name,
        )  # fmt: skip

    def trial(
        self,
        family: str,
        variant: int,
        episodes: int,
        num_trials: int,
        seed: int,
        blind: bool = False,
        new_tasks: bool = False,
    ) -> TrialResult:
        """``num_trials`` fresh trials of ``episodes`` episodes in ``family:variant``: column k
        of the result is the episode played after k episodes of experience (the evaluator's
        few-shot curve, :func:`metaxm.meta.trial_eval.run_trial`); ``blind``: the agent sees zeros
        instead of every observation (the control for what it reads); ``new_tasks``: every
        episode after the first on a new task (the control for what it keeps of the task)."""
        from metaxm.meta.trial_eval import run_trial

        return run_trial(
            self.agent, self.spec.world, family, variant,
            episodes=episodes, num_trials=num_trials, seed=seed, blind=blind,
            new_tasks=new_tasks,
        )  # fmt: skip
