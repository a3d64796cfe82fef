"""Tasks that are reset seeds: the task bookkeeping of a world that holds B copies of a Python
env (:mod:`metaxm.envs.gym_world`, :mod:`metaxm.envs.minigrid`, a user's own).

A task is a seed, ``{"seed": (B,)}``, drawn uniformly below :data:`SEED_HIGH`; episode j of a
task resets its env with ``episode_seed(seed, j)`` (episode 0 with the seed itself), so every
episode is reproducible from the task and the counters. :class:`SeededTasks` keeps the seeds
and episode counters and implements ``sample_tasks``, ``set_tasks``, ``task_params`` and
``reset``; the world writes ``_start(ids)``, which resets those envs for their current episode.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from metaxm.envs.base import TaskParams

SEED_HIGH = 2**31
EPISODE_STRIDE = 0x9E3779B1  # odd, so episodes j of one task never share a seed below 2**32


def episode_seed(task_seed: int, episode: int) -> int:
    """The reset seed of episode ``episode`` of the task with seed ``task_seed``."""
    return (int(task_seed) + int(episode) * EPISODE_STRIDE) % 2**32


class SeededTasks:
    """Task bookkeeping by reset seeds, mixed into a :class:`~metaxm.envs.base.World` that
    holds B Python envs. Call :meth:`init_seeded_tasks` at the end of ``__init__``; mark an
    environment stepped in ``_stepped`` as the world's ``step`` plays it."""

    num_envs: int
    device: torch.device
    generator: torch.Generator
    task_seed: Tensor  # (B,) long
    episode: Tensor  # (B,) long, the episode index within the task
    _stepped: np.ndarray  # (B,) bool, stepped since its episode began
    all_ids: Callable[[], Tensor]  # the World's

    def init_seeded_tasks(self) -> None:
        """Counters for B environments, then a first task for each (episode 0 started)."""
        b = self.num_envs
        self._stepped = np.zeros(b, dtype=bool)
        self.task_seed = torch.zeros(b, dtype=torch.long, device=self.device)
        self.episode = torch.zeros(b, dtype=torch.long, device=self.device)
        self.set_tasks(self.sample_tasks(b))

    def _start(self, ids: list[int]) -> None:
        """Reset the envs ``ids`` for their current episode (``episode_seed``)."""
        raise NotImplementedError

    def sample_tasks(self, n: int, generator: torch.Generator | None = None) -> TaskParams:
        g = generator if generator is not None else self.generator
        return {"seed": torch.randint(0, SEED_HIGH, (n,), generator=g, device=self.device)}

    def set_tasks(self, params: TaskParams, env_ids: Tensor | None = None) -> None:
        """Assign task seeds; the environments start episode 0 of their new tasks at once."""
        seeds = params["seed"].to(self.device, torch.long).reshape(-1)
        ids = self.all_ids() if env_ids is None else env_ids.to(self.device)
        if seeds.shape[0] != ids.shape[0]:
            raise ValueError(f"got {seeds.shape[0]} task seeds for {ids.shape[0]} environments")
        self.task_seed[ids] = seeds
        self.episode[ids] = 0
        self._start(ids.tolist())

    def task_params(self) -> TaskParams:
        return {"seed": self.task_seed.clone()}

    def reset(self, env_ids: Tensor | None = None) -> None:
        """Start the next episode of each given environment's task.

        An environment that has not stepped since its episode began keeps that episode (so
        ``set_tasks`` followed by ``reset`` plays episode 0).
        """
        ids = list(range(self.num_envs)) if env_ids is None else env_ids.tolist()
        if not ids:
            return
        advance = torch.as_tensor(self._stepped[ids], device=self.device)
        idx = torch.as_tensor(ids, dtype=torch.long, device=self.device)
        self.episode[idx] += advance.long()
        self._start([i for i in ids if self._stepped[i]])
