"""Objects from a spec: the one place that turns the names in a spec into code.

:mod:`metaxm.spec` and :mod:`metaxm.config` are the leaf layer: they hold plain frozen
dataclasses and load no algorithm code. This module is the layer above them, which every
command and trainer builds through:

* :func:`make_env`: a batch of environments of the spec's world seen through one modality
  family (the world, then its :class:`~metaxm.envs.task_env.TaskEnv`);
* :func:`make_agent`: the spec's agent (:func:`metaxm.nn.agent.build_agent`; an RL^2 spec's
  from :func:`metaxm.meta.rl2.build_rl2_agent`);
* :func:`make_trainer`: the trainer of ``spec.algo`` (:data:`TRAINERS`);
* :func:`make_learner`: a learner by name, from a trained run (:data:`metaxm.learners.LEARNERS`).

A new algorithm adds one line to :data:`TRAINERS` (a function that imports its trainer class,
so that building a PPO run never imports MAML); see ``docs/architecture.md``.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch

from metaxm.config import ConfigError
from metaxm.envs import make_world
from metaxm.envs.task_env import TaskEnv

if TYPE_CHECKING:
    from pathlib import Path

    from metaxm.envs.base import TaskParams
    from metaxm.learners import Learner
    from metaxm.modalities.base import Family
    from metaxm.nn.agent import Agent
    from metaxm.run.loop import Trainer
    from metaxm.spec import Spec


def make_env(
    spec: Spec | Any,
    family: str | Family,
    variants: int | Sequence[int] = 0,
    *,
    num_envs: int | None = None,
    seed: int = 0,
    world_seed: int | None = None,
    device: torch.device | str | None = None,
    tasks: TaskParams | None = None,
    **task_env: Any,
) -> TaskEnv:
    """``num_envs`` environments of the spec's world, shown as ``family`` (its ``variants``).

    Args:
        spec: the spec whose world (and device) to build, or a world's config itself (then the
            device defaults to the CPU).
        family: the modality family, by name or as a family object.
        variants: one variant for every environment, or one per environment.
        num_envs: how many; default ``len(variants)`` for a sequence, else 1.
        seed: the seed of the renders (and of the world unless ``world_seed`` is given).
        world_seed: the world's own seed (start states, tasks), when it differs from ``seed``.
        device: where to build them; default ``spec.device``.
        tasks: task parameters to fix (one row per environment); default: drawn from the world.
        **task_env: further :class:`~metaxm.envs.task_env.TaskEnv` options (``final_obs``,
            ``resample_tasks``).
    """
    variants = _check_env_args(spec, variants, num_envs)
    if num_envs is None:
        num_envs = 1 if isinstance(variants, int) else len(variants)
    world = make_world(
        getattr(spec, "world", spec),
        num_envs,
        device=getattr(spec, "device", "cpu") if device is None else device,
        seed=seed if world_seed is None else world_seed,
    )
    if not isinstance(variants, int):
        variants = list(variants)
    return TaskEnv(world, family, variants, tasks=tasks, seed=seed, **task_env)


def _index(value: Any) -> int | None:
    """``value`` as an int where it is one (numpy's and 0-d tensors' too), else None."""
    if isinstance(value, (bool, str, bytes)):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


def _check_env_args(spec: Any, variants: Any, num_envs: Any) -> int | list[int]:
    """:func:`make_env`'s variants as an int or a list of ints, after one-line errors for
    arguments of the wrong kind (a variant given as a string is not split into characters)."""
    if not hasattr(getattr(spec, "world", spec), "name"):
        raise TypeError(
            f"make_env: spec must be a Spec (metaxm.spec.load_spec(path)) or a world config, "
            f"got {type(spec).__name__}"
        )
    one = _index(variants)
    many = [] if one is not None or isinstance(variants, (str, bytes)) else variants
    try:
        ints = [_index(v) for v in many]
    except TypeError:  # not iterable
        ints = [None]
    if one is None and (not ints or None in ints):
        raise TypeError(
            f"make_env: variants must be an int (e.g. 7, for audio:7) or a sequence of ints, "
            f"got {variants!r}"
        )
    if num_envs is not None and _index(num_envs) is None:
        raise TypeError(f"make_env: num_envs must be an int, got {num_envs!r}")
    return one if one is not None else ints  # type: ignore[return-value]


def make_agent(spec: Spec, seed: int | None = None) -> Agent:
    """The spec's agent: an encoder for every family of every split, ``spec.agent``'s
    architecture, weights drawn from ``seed`` (default ``spec.seed``); with ``algo: rl2`` the
    recurrent agent its trainer builds (a GRU core, and the probes ``rl2`` asks for), so a
    saved RL^2 agent's weights load into it."""
    if spec.algo == "rl2":
        from metaxm.meta.rl2 import build_rl2_agent

        return build_rl2_agent(spec, seed)
    from metaxm.nn.agent import build_agent

    return build_agent(spec, seed)


def _ppo() -> type:
    from metaxm.rl.trainer import PPOTrainer

    return PPOTrainer


def _rl2() -> type:
    from metaxm.meta.rl2 import RL2Trainer

    return RL2Trainer


def _maml() -> type:
    from metaxm.meta.maml_trainer import MAMLTrainer

    return MAMLTrainer


def _metafit() -> type:
    from metaxm.align.metafit_trainer import MetaFitTrainer

    return MetaFitTrainer


def _selffit() -> type:
    from metaxm.align.selffit_trainer import SelfFitTrainer

    return SelfFitTrainer


def _priorfit() -> type:
    from metaxm.align.priorfit_trainer import PriorFitTrainer

    return PriorFitTrainer


TRAINERS: dict[str, Callable[[], type]] = {
    "ppo": _ppo,
    "rl2": _rl2,
    "maml": _maml,
    "metafit": _metafit,
    "selffit": _selffit,
    "priorfit": _priorfit,
}
"""``algo`` name -> a function returning its trainer class (imported only when chosen)."""


def make_trainer(spec: Spec) -> Trainer:
    """The trainer of ``spec.algo``, built on ``spec``.

    Raises:
        ConfigError: no trainer is registered under ``spec.algo``.
    """
    if spec.algo not in TRAINERS:
        raise ConfigError(f"algo: no trainer for {spec.algo!r}; known: {', '.join(TRAINERS)}")
    return TRAINERS[spec.algo]()(spec)


def make_learner(name: str, run: str | Path, device: str | None = None) -> Learner:
    """The learner ``name`` (``maml``, ``rl2``, ``align``, ``metafit``,
    ``selffit``) of the agent a trained
    run (or checkpoint) holds, with what that run learned about adapting.

    Raises:
        ConfigError: no learner of that name.
        CheckpointError: no usable checkpoint, or a run of an ``algo`` the learner does not adapt.
    """
    from metaxm.learners import LEARNERS

    if name not in LEARNERS:
        raise ConfigError(f"no learner {name!r}; known: {', '.join(LEARNERS)}")
    return LEARNERS[name].from_run(run, device)
