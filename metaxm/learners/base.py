"""The learner API: one shape for every way metaxm adapts a trained agent to a new modality.

A :class:`Learner` wraps a trained agent (from a run or a checkpoint) and whatever it learned
about adapting (MAML's inner rates, the meta-learned fit's start). ``adapt(env, episodes=k)``
spends k episodes of experience in ``env``, one modality's environments, and returns an
:class:`~metaxm.learners.policy.AdaptedPolicy` that can act and be saved::

    import metaxm

    learner = metaxm.MAML.from_run("runs/main/maml")
    env = metaxm.make_env(learner.spec, "vector", 1001, num_envs=8, seed=1)
    policy = learner.adapt(env, episodes=8)
    action = policy.act(env.reset())
    policy.save("vector-1001.pt")

The k episodes are played in ``env``, ``env.num_envs`` at a time (one episode in each of its
environments per round), so ``episodes`` must be a multiple of ``env.num_envs``; each
learner's docstring says how it spends the rounds. A learner that cannot adapt an agent (a
recurrent agent given to MAML, a feed-forward one to RL^2) says why in one line.

The evaluator's strategies (:mod:`metaxm.evaluate.strategies`) are thin wrappers around these.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import torch

from metaxm.errors import CheckpointError

if TYPE_CHECKING:
    from metaxm.envs.task_env import TaskEnv
    from metaxm.learners.policy import AdaptedPolicy
    from metaxm.nn.agent import Agent
    from metaxm.spec import Spec

DataNeed = Literal["observations", "rewards", "paired", "ends"]
"""What a learner consumes of the k episodes: target-modality ``observations``, ``rewards``,
or ``paired`` steps (the source modality's render of every target step)."""


class Learner(ABC):
    """Adapts a trained agent to one modality from k episodes; see the module docstring.

    Args:
        agent: the trained agent; :meth:`adapt` never changes its weights.
        spec: the spec whose settings govern adaptation (world, ``align``, ``maml``).
    """

    name: ClassVar[str]
    algos: ClassVar[tuple[str, ...]]
    """The ``algo`` of the runs whose agents it adapts."""
    data: ClassVar[tuple[DataNeed, ...]]
    recurrent: ClassVar[bool] = False
    """It needs a recurrent agent (``agent.core: gru``); the others need a feed-forward one."""

    def __init__(self, agent: Agent, spec: Spec) -> None:
        if agent.recurrent != self.recurrent:
            have = "recurrent (agent.core: gru)" if agent.recurrent else "feed-forward"
            need = (
                "a recurrent agent (agent.core: gru; algo: rl2)"
                if self.recurrent
                else ("a feed-forward agent (agent.core: mlp)")
            )
            raise ValueError(f"{self.name} adapts {need}; this agent is {have}")
        self.agent = agent
        self.spec = spec

    @classmethod
    def from_run(cls, path: str | Path, device: str | None = None) -> Learner:
        """The learner of the agent a run directory (its newest checkpoint) or checkpoint holds.

        Raises:
            CheckpointError: no usable checkpoint, or one of an ``algo`` this learner does not
                adapt (the message names the learners that do).
        """
        from metaxm.evaluate.loading import load_agent

        agent, spec, algo, learned = load_agent(path, device)
        if algo not in cls.algos:
            raise CheckpointError(
                f"{path}: {cls.name} adapts agents of algo {' or '.join(cls.algos)}; this run's "
                f"algo is {algo}"
            )
        return cls.from_trained(agent, spec, learned)

    @classmethod
    def from_trained(cls, agent: Agent, spec: Spec, learned: dict[str, Any]) -> Learner:
        """The learner of a loaded agent with the trainer's other learned state ``learned``
        (what :func:`metaxm.evaluate.loading.load_agent` returns beside the agent)."""
        return cls(agent, spec)

    @abstractmethod
    def adapt(self, env: TaskEnv, episodes: int, seed: int = 0) -> AdaptedPolicy:
        """The policy after ``episodes`` episodes of experience in ``env``.

        Args:
            env: environments of one modality (one family and variant) of the spec's world
                (:func:`metaxm.make_env`; not a ``gym.make`` env).
            episodes: k, a multiple of ``env.num_envs`` (0: the agent as it is).
            seed: seeds the adaptation's actions. The env keeps its tasks (``make_env`` draws
                them once), but its episodes' starts and render noise come from its own
                generator, which moves on: a second ``adapt`` on the same env can differ; a
                fresh ``make_env(..., seed=s)`` repeats one exactly.
        """

    # ------------------------------------------------------------------ shared checks
    def target(self, env: TaskEnv) -> tuple[str, int]:
        """``(family, variant)`` of ``env``, checked: a TaskEnv of the agent's world, one
        variant, a family the agent reads, observations of the shape it reads."""
        check_task_env(env, f"{type(self).__name__}.adapt")
        family = env.family.name
        if len(set(env.variants)) != 1:
            raise ValueError(
                f"{self.name} adapts to one modality at a time; env shows {family} variants "
                f"{sorted(set(env.variants))}"
            )
        if family not in self.agent.families:
            raise ValueError(
                f"the agent has no encoder for family {family!r} (it reads "
                f"{', '.join(self.agent.families)}); add one with agent.add_family"
            )
        from metaxm.envs import WORLDS

        trained = WORLDS.get(self.spec.world.name, (None,))[0]
        if trained is not None and not isinstance(env.world, trained):
            raise ValueError(
                f"the agent was trained on the {self.spec.world.name} world; env is a "
                f"{getattr(env.world, 'name', type(env.world).__name__)} world"
            )
        theirs = env.family.observation_space(env.world.scene_info).shape  # no instruction ids
        mine = self.agent.observation_spaces[family].shape
        if theirs != mine:
            raise ValueError(
                f"the agent reads {family} observations of shape {tuple(mine)}; env renders "
                f"{tuple(theirs)} (another world size or layout)"
            )
        return family, int(env.variants[0])

    def rounds(self, env: TaskEnv, episodes: int) -> int:
        """How many rounds of ``env.num_envs`` episodes ``episodes`` makes (checked)."""
        check_episodes(episodes)
        if episodes % env.num_envs:
            raise ValueError(
                f"episodes={episodes} is not a multiple of env.num_envs={env.num_envs}: "
                f"{self.name} plays one episode in every environment per round"
            )
        return episodes // env.num_envs

    def generator(self, env: TaskEnv, seed: int) -> torch.Generator:
        return torch.Generator(env.device).manual_seed(seed)


def check_task_env(env: Any, where: str) -> None:
    """Refuse what is not a metaxm :class:`~metaxm.envs.task_env.TaskEnv` (a ``gym.make`` env,
    whose batch and tensors a learner cannot drive) in one line naming what it got."""
    from metaxm.envs.task_env import TaskEnv

    if not isinstance(env, TaskEnv):
        raise TypeError(
            f"{where} needs a metaxm TaskEnv (metaxm.make_env(spec, family, variant, "
            f"num_envs=...)), not {type(env).__name__}; gym.make's envs are for the gymnasium API"
        )


def check_episodes(episodes: Any) -> None:
    """Refuse a k that is not a whole number of episodes >= 0."""
    import numbers

    if isinstance(episodes, bool) or not isinstance(episodes, numbers.Integral):
        raise TypeError(f"episodes must be an int, got {episodes!r}")
    if episodes < 0:
        raise ValueError(f"episodes must be >= 0, got {episodes}")
