"""ModalityObservation: every registered family applied to gymnasium's CartPole."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env, data_equivalence

from metaxm.envs.base import SceneInfo
from metaxm.envs.gym_world import GymWorld, GymWorldConfig
from metaxm.envs.seeded import episode_seed
from metaxm.envs.wrappers import ModalityObservation
from metaxm.modalities import FAMILIES
from metaxm.modalities.vector import NOISE_CHANNELS

LOW = [-2.4, -3.0, -0.21, -3.5]
HIGH = [2.4, 3.0, 0.21, 3.5]
NAMES = ("x", "x_dot", "theta", "theta_dot")


def cartpole(family: str, variant: int = 1) -> ModalityObservation:
    return ModalityObservation(
        gym.make("CartPole-v1"), family, variant, low=LOW, high=HIGH, feature_names=NAMES
    )


def _draws(family: str, info: SceneInfo) -> bool:
    try:
        FAMILIES[family].check_scene(info)
    except ValueError:
        return False
    return True


# every family that draws a state vector (the MiniGrid families draw MiniGrid scenes only)
FEATURE_FAMILIES = [f for f in sorted(FAMILIES) if _draws(f, SceneInfo(feature_dim=len(NAMES)))]


@pytest.mark.parametrize("family", FEATURE_FAMILIES)
def test_every_family_on_cartpole(family: str) -> None:
    env = cartpole(family)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # the checker recommends checking the bare env; the wrapper is what is checked here
        warnings.filterwarnings("ignore", message=".*different from the unwrapped")
        # CartPole's own render modes need pygame, which metaxm does not install
        check_env(env, skip_render_check=True)
    assert env.observation_space == FAMILIES[family].observation_space(env.scene_info)
    first, _ = env.reset(seed=3)
    again, _ = env.reset(seed=3)
    assert data_equivalence(first, again, exact=True)
    env.action_space.seed(0)
    for _ in range(30):
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        assert obs in env.observation_space
        if terminated or truncated:
            env.reset()


def test_features_normalise_and_clip_the_state() -> None:
    env = cartpole("vector")
    state = np.array([2.4, 0.0, -0.105, 7.0])  # at the high bound, centre, halfway down, beyond
    np.testing.assert_allclose(env.features(state)[0].numpy(), [1.0, 0.0, -0.5, 1.0], atol=1e-6)


def test_vector_family_reads_the_normalised_state() -> None:
    """The vector family is a signed, scaled permutation of the features: invert it."""
    env = cartpole("vector", variant=4)
    obs, _ = env.reset(seed=0)
    state = np.asarray(env.unwrapped.state, dtype=np.float32)
    expected = env.features(state)[0].numpy()
    params = env.modality.params
    recovered = obs[:4] / params["gain"].numpy()
    np.testing.assert_allclose(recovered, expected[params["perm"].numpy()], atol=1e-5)
    assert obs.shape == (4 + NOISE_CHANNELS,)


def test_state_function_reads_the_env() -> None:
    env = ModalityObservation(
        gym.make("CartPole-v1"),
        "vector",
        low=[-0.21],
        high=[0.21],
        state=lambda e: [e.unwrapped.state[2]],  # the pole angle alone
    )
    assert env.scene_info.feature_dim == 1
    obs, _ = env.reset(seed=0)
    assert obs.shape == (1 + NOISE_CHANNELS,) and obs in env.observation_space


def test_bounds_are_checked() -> None:
    inf = [np.inf, 3.0, 0.21, 3.5]
    with pytest.raises(ValueError, match="finite"):
        ModalityObservation(gym.make("CartPole-v1"), "vector", low=LOW, high=inf)
    with pytest.raises(ValueError, match="pass both low= and high="):
        ModalityObservation(gym.make("CartPole-v1"), "vector", low=LOW)
    with pytest.raises(ValueError, match="a state function needs them"):
        ModalityObservation(gym.make("CartPole-v1"), "vector", state=lambda e: e.unwrapped.state)
    with pytest.raises(ValueError, match="obs_scale must be > 0"):
        ModalityObservation(gym.make("CartPole-v1"), "vector", obs_scale=0.0)
    with pytest.raises(ValueError, match="below"):
        ModalityObservation(gym.make("CartPole-v1"), "vector", low=HIGH, high=LOW)
    with pytest.raises(ValueError, match="low has 2 components but high has 4"):
        ModalityObservation(gym.make("CartPole-v1"), "vector", low=[0, 0], high=HIGH)
    with pytest.raises(ValueError, match="unknown modality family"):
        ModalityObservation(gym.make("CartPole-v1"), "smell", low=LOW, high=HIGH)
    # without bounds, finite observation bounds are taken from the space
    env = ModalityObservation(gym.make("MountainCar-v0"), "vector")
    assert env.reset(seed=0)[0] in env.observation_space
    state = np.array([0.6, -0.07])  # the right end, the left speed limit
    np.testing.assert_allclose(env.features(state)[0].numpy(), [1.0, -1.0], atol=1e-6)


@pytest.mark.parametrize("env_id", ["CartPole-v1", "MountainCar-v0"])
def test_without_bounds_the_features_are_the_gym_worlds(env_id: str) -> None:
    """An agent trained with ``world: {name: gym}`` reads the wrapped env as it read the world:
    the same features (unbounded velocities through tanh), the same names."""
    world = GymWorld(GymWorldConfig(env_id=env_id, obs_scale=2.0), num_envs=1, seed=0)
    world.reset()
    env = ModalityObservation(gym.make(env_id), "vector", obs_scale=2.0)
    assert env.scene_info == world.scene_info
    env.reset(seed=episode_seed(int(world.task_seed[0]), 0))
    for t in range(20):  # both step the same env from the same start: CartPole's state is
        state = np.asarray(env.unwrapped.state, np.float32)  # its observation, MountainCar's too
        np.testing.assert_array_equal(state, np.asarray(world.envs[0].state, np.float32))
        np.testing.assert_array_equal(env.features(state)[0], world.scene().features[0])
        assert env.features(state).abs().max() < 1  # tanh: inside the box, nothing clipped
        world.step(torch.tensor([t % 2]))
        env.step(t % 2)
