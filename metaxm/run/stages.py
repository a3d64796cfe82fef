"""The main job's stages (``main.runs``), trained one after another or side by side.

Each stage trains one run into ``OUT/<stage>``; a stage that starts from another through
``{out}/<stage>`` (``train.init_from: "{out}/ppo"``) needs that one finished first. With
``main.workers: 1`` the stages train one after another in this process, in the listed order.
With more, each trains in a spawned process of its own as soon as the stages it links to are
finished, at most ``workers`` at once, and the listed order breaks ties. The default spec's
``rl2`` stage links to nothing, so on two workers it trains beside pretrain -> ppo -> maml,
priorfit (``docs/transfer.md``), and then beside the evaluation's first curves, measured on
the idle worker (:mod:`metaxm.run.early_eval`).

Every stage seeds itself and runs the spec's ``train.threads``, so what it writes does not
depend on the number of workers (``tests/test_pipeline.py`` compares them). A side-by-side
stage's console output (its progress bar, warnings, a traceback) goes to
``OUT/logs/<stage>.log``; this process shows one bar over the stages. When a stage fails, the
others are stopped (each keeps its last checkpoint, and the next ``metaxm main`` resumes it)
and its error is raised here.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import pickle
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm.auto import tqdm

from metaxm.errors import CheckpointError, ConfigError, MetaxmError
from metaxm.plugins import load_in_child

if TYPE_CHECKING:
    from metaxm.run.early_eval import EarlyEvaluation
    from metaxm.spec import Spec

Echo = Callable[[str], None]


class StageError(MetaxmError):
    """A stage trained side by side failed with an error that is not the user's to fix; the
    message names its log, which holds the traceback."""


def announce(name: str, spec: Spec, rundir: Path) -> str:
    """The line that says what stage ``name`` is about to do."""
    verb = "resuming" if _started(rundir) else "training"
    if name == "pretrain":
        return f"{name}: {verb} {spec.align.pretrain_updates:,} alignment updates into {rundir}"
    return f"{name}: {verb} {spec.train.total_steps:,} env steps into {rundir}"


def run_stage(name: str, spec: Spec, rundir: Path) -> str:
    """Train stage ``name`` of the main job into ``rundir`` (resuming it if it was begun);
    returns the line that says what it reached."""
    from metaxm.run.checkpoint import NewestDamaged

    resume = _started(rundir)
    t = time.perf_counter()
    try:
        return _run_stage(name, spec, rundir, resume, t)
    except NewestDamaged as err:  # its message names train's flag, which main does not take
        raise CheckpointError(
            f"{err.newest}: {err.problem}; to resume the stage from {err.good}, run metaxm "
            f"train {rundir / 'config.yaml'} --out {rundir} --resume --resume-last-good, then "
            "metaxm main again"
        ) from None


def _started(rundir: Path) -> bool:
    """A stage begun before: its spec written (a stage killed before its first checkpoint
    resumes from the beginning, rather than being refused as a run already there)."""
    return (rundir / "config.yaml").is_file() or (rundir / "checkpoints").is_dir()


def _run_stage(name: str, spec: Spec, rundir: Path, resume: bool, t: float) -> str:
    if name == "pretrain":
        from metaxm.align.pretrain import pretrain

        ev = pretrain(spec, rundir, resume=resume).evaluation
        return (
            f"{name}: retrieval top-1 worst {ev['top1_min']:.3f}, probe R^2 worst "
            f"{ev['probe_r2_min']:.3f}, {time.perf_counter() - t:.0f} s"
        )
    from metaxm.run.loop import train

    result = train(spec, rundir, resume=resume)
    return (
        f"{name}: {result.env_steps:,} env steps, {result.sps:,.0f} steps/s, "
        f"{time.perf_counter() - t:.0f} s"
    )


UNTRAINED_SECTIONS = ("main", "evaluate", "log")
"""A stage's spec sections no training reads: a finished stage is kept whatever they say (a
stage added to ``main.runs``, another evaluation, wandb on)."""


def check_finished(specs: dict[str, Spec], out: Path) -> None:
    """Refuse a finished stage (one with ``summary.json``) trained under another spec than the
    one it would now be given: the job would keep it and report on it as if it were.

    Raises:
        ConfigError: naming the stage and the first setting that differs.
    """
    from metaxm.run.checkpoint import spec_difference
    from metaxm.spec import spec_to_dict
    from metaxm.yaml_io import read_yaml

    for name, spec in specs.items():
        rundir = out / name
        if not (rundir / "summary.json").is_file() or not (rundir / "config.yaml").is_file():
            continue
        try:
            stored = read_yaml(rundir / "config.yaml")
        except ConfigError:
            continue  # unreadable: loading the run for the evaluation says so in one line
        if not isinstance(stored, dict):
            continue
        differs = spec_difference(stored, spec_to_dict(spec), ignore=UNTRAINED_SECTIONS)
        if differs is not None:
            raise ConfigError(
                f"{name}: the finished run {rundir} was trained under another spec (first "
                f"difference at {differs}); run the job with the spec it was trained with, or "
                "into a new --out"
            )


def run_stages(
    specs: dict[str, Spec],
    links: dict[str, set[str]],
    out: Path,
    workers: int,
    echo: Echo,
    early: EarlyEvaluation | None = None,
) -> dict[str, float]:
    """Train every stage of ``specs`` (name -> its spec) into ``out/<name>``, keeping a
    finished one (with ``summary.json``); returns each trained stage's wall-clock seconds.

    Args:
        specs: the stages in their listed order, each with its spec.
        links: per stage, the stages it starts from (:attr:`MainConfig.links`).
        out: the main job's output folder.
        workers: stages trained at once (1: in this process, in order).
        echo: where progress lines go.
        early: the evaluation's jobs to measure in a worker the stages leave idle, once no
            stage is left to start (:mod:`metaxm.run.early_eval`); stopped when they end. With
            it, one stage left (a resumed job's ``rl2``) trains in a process of its own too.
    """
    todo = []
    for name in specs:
        if (out / name / "summary.json").is_file():
            echo(f"{name}: finished run kept ({out / name})")
        else:
            todo.append(name)
    if workers <= 1 or (len(todo) <= 1 and early is None) or not todo:
        seconds = {}
        for name in todo:
            t = time.perf_counter()
            echo(announce(name, specs[name], out / name))
            line = run_stage(name, specs[name], out / name)
            seconds[name] = time.perf_counter() - t
            echo(line)
        return seconds
    return _side_by_side(specs, links, todo, out, workers, echo, early)


def _side_by_side(
    specs: dict[str, Spec],
    links: dict[str, set[str]],
    todo: list[str],
    out: Path,
    workers: int,
    echo: Echo,
    early: EarlyEvaluation | None = None,
) -> dict[str, float]:
    """:func:`run_stages` with more than one worker: one spawned process per stage."""
    context = multiprocessing.get_context("spawn")  # no fork of a process with torch threads
    (out / "logs").mkdir(parents=True, exist_ok=True)
    done = set(specs) - set(todo)
    running: dict[str, tuple[Any, Connection, float]] = {}
    seconds: dict[str, float] = {}
    show = any(s.log.progress for s in specs.values())
    bar = tqdm(total=len(todo), desc="stages", unit="stage", disable=not show, dynamic_ncols=True)

    def say(line: str) -> None:
        with tqdm.external_write_mode():
            echo(line)

    try:
        while todo or running:
            for name in [n for n in todo if links[n] <= done]:
                if len(running) >= workers:
                    break
                todo.remove(name)
                logfile = out / "logs" / f"{name}.log"
                say(f"{announce(name, specs[name], out / name)} (output: {logfile})")
                receive, send = context.Pipe(duplex=False)
                args = (name, specs[name], out / name, logfile, send)
                process = context.Process(target=_child, args=args, name=f"metaxm-{name}")
                process.start()
                send.close()  # the child holds the only write end: its death is EOF here
                running[name] = (process, receive, time.perf_counter())
            if not running:  # every remaining stage links to one that never finishes
                raise MetaxmError(f"main.runs: {', '.join(todo)} cannot start")
            if early is not None and early.conn is None and not todo and len(running) < workers:
                line = early.start(done)  # an idle worker: the evaluation begins
                if line is not None:
                    say(line)
            conns = [conn for _, conn, _ in running.values()]
            ready = wait([*conns, early.conn] if early and early.running else conns, timeout=2.0)
            if early is not None and early.conn in ready:
                early.receive()
            for name in [n for n, (_, conn, _) in running.items() if conn in ready]:
                process, conn, started = running.pop(name)
                outcome = _receive(conn)
                process.join()
                conn.close()
                if isinstance(outcome, BaseException) or outcome is None:
                    raise _failure(name, outcome, process.exitcode, out / "logs" / f"{name}.log")
                seconds[name] = time.perf_counter() - started
                done.add(name)
                bar.update(1)
                say(outcome)
            measured = f", evaluate {len(early.measured)} curves" if early and early.conn else ""
            bar.set_postfix_str(_progress(specs, running, out) + measured, refresh=True)
    except BaseException:
        if early is not None:
            early.terminate()
        raise
    finally:
        for process, conn, _ in running.values():  # a failure or an interrupt: stop the rest
            process.terminate()
            process.join()
            conn.close()
        bar.close()
    return seconds


def child_console(logfile: Path) -> None:
    """First thing in a spawned child of the job (a stage, the early evaluation): die with the
    parent, and send the console (progress bars, warnings, a traceback) to ``logfile``."""
    import threading

    import tqdm as tqdm_module

    from metaxm.run.children import die_with_parent

    die_with_parent()
    # every bar's lock: not tqdm's default, a semaphore that a terminated child would leak
    tqdm_module.tqdm.set_lock(threading.RLock())
    with open(logfile, "a", buffering=1) as f:  # noqa: PTH123 (a file descriptor is needed)
        os.dup2(f.fileno(), 1)
        os.dup2(f.fileno(), 2)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


def _child(name: str, spec: Spec, rundir: Path, logfile: Path, conn: Connection) -> None:
    """A spawned process: train stage ``name`` with its console in ``logfile``; send the line
    that says what it reached, or the error it met."""
    child_console(logfile)
    try:
        load_in_child(spec.imports)  # a plugin's families and worlds, as the parent has
        outcome: Any = run_stage(name, spec, rundir)
    except BaseException as err:  # noqa: BLE001 (sent to the parent, which raises it)
        traceback.print_exc()
        outcome = err
        try:
            pickle.dumps(err)
        except Exception:  # noqa: BLE001 (an error that cannot cross processes)
            outcome = RuntimeError(f"{type(err).__name__}: {err}")
    conn.send(outcome)
    conn.close()


def _receive(conn: Connection) -> str | BaseException | None:
    """What a child sent; None if it died before sending."""
    try:
        return conn.recv()
    except (EOFError, OSError):
        return None


def _failure(
    name: str, err: BaseException | None, code: int | None, logfile: Path
) -> BaseException:
    """The error to raise for stage ``name``: the user's error as it was, else one naming the
    stage's log (which holds the traceback)."""
    if isinstance(err, (MetaxmError, OSError)):
        return err
    if isinstance(err, KeyboardInterrupt):
        return err
    if err is None:
        return StageError(f"main.runs.{name}: its process died (exit code {code}); see {logfile}")
    first = (str(err).strip().splitlines() or [""])[0][:200]
    return StageError(f"main.runs.{name}: {type(err).__name__}: {first}; traceback in {logfile}")


def _progress(specs: dict[str, Spec], running: dict[str, Any], out: Path) -> str:
    """``rl2 41%, ppo 12%``: how far each running stage is, from its ``timing.jsonl``."""
    parts = []
    for name in running:
        spec = specs[name]
        total = (
            spec.align.pretrain_updates * spec.align.batch_size
            if name == "pretrain"
            else spec.train.total_steps
        )
        done = min(_last_step(out / name / "timing.jsonl") / total, 1.0)  # a last batch overshoots
        parts.append(f"{name} {100 * done:.0f}%")
    return ", ".join(parts)


def _last_step(path: Path) -> int:
    """The ``step`` of the last complete line of a run's ``timing.jsonl`` (0 if none)."""
    try:
        with path.open("rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 4096))
            lines = f.read().splitlines()
    except OSError:
        return 0
    for line in reversed(lines):
        try:
            return int(json.loads(line)["step"])
        except (ValueError, KeyError, TypeError):
            continue
    return 0
