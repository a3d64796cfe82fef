"""The main job's evaluation begun beside its last stages.

With the stages on two workers, the default spec's ``rl2`` trains for minutes after
``pretrain -> ppo -> maml, priorfit`` finish, and one core would wait. :class:`EarlyEvaluation`
takes it: once no stage is left to start (the ones left are all training), a spawned process
loads the finished runs and measures the evaluation's jobs whose strategy needs only those
(:func:`~metaxm.evaluate.runner.plan_evaluation`: ``zeroshot``, ``align``, ``translate``,
``maml``, ``priorfit``, ``scratch``, ...), one at a time, sending each curve back. When the
last stage finishes it stops after the job in hand, and the evaluation measures only what is
left (:func:`~metaxm.evaluate.runner.run_evaluation`'s ``measured``). Every job is seeded on
its own, so a curve is the same whichever process measures it (``tests/test_early_eval.py``
compares the report with and without it). Its console goes to ``OUT/logs/evaluate.log``.
"""

from __future__ import annotations

import logging
import multiprocessing
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from metaxm.evaluate.episodes import Curve
    from metaxm.evaluate.runner import Job
    from metaxm.spec import Spec

DONE = "done"
"""What the child sends after its last curve."""


class EarlyEvaluation:
    """The evaluation's jobs measured beside the stages (see the module docstring).

    Args:
        spec: the main job's spec (the one it evaluates under).
        out: the main job's folder.
    """

    def __init__(self, spec: Spec, out: Path) -> None:
        self.spec, self.out = spec, out
        self.measured: dict[Job, tuple[Curve, float]] = {}
        self.process: Any = None
        self.conn: Connection | None = None
        self.stop_event: Any = None
        self.finished = False

    def start(self, done: set[str]) -> str | None:
        """Start measuring the jobs the finished stages ``done`` allow; the line that says so,
        or None where no run the evaluation loads is finished."""
        from metaxm.evaluate.loading import KINDS

        kinds = [k for k in KINDS if k in done]
        if not kinds:
            return None
        context = multiprocessing.get_context("spawn")  # no fork of a process with torch threads
        logfile = self.out / "logs" / "evaluate.log"
        receive, send = context.Pipe(duplex=False)
        self.stop_event = context.Event()
        args = (self.spec, self.out, kinds, logfile, send, self.stop_event)
        self.process = context.Process(target=_child, args=args, name="metaxm-evaluate")
        self.process.start()
        send.close()  # the child holds the only write end: its death is EOF here
        self.conn = receive
        return f"evaluate: measuring the curves of {', '.join(kinds)} meanwhile (output: {logfile})"

    @property
    def running(self) -> bool:
        return self.conn is not None and not self.finished

    def receive(self) -> None:
        """Take what the child sent (call when :attr:`conn` is ready)."""
        assert self.conn is not None
        try:
            message = self.conn.recv()
        except (EOFError, OSError):  # it died or ended: what it sent is kept
            message = DONE
        if message == DONE:
            self.finished = True
        else:
            job, curve, seconds = message
            self.measured[tuple(job)] = (curve, seconds)

    def stop(self) -> dict[Job, tuple[Curve, float]]:
        """Let the child finish the job in hand, keep every curve it measured, and end it."""
        if self.conn is not None:
            self.stop_event.set()
            while not self.finished:
                self.receive()
            self.process.join()
            self.conn.close()
        return self.measured

    def terminate(self) -> None:
        """End the child now (a stage failed, or the job was interrupted)."""
        if self.process is not None and self.process.is_alive():
            self.process.terminate()
            self.process.join()


def _child(
    spec: Spec, out: Path, kinds: list[str], logfile: Path, conn: Connection, stop: Any
) -> None:
    """A spawned process: measure the jobs of the strategies that ``kinds`` (finished runs)
    allow, one at a time with one torch thread, sending each curve, until ``stop`` is set."""
    import torch

    from metaxm.evaluate.loading import load_agents
    from metaxm.evaluate.runner import _one, plan_evaluation
    from metaxm.plugins import load_in_child
    from metaxm.run.stages import child_console

    child_console(logfile)
    torch.set_num_threads(1)
    try:
        load_in_child(spec.imports)  # a plugin's families and worlds, as the parent has
        agents = load_agents(out, spec, kinds=kinds)
        plan = plan_evaluation(agents)
        for job in plan.jobs:
            if stop.is_set():
                break
            curve, seconds = _one(job, plan.budgets, plan.scratch_budgets, agents)
            conn.send((job, curve, seconds))
    except Exception:  # noqa: BLE001 (the evaluation measures these jobs again, and says why)
        logging.getLogger(__name__).exception("the early evaluation stopped")
    conn.send(DONE)
    conn.close()
