"""ModalityObservation: every registered family applied to gymnasium's CartPole."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env, data_equivalence

from metaxm.envs.base import SceneInfo
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


def test_bounds_are_required_and_checked() -> None:
    with pytest.raises(ValueError, match="finite"):
        ModalityObservation(gym.make("CartPole-v1"), "vector")  # velocities are unbounded
    with pytest.raises(ValueError, match="below"):
        ModalityObservation(gym.make("CartPole-v1"), "vector", low=HIGH, high=LOW)
    with pytest.raises(ValueError, match="low has 2 components but high has 4"):
        ModalityObservation(gym.make("CartPole-v1"), "vector", low=[0, 0], high=HIGH)
    with pytest.raises(ValueError, match="unknown modality family"):
        ModalityObservation(gym.make("CartPole-v1"), "smell", low=LOW, high=HIGH)
    # finite observation bounds are taken from the space
    env = ModalityObservation(gym.make("MountainCar-v0"), "vector")
    assert env.reset(seed=0)[0] in env.observation_space
