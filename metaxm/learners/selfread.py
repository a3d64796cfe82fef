"""The ``selfread`` learner: a reward-free, pair-free reading of a re-wired vector.

It plays k episodes in the target modality as :class:`~metaxm.learners.selffit.SelfFit` does
(a random walk with ``align.explore: 1``) and keeps only the target's observations and the
agent's own actions: no reward is read and no other modality is rendered. From how each
target channel answers each action, matched against how the source modality's channels answer
them (the translation context's ``moves``, drawn in the agent's own modality), it finds which
target channel reads which source channel and at what gain; the goal's channels, which never
move within an episode, are read at every gain that puts the values they took on values the
source takes (:func:`~metaxm.align.action_readers.action_readers`). What is left open (the
goal's signs, which of its channels is the row) is searched within each measured episode, as
``translate``'s readings are (:mod:`metaxm.align.reading_search`).

It reads only a family whose translator is
:class:`~metaxm.align.reading_search.ReadingSearchTranslator` (``vector``), in a world with
``reached`` (GridNav); elsewhere it is refused in one line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from metaxm.errors import ConfigError
from metaxm.learners.policy import AdaptedPolicy
from metaxm.learners.translate import Translate

if TYPE_CHECKING:
    from metaxm.envs.task_env import TaskEnv


def cannot_read(family: str) -> str | None:
    """Why ``selfread`` cannot read ``family`` (its translator keeps no readings), or None."""
    from metaxm.align.reading_search import ReadingSearchTranslator
    from metaxm.align.translate import TRANSLATORS

    builder = TRANSLATORS.get(family)
    if isinstance(builder, type) and issubclass(builder, ReadingSearchTranslator):
        return None
    return f"selfread reads a re-wired vector (the vector family), not {family!r}"


class SelfRead(Translate):
    """``adapt`` plays ``episodes / env.num_envs`` rounds of a random walk and reads the target
    from its observations and the agent's actions alone (see the module docstring)."""

    name = "selfread"
    data = ("observations",)

    def adapt(self, env: TaskEnv, episodes: int, seed: int = 0) -> AdaptedPolicy:
        """The policy after reading ``episodes`` episodes' observations and actions.

        Raises:
            ConfigError: the family is not one it reads, or the world cannot tell success.
        """
        from metaxm.align.fewshot import default_source, source_params
        from metaxm.align.selffit import Transitions, collect_transitions
        from metaxm.align.translate import make_translator, source_width

        family, variant = self.target(env)
        why = cannot_read(family)
        if why is not None:
            raise ConfigError(why)
        spaces = self.agent.observation_spaces
        source = default_source(self.spec)
        width = source_width(source[0], spaces[source[0]])
        translator = make_translator(family, spaces[family], width, self.spec.align, seed)
        rounds = self.rounds(env, episodes)
        policy = AdaptedPolicy(self.agent, self.spec, family, variant, learner=self.name)
        if rounds == 0:
            return policy
        gen = self.generator(env, seed)
        parts = [collect_transitions(self.agent, env, family, gen, 1.0) for _ in range(rounds)]
        data = Transitions.concat(parts)
        context = self.context(family)
        if context.reached is None or context.moves is None:
            raise ConfigError(
                "selfread needs a world that tells success from features (World.reached) and "
                "discrete actions"
            )
        translator.to(data.obs.device)
        translator.prepare(context)
        # False where the episodes showed nothing to read (one step onto the goal): it reads 0
        translator.start_unpaired(data.obs, data.actions, data.first, data.second)
        policy.translator, policy.reads = translator.eval(), source[0]
        policy.params = source_params(self.agent, source)
        policy.episodes = rounds * env.num_envs
        return policy
