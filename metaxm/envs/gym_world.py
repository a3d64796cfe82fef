"""Any gymnasium env as a metaxm world, from YAML: ``world: {name: gym, env_id: CartPole-v1}``.

:class:`GymWorld` holds B instances of the env (``gymnasium.make(env_id, **env_kwargs)``) and
steps them in a Python loop (``python_loop``: such worlds are as fast as the env itself). Its
scene is the env's observation, flattened and normalised into ``Scene.features`` in [-1, 1],
so every family renders it (``pixels`` draws the features as bars, ``text`` names them, up to
99); a family that cannot is refused when the spec loads.

* **Features.** Box dimensions with finite bounds are scaled to [-1, 1]; unbounded ones go
  through ``tanh(x / world.obs_scale)``; Discrete and MultiDiscrete become one-hot codes,
  MultiBinary 0/1 -> -1/1; Dict and Tuple spaces are walked in order, and parts that are not
  numbers (a MiniGrid mission string) are left out.
* **Tasks** are reset seeds, ``{"seed": (B,)}``: episode j of a task resets with
  ``episode_seed(seed, j)``, so every episode is reproducible from the task and the counters.
  A task distribution over seeds is what an env offers without knowing about tasks.
* **Reward, termination and horizon** are the env's own: the horizon is ``world.max_steps``,
  else the env's registered ``max_episode_steps``, and an episode the env truncates itself (a
  time limit of its own that no registration states, as MiniGrid's) ends there.
* **Success** (``world.success``): ``auto`` takes the env's ``info["is_success"]`` when it
  reports one, else the episode return reaching the env's registered ``reward_threshold``
  (CartPole-v1: 475, Acrobot-v1: -100), else a positive final reward (MiniGrid, goal
  reaching); ``info``, ``threshold`` and ``reward`` force one of the three.
* **No oracle**: a gymnasium env has no reference policy; reports show none
  (:attr:`World.has_oracle`).
* **Resume**: checkpoints hold tensors only, so resuming restarts the episodes in progress
  (the Python envs cannot be saved), as for :mod:`metaxm.envs.minigrid`; everything else,
  episode seeds included, resumes exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from metaxm.config import bounded
from metaxm.envs.base import Scene, SceneInfo, World
from metaxm.envs.seeded import SeededTasks, episode_seed


@dataclass(frozen=True)
class GymWorldConfig:
    """The ``world:`` section for a gymnasium env.

    Attributes:
        name: the world's registry name.
        env_id: a registered gymnasium id, e.g. ``CartPole-v1``; ``module:Id`` imports
            ``module`` first (gymnasium's own syntax), e.g. ``minigrid:MiniGrid-Empty-5x5-v0``.
        env_kwargs: keyword arguments for ``gymnasium.make``.
        max_steps: the horizon; null takes the env's registered ``max_episode_steps``.
        obs_scale: unbounded observation dimensions become ``tanh(x / obs_scale)``.
        success: what counts as success (see the module docstring).
    """

    name: Literal["gym"] = "gym"
    env_id: str = "CartPole-v1"
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    max_steps: int | None = bounded(None, 1, 100_000)
    obs_scale: float = bounded(1.0, 1e-6, 1e6)
    success: Literal["auto", "info", "threshold", "reward"] = "auto"


class GymWorld(SeededTasks, World):
    """B instances of one gymnasium env, stepped in a Python loop (see the module docstring)."""

    name = "gym"
    python_loop = True
    has_oracle = False

    def __init__(
        self,
        config: GymWorldConfig,
        num_envs: int,
        device: torch.device | str = "cpu",
        seed: int = 0,
    ) -> None:
        super().__init__(num_envs, device, seed)
        self.config = config
        made = [_make(config) for _ in range(num_envs)]
        self.envs = [env.unwrapped for env in made]
        first = self.envs[0]
        self.action_space = first.action_space
        if not isinstance(self.action_space, gym.spaces.Discrete) and not (
            isinstance(self.action_space, gym.spaces.Box) and len(self.action_space.shape) == 1
        ):
            raise ValueError(
                f"{config.env_id}: metaxm agents act in Discrete or 1-D Box spaces, not "
                f"{self.action_space}"
            )
        self._parts = feature_parts(first.observation_space, config.obs_scale)
        dim = sum(p.width for p in self._parts)
        if dim == 0:
            raise ValueError(f"{config.env_id}: its observations hold no numbers to render")
        spec = made[0].spec  # the registered one: the bare env's has no max_episode_steps
        self.horizon = int(config.max_steps or (spec and spec.max_episode_steps) or 1000)
        self.threshold = spec.reward_threshold if spec is not None else None
        if config.success == "threshold" and self.threshold is None:
            raise ValueError(f"{config.env_id}: success: threshold, but it has no reward_threshold")
        self.scene_info = SceneInfo(feature_dim=dim, feature_names=feature_names(self._parts))
        b = num_envs
        self._features = np.zeros((b, dim), dtype=np.float32)
        self._return = np.zeros(b, dtype=np.float64)
        self._env_truncated = np.zeros(b, dtype=bool)  # the env's own time limit, as it says
        self.init_seeded_tasks()

    # ----------------------------------------------------------------------------- dynamics
    def _start(self, ids: list[int]) -> None:
        seeds, episodes = self.task_seed.tolist(), self.episode.tolist()
        for i in ids:
            obs, _ = self.envs[i].reset(seed=episode_seed(seeds[i], episodes[i]))
            self._features[i] = flatten_observation(self._parts, obs)
            self._return[i] = 0.0
            self._env_truncated[i] = False
            self._stepped[i] = False
        if ids:
            self.t[torch.as_tensor(ids, dtype=torch.long, device=self.device)] = 0

    def step(self, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        discrete = isinstance(self.action_space, gym.spaces.Discrete)
        acts = actions.reshape(self.num_envs, -1).cpu().numpy()
        reward = np.zeros(self.num_envs, dtype=np.float32)
        terminated = np.zeros(self.num_envs, dtype=bool)
        success = np.zeros(self.num_envs, dtype=bool)
        last = self.t + 1 >= self.horizon
        for i, env in enumerate(self.envs):
            a = int(acts[i, 0]) if discrete else acts[i].astype(self.action_space.dtype)
            obs, r, term, trunc, info = env.step(a)
            reward[i], terminated[i] = r, term
            self._env_truncated[i] = trunc and not term
            self._return[i] += float(r)
            self._features[i] = flatten_observation(self._parts, obs)
            if term or trunc or bool(last[i]):
                success[i] = self._success(info, float(r), float(self._return[i]))
        self._stepped[:] = True
        self.t += 1
        return (
            torch.as_tensor(reward, device=self.device),
            torch.as_tensor(terminated, device=self.device),
            torch.as_tensor(success, device=self.device),
        )

    def truncated(self) -> Tensor:
        """(B,) bool: episodes at the horizon, or that the env itself truncated (a time limit
        of its own, e.g. MiniGrid's ``max_steps``, which no registered spec states)."""
        own = torch.as_tensor(self._env_truncated, device=self.device)
        return (self.t >= self.horizon) | own

    def _success(self, info: dict[str, Any], reward: float, episode_return: float) -> bool:
        """Whether the episode that ends now succeeded (``world.success``)."""
        how = self.config.success
        if how == "info" or (how == "auto" and "is_success" in info):
            return bool(info.get("is_success", False))
        if how == "reward" or self.threshold is None:
            return reward > 0
        return episode_return >= self.threshold

    def scene(self) -> Scene:
        return Scene(features=torch.as_tensor(self._features.copy(), device=self.device))

    def oracle_action(self) -> Tensor:
        raise NotImplementedError(f"{self.config.env_id} has no reference policy")


@dataclass(frozen=True)
class FeaturePart:
    """One piece of a flattened observation: its path, width and how it is normalised."""

    path: tuple[str | int, ...]
    kind: Literal["box", "onehot", "binary"]
    width: int
    low: np.ndarray | None = None
    high: np.ndarray | None = None
    sizes: tuple[int, ...] = ()
    scale: float = 1.0


def feature_parts(space: gym.Space, scale: float, path: tuple = ()) -> list[FeaturePart]:
    """How a ``space``'s observations become features (see the module docstring)."""
    if isinstance(space, gym.spaces.Dict):
        return [p for k, s in space.spaces.items() for p in feature_parts(s, scale, (*path, k))]
    if isinstance(space, gym.spaces.Tuple):
        return [p for i, s in enumerate(space.spaces) for p in feature_parts(s, scale, (*path, i))]
    if isinstance(space, gym.spaces.Box):
        low = np.asarray(space.low, np.float64).reshape(-1)
        high = np.asarray(space.high, np.float64).reshape(-1)
        return [FeaturePart(path, "box", low.size, low, high, scale=scale)]
    if isinstance(space, gym.spaces.Discrete):
        return [FeaturePart(path, "onehot", int(space.n), sizes=(int(space.n),))]
    if isinstance(space, gym.spaces.MultiDiscrete):
        sizes = tuple(int(n) for n in np.asarray(space.nvec).reshape(-1))
        return [FeaturePart(path, "onehot", sum(sizes), sizes=sizes)]
    if isinstance(space, gym.spaces.MultiBinary):
        return [FeaturePart(path, "binary", int(np.prod(space.shape)))]
    return []  # Text, Graph, Sequence: not numbers


def flatten_observation(parts: list[FeaturePart], obs: Any) -> np.ndarray:
    """One observation -> its features, (D,) float32 in [-1, 1]."""
    out = []
    for part in parts:
        x = obs
        for key in part.path:
            x = x[key]
        if part.kind == "box":
            v = np.asarray(x, np.float64).reshape(-1)
            finite = np.isfinite(part.low) & np.isfinite(part.high) & (part.high > part.low)
            span = np.where(finite, part.high - part.low, 1.0)
            scaled = np.where(finite, 2.0 * (v - part.low) / span - 1.0, np.tanh(v / part.scale))
            out.append(np.clip(scaled, -1.0, 1.0))
        elif part.kind == "onehot":
            codes = []
            for value, n in zip(np.asarray(x).reshape(-1), part.sizes):
                code = -np.ones(n)
                code[int(value)] = 1.0
                codes.append(code)
            out.append(np.concatenate(codes))
        else:
            out.append(np.asarray(x, np.float64).reshape(-1) * 2.0 - 1.0)
    return np.concatenate(out).astype(np.float32) if out else np.zeros(0, np.float32)


def feature_names(parts: list[FeaturePart]) -> tuple[str, ...]:
    names = []
    for part in parts:
        stem = ".".join(str(k) for k in part.path) or "obs"
        names += [f"{stem}[{j}]" for j in range(part.width)]
    return tuple(names)


def _make(config: GymWorldConfig) -> gym.Env:
    try:
        env = gym.make(config.env_id, disable_env_checker=True, **config.env_kwargs)
    except Exception as err:  # noqa: BLE001 (an unknown id, a missing package, a bad kwarg)
        text = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise ValueError(f"world.env_id {config.env_id!r}: {text}") from None
    # the world steps the bare env (env.unwrapped): its TimeLimit would truncate behind the
    # world's back (the horizon is ours)
    return env
