"""``metaxm bench envs``: batched worlds against gymnasium's ``SyncVectorEnv``, per modality.

For every world x registered family and every batch size B, three ways of stepping B
environments (same world, same family and variant, same tasks, same pre-sampled random actions)
are timed side by side:

- ``steps_per_s``: the batched :class:`~metaxm.envs.task_env.TaskEnv`, torch tensors in and
  out; what metaxm's learners step.
- ``vector_env_steps_per_s``: the same batch behind the gymnasium vector API
  (:class:`~metaxm.envs.gym_api.MetaxmVectorEnv`: numpy in and out, ``final_obs`` rendered).
- ``gym_steps_per_s``: ``gymnasium.vector.SyncVectorEnv`` (``SAME_STEP`` auto-reset) over B
  single-environment :class:`~metaxm.envs.gym_api.MetaxmEnv`, the usual way to batch an env.

``ratio`` is ``steps_per_s / gym_steps_per_s``. A step of B environments counts as B steps.
The ``*_per_cpu_s`` twins divide by this process's CPU time instead of wall-clock time: on a
machine shared with other jobs they estimate what an idle core would give (with one torch
thread, CPU time is the time the benchmark itself ran).
Actions are sampled before timing starts; the first steps of each run are warm-up and not timed.
Every env keeps its task across episodes (TaskEnv's semantics; the single envs get theirs fixed),
so all three do the same work. Threads are whatever torch is set to; the command sets one.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from metaxm.envs import WORLDS
from metaxm.envs.gym_api import MetaxmEnv, MetaxmVectorEnv, build_world
from metaxm.envs.task_env import TaskEnv
from metaxm.modalities import FAMILIES, Modality

log = logging.getLogger(__name__)

DEFAULT_BATCHES = (1, 64, 1024)
RATIO_TARGET = 50.0
"""DESIGN.md: batched worlds step >= 50x faster than SyncVectorEnv at B = 1024, every family."""
RATIO_TARGET_BATCH = 1024
GRIDNAV_VECTOR_TARGET = 1_000_000.0
"""Steps/s that GridNav seen as ``vector`` should reach at the largest batch."""


@dataclass(frozen=True)
class Timing:
    """How long each measurement runs.

    Attributes:
        min_time: seconds each timed run lasts at least (unless it runs out of actions).
        min_steps: batched steps each timed run takes at least.
        max_env_steps: pre-sampled actions per run, in environment steps (B per batched step).
        max_steps: at most this many batched steps per run.
        warmup: untimed batched steps before each timed run of the batched envs.
        gym_warmup: the same for ``SyncVectorEnv``, whose Python loop has nothing to warm up
            (at B = 1024 one of its steps takes a second).
    """

    min_time: float
    min_steps: int
    max_env_steps: int
    max_steps: int
    warmup: int
    gym_warmup: int


FULL = Timing(
    min_time=0.5, min_steps=3, max_env_steps=4_000_000, max_steps=20_000, warmup=2, gym_warmup=1
)
QUICK = Timing(
    min_time=0.05, min_steps=1, max_env_steps=200_000, max_steps=2_000, warmup=1, gym_warmup=0
)


@dataclass(frozen=True)
class EnvBenchRecord:
    """One row of the benchmark (see the module docstring for what each rate measures)."""

    world: str
    family: str
    batch: int
    steps_per_s: float
    gym_steps_per_s: float
    ratio: float
    vector_env_steps_per_s: float
    steps_per_cpu_s: float
    gym_steps_per_cpu_s: float
    variant: int
    threads: int
    device: str


def check_choice(
    worlds: Sequence[str] | None, families: Sequence[str] | None, batches: Sequence[int]
) -> None:
    """Refuse an unknown world or family, or a batch size below 1 (``ValueError``)."""
    for name in worlds or ():
        if name not in WORLDS:
            raise ValueError(f"unknown world {name!r}; registered: {', '.join(sorted(WORLDS))}")
    for name in families or ():
        if name not in FAMILIES:
            raise ValueError(
                f"unknown modality family {name!r}; registered: {', '.join(sorted(FAMILIES))}"
            )
    if any(b < 1 for b in batches):
        raise ValueError(f"batch sizes must be >= 1, got {list(batches)}")


def bench_envs(
    worlds: Sequence[str] | None = None,
    families: Sequence[str] | None = None,
    batches: Sequence[int] = DEFAULT_BATCHES,
    quick: bool = False,
    variant: int = 0,
    seed: int = 0,
    device: str = "cpu",
    on_record: Callable[[EnvBenchRecord], None] | None = None,
) -> list[EnvBenchRecord]:
    """Time every world x family x batch size; see the module docstring.

    Args:
        worlds: registered world names (by default every world without ``python_loop``),
            each with its default config.
        families: registered family names (all by default).
        batches: the batch sizes B.
        quick: short runs (:data:`QUICK`) instead of :data:`FULL` ones.
        variant: the family variant every environment uses.
        seed: seeds the tasks, the actions and the envs.
        device: where the worlds live.
        on_record: called with each record as soon as it is measured.

    Raises:
        ValueError: an unknown world or family, or a batch size below 1.
    """
    if worlds is None:  # the batched worlds; Python-loop adapters (MiniGrid) when named
        worlds = [name for name, (cls, _) in WORLDS.items() if not cls.python_loop]
    families = list(FAMILIES) if families is None else list(families)
    check_choice(worlds, families, batches)
    timing = QUICK if quick else FULL
    records = []
    for world in worlds:
        for family in families:
            for batch in batches:
                record = _bench_one(world, family, batch, timing, variant, seed, device)
                if record is None:
                    break
                records.append(record)
                if on_record is not None:
                    on_record(record)
    return records


def _bench_one(
    world_name: str, family: str, batch: int, timing: Timing, variant: int, seed: int, device: str
) -> EnvBenchRecord | None:
    world = build_world(world_name, batch, device)
    world.generator.manual_seed(seed)
    try:
        modality = Modality(family, variant, world.scene_info)
    except ValueError as err:
        log.warning("skipping %s x %s: %s", world_name, family, err)
        return None
    world.set_tasks(world.sample_tasks(batch))
    tasks = world.task_params()
    n_steps = max(timing.min_steps, min(timing.max_steps, timing.max_env_steps // batch))
    actions = _random_actions(world.action_space, timing.warmup + n_steps, batch, seed)
    actions_np = actions.numpy()

    task_env = TaskEnv(world, family, variant, seed=seed)
    task_env.reset()
    rate, cpu_rate = _steps_per_s(
        task_env.step, list(actions.to(world.device).unbind(0)), timing, timing.warmup
    )

    vec = MetaxmVectorEnv(batch, world_name, family, variant, tasks=tasks, device=device)
    vec.reset(seed=seed)
    vec_rate, _ = _steps_per_s(vec.step, list(actions_np), timing, timing.warmup)
    vec.close()

    envs = [
        MetaxmEnv(world_name, modality, task={k: v[i] for k, v in tasks.items()}, device=device)
        for i in range(batch)
    ]
    sync = SyncVectorEnv([_constant(env) for env in envs], autoreset_mode=AutoresetMode.SAME_STEP)
    sync.reset(seed=seed)
    gym_rate, gym_cpu_rate = _steps_per_s(sync.step, list(actions_np), timing, timing.gym_warmup)
    sync.close()

    return EnvBenchRecord(
        world=world_name,
        family=family,
        batch=batch,
        steps_per_s=rate * batch,
        gym_steps_per_s=gym_rate * batch,
        ratio=rate / gym_rate,
        vector_env_steps_per_s=vec_rate * batch,
        steps_per_cpu_s=cpu_rate * batch,
        gym_steps_per_cpu_s=gym_cpu_rate * batch,
        variant=variant,
        threads=torch.get_num_threads(),
        device=str(world.device),
    )


def _constant(env: gym.Env) -> Callable[[], gym.Env]:
    return lambda: env


def _random_actions(space: gym.Space, steps: int, batch: int, seed: int) -> torch.Tensor:
    """(steps, B) long or (steps, B, *shape) float32 actions, uniform over ``space``."""
    g = torch.Generator().manual_seed(seed)
    if isinstance(space, gym.spaces.Discrete):
        start = int(space.start)
        return torch.randint(start, start + int(space.n), (steps, batch), generator=g)
    if isinstance(space, gym.spaces.Box):
        low = torch.as_tensor(space.low, dtype=torch.float32)
        high = torch.as_tensor(space.high, dtype=torch.float32)
        u = torch.rand(steps, batch, *space.shape, generator=g)
        return low + u * (high - low)
    raise TypeError(f"cannot sample actions from {space}")


def _steps_per_s(
    step: Callable[[Any], Any], actions: list[Any], timing: Timing, warmup: int
) -> tuple[float, float]:
    """Batched steps per wall-clock second and per CPU second of ``step`` over ``actions``.

    ``warmup`` untimed steps come first.
    """
    for a in actions[:warmup]:
        step(a)
    timed = actions[warmup:]
    start, cpu_start = time.perf_counter(), time.process_time()
    done = 0
    for a in timed:
        step(a)
        done += 1
        if done >= timing.min_steps and time.perf_counter() - start >= timing.min_time:
            break
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return done / wall, done / max(cpu, 1e-9)


HEADER = (
    f"{'world':<10} {'family':<10} {'B':>5} {'TaskEnv':>12} {'VectorEnv':>12} "
    f"{'SyncVecEnv':>12} {'ratio':>8} {'TaskEnv/cpu-s':>14} {'cpu ratio':>10}"
)
"""Column heads of :func:`format_row`; rates are environment steps per second."""


def format_row(r: EnvBenchRecord) -> str:
    """One table line for ``r``, under :data:`HEADER`."""
    return (
        f"{r.world:<10} {r.family:<10} {r.batch:>5} {r.steps_per_s:>12,.0f} "
        f"{r.vector_env_steps_per_s:>12,.0f} {r.gym_steps_per_s:>12,.0f} {r.ratio:>7.1f}x "
        f"{r.steps_per_cpu_s:>14,.0f} {r.steps_per_cpu_s / r.gym_steps_per_cpu_s:>9.1f}x"
    )


def missed_targets(records: Sequence[EnvBenchRecord]) -> list[str]:
    """One line per DESIGN.md target the records miss (only for batch sizes they include)."""
    misses = []
    for r in records:
        if r.batch == RATIO_TARGET_BATCH and r.ratio < RATIO_TARGET:
            misses.append(
                f"{r.world} x {r.family} at B={r.batch}: ratio {r.ratio:.1f} < {RATIO_TARGET:g}"
            )
    largest = max((r.batch for r in records), default=0)
    for r in records:
        is_target = (r.world, r.family, r.batch) == ("gridnav", "vector", largest)
        if is_target and largest >= RATIO_TARGET_BATCH and r.steps_per_s < GRIDNAV_VECTOR_TARGET:
            misses.append(
                f"gridnav x vector at B={largest}: {r.steps_per_s:,.0f} steps/s wall-clock "
                f"({r.steps_per_cpu_s:,.0f} per CPU second) < {GRIDNAV_VECTOR_TARGET:,.0f}"
            )
    return misses


def write_json(records: Sequence[EnvBenchRecord], path: str | Path) -> Path:
    """Write the records as a JSON list of objects; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [{k: _finite(v) for k, v in asdict(r).items()} for r in records]
    path.write_text(json.dumps(rows, indent=2) + "\n")
    return path


def _finite(v: Any) -> Any:
    return None if isinstance(v, float) and not math.isfinite(v) else v
