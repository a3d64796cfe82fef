"""``metaxm bench sensory``: what the sensory encoder costs in training, beside the MLP encoder.

For each case, two RL^2 trainers (:class:`~metaxm.meta.rl2.RL2Trainer`, recurrent PPO) are
built on the same spec, the same channels and the same seed, differing only in
``agent.encoder``: ``family`` (each channel family's MLP encoder) and ``sensory``
(:mod:`metaxm.nn.sensory`). After one untimed warm-up update each, ``repeats`` updates of each
are timed in interleaved rounds (family, sensory, family, ...); one update collects
``ppo.num_steps`` steps of every environment of every training family and runs the PPO epochs,
so its env steps per second is the speed of a training run. ``cost`` is the MLP encoder's
steps/s over the sensory encoder's (the issue's target: at most 3), in wall-clock time and in
this process's CPU time (the steadier measure on a shared machine; with one torch thread it is
the time an idle core would take).

The cases (:data:`CASES`): GridNav 7 x 7 seen as ``vector`` (8 channels) and ``projected`` (32)
as ``tasks/sensory-gridnav.yaml`` trains it (128 units, both probes, fresh wirings), the batched
world of the main job, where the network is most of the cost; and CartPole-v1
(``tasks/sensory-cartpole.yaml``, 8 channels, its two lags and its sign built in, which runs
every neuron twice), a gymnasium env stepped in Python.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from metaxm.build import make_trainer
from metaxm.spec import spec_from_dict

CASES: dict[str, dict[str, Any]] = {
    "gridnav": {  # as tasks/sensory-gridnav.yaml: its agent, probes, fresh wirings and PPO
        "world": {
            "name": "gridnav",
            "size": 7,
            "walls": False,
            "goal_visible": True,
            "horizon": 30,
            "step_cost": 0.01,
        },
        "modalities": {"train": {"vector": 8, "projected": 8}},
        "rl2": {
            "episodes_per_trial": 3,
            "variants": "fresh",
            "state_probe": 1.0,
            "state_probe_visited": True,
        },
        "agent": {"latent_dim": 64, "hidden": 128, "pool_queries": 16},
        "ppo": {
            "lr": 0.001,
            "num_steps": 64,
            "update_epochs": 4,
            "num_minibatches": 4,
            "ent_coef": 0.01,
        },
        "train": {"num_envs": 32},
    },
    "cartpole": {
        "world": {"name": "gym", "env_id": "CartPole-v1"},
        "modalities": {"train": {"vector": 64}},
        "agent": {
            "pool_queries": 16,
            "latent_dim": 32,
            "encoder_width": 64,
            "hidden": 64,
            "sensory_lags": 2,  # as the spec: two lags, the sign built in (twice the neurons)
            "sensory_sign": "invariant",
        },
        "ppo": {"num_steps": 128},
        "train": {"num_envs": 16},
    },
}
"""The benchmark's set-ups; ``algo: rl2`` and the encoder are added per side."""

COST_TARGET = 3.0
"""A sensory-encoder run costs at most 3x the MLP encoder's steps/s (issue #19)."""


@dataclass(frozen=True)
class SensoryBenchRecord:
    """One case (see the module docstring)."""

    case: str
    families: list[str]
    channels: dict[str, int]
    steps_per_update: int
    repeats: int
    threads: int
    load_average: float
    family_steps_per_s: float
    sensory_steps_per_s: float
    family_steps_per_cpu_s: float
    sensory_steps_per_cpu_s: float

    @property
    def cost(self) -> float:
        return self.family_steps_per_s / self.sensory_steps_per_s

    @property
    def cost_cpu(self) -> float:
        return self.family_steps_per_cpu_s / self.sensory_steps_per_cpu_s


def _spec(case: str, encoder: str) -> Any:
    data = {**CASES[case], "algo": "rl2", "seed": 0}
    data["agent"] = {**data["agent"], "encoder": encoder}
    data["log"] = {"mode": "disabled", "progress": False}
    data["main"] = {"runs": {"rl2": {}}}
    return spec_from_dict(data)


def bench_case(case: str, repeats: int) -> SensoryBenchRecord:
    """Time ``repeats`` updates of each encoder's trainer on ``case``, interleaved."""
    import torch

    specs = {e: _spec(case, e) for e in ("family", "sensory")}
    trainers = {e: make_trainer(spec) for e, spec in specs.items()}
    spec = specs["sensory"]
    families = list(spec.modalities.train)
    steps = spec.train.num_envs * spec.ppo.num_steps * len(families)
    wall: dict[str, list[float]] = {e: [] for e in trainers}
    cpu: dict[str, list[float]] = {e: [] for e in trainers}
    for trainer in trainers.values():
        trainer.update()  # warm-up
    for _ in range(repeats):
        for encoder, trainer in trainers.items():
            t0, c0 = time.perf_counter(), time.process_time()
            trainer.update()
            wall[encoder].append(time.perf_counter() - t0)
            cpu[encoder].append(time.process_time() - c0)
    agent = trainers["sensory"].agent
    return SensoryBenchRecord(
        case=case,
        families=families,
        channels={f: agent.encoders[f].channels for f in families},
        steps_per_update=steps,
        repeats=repeats,
        threads=torch.get_num_threads(),
        load_average=os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan"),
        family_steps_per_s=steps / statistics.median(wall["family"]),
        sensory_steps_per_s=steps / statistics.median(wall["sensory"]),
        family_steps_per_cpu_s=steps / statistics.median(cpu["family"]),
        sensory_steps_per_cpu_s=steps / statistics.median(cpu["sensory"]),
    )


def bench_sensory(
    quick: bool = False,
    cases: Sequence[str] | None = None,
    on_record: Callable[[SensoryBenchRecord], None] | None = None,
) -> list[SensoryBenchRecord]:
    """Every case of ``cases`` (default: all), 3 repeats with ``quick``, else 10."""
    records = []
    for case in cases or list(CASES):
        if case not in CASES:
            raise ValueError(f"no sensory bench case {case!r}; known: {', '.join(CASES)}")
        records.append(bench_case(case, 3 if quick else 10))
        if on_record is not None:
            on_record(records[-1])
    return records


HEADER = (
    f"{'case':<9} {'channels':<22} {'MLP steps/s':>11} {'sensory steps/s':>15} "
    f"{'cost':>6} {'(CPU)':>6} {'load':>5}"
)
"""Column heads of :func:`format_row`."""


def format_row(r: SensoryBenchRecord) -> str:
    """One table line for ``r``, under :data:`HEADER`."""
    channels = ", ".join(f"{f} {c}" for f, c in r.channels.items())
    return (
        f"{r.case:<9} {channels:<22} {r.family_steps_per_s:>11,.0f} "
        f"{r.sensory_steps_per_s:>15,.0f} {r.cost:>5.2f}x {r.cost_cpu:>5.2f}x "
        f"{r.load_average:>5.1f}"
    )


def missed_targets(records: Sequence[SensoryBenchRecord]) -> list[str]:
    """A line for each case whose CPU-time cost is above :data:`COST_TARGET`."""
    return [
        f"{r.case}: the sensory encoder costs {r.cost_cpu:.2f}x the MLP's steps/s (target "
        f"<= {COST_TARGET:g}x)"
        for r in records
        if r.cost_cpu > COST_TARGET
    ]


def write_json(records: Sequence[SensoryBenchRecord], path: str | Path) -> Path:
    """Every case, with its cost ratios."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [{**asdict(r), "cost": r.cost, "cost_cpu": r.cost_cpu} for r in records]
    path.write_text(json.dumps({"target": COST_TARGET, "cases": rows}, indent=2) + "\n")
    return path
