"""The gymnasium API over metaxm's worlds: one env per instance, and a vector env for the batch.

:class:`MetaxmEnv` is a ``gymnasium.Env`` holding a world of one environment seen through one
modality variant; :class:`MetaxmVectorEnv` is a ``gymnasium.vector.VectorEnv`` over a batched
:class:`~metaxm.envs.task_env.TaskEnv`, with gymnasium's ``SAME_STEP`` auto-reset. Both are
registered when :mod:`metaxm.envs` is imported::

    env = gymnasium.make("metaxm/GridNav-v0", modality="pixels", variant=3)
    envs = gymnasium.make_vec("metaxm/GridNav-v0", num_envs=64, modality="text",
                              vectorization_mode="vector_entry_point")

Any further keyword argument is a field of the world's config (``size=9, walls=True``).

Tasks: every episode gets a task drawn from the world's task distribution at reset, unless a
task is fixed with the ``task`` (``tasks`` for the vector env) constructor argument or with
``reset(options={"task": ...})``; ``options={"task": None}`` goes back to drawing. A task is a
mapping of the world's task parameters, unbatched for :class:`MetaxmEnv` (GridNav:
``{"goal": (2,), "walls": (N, N)}``; PointNav: ``{"goal": (2,)}``) and batched for
:class:`MetaxmVectorEnv`.

Seeding follows gymnasium: ``reset(seed=s)`` seeds ``np_random``, from which the torch
generators of the world (tasks, starts) and of the modality (observation noise) are seeded; a
first reset without a seed draws them from fresh entropy, as every gymnasium env does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space
from numpy.typing import ArrayLike

from metaxm.config import from_dict
from metaxm.envs import TaskParams, World, make_world, world_config_class
from metaxm.envs.instructions import instructed_space, with_instruction
from metaxm.gym_ids import GYM_IDS, register

if TYPE_CHECKING:
    from metaxm.modalities.base import Modality

# metaxm.modalities and metaxm.envs.task_env import metaxm.envs, which imports this module to
# register the ids: they are imported where they are used, not here.

_SEED_HIGH = 2**62
_RESET_OPTIONS = frozenset({"task", "tasks"})


def build_world(
    world: str, num_envs: int, device: torch.device | str = "cpu", **world_kwargs: Any
) -> World:
    """Make world ``world`` with ``num_envs`` environments; kwargs are its config's fields.

    Raises:
        ConfigError: an unknown world, an unknown config field or a value of the wrong type.
    """
    try:
        key: Any = (world, tuple(sorted(world_kwargs.items())))
        config = _CONFIGS.get(key)
    except TypeError:  # an unhashable value: parse without the cache
        key, config = None, None
    if config is None:
        cls = world_config_class(world)
        config = from_dict(cls, {**world_kwargs, "name": world}, prefix=f"{world} world")
        if key is not None:
            _CONFIGS[key] = config
    return make_world(config, num_envs=num_envs, device=device)


# parsed world configs (frozen), so that building thousands of envs parses each config once
_CONFIGS: dict[Any, Any] = {}


def _family_and_variant(
    modality: str, variant: int | Sequence[int], one: bool = False
) -> tuple[str, Any]:
    """``"pixels:3"`` is shorthand for ``modality="pixels", variant=3``; ``variant`` must be a
    seed >= 0, or (unless ``one``: a single env) a sequence of them, one per env."""
    from metaxm.modalities.base import parse_modality_id

    if ":" in modality:
        return parse_modality_id(modality)
    many = not one and not isinstance(variant, (str, bytes)) and np.ndim(variant) > 0
    if many:  # a list, an array or a tensor: one per env
        values = list(variant) if isinstance(variant, (list, tuple)) else np.asarray(variant)
        values = [v for v in np.asarray(values, dtype=object).reshape(-1)]
    elif isinstance(variant, (str, bytes, list, tuple)) or np.ndim(variant) > 0:
        values = [variant]  # refused below
    else:  # a Python or numpy integer, a 0-d array or tensor
        values = [np.asarray(variant).item()]
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise ValueError(f"variant: expected a variant seed, an integer >= 0, got {v!r}")
    return modality, ([int(v) for v in values] if many else int(values[0]))


def _task_tensors(task: Mapping[str, ArrayLike], batched: bool) -> TaskParams:
    out = {}
    for key, value in task.items():
        t = torch.as_tensor(np.asarray(value))
        out[key] = t if batched else t.unsqueeze(0)
    return out


def _check_options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    options = dict(options or {})
    unknown = sorted(set(options) - _RESET_OPTIONS)
    if unknown:
        raise ValueError(f"unknown reset option {unknown[0]!r}; metaxm envs take 'task'")
    return options


def _to_numpy(x: torch.Tensor, dtype: np.dtype) -> np.ndarray:
    arr = x.detach().cpu().numpy()
    return arr if arr.dtype == dtype else arr.astype(dtype)


class MetaxmEnv(gym.Env):
    """One environment of a metaxm world, observed through one modality variant.

    Args:
        world: the registered world's name (``gridnav``, ``pointnav``).
        modality: the family name, or ``"family:variant"``.
        variant: the variant seed of the family.
        task: fix the task (unbatched task parameters) instead of drawing one per episode.
        device: where the world's tensors live.
        render_mode: unused (metaxm envs are seen through modalities, see ``metaxm render``).
        **world_kwargs: fields of the world's config, e.g. ``size=9, walls=True``.

    ``modality`` may also be a :class:`~metaxm.modalities.base.Modality` built for this world's
    scenes; envs that share one then share its variant parameters (``metaxm bench`` builds
    thousands this way).
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(
        self,
        world: str = "gridnav",
        modality: str | Modality = "vector",
        variant: int = 0,
        task: Mapping[str, ArrayLike] | None = None,
        device: torch.device | str = "cpu",
        render_mode: str | None = None,
        **world_kwargs: Any,
    ) -> None:
        from metaxm.modalities.base import Modality, expand_params

        self.world = build_world(world, 1, device, **world_kwargs)
        if not isinstance(modality, Modality):
            family, variant = _family_and_variant(modality, variant, one=True)
            modality = Modality(family, variant, self.world.scene_info)
        self.modality = modality
        self.observation_space = instructed_space(modality.observation_space, self.world.scene_info)
        self.action_space = self.world.action_space
        self.render_mode = render_mode
        device = self.world.device
        self._params = expand_params(modality.params, 1, device)
        self._render_generator = torch.Generator(device)
        self._fixed: TaskParams | None = None if task is None else _task_tensors(task, False)
        self._task_set = False
        self._seeded = False

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        options = _check_options(options)
        if seed is not None or not self._seeded:
            world_seed, render_seed = self.np_random.integers(_SEED_HIGH, size=2).tolist()
            self.world.generator.manual_seed(world_seed)
            self._render_generator.manual_seed(render_seed)
            self._seeded = True
        if "task" in options:
            task = options["task"]
            self._fixed = None if task is None else _task_tensors(task, False)
            self._task_set = False
        if self._fixed is None:
            self.world.set_tasks(self.world.sample_tasks(1))
        elif not self._task_set:  # a fixed task is set once, not at every reset
            self.world.set_tasks(self._fixed)
            self._task_set = True
        self.world.reset()
        return self._observe(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if isinstance(self.action_space, gym.spaces.Discrete):
            if not self.action_space.contains(action):  # -1 acted as the last action, 1.5 as 1
                raise ValueError(
                    f"action {action!r} is not in the action space {self.action_space}"
                )
            a = torch.tensor([int(action)], device=self.world.device)
        else:
            a = torch.as_tensor(np.asarray(action, dtype=np.float32), device=self.world.device)
            a = a.reshape(1, -1)
        reward, terminated, success = self.world.step(a)
        truncated = self.world.truncated() & ~terminated
        flags = torch.stack((terminated, truncated, success), 1)[0].tolist()
        return self._observe(), float(reward[0]), flags[0], flags[1], {"success": flags[2]}

    def task(self) -> dict[str, np.ndarray]:
        """The current task's parameters (unbatched numpy arrays)."""
        return {k: v[0].cpu().numpy() for k, v in self.world.task_params().items()}

    def _observe(self) -> np.ndarray:
        scene = self.world.scene()
        obs = self.modality.family.render(scene, self._params, self._render_generator)
        return _to_numpy(with_instruction(obs, scene)[0], self.observation_space.dtype)

    def render(self) -> None:
        return None


class MetaxmVectorEnv(gym.vector.VectorEnv):
    """A batch of ``num_envs`` environments of one world, stepped as tensors by a TaskEnv.

    Finished environments are reset within the same step (``AutoresetMode.SAME_STEP``): the
    returned observation starts the next episode, and ``info["final_obs"]`` (an object array,
    masked by ``info["_final_obs"]``) and ``info["final_info"]`` hold the last one's, exactly as
    ``SyncVectorEnv(..., autoreset_mode=SAME_STEP)`` over :class:`MetaxmEnv` reports them.

    Args:
        num_envs: B.
        world: the registered world's name.
        modality: the family name, or ``"family:variant"``.
        variant: one variant seed for every environment, or one per environment.
        tasks: fix the tasks (task parameters batched over B) instead of drawing new ones for
            every episode.
        device: where the tensors live (observations come back as numpy arrays).
        render_mode: unused.
        **world_kwargs: fields of the world's config.
    """

    metadata: dict[str, Any] = {"render_modes": [], "autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(
        self,
        num_envs: int,
        world: str = "gridnav",
        modality: str = "vector",
        variant: int | Sequence[int] = 0,
        tasks: Mapping[str, ArrayLike] | None = None,
        device: torch.device | str = "cpu",
        render_mode: str | None = None,
        **world_kwargs: Any,
    ) -> None:
        from metaxm.envs.task_env import TaskEnv

        family, variant = _family_and_variant(modality, variant)
        self.num_envs = num_envs
        self.world = build_world(world, num_envs, device, **world_kwargs)
        self._fixed: TaskParams | None = None if tasks is None else _task_tensors(tasks, True)
        self.task_env = TaskEnv(
            self.world, family, variant, final_obs=True, resample_tasks=self._fixed is None
        )
        self.single_observation_space = self.task_env.observation_space
        self.single_action_space = self.world.action_space
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.render_mode = render_mode
        self._seeded = False

    def reset(
        self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        if seed is not None and not isinstance(seed, int):
            raise ValueError("MetaxmVectorEnv.reset takes one int seed for the whole batch")
        super().reset(seed=seed)
        options = _check_options(options)
        if seed is not None or not self._seeded:
            world_seed, render_seed = self.np_random.integers(_SEED_HIGH, size=2).tolist()
            self.world.generator.manual_seed(world_seed)
            self.task_env.render_generator.manual_seed(render_seed)
            self._seeded = True
        key = "tasks" if "tasks" in options else "task"
        if key in options:
            tasks = options[key]
            self._fixed = None if tasks is None else _task_tensors(tasks, True)
            self.task_env.resample_tasks = self._fixed is None
        tasks = self.world.sample_tasks(self.num_envs) if self._fixed is None else self._fixed
        self.task_env.set_tasks(tasks)
        obs = self.task_env.reset()
        return _to_numpy(obs, self.single_observation_space.dtype), {}

    def step(
        self, actions: ArrayLike
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        check_actions(np.asarray(actions), self.single_action_space, self.num_envs)
        a = torch.as_tensor(np.asarray(actions), device=self.world.device)
        obs, reward, terminated, truncated, tinfo = self.task_env.step(a)
        dtype = self.single_observation_space.dtype
        term, trunc = terminated.cpu().numpy(), truncated.cpu().numpy()
        success = tinfo["success"].cpu().numpy()
        done = term | trunc
        # gymnasium's vector info: a value array and a "_key" mask of the envs that report it
        info: dict[str, Any] = {"success": success & ~done, "_success": ~done}
        if done.any():
            final = _to_numpy(tinfo["final_obs"], dtype)
            final_obs = np.full(self.num_envs, None, dtype=object)
            for i in np.flatnonzero(done):
                final_obs[i] = final[i]
            info["final_obs"], info["_final_obs"] = final_obs, done
            info["final_info"] = {"success": success & done, "_success": done.copy()}
            info["_final_info"] = done.copy()
        return (
            _to_numpy(obs, dtype),
            reward.cpu().numpy().astype(np.float64),
            term,
            trunc,
            info,
        )

    def task(self) -> dict[str, np.ndarray]:
        """The current tasks' parameters, batched (numpy arrays)."""
        return {k: v.cpu().numpy() for k, v in self.world.task_params().items()}

    def render(self) -> None:
        return None


def gym_id(world: str) -> str:
    """The gymnasium id of a registered world: :data:`GYM_IDS` for the built-in ones,
    ``metaxm/<ConfigName>-v0`` for others (``LineNavConfig`` -> ``metaxm/LineNav-v0``)."""
    if world in GYM_IDS:
        return GYM_IDS[world]
    return f"metaxm/{world_config_class(world).__name__.removesuffix('Config')}-v0"


def register_gym_envs() -> None:
    """Register a gymnasium id for every registered world (idempotent)."""
    from metaxm.envs import WORLDS

    for world in WORLDS:
        register(world, gym_id(world))


register_gym_envs()


def check_actions(actions: np.ndarray, space: gym.Space, num_envs: int) -> None:
    """Refuse a vector env's actions of the wrong shape, or discrete ones outside the space
    (negative ones indexed from the end, fractions were cut)."""
    want = (num_envs, *space.shape)
    if actions.shape != want:
        raise ValueError(f"actions of shape {actions.shape}; this vector env takes {want}")
    if isinstance(space, gym.spaces.Discrete):
        lo, hi = space.start, space.start + space.n
        if actions.dtype.kind not in "iu" or ((actions < lo) | (actions >= hi)).any():
            raise ValueError(f"actions {actions.tolist()} are not all in the action space {space}")
