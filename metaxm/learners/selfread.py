"""The ``selfread`` learner: a reward-free, pair-free reading of a new modality.

It plays k episodes in the target modality as :class:`~metaxm.learners.selffit.SelfFit` does
(a random walk with ``align.explore: 1``; where the family's reader needs walls met, as the
projected one does, each episode first walks to a wall along each axis, then sweeps the grid:
:class:`~metaxm.align.wall_walk.WallWalk`) and keeps only the target's observations and the
agent's own actions: no reward is read and no other modality is rendered. How the target
answers each action, against how the scene's features (through the source modality, the
translation context's ``moves``) answer it, is what it reads by; each family's translator does
the reading in its ``start_unpaired``:

* ``vector`` (:func:`~metaxm.align.action_readers.action_readers`): each agent channel's
  source channel and gain; the goal's channels, which never move within an episode, at every
  gain that puts their values on the source's, the signs and the swap left open searched
  within each measured episode, as ``translate``'s readings are
  (:mod:`metaxm.align.reading_search`); with inner walls, each channel that tells a wall,
  named by the move it stops, and no goal where a stopped move leads;
* ``pixels`` (:func:`~metaxm.align.colour_walk.colour_reader`): the colour that moves is the
  agent's, and how it moves gives the image's rotation, flip and tile size, which read the
  goal's colour too;
* ``projected`` (:mod:`~metaxm.align.sensor_walk`): the sensors' answers to the moves give the
  agent's part of the projection, the walls where the agent is, and what is left of each
  episode lies on a lattice of the goals' cells (every lattice it may lie on kept), read up
  to the square's rotations and flips, which are searched within each measured episode; with
  fewer than three goals seen, the agent's cell alone is read, tracked over the episode, and
  the goal swept for, the most likely cell not stood on first
  (:class:`~metaxm.align.sensor_sweep.SweepSearch`, :mod:`~metaxm.align.goal_posterior`);
* ``text`` (:func:`~metaxm.align.word_walk.walk_words`): the place whose word a move changes
  says the feature it moves, and each move chains the word after it to the word before it by
  the move's step, pinned where a wall stopped a move; the words the walk never said are
  searched within each measured episode (:class:`~metaxm.align.word_search.WordSearch`);
* ``audio`` (:func:`~metaxm.align.frame_walk.walk_pitch`): one line reads every frame's pitch
  as its feature's value; how far the agent's frames move per move gives its gain, the walls
  the agent met its origin, and the goal's frames are read by the same line.

A translator with a ``keep_ended`` is then told which of the walk's episodes ended before
their horizon (on their goal, in GridNav): the vector and projected ones use it.

A family whose translator has no ``start_unpaired`` is refused in one line, as is a world that
cannot tell success from features or whose actions are not discrete.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from metaxm.errors import ConfigError
from metaxm.learners.policy import AdaptedPolicy
from metaxm.learners.translate import Translate

if TYPE_CHECKING:
    from metaxm.envs.task_env import TaskEnv
    from metaxm.spec import Spec


def cannot_read(family: str, spec: Spec | None = None) -> str | None:
    """Why ``selfread`` cannot read ``family`` (its translator cannot read from actions) in
    ``spec``'s world (one that cannot tell success from features, or whose actions are not
    discrete), or None."""
    from metaxm.align.translate import TRANSLATORS

    if not callable(getattr(TRANSLATORS.get(family), "start_unpaired", None)):
        readable = sorted(f for f, b in TRANSLATORS.items() if hasattr(b, "start_unpaired"))
        return f"selfread reads the families {', '.join(readable)}, not {family!r}"
    if spec is not None:
        from metaxm.align.fewshot import default_source
        from metaxm.build import make_env

        return world_cannot(make_env(spec, *default_source(spec), num_envs=1), spec.world.name)
    return None


def world_cannot(env: TaskEnv, name: str) -> str | None:
    """Why ``selfread`` cannot read in ``env``'s world (named ``name``): it cannot tell success
    from features, or its actions are not discrete; or None."""
    import gymnasium as gym

    from metaxm.align.reading_set import world_test

    if world_test(env.world) is None or not isinstance(env.action_space, gym.spaces.Discrete):
        return (
            "selfread needs a world that tells success from features (World.reached) and "
            f"discrete actions; {name} does not"
        )
    return None


class SelfRead(Translate):
    """``adapt`` plays ``episodes / env.num_envs`` rounds of a random walk (to the walls first
    where the family's reader needs them met: :class:`~metaxm.align.wall_walk.WallWalk`) and
    reads the target from its observations and the agent's actions alone (see the module
    docstring)."""

    name = "selfread"
    data = ("observations", "ends")  # ends: where its walk episodes ended (the success bit)

    def adapt(self, env: TaskEnv, episodes: int, seed: int = 0) -> AdaptedPolicy:
        """The policy after reading ``episodes`` episodes' observations and actions.

        Raises:
            ConfigError: the family is not one it reads, or the world cannot tell success.
        """
        from metaxm.align.fewshot import default_source, source_params
        from metaxm.align.selffit import Transitions, collect_transitions, record_transitions
        from metaxm.align.translate import make_translator, source_width
        from metaxm.align.wall_walk import WallWalk

        family, variant = self.target(env)
        world = getattr(env.world, "name", type(env.world).__name__)  # the env given
        why = cannot_read(family) or world_cannot(env, world)
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
        context = self.context(family)
        if getattr(translator, "wall_walk", False):  # its reader needs walls met: walk to them
            parts = [record_transitions(env, family, WallWalk(context, env.num_envs, gen).act)
                     for _ in range(rounds)]  # fmt: skip
        else:
            parts = [collect_transitions(self.agent, env, family, gen, 1.0) for _ in range(rounds)]
        data = Transitions.concat(parts)
        translator.to(data.obs.device)
        translator.prepare(context)
        policy.episodes = rounds * env.num_envs
        # False where the walk shows too little (one step onto the goal; a sensor bank before
        # three episodes have met a wall along each axis): nothing is read, and the agent
        # meets the target as it is, as at k = 0 (not through a translation reading 0)
        if not translator.start_unpaired(data.obs, data.actions, data.first, data.second):
            return policy
        keep_ended = getattr(translator, "keep_ended", None)  # the walk's episodes that ended
        if keep_ended is not None and data.ended is not None:
            keep_ended(data.obs, data.actions, data.ended)
        policy.translator, policy.reads = translator.eval(), source[0]
        policy.params = source_params(self.agent, source)
        return policy
