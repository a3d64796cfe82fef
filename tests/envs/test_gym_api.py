"""The gymnasium API: every world x registered family through make, the checker and a rollout."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env, data_equivalence
from gymnasium.vector import AutoresetMode, SyncVectorEnv

import metaxm.envs  # noqa: F401  (registers the gymnasium ids)
from metaxm.envs.gym_api import GYM_IDS, MetaxmEnv, MetaxmVectorEnv, build_world
from metaxm.errors import ConfigError
from metaxm.modalities import FAMILIES
from metaxm.modalities.vector import NOISE_CHANNELS


def _sweep() -> list:
    """Every world x every family that can draw its scenes (a world whose optional package is
    missing is skipped with the reason)."""
    params = []
    for world, env_id in GYM_IDS.items():
        try:
            info = build_world(world, 1).scene_info
        except ImportError as err:
            mark = pytest.mark.skip(reason=str(err))
            params += [pytest.param(env_id, f, id=f"{world}-{f}", marks=mark) for f in FAMILIES]
            continue
        for family in sorted(FAMILIES):
            try:
                FAMILIES[family].check_scene(info)
            except ValueError:  # e.g. minigrid_rgb on GridNav: tested below
                continue
            params.append(pytest.param(env_id, family, id=f"{world}-{family}"))
    return params


SWEEP = _sweep()


@pytest.mark.parametrize(("env_id", "family"), SWEEP)
def test_registry_sweep(env_id: str, family: str) -> None:
    env = gym.make(env_id, modality=family, variant=3)
    assert isinstance(env.unwrapped, MetaxmEnv)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the checker's warnings count as failures too
        check_env(env.unwrapped)
    first, _ = env.reset(seed=11)
    again, _ = env.reset(seed=11)
    assert data_equivalence(first, again, exact=True)
    assert first in env.observation_space
    env.action_space.seed(0)
    for _ in range(12):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert obs in env.observation_space
        assert isinstance(reward, float) and isinstance(info["success"], bool)
        if terminated or truncated:
            obs, _ = env.reset()
            assert obs in env.observation_space


def test_gridnav_with_walls_passes_the_checker() -> None:
    env = gym.make("metaxm/GridNav-v0", modality="vector", walls=True, size=6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped)
    assert env.unwrapped.task()["walls"].shape == (6, 6)


def test_seed_decides_the_task_and_the_start() -> None:
    env = MetaxmEnv("gridnav", "vector", size=9)
    tasks = []
    for seed in (0, 0, 1):
        env.reset(seed=seed)
        tasks.append((tuple(env.unwrapped.task()["goal"]), tuple(env.world.pos[0].tolist())))
    assert tasks[0] == tasks[1]
    # a different seed gives a different task or start (9 x 9 grid: a clash would be a 1/6561 fluke)
    assert tasks[2] != tasks[0]


def test_a_fixed_task_holds_until_options_release_it() -> None:
    env = MetaxmEnv("pointnav", "vector:2", task={"goal": [0.25, -0.5]})
    for seed in (0, 1):
        env.reset(seed=seed)
        np.testing.assert_allclose(env.task()["goal"], [0.25, -0.5])
    env.reset(options={"task": {"goal": [0.1, 0.1]}})
    np.testing.assert_allclose(env.task()["goal"], [0.1, 0.1])
    env.reset(seed=3, options={"task": None})
    assert not np.allclose(env.task()["goal"], [0.1, 0.1])
    with pytest.raises(ValueError, match="unknown reset option 'goal'"):
        env.reset(options={"goal": [0.0, 0.0]})


def test_pointnav_reaches_a_fixed_goal_with_success_in_info() -> None:
    env = MetaxmEnv("pointnav", "vector", task={"goal": [0.2, -0.1]})
    env.reset(seed=0)
    steps, terminated, info = 0, False, {}
    while not terminated:
        action = env.world.oracle_action()[0].numpy()
        _, reward, terminated, truncated, info = env.step(action)
        steps += 1
        assert not truncated
    assert info["success"] is True and steps == 2  # 0.2 at 0.1 per step per coordinate
    assert reward == pytest.approx(0.0, abs=1e-6)


def test_world_kwargs_are_checked_strictly() -> None:
    with pytest.raises(ConfigError, match="unknown key 'gridnav world.sise'"):
        MetaxmEnv("gridnav", "vector", sise=5)
    with pytest.raises(ConfigError, match="gridnav world.size: expected an integer"):
        MetaxmEnv("gridnav", "vector", size="big")
    with pytest.raises(ValueError, match="unknown modality family 'smell'"):
        gym.make("metaxm/GridNav-v0", modality="smell")


def test_make_vec_builds_the_batched_env() -> None:
    envs = gym.make_vec(
        "metaxm/GridNav-v0", num_envs=8, vectorization_mode="vector_entry_point", modality="vector"
    )
    assert isinstance(envs.unwrapped, MetaxmVectorEnv)
    assert envs.metadata["autoreset_mode"] is AutoresetMode.SAME_STEP
    assert envs.single_action_space == gym.spaces.Discrete(4)
    assert envs.observation_space.shape == (8, *envs.single_observation_space.shape)
    obs, info = envs.reset(seed=5)
    again, _ = envs.reset(seed=5)
    np.testing.assert_array_equal(obs, again)
    assert obs in envs.observation_space and info == {}
    envs.action_space.seed(0)
    obs, reward, terminated, truncated, info = envs.step(envs.action_space.sample())
    assert obs in envs.observation_space
    assert reward.shape == (8,) and reward.dtype == np.float64
    assert terminated.dtype == np.bool_ and truncated.dtype == np.bool_
    assert info["success"].shape == (8,) and info["_success"].shape == (8,)
    envs.close()


def test_vector_env_autoresets_in_the_same_step() -> None:
    horizon = 3
    envs = MetaxmVectorEnv(4, "gridnav", "vector", variant=[0, 1, 2, 3], horizon=horizon)
    envs.reset(seed=0)
    truncations = 0
    for _ in range(2 * horizon):
        obs, _, terminated, truncated, info = envs.step(np.zeros(4, dtype=np.int64))
        done = terminated | truncated
        truncations += int(truncated.sum())
        t = envs.world.t.numpy()
        assert (t[done] == 0).all() and (t[~done] > 0).all()  # finished envs began anew
        assert obs in envs.observation_space
        assert not info["_success"][done].any()  # a finished env reports in final_info
        if not done.any():
            assert "final_obs" not in info
            continue
        np.testing.assert_array_equal(info["_final_obs"], done)
        np.testing.assert_array_equal(info["_final_info"], done)
        for i in range(4):
            assert (info["final_obs"][i] is None) != bool(done[i])
            if done[i]:
                assert info["final_obs"][i] in envs.single_observation_space
        np.testing.assert_array_equal(info["final_info"]["success"], terminated)
    assert truncations > 0


def test_vector_env_matches_sync_vector_env_over_single_envs() -> None:
    """PointNav starts at the origin, so with the same fixed tasks both step identically."""
    n, horizon = 3, 4
    goals = np.array([[0.05, 0.0], [-0.3, 0.2], [0.0, 0.0]], dtype=np.float32)
    ours = MetaxmVectorEnv(n, "pointnav", "vector", tasks={"goal": goals}, horizon=horizon)
    theirs = SyncVectorEnv(
        [
            (lambda g=g: MetaxmEnv("pointnav", "vector", task={"goal": g}, horizon=horizon))
            for g in goals
        ],
        autoreset_mode=AutoresetMode.SAME_STEP,
    )
    d = ours.world.scene_info.feature_dim  # the vector family's noise channels come after these
    assert ours.single_observation_space.shape == (d + NOISE_CHANNELS,)
    a, _ = ours.reset(seed=0)
    b, _ = theirs.reset(seed=0)
    np.testing.assert_allclose(a[:, :d], b[:, :d], atol=1e-6)
    rng = np.random.default_rng(0)
    for _ in range(2 * horizon + 1):
        action = rng.uniform(-0.1, 0.1, (n, 2)).astype(np.float32)
        a, ra, ta, ua, ia = ours.step(action)
        b, rb, tb, ub, ib = theirs.step(action)
        np.testing.assert_allclose(a[:, :d], b[:, :d], atol=1e-6)
        np.testing.assert_allclose(ra, rb, atol=1e-6)
        np.testing.assert_array_equal(ta, tb)
        np.testing.assert_array_equal(ua, ub)
        np.testing.assert_array_equal(ia["success"], ib.get("success", np.zeros(n, bool)))
        assert ("final_obs" in ia) == ("final_obs" in ib)
        if "final_obs" in ia:
            np.testing.assert_array_equal(ia["_final_obs"], ib["_final_obs"])
            np.testing.assert_array_equal(ia["final_info"]["success"], ib["final_info"]["success"])


def test_an_action_outside_the_space_is_refused() -> None:
    """``step(-1)`` acted as the last action and ``step(1.5)`` as 1, silently."""
    env = gym.make("metaxm/GridNav-v0", modality="vector", variant=1)
    env.reset(seed=0)
    for bad in (-1, 1.5, 4):
        with pytest.raises(ValueError, match="is not in the action space Discrete"):
            env.unwrapped.step(bad)
    env.unwrapped.step(np.int64(2))
    envs = MetaxmVectorEnv(3, "gridnav", "vector")
    envs.reset(seed=0)
    with pytest.raises(ValueError, match=r"actions \[0, -1, 2\] are not all in the action space"):
        envs.step(np.array([0, -1, 2]))
    with pytest.raises(ValueError, match=r"actions of shape \(2,\); this vector env takes \(3,\)"):
        envs.step(np.array([0, 1]))
    envs.step([0, 1, 3])


def test_vector_env_rejects_a_seed_list() -> None:
    envs = MetaxmVectorEnv(2, "pointnav", "vector")
    with pytest.raises(ValueError, match="one int seed"):
        envs.reset(seed=[0, 1])


def test_vector_env_draws_new_tasks_per_episode_unless_fixed() -> None:
    envs = MetaxmVectorEnv(16, "gridnav", "vector", size=9, horizon=1)
    envs.reset(seed=0)
    before = envs.task()["goal"]
    envs.step(np.zeros(16, dtype=np.int64))  # horizon 1: every episode ends here
    assert (envs.task()["goal"] != before).any(axis=1).sum() >= 8  # 1/81 chance each to repeat
    fixed = envs.task()
    envs.reset(options={"tasks": fixed})
    for _ in range(3):
        envs.step(np.zeros(16, dtype=np.int64))
        np.testing.assert_array_equal(envs.task()["goal"], fixed["goal"])
    envs.reset(seed=1, options={"tasks": None})  # back to drawing
    assert (envs.task()["goal"] != fixed["goal"]).any()


@pytest.mark.parametrize("variant", [-1, "x", 1.5, True, [1, 2]])
def test_a_variant_that_is_no_seed_is_refused_in_one_line(variant: object) -> None:
    with pytest.raises(ValueError, match=r"^variant: expected a variant seed, an integer >= 0"):
        gym.make("metaxm/GridNav-v0", modality="vector", variant=variant)
    if not isinstance(variant, list):  # the batched env takes one per env, or one for all
        with pytest.raises(ValueError, match=r"^variant: expected a variant seed"):
            MetaxmVectorEnv(num_envs=2, modality="vector", variant=[3, variant])


def test_a_numpy_or_zero_dimensional_variant_is_one_seed_for_every_env() -> None:
    for variant in (np.int64(3), np.array(3)):
        env = MetaxmVectorEnv(num_envs=2, modality="vector", variant=variant)
        assert env.task_env.variants == [3, 3]
