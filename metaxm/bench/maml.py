"""``metaxm bench maml``: the MAML meta-gradient three ways, on the same agent and task batch.

- ``vmap_s``: :func:`metaxm.meta.maml.meta_gradient` with ``vectorize=True``: the inner loops
  of all tasks under one ``torch.func.vmap`` (what :class:`~metaxm.meta.maml_trainer.
  MAMLTrainer` runs), then autograd through them.
- ``loop_s``: the same functional code with a Python loop over tasks (``vectorize=False``),
  what the trainer runs with ``maml.vectorize: false``.
- ``higher_s``: :func:`higher_meta_gradient`, an independent implementation with ``higher``
  (Grefenstette et al. 2019): per task, ``higher.innerloop_ctx`` over the agent with a
  differentiable SGD (``copy_initial_weights=False``, so the meta-gradient reaches the
  initial weights), the losses written out again with ``torch.distributions``, and
  ``backward`` per task, as higher's MAML examples do.

Each time is the median over ``repeats`` interleaved rounds (vmap, loop, higher, vmap, ...)
of one meta-gradient (forward and backward of the whole task batch), after one untimed
warm-up each; wall-clock and process-CPU seconds are both recorded (on a shared machine the
CPU times are the steadier measure; with one thread they equal the wall-clock time of an
idle core), with the 1-minute load average. The episodes are real ones, collected once before
timing. ``path`` is the one of vmap and loop that the case's spec runs (``maml.vectorize``);
``speedup_vs_higher`` is ``higher_s`` over that path's time, ``speedup_vs_loop`` is ``loop_s /
vmap_s`` whatever the path. ``max_abs_grad_diff`` is the largest absolute difference between
that path's meta-gradient and higher's over all parameters, ``max_abs_grad_diff_loop`` the same
between the vmapped and the looped ones. The torch thread count is whatever the caller set (the
command sets 1 by default and prints it).

The default cases (:data:`CASES`): the agent of ``tasks/gridnav.yaml`` (encoders for five
families) with the default MAML settings (:class:`~metaxm.meta.maml.MAMLConfig`: 20 tasks x 20
support and 20 query episodes, the adapter adapted, second order, one inner step) on its
``vector``, ``pixels`` and ``text`` families (``vector`` is the primary case, whose numbers go
to the top level of the JSON), and the classic PointNav set-up of ``tasks/maml-pointnav.yaml``
(all parameters adapted, 100-step episodes, the per-task loop).
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from metaxm.build import make_env
from metaxm.meta.maml import (
    MAMLConfig,
    adapt_in_env,
    adapted_names,
    meta_gradient,
)
from metaxm.meta.policy_gradient import PGBatch, collect_episodes
from metaxm.nn.distributions import GaussianHead


@dataclass(frozen=True)
class Case:
    """One benchmark set-up.

    Attributes:
        name: a short label.
        spec: the spec as plain data (world, modalities, agent, maml).
        family: the modality family of the task batch.
    """

    name: str
    spec: dict[str, Any]
    family: str


GRIDNAV = {
    "world": {"name": "gridnav", "size": 7, "horizon": 30, "step_cost": 0.01},
    "modalities": {
        "train": {"vector": 8, "projected": 8, "pixels": 8, "text": 8},
        "heldout_families": {"audio": 4},
    },
}
"""World and modalities of ``tasks/gridnav.yaml``: its agent reads five families."""

POINTNAV = {
    "world": {"name": "pointnav", "goal_visible": False, "horizon": 100},
    "modalities": {"train": {"vector": 1}},
    "agent": {"encoder_width": 64, "adapter_rank": 0, "init_log_std": 0.0},
    "maml": {"adapt": "all", "vectorize": False},
}
"""``tasks/maml-pointnav.yaml``: all parameters adapted, 20 tasks x 20 episodes of 100 steps."""

CASES = (
    Case("gridnav-vector", {**GRIDNAV, "maml": {}}, "vector"),
    Case("gridnav-pixels", {**GRIDNAV, "maml": {}}, "pixels"),
    Case("gridnav-text", {**GRIDNAV, "maml": {}}, "text"),
    Case("pointnav-all", POINTNAV, "vector"),
)
"""The default cases; the first is the primary one (the JSON's top level)."""


@dataclass(frozen=True)
class MAMLBenchRecord:
    """One row of the benchmark (see the module docstring)."""

    case: str
    world: str
    family: str
    adapt: str
    tasks: int
    support_episodes: int
    query_episodes: int
    support_steps_per_task: int
    inner_steps: int
    first_order: bool
    adapted_params: int
    total_params: int
    threads: int
    repeats: int
    load_average: float
    path: Literal["vmap", "loop"]
    vmap_s: float
    higher_s: float
    loop_s: float
    vmap_cpu_s: float
    higher_cpu_s: float
    loop_cpu_s: float
    speedup_vs_higher: float
    speedup_vs_loop: float
    speedup_vs_higher_cpu: float
    max_abs_grad_diff: float
    max_abs_grad_diff_loop: float


def higher_meta_gradient(
    model: nn.Module,
    family: str,
    names: Sequence[str],
    supports: Sequence[PGBatch],
    query: PGBatch,
    inner_lr: float,
    first_order: bool,
    clip_coef: float,
    ent_coef: float = 0.0,
    learned_lrs: Mapping[str, Tensor] | None = None,
    lvc: bool = False,
) -> tuple[Tensor, dict[str, Tensor]]:
    """The MAML meta-gradient with ``higher``, written independently of :mod:`metaxm.meta`.

    Per task: a differentiable SGD over the parameters ``names`` (one parameter group each,
    their Meta-SGD rates passed as ``override``), ``len(supports)`` steps on the REINFORCE loss
    (with ``lvc``, ProMP's: the probability of each action over the one it was played with in
    place of its log-probability), then the PPO-clip surrogate of the query episodes minus the
    entropy bonus, averaged over tasks. First order: the inner gradients are detached in
    ``grad_callback``.

    Returns:
        the loss and ``{name: gradient}`` for every parameter of ``model`` (and ``"lr:<name>"``
        for the learned rates), read from ``.grad`` after one ``backward`` per task.
    """
    import higher

    own = dict(model.named_parameters())
    adapted = [own[n] for n in names]
    opt = torch.optim.SGD([{"params": [p]} for p in adapted], lr=inner_lr)
    override = None if not learned_lrs else {"lr": [learned_lrs[n] for n in names]}
    model.zero_grad(set_to_none=True)
    for lr in (learned_lrs or {}).values():
        lr.grad = None
    gaussian = isinstance(model.head, GaussianHead)
    # a Gaussian head's pd describes the action in units of its bound (its ``scale``)
    scale = getattr(model.head, "scale", 1.0) if gaussian else 1.0

    def dist(pd: Tensor) -> torch.distributions.Distribution:
        if gaussian:
            mean, log_std = pd.chunk(2, -1)
            return torch.distributions.Independent(
                torch.distributions.Normal(mean, log_std.exp()), 1
            )
        return torch.distributions.Categorical(logits=pd)

    def detach(grads: Sequence[Tensor | None]) -> list[Tensor | None]:
        return [None if g is None else g.detach() for g in grads]

    n_tasks = query.mask.shape[0]
    total = 0.0
    for i in range(n_tasks):
        with higher.innerloop_ctx(model, opt, copy_initial_weights=False, override=override) as (
            fmodel,
            diffopt,
        ):
            for support in supports:
                obs, act, played, adv, mask = (x[i] for x in support)
                logp = dist(fmodel(obs, family)[0]).log_prob(act / scale)
                if lvc:
                    logp = torch.exp((logp - played) * (mask > 0))
                inner = -(logp * adv * mask).sum() / mask.sum()
                diffopt.step(inner, grad_callback=detach if first_order else None)
            obs, act, old, adv, mask = (x[i] for x in query)
            d = dist(fmodel(obs, family)[0])
            log_ratio = (d.log_prob(act / scale) - old) * (mask > 0)
            ratio = torch.exp(log_ratio)
            clipped = torch.clamp(ratio, 1.0 - clip_coef, 1.0 + clip_coef)
            surrogate = torch.minimum(ratio * adv, clipped * adv)
            loss = -(surrogate * mask).sum() / mask.sum() - ent_coef * (
                (d.entropy() * mask).sum() / mask.sum()
            )
            (loss / n_tasks).backward()
            total += float(loss.detach()) / n_tasks
    grads = {n: torch.zeros_like(p) if p.grad is None else p.grad.clone() for n, p in own.items()}
    for n, lr in (learned_lrs or {}).items():
        grads[f"lr:{n}"] = torch.zeros_like(lr) if lr.grad is None else lr.grad.clone()
    model.zero_grad(set_to_none=True)
    return torch.tensor(total), grads


def task_batch(
    spec_data: dict[str, Any], family: str, seed: int = 0
) -> tuple[nn.Module, MAMLConfig, list[PGBatch], PGBatch, Any]:
    """The agent of a spec and one real task batch of it: support episodes collected with the
    initialisation, query episodes with the adapted parameters."""
    from metaxm.envs.task_env import TaskEnv
    from metaxm.nn.agent import build_agent
    from metaxm.sampler import TaskSampler, batch_params
    from metaxm.spec import spec_from_dict

    spec = spec_from_dict({"seed": seed, **spec_data})
    cfg = spec.maml
    agent = build_agent(spec)
    tasks = TaskSampler(spec).sample("train", cfg.meta_batch, [family])
    gen = torch.Generator().manual_seed(seed)

    def env(per_task: int) -> TaskEnv:
        variants = [t.variant for t in tasks for _ in range(per_task)]
        tasks_ = batch_params(tasks, per_task)
        return make_env(spec, family, variants, seed=seed, device="cpu", tasks=tasks_)

    n = len(tasks)
    adaptation = adapt_in_env(agent, env(cfg.support_episodes), family, n, cfg, gen)
    query = collect_episodes(agent, env(cfg.query_episodes), family, n, adaptation.params, gen, cfg)
    return agent, cfg, [s.batch for s in adaptation.supports], query.batch, spec


def _time(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, tuple[float, float]]:
    """Median wall-clock and process-CPU seconds of each function, timed in interleaved
    rounds (so that a change in the machine's load hits every function alike)."""
    for fn in fns.values():
        fn()  # warm-up
    wall: dict[str, list[float]] = {k: [] for k in fns}
    cpu: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            w, c = time.perf_counter(), time.process_time()
            fn()
            wall[name].append(time.perf_counter() - w)
            cpu[name].append(time.process_time() - c)
    return {k: (statistics.median(wall[k]), statistics.median(cpu[k])) for k in fns}


def _max_diff(a: dict[str, Tensor], b: dict[str, Tensor]) -> float:
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def bench_case(case: Case, repeats: int = 5) -> MAMLBenchRecord:
    """Time the three meta-gradients of one case (see the module docstring)."""
    agent, cfg, supports, query, spec = task_batch(case.spec, case.family)
    family = case.family
    names = adapted_names(agent, cfg.adapt, family)

    def vmapped() -> dict[str, Tensor]:
        return meta_gradient(agent, family, names, supports, query, cfg, vectorize=True)[1]

    def looped() -> dict[str, Tensor]:
        return meta_gradient(agent, family, names, supports, query, cfg, vectorize=False)[1]

    def with_higher() -> dict[str, Tensor]:
        return higher_meta_gradient(
            agent, family, names, supports, query, cfg.inner_lr, cfg.first_order, cfg.clip_coef,
            cfg.ent_coef,
        )[1]  # fmt: skip

    g_vmap, g_loop, g_higher = vmapped(), looped(), with_higher()
    t = _time({"vmap": vmapped, "loop": looped, "higher": with_higher}, repeats)
    path: Literal["vmap", "loop"] = "vmap" if cfg.vectorize else "loop"
    params = dict(agent.named_parameters())
    return MAMLBenchRecord(
        case=case.name,
        world=spec.world.name,
        family=family,
        adapt=cfg.adapt,
        tasks=query.mask.shape[0],
        support_episodes=cfg.support_episodes,
        query_episodes=cfg.query_episodes,
        support_steps_per_task=supports[0].mask.shape[1] if supports else 0,
        inner_steps=cfg.inner_steps,
        first_order=cfg.first_order,
        adapted_params=sum(params[n].numel() for n in names),
        total_params=sum(p.numel() for p in params.values()),
        threads=torch.get_num_threads(),
        repeats=repeats,
        load_average=os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan"),
        vmap_s=t["vmap"][0],
        higher_s=t["higher"][0],
        loop_s=t["loop"][0],
        vmap_cpu_s=t["vmap"][1],
        higher_cpu_s=t["higher"][1],
        loop_cpu_s=t["loop"][1],
        path=path,
        speedup_vs_higher=t["higher"][0] / t[path][0],
        speedup_vs_loop=t["loop"][0] / t["vmap"][0],
        speedup_vs_higher_cpu=t["higher"][1] / t[path][1],
        max_abs_grad_diff=_max_diff(g_vmap if path == "vmap" else g_loop, g_higher),
        max_abs_grad_diff_loop=_max_diff(g_vmap, g_loop),
    )


def bench_maml(
    quick: bool = False,
    cases: Sequence[Case] = CASES,
    on_record: Callable[[MAMLBenchRecord], None] | None = None,
) -> list[MAMLBenchRecord]:
    """Run every case (``quick``: the primary case alone, 2 timed rounds instead of 5)."""
    records = []
    for case in cases[:1] if quick else cases:
        record = bench_case(case, repeats=2 if quick else 5)
        records.append(record)
        if on_record is not None:
            on_record(record)
    return records


HEADER = (
    f"{'case':<15} {'tasks':>5} {'steps/task':>10} {'adapted':>7} {'vmap s':>7} {'loop s':>7} "
    f"{'higher s':>8} {'runs':>5} {'vs higher':>9} {'(CPU)':>6} {'vmap/loop':>9} {'max |dg|':>8} "
    f"{'load':>5}"
)
"""Column heads of :func:`format_row`."""


def format_row(r: MAMLBenchRecord) -> str:
    """One table line for ``r``, under :data:`HEADER`."""
    return (
        f"{r.case:<15} {r.tasks:>5} {r.support_steps_per_task:>10} {r.adapted_params:>7} "
        f"{r.vmap_s:>7.3f} {r.loop_s:>7.3f} {r.higher_s:>8.3f} {r.path:>5} "
        f"{r.speedup_vs_higher:>8.1f}x {r.speedup_vs_higher_cpu:>5.1f}x {r.speedup_vs_loop:>8.1f}x "
        f"{r.max_abs_grad_diff:>8.1e} {r.load_average:>5.1f}"
    )


def write_json(records: Sequence[MAMLBenchRecord], path: str | Path) -> Path:
    """The primary case's fields at the top level, every case under ``cases``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [asdict(r) for r in records]
    path.write_text(json.dumps({**rows[0], "cases": rows}, indent=2) + "\n")
    return path


def small_case(case: Case, tasks: int, episodes: int) -> Case:
    """``case`` with a smaller task batch (for tests)."""
    maml = {**case.spec.get("maml", {}), "meta_batch": tasks}
    maml.update(support_episodes=episodes, query_episodes=episodes)
    return replace(case, spec={**case.spec, "maml": maml})
