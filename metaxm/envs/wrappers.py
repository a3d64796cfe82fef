"""Apply any registered modality family to any gymnasium env whose state can be read.

:class:`ModalityObservation` reads the wrapped env's state (its observation, or whatever a
``state`` function returns), normalises it into [-1, 1], and renders it through one variant of
a family as a layout-free :class:`~metaxm.envs.base.Scene` (every family can render from
features alone)::

    env = gymnasium.make("CartPole-v1")
    env = ModalityObservation(
        env, "audio", variant=7,
        low=[-2.4, -3.0, -0.21, -3.5], high=[2.4, 3.0, 0.21, 3.5],
        feature_names=("x", "x_dot", "theta", "theta_dot"),
    )

With ``low`` and ``high`` the state is mapped linearly and clipped to them, so every
observation lies in the family's space. Without them the env's observation becomes features
exactly as ``world: {name: gym}`` makes them (:mod:`metaxm.envs.gym_world`: finite bounds
linearly, unbounded dimensions through ``tanh(x / obs_scale)``, discrete spaces one-hot), so
an agent trained on that world reads the wrapped env as it read the world::

    env = ModalityObservation(gymnasium.make("CartPole-v1"), "vector", variant=1_000_000)
    obs, _ = env.reset(seed=0)
    obs = env.set_variant(1_000_001)   # re-wire the sensor, here mid-episode

:class:`metaxm.evaluate.actor.Actor` then plays a trained agent on it, step by step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from numpy.typing import ArrayLike

from metaxm.envs.base import Scene, SceneInfo
from metaxm.envs.gym_world import feature_names as part_names
from metaxm.envs.gym_world import feature_parts, flatten_observation
from metaxm.modalities.base import Family, Modality, expand_params

StateFn = Callable[[gym.Env], ArrayLike]
"""Reads a flat state vector from the wrapped env (e.g. ``lambda env: env.unwrapped.state``)."""


class ModalityObservation(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Observe a gymnasium env through one variant of a metaxm modality family.

    Args:
        env: the env to wrap.
        family: a registered family's name, or a family instance.
        variant: the variant seed.
        low: the lower bound of each state component (mapped to -1); with ``high``, or
            neither: then the env's observation becomes features as the gym world makes them
            (the module docstring).
        high: the upper bound of each state component (mapped to +1).
        state: reads the state from the env after every reset and step (it then needs
            ``low`` and ``high``); None uses the env's observation.
        feature_names: a short name per state component, for ``metaxm render``; without
            bounds, defaults to the gym world's names (``obs[0]``, ...).
        seed: seeds the observation noise until the first ``reset(seed=...)``, which reseeds
            it, so seeded episodes are reproducible.
        obs_scale: without bounds, unbounded dimensions become ``tanh(x / obs_scale)`` (the
            gym world's ``world.obs_scale``).

    Raises:
        ValueError: one bound without the other, a ``state`` without bounds, bounds infinite,
            of the wrong length or with ``low >= high``, or a family that cannot render
            feature-only scenes.
    """

    def __init__(
        self,
        env: gym.Env,
        family: str | Family,
        variant: int = 0,
        low: ArrayLike | None = None,
        high: ArrayLike | None = None,
        state: StateFn | None = None,
        feature_names: Sequence[str] = (),
        seed: int = 0,
        obs_scale: float = 1.0,
    ) -> None:
        gym.utils.RecordConstructorArgs.__init__(
            self,
            family=family,
            variant=variant,
            low=low,
            high=high,
            state=state,
            feature_names=feature_names,
            seed=seed,
            obs_scale=obs_scale,
        )
        gym.ObservationWrapper.__init__(self, env)
        self._state = state
        self._parts = None
        if low is None and high is None and state is None:  # the gym world's features
            if not obs_scale > 0:
                raise ValueError(f"obs_scale must be > 0, got {obs_scale}")
            self._parts = feature_parts(env.observation_space, obs_scale)
            dim = sum(p.width for p in self._parts)
            if dim == 0:
                raise ValueError("the env's observations hold no numbers to render")
            feature_names = tuple(feature_names) or part_names(self._parts)
        else:
            low_arr, high_arr = _bounds(low, high)
            self._low = torch.as_tensor(low_arr, dtype=torch.float32)
            self._span = torch.as_tensor(high_arr - low_arr, dtype=torch.float32)
            dim = low_arr.shape[0]
        self.scene_info = SceneInfo(
            feature_dim=dim, layout_size=None, feature_names=tuple(feature_names)
        )
        self.modality = Modality(family, variant, self.scene_info)
        self.observation_space = self.modality.observation_space
        self._params = expand_params(self.modality.params, 1, "cpu")
        self._seed = seed
        self._generator = torch.Generator().manual_seed(_noise_seed(seed))
        self._last: Any = None

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        if seed is not None:
            self._generator.manual_seed(_noise_seed(seed))
        return super().reset(seed=seed, options=options)

    def set_variant(self, variant: int) -> np.ndarray | None:
        """Re-wire the sensor: observe through ``variant`` of the same family from now on.

        Returns the current state's observation through the new variant, or None before the
        first reset. (``spec.kwargs`` keeps the variant the wrapper was made with.)
        """
        self.modality = Modality(self.modality.family, variant, self.scene_info)
        self._params = expand_params(self.modality.params, 1, "cpu")
        return None if self._last is None else self.observation(self._last)

    def features(self, observation: Any) -> torch.Tensor:
        """The normalised state, (1, D) float32 in [-1, 1]."""
        if self._parts is not None:
            return torch.from_numpy(flatten_observation(self._parts, observation)).unsqueeze(0)
        raw = observation if self._state is None else self._state(self.env)
        s = torch.as_tensor(np.asarray(raw, dtype=np.float32).reshape(1, -1))
        if s.shape[1] != self._low.shape[0]:
            raise ValueError(
                f"the state has {s.shape[1]} components but the bounds have {self._low.shape[0]}"
            )
        return ((s - self._low) / self._span * 2.0 - 1.0).clamp_(-1.0, 1.0)

    def observation(self, observation: Any) -> np.ndarray:
        self._last = observation
        scene = Scene(features=self.features(observation), layout=None)
        obs = self.modality.family.render(scene, self._params, self._generator)[0]
        arr = obs.numpy()
        dtype = self.observation_space.dtype
        return arr if arr.dtype == dtype else arr.astype(dtype)


def _noise_seed(seed: int) -> int:
    return (int(seed) * 1_000_003 + 7919) % (2**63)


def _bounds(low: ArrayLike | None, high: ArrayLike | None) -> tuple[np.ndarray, np.ndarray]:
    if low is None or high is None:
        raise ValueError(
            "ModalityObservation: pass both low= and high= (a state function needs them), "
            "or neither"
        )
    low_arr = np.asarray(low, dtype=np.float64).reshape(-1)
    high_arr = np.asarray(high, dtype=np.float64).reshape(-1)
    if low_arr.shape != high_arr.shape:
        raise ValueError(f"low has {low_arr.size} components but high has {high_arr.size}")
    if not (np.isfinite(low_arr).all() and np.isfinite(high_arr).all()):
        raise ValueError("state bounds must be finite")
    if not (low_arr < high_arr).all():
        raise ValueError("every low bound must be below its high bound")
    return low_arr, high_arr
