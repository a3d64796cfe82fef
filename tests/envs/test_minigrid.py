"""The MiniGrid world against the raw MiniGrid env it wraps: same seeds, same episodes."""

from __future__ import annotations

import sys

import gymnasium as gym
import numpy as np
import pytest
import torch

from metaxm.envs import MiniGrid, MiniGridConfig
from metaxm.envs.minigrid import ACTION_IDS, FEATURE_NAMES, episode_seed

pytest.importorskip("minigrid", reason="needs the minigrid extra: pip install metaxm[minigrid]")

BABYAI = "BabyAI-GoToObjS6-v1"
GOTO_OBJECT = "MiniGrid-GoToObject-6x6-N2-v0"
NAV_DONE = ("left", "right", "forward", "done")


def raw_env(env_id: str) -> object:
    return gym.make(env_id).unwrapped


@pytest.mark.parametrize(
    ("env_id", "actions"), [(BABYAI, ("left", "right", "forward")), (GOTO_OBJECT, NAV_DONE)]
)
def test_steps_like_the_raw_env_across_episodes(env_id: str, actions: tuple[str, ...]) -> None:
    """Two environments with task seeds 5 and 9 against gymnasium.make(env_id) driven by hand:
    the same views, missions, rewards and terminations, and episode j of a task is the raw env
    reset with episode_seed(seed, j)."""
    world = MiniGrid(MiniGridConfig(env_id=env_id, actions=actions), 2)
    seeds = [5, 9]
    world.set_tasks({"seed": torch.tensor(seeds)})
    raws = [raw_env(env_id) for _ in seeds]
    obs = [r.reset(seed=s)[0] for r, s in zip(raws, seeds)]
    episodes = [0, 0]
    rng = np.random.default_rng(0)
    finished = 0
    for _ in range(120):
        scene = world.scene()
        for i in range(2):
            np.testing.assert_array_equal(scene.view[i].numpy(), obs[i]["image"])
            assert world.instructions()[i] == obs[i]["mission"]
        a = rng.integers(0, len(actions), 2)
        reward, terminated, success = world.step(torch.as_tensor(a))
        truncated = world.truncated()
        done = []
        for i, raw in enumerate(raws):
            obs[i], r, term, trunc, _ = raw.step(ACTION_IDS[actions[a[i]]])
            assert float(reward[i]) == pytest.approx(r)
            assert bool(terminated[i]) == term and bool(success[i]) == (r > 0)
            assert bool(truncated[i] & ~terminated[i]) == (trunc and not term)
            if term or trunc:
                episodes[i] += 1
                obs[i] = raw.reset(seed=episode_seed(seeds[i], episodes[i]))[0]
                done.append(i)
        finished += len(done)
        world.reset(torch.tensor(done, dtype=torch.long))
    assert finished >= 4  # the comparison crossed several episode boundaries
    assert world.episode.tolist() == episodes


def test_done_action_scores_goto_object() -> None:
    """MiniGrid's GoToObject rewards ``done`` next to the target; the oracle uses it."""
    world = MiniGrid(MiniGridConfig(env_id=GOTO_OBJECT, actions=NAV_DONE), 8, seed=3)
    successes = episodes = 0
    while episodes < 16:
        _, terminated, success = world.step(world.oracle_action())
        successes += int(success.sum())
        episodes += int(terminated.sum())
        world.reset(terminated.nonzero().squeeze(1))
    assert successes == episodes


def test_oracle_solves_every_babyai_episode_faster_than_random() -> None:
    world = MiniGrid(MiniGridConfig(env_id=BABYAI), 16, seed=1)
    succ, eps, steps = 0, 0, 0
    while eps < 40:
        _, terminated, success = world.step(world.oracle_action())
        done = terminated | world.truncated()
        succ, eps, steps = succ + int(success.sum()), eps + int(done.sum()), steps + 16
        world.reset(done.nonzero().squeeze(1))
    assert succ == eps  # every episode ends in success
    assert steps / eps < 8  # a 4 x 4 room: a handful of turns and moves


def test_tasks_are_data_and_seeded() -> None:
    config = MiniGridConfig()
    a, b = MiniGrid(config, 3, seed=7), MiniGrid(config, 3, seed=7)
    assert torch.equal(a.task_params()["seed"], b.task_params()["seed"])
    assert torch.equal(a.scene().view, b.scene().view)
    other = MiniGrid(config, 3, seed=8)
    other.set_tasks(a.task_params())  # the task, carried as data, rebuilds the same episode
    assert torch.equal(other.scene().view, a.scene().view)
    assert other.instructions() == a.instructions()


def test_reset_without_a_step_keeps_the_episode_and_layouts_follow_the_config() -> None:
    world = MiniGrid(MiniGridConfig(), 1)
    world.set_tasks({"seed": torch.tensor([11])})
    first = world.scene().view.clone()
    world.reset()
    assert torch.equal(world.scene().view, first) and world.episode.tolist() == [0]
    views = []
    for _ in range(3):
        world.step(torch.tensor([2]))
        world.reset()
        views.append(world.scene().view.clone())
    assert world.episode.tolist() == [3]
    assert any(not torch.equal(v, first) for v in views)  # new rooms per episode

    fixed = MiniGrid(MiniGridConfig(layout="per_task"), 1)
    fixed.set_tasks({"seed": torch.tensor([11])})
    for _ in range(3):
        fixed.step(torch.tensor([0]))
        fixed.reset()
        assert torch.equal(fixed.scene().view, first)  # the task's room, every episode


def test_scene_features_and_layout_describe_the_raw_state() -> None:
    world = MiniGrid(MiniGridConfig(), 4, seed=2)
    scene = world.scene()
    assert scene.features.shape == (4, len(FEATURE_NAMES))
    assert float(scene.features.abs().max()) <= 1.0
    for i, env in enumerate(world.envs):
        x, y = env.agent_pos
        assert scene.layout.agent[i].tolist() == [y, x]
        tx, ty = env.instrs.desc.obj_poss[0]
        assert scene.layout.goal[i].tolist() == [ty, tx]
        direction = scene.features[i, 2:6]
        assert direction.argmax().item() == env.agent_dir and direction.sum().item() == -2.0
        walls = scene.layout.walls[i]
        assert walls[0].all() and walls[-1].all() and not walls[1:-1, 1:-1].any()


def test_config_is_checked() -> None:
    with pytest.raises(ValueError, match="distinct"):
        MiniGridConfig(actions=("left", "left"))
    with pytest.raises(ValueError, match="max_steps"):
        MiniGridConfig(max_steps=0)
    world = MiniGrid(MiniGridConfig(max_steps=10), 1)
    assert world.horizon == 10 and world.envs[0].max_steps == 10
    with pytest.raises(ValueError, match="2 task seeds for 1 environments"):
        world.set_tasks({"seed": torch.tensor([1, 2])})
    # another gymnasium env is named as such (it failed on a missing max_steps attribute)
    with pytest.raises(ValueError, match="'CartPole-v1' is not a MiniGrid level .*CartPoleEnv"):
        MiniGrid(MiniGridConfig(env_id="CartPole-v1", max_steps=10), 1)


def test_missing_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "minigrid", None)  # import minigrid -> ImportError
    with pytest.raises(ImportError, match=r"pip install metaxm\[minigrid\]"):
        MiniGrid(MiniGridConfig(), 1)
