"""The run loop: drives any trainer, owns the run directory, logging, checkpoints and resume.

An algorithm plugs in as a *trainer* (:class:`Trainer`); the loop knows nothing of PPO, MAML or
RL^2. It calls ``trainer.update()`` until ``train.total_steps`` environment steps are done and,
around it:

* writes ``RUNDIR/config.yaml`` (the resolved spec) and, every ``train.log_interval`` updates,
  a record to ``RUNDIR/metrics.jsonl`` (and wandb, and the progress bar);
* every ``train.checkpoint_interval`` updates saves ``RUNDIR/checkpoints/ckpt-<update>.pt``
  atomically: the trainer's state (model, optimizer, generators, environments), the global RNG
  states, the loop's counters and the spec, so that ``--resume`` after a kill continues exactly
  (on CPU with the same seed the resumed ``metrics.jsonl`` equals an uninterrupted one);
* stops with :class:`~metaxm.errors.DivergenceError`, naming the update, step and quantity, at
  the first NaN or inf in a metric or a parameter, before anything is checkpointed;
* at the end plots ``RUNDIR/curve.png`` and, if the trainer can, evaluates it on fresh episodes
  into ``RUNDIR/eval.json``;
* before a fresh run's first update, starts its agent from earlier runs (``align.init_from``,
  ``train.init_from``) and records what it copied in ``RUNDIR/init.json``;
* under ``torchrun`` (``WORLD_SIZE`` > 1) joins the process group, lets the trainers share out
  the training families and all-reduce gradients, and writes everything from rank 0
  (:mod:`metaxm.run.distributed`).

The trainer of the spec's ``algo`` comes from :func:`metaxm.build.make_trainer`.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor

from metaxm.build import make_trainer
from metaxm.config.train import TrainConfig
from metaxm.errors import ConfigError, DivergenceError, MetaxmError
from metaxm.resources import check_spec as check_resources
from metaxm.run import distributed
from metaxm.run.checkpoint import (
    check_resumable,
    checkpoint_path,
    global_rng_state,
    load_checkpoint,
    prune_checkpoints,
    save_checkpoint,
    set_global_rng_state,
)
from metaxm.run.device import resolve_device
from metaxm.run.init import initialise_agent
from metaxm.run.logger import RunLogger
from metaxm.run.rundir import OutputLock, discard_unstarted, open_rundir, write_config

if TYPE_CHECKING:
    from metaxm.spec import Spec

log = logging.getLogger(__name__)


EPISODE_KEYS = ("return", "success", "length")


@runtime_checkable
class Trainer(Protocol):
    """What the run loop needs from an algorithm.

    Attributes:
        env_steps: environment steps taken so far (the x-axis of every curve).
        episodes: episodes finished so far.
    """

    env_steps: int
    episodes: int

    def update(self) -> dict[str, float]:
        """Collect experience and improve the policy once.

        Returns floats. ``episodes`` (and ``episodes/<family>``) count the episodes that ended
        during this update; ``return``, ``success``, ``length`` (and ``<key>/<family>``) are
        means over them and are averaged over a log window weighted by those counts; every
        other key (losses, diagnostics) is averaged over the window's updates.
        """

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly: weights, optimizer, generators, envs, counters.
        Plain data and tensors only (it is loaded with ``weights_only=True``)."""

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""

    def named_parameters(self) -> Iterator[tuple[str, Tensor]]:
        """The trained parameters (checked for NaN and inf after every update)."""


@dataclass
class RunResult:
    """What a finished run reports.

    Attributes:
        rundir: the run directory.
        updates: updates done in total.
        env_steps: environment steps done in total.
        sps: environment steps per second of training in this process (wall clock).
        cpu_sps: environment steps per CPU-second of this process (all threads); on a machine
            shared with other jobs it shows what the run would reach alone.
        last: the last record written to ``metrics.jsonl``.
        evaluation: the final evaluation (``eval.json``), empty when skipped.
        trained: False when the run had already finished and this call trained nothing (a
            ``--resume`` of a finished run); ``sps`` and ``cpu_sps`` are then the run's own,
            kept from its ``summary.json``.
    """

    rundir: Path
    updates: int
    env_steps: int
    sps: float
    cpu_sps: float = 0.0
    last: dict[str, Any] = field(default_factory=dict)
    evaluation: dict[str, Any] = field(default_factory=dict)
    trained: bool = True


def _earlier_throughput(rundir: Path) -> tuple[float, float]:
    """``sps`` and ``cpu_sps`` from a finished run's ``summary.json`` (0 where it has none)."""
    try:
        summary = json.loads((rundir / "summary.json").read_text())
        return float(summary["sps"]), float(summary["cpu_sps"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0.0, 0.0


class MetricWindow:
    """Averages the metrics of the updates between two log steps (see :meth:`Trainer.update`)."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.weights: dict[str, float] = {}

    def add(self, metrics: dict[str, float]) -> None:
        for key, value in metrics.items():
            base, sep, family = key.partition("/")
            if base == "episodes":
                continue
            weight = 1.0
            if base in EPISODE_KEYS:
                weight = metrics.get(f"episodes{sep}{family}", 0.0)
                if weight <= 0:
                    continue
            self.sums[key] = self.sums.get(key, 0.0) + value * weight
            self.weights[key] = self.weights.get(key, 0.0) + weight

    def flush(self) -> dict[str, float]:
        out = {k: self.sums[k] / self.weights[k] for k in self.sums}
        self.sums, self.weights = {}, {}
        return out


def train(
    spec: Spec, rundir: str | Path, resume: bool = False, last_good: bool = False
) -> RunResult:
    """Run (or, with ``resume``, continue) the training run of ``spec`` in ``rundir``.

    Like ``metaxm train``, it sets the process's torch threads to ``train.threads`` (when set)
    and seeds the global torch, numpy and ``random`` generators from ``spec.seed``.

    Raises:
        ConfigError: ``rundir`` already holds a run (or other files) and ``resume`` is false,
            the spec differs from the one the run was started with, or another process is
            writing there (:mod:`metaxm.run.rundir`).
        CheckpointError: the checkpoint to resume from cannot be loaded safely or is another
            run's; with ``last_good`` a newest checkpoint that fails its checksum is skipped
            for the newest that verifies.
        DivergenceError: a NaN or inf appeared; the checkpoints on disk are the last good ones.
    """

    context = distributed.setup(str(resolve_device(spec.device)))
    try:
        return _train(spec, Path(rundir), resume, last_good)
    finally:
        distributed.teardown(context)


def _train(spec: Spec, rundir: Path, resume: bool, last_good: bool) -> RunResult:
    """:func:`train` on this process (one rank of several under torchrun: see
    :mod:`metaxm.run.distributed`; rank 0 alone writes the run directory)."""
    from metaxm.spec import spec_to_dict

    data = spec_to_dict(spec)
    resolve_device(spec.device)  # one line, before anything is written, if it is not here
    main = distributed.is_main()
    if distributed.world_size() > 1:
        from metaxm.sampler import TaskSampler

        distributed.check_spec(spec, TaskSampler(spec).families("train"))
    if spec.train.threads:
        torch.set_num_threads(spec.train.threads)
    _seed_globals(spec.seed)
    # the trainer first: a spec it refuses (a family that cannot render this world, an agent
    # it cannot train) then leaves no run folder behind to block the corrected retry
    check_resources(spec)
    lock = OutputLock(rundir) if main else None  # checks the path; takes nothing yet
    trainer = make_trainer(spec)
    if lock is not None:
        lock.acquire()
    fresh = lock is not None and not resume and not (rundir / "config.yaml").exists()
    try:
        return _train_locked(spec, rundir, resume, last_good, trainer, data)
    except BaseException:
        if fresh and (rundir / "config.yaml").exists():  # this start wrote it, then failed
            discard_unstarted(rundir)  # before its first checkpoint: no trace
        raise
    finally:
        if lock is not None:
            lock.release(remove_created=True)


def _train_locked(
    spec: Spec, rundir: Path, resume: bool, last_good: bool, trainer: Any, data: dict[str, Any]
) -> RunResult:
    """:func:`_train` once this process holds the run folder (rank 0) or the spec is checked
    (other ranks)."""
    main = distributed.is_main()
    checkpoint = _open_rundir_on_main(rundir, data, resume, last_good)
    update = 0
    init: dict[str, Any] = {}
    if checkpoint is None and (spec.align.init_from or spec.train.init_from):
        init = initialise_agent(trainer.agent, spec)
    if main:  # written only once every check has passed
        if not resume:
            write_config(rundir, data)
        if init:
            (rundir / "init.json").write_text(json.dumps(init, indent=2) + "\n")
    if checkpoint is not None:
        # on the CPU: generator states must stay CPU byte tensors; the trainer moves the rest
        state = load_checkpoint(checkpoint, map_location="cpu")
        check_resumable(state, checkpoint, spec.algo, data)
        if main and not (rundir / "config.yaml").exists():  # deleted: the checkpoint vouched
            write_config(rundir, data)
        trainer.load_state_dict(state["trainer"])
        set_global_rng_state(state["rng"])
        update = int(state["loop"]["update"])
        log.info("resuming %s from update %d (step %d)", rundir, update, trainer.env_steps)
    # every rank built the same agent from the same seed; rank 0's copy is the reference
    distributed.broadcast_parameters(p for _, p in trainer.named_parameters())
    cfg = spec.train
    logger: RunLogger | _SilentLogger = _SilentLogger()
    if main:
        logger = RunLogger(
            rundir, spec.log, cfg.total_steps, data,
            resume_update=update if resume else None, initial_step=trainer.env_steps,
        )  # fmt: skip
    window = MetricWindow()
    exploded = False
    start_steps, start_time, start_cpu = trainer.env_steps, time.perf_counter(), time.process_time()
    last: dict[str, Any] = {}
    try:
        while trainer.env_steps < cfg.total_steps:
            metrics = trainer.update()
            update += 1
            _check_finite(trainer, metrics, update)
            exploded = check_losses(metrics, cfg, f"update {update}", exploded)
            window.add(metrics)
            finished = trainer.env_steps >= cfg.total_steps
            if update % cfg.log_interval == 0 or finished:
                last = {"step": trainer.env_steps, "update": update, "episodes": trainer.episodes}
                last.update(window.flush())
                logger.log(last)
            every = cfg.checkpoint_interval
            if (every and update % every == 0) or finished:
                save_run_checkpoint(rundir, spec.algo, data, trainer, update, cfg.keep_checkpoints)
        elapsed = time.perf_counter() - start_time
        done_steps = trainer.env_steps - start_steps
        sps = done_steps / max(elapsed, 1e-9)
        cpu_sps = done_steps / max(time.process_time() - start_cpu, 1e-9)
        if not main:
            return RunResult(rundir, update, trainer.env_steps, sps, cpu_sps, last)
        trained = done_steps > 0
        if not trained:  # a resume of a finished run: keep its own throughput, not 0
            sps, cpu_sps = _earlier_throughput(rundir)
        from metaxm.run.curve import plot_learning_curve

        plot_learning_curve(rundir)
        evaluation: dict[str, Any] = {}
        evaluate = getattr(trainer, "evaluate", None)
        if cfg.eval_episodes and callable(evaluate):
            evaluation = evaluate(cfg.eval_episodes)
            (rundir / "eval.json").write_text(json.dumps(evaluation, indent=2) + "\n")
        summary = {
            "env_steps": trainer.env_steps,
            "updates": update,
            "sps": round(sps, 1),
            "cpu_sps": round(cpu_sps, 1),
        }
        (rundir / "summary.json").write_text(json.dumps({**summary, **evaluation}, indent=2) + "\n")
        logger.summary({**summary, **{f"eval/{k}": v for k, v in evaluation.items()}})
    finally:
        logger.close()
    if trained and trainer.env_steps >= 2 * cfg.total_steps:  # after the bar: a line of its own
        log.warning(
            "train.total_steps %d: trained %d env steps, since a run stops only at the end of "
            "an update (train.num_envs x the rollout's steps x the families)",
            cfg.total_steps, trainer.env_steps,
        )  # fmt: skip
    return RunResult(rundir, update, trainer.env_steps, sps, cpu_sps, last, evaluation, trained)


def save_run_checkpoint(
    rundir: Path, algo: str, spec_data: dict[str, Any], trainer: Any, update: int, keep: int
) -> None:
    """Save ``RUNDIR/checkpoints/ckpt-<update>.pt`` atomically (trainer state, spec, loop
    counters, global RNG states) and prune all but the ``keep`` newest.

    Under torchrun every rank calls this (``trainer.state_dict()`` gathers the ranks'
    per-family state) and rank 0 writes.
    """
    payload = {
        "algo": algo,
        "spec": spec_data,
        "trainer": trainer.state_dict(),
        "loop": {"update": update, "env_steps": trainer.env_steps},
        "rng": global_rng_state(),
    }
    if distributed.is_main():
        save_checkpoint(checkpoint_path(rundir, update), payload)
        prune_checkpoints(rundir, keep)
    distributed.barrier()


class _SilentLogger:
    """The logger of ranks other than 0: they log nothing."""

    def log(self, record: dict[str, Any]) -> dict[str, float]:
        return {}

    def summary(self, values: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass


def _open_rundir_on_main(
    rundir: Path, data: dict[str, Any], resume: bool, last_good: bool
) -> Path | None:
    """:func:`~metaxm.run.rundir.open_rundir` on rank 0; every rank gets its checkpoint or its
    error."""
    if distributed.world_size() == 1:
        return open_rundir(rundir, data, resume, last_good)
    error, found = None, None
    if distributed.is_main():
        try:
            found = open_rundir(rundir, data, resume, last_good)
        except MetaxmError as err:
            error = str(err)
    error, found = distributed.all_gather((error, None if found is None else str(found)))[0]
    if error is not None:
        raise ConfigError(error)
    return None if found is None else Path(found)


def _seed_globals(seed: int) -> None:
    """Seed the global generators at the start of a run (metaxm itself uses its own)."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (the legacy global state, for user code)
    random.seed(seed)


def check_losses(metrics: dict[str, float], cfg: TrainConfig, where: str, warned: bool) -> bool:
    """Warn (once: returns whether it has) or, with ``stop_on_divergence``, stop when a loss
    passes ``train.loss_limit``."""
    big = {k: v for k, v in metrics.items() if "loss" in k and abs(v) > cfg.loss_limit}
    if not big:
        return warned
    key, value = max(big.items(), key=lambda kv: abs(kv[1]))
    message = (
        f"{where}: {key} is {value:.3g}, past train.loss_limit {cfg.loss_limit:g}; training "
        "has probably diverged (a learning rate too large?)"
    )
    if cfg.stop_on_divergence:
        raise DivergenceError(message + "; stopping (train.stop_on_divergence)")
    if not warned:
        log.warning("%s; set train.stop_on_divergence: true to stop at this point", message)
    return True


def _check_finite(trainer: Trainer, metrics: dict[str, float], update: int) -> None:
    where = f"update {update} (env step {trainer.env_steps})"
    for key, value in metrics.items():
        if not math.isfinite(value):
            raise DivergenceError(f"{where}: {key} is {value}; stopping training")
    with torch.no_grad():
        for name, p in trainer.named_parameters():
            if not bool(torch.isfinite(p).all()):
                raise DivergenceError(
                    f"{where}: parameter {name} holds NaN or inf; stopping training "
                    "(the last checkpoint on disk is the last good one)"
                )


__all__ = [
    "MetricWindow",
    "RunResult",
    "TrainConfig",
    "Trainer",
    "train",
]
