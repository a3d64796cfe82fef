"""An evaluation stopped by Ctrl-C or SIGTERM stops its workers at once and quietly.

Before, a SIGTERM (``timeout``, Slurm) made the parent leave its pool's ``with`` block, which
waited for every job left (109 s on a 20-seed evaluation), and a Ctrl-C while the spawned
workers imported printed their KeyboardInterrupt tracebacks. The evaluator's own job loop
(``runner._run_jobs``) runs here with jobs that hold their worker for two minutes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.evaluate.test_worker_orphans import START_S, _started, read_lines

pytestmark = pytest.mark.skipif(
    sys.platform == "win32", reason="sends SIGINT to a process group (POSIX)"
)

STOP_S = 10  # the parent's exit after the signal, its workers gone with it

# The evaluator's job loop with the production pool, its jobs replaced by one that prints its
# worker's pid and holds it; the parent handles SIGTERM as metaxm's commands do.
LOOP = """
import contextlib, os, signal, sys, time
import metaxm.evaluate.runner as runner
from metaxm.cli import _terminate
from metaxm.evaluate.strategies import Agents
from metaxm.spec import spec_from_dict

def hold(job, budgets, sbudgets, agents=None):
    print(os.getpid(), flush=True)
    time.sleep(120)

runner._one = hold  # in the workers too: they import this file as __mp_main__
blocked = runner.interrupt_blocked

@contextlib.contextmanager
def announced():
    with blocked():
        yield
    print("submitted", flush=True)  # the workers are starting: they import for seconds

runner.interrupt_blocked = announced

if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _terminate)
    jobs = [("vector:1", "zeroshot", k, k) for k in range(8)]
    try:
        for _ in runner._run_jobs(Agents(spec_from_dict({})), jobs, [0], [0], 2):
            pass
    except KeyboardInterrupt as e:
        print(type(e).__name__, flush=True)
        sys.exit(130)
"""


def _start(tmp_path: Path) -> subprocess.Popen[bytes]:
    script = tmp_path / "loop.py"
    script.write_text(LOOP)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, str(script)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # a group of its own, as a terminal gives a command
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # not inherited ignored
    )


@pytest.mark.parametrize("how", ["sigterm", "ctrl-c"])
def test_a_stopped_evaluation_ends_its_busy_workers_at_once(tmp_path: Path, how: str) -> None:
    proc = _start(tmp_path)
    try:
        submitted, *pids = read_lines(proc, 3)  # both workers busy with a two-minute job
        assert submitted == "submitted"
        workers = {int(p) for p in pids}
        started = {p: _started(p) for p in workers}
        if how == "sigterm":
            proc.send_signal(signal.SIGTERM)  # to the parent alone, as `timeout` sends it
        else:
            os.killpg(proc.pid, signal.SIGINT)  # to the whole group, as a terminal sends it
        out, err = proc.communicate(timeout=STOP_S)
        assert proc.returncode == 130
        expected = "Terminated" if how == "sigterm" else "KeyboardInterrupt"
        assert out.decode().split()[-1] == expected
        assert "Traceback" not in err.decode(), err.decode()  # no worker's traceback
        deadline = time.monotonic() + STOP_S
        while any(_started(p) == started[p] for p in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert all(_started(p) != started[p] for p in workers)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_a_ctrl_c_while_the_workers_import_prints_no_traceback(tmp_path: Path) -> None:
    """The workers start with SIGINT blocked and ignore it once started: a Ctrl-C while they
    import torch (seconds) is the parent's alone."""
    proc = _start(tmp_path)
    try:
        assert read_lines(proc, 1) == ["submitted"]
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=START_S)
        assert proc.returncode == 130 and out.decode().split() == ["KeyboardInterrupt"]
        assert "Traceback" not in err.decode(), err.decode()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
