"""``SeededTasks``: the tasks-are-reset-seeds bookkeeping a world over B Python envs mixes in
(``GymWorld``, ``MiniGrid``, a user's own), on a fake world whose "env" records its resets."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from metaxm.envs.base import Scene, SceneInfo, World
from metaxm.envs.seeded import SEED_HIGH, SeededTasks, episode_seed


class Counter(SeededTasks, World):
    """B envs whose state is the seed they were last reset with."""

    name = "counter"
    has_oracle = False

    def __init__(self, num_envs: int, seed: int = 0) -> None:
        super().__init__(num_envs, "cpu", seed)
        self.horizon = 5
        self.scene_info = SceneInfo(feature_dim=1)
        self.resets: list[tuple[int, int]] = []  # (env, reset seed)
        self.init_seeded_tasks()

    def _start(self, ids: list[int]) -> None:
        seeds, episodes = self.task_seed.tolist(), self.episode.tolist()
        for i in ids:
            self.resets.append((i, episode_seed(seeds[i], episodes[i])))
            self._stepped[i] = False
        if ids:
            self.t[torch.as_tensor(ids)] = 0

    def step(self, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        self._stepped[:] = True
        self.t += 1
        zeros = torch.zeros(self.num_envs)
        return zeros, zeros.bool(), zeros.bool()

    def scene(self) -> Scene:
        return Scene(features=torch.zeros(self.num_envs, 1))

    def oracle_action(self) -> Tensor:
        raise NotImplementedError


def test_tasks_are_seeds_and_episodes_advance_only_where_an_env_stepped() -> None:
    world = Counter(3, seed=4)
    first = world.task_params()["seed"]
    assert first.dtype == torch.long and bool(((first >= 0) & (first < SEED_HIGH)).all())
    assert world.resets == [(i, int(first[i])) for i in range(3)]  # episode 0: the seed itself
    world.resets.clear()
    world.reset()  # nothing stepped: every env keeps episode 0
    assert world.resets == [] and world.episode.tolist() == [0, 0, 0]
    world.step(torch.zeros(3, dtype=torch.long))
    world.reset(torch.tensor([1]))
    assert world.episode.tolist() == [0, 1, 0]
    assert world.resets == [(1, episode_seed(int(first[1]), 1))]


def test_new_tasks_start_at_episode_zero_and_the_draw_is_seeded() -> None:
    world = Counter(2)
    world.step(torch.zeros(2, dtype=torch.long))
    world.reset()
    world.set_tasks({"seed": torch.tensor([7, 9])}, torch.tensor([0, 1]))
    assert world.task_params()["seed"].tolist() == [7, 9] and world.episode.tolist() == [0, 0]
    assert world.resets[-2:] == [(0, 7), (1, 9)]
    a = Counter(2).sample_tasks(4, torch.Generator().manual_seed(1))["seed"]
    b = Counter(2).sample_tasks(4, torch.Generator().manual_seed(1))["seed"]
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="got 1 task seeds for 2 environments"):
        world.set_tasks({"seed": torch.tensor([1])})
    assert len({episode_seed(5, j) for j in range(1000)}) == 1000
