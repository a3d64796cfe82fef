"""Evaluation workers and the main job's side-by-side stages die with their parent, SIGKILL
included (workers used to wait forever, and multiprocessing's resource tracker with them).

Each test kills a process and then watches its children through ``/proc``: Linux only.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    not Path(f"/proc/self/task/{os.getpid()}/children").exists(),
    reason="reads the children of a process from /proc (Linux)",
)

START_S = 60  # to start the processes (spawned workers import torch: seconds on 2 cores)
DIE_S = 10  # for every child to be gone after the kill

# The evaluation's pool, built by the production helper, with both workers busy: a worker
# prints its pid from its first job, after its initializer has run, then holds the job (a
# busy worker takes no second job, so each of the two prints once).
POOL = """
import os, time
from metaxm.evaluate.runner import worker_pool
from metaxm.evaluate.strategies import Agents
from metaxm.spec import spec_from_dict

def hold():
    print(os.getpid(), flush=True)
    time.sleep(120)

if __name__ == "__main__":
    pool = worker_pool(Agents(spec_from_dict({})), 2)
    for _ in range(2):
        pool.submit(hold)
    time.sleep(120)
"""

# A parent that starts a child calling die_with_parent, then sleeps; the child prints its pid
# once the call has returned, and sleeps.
PARENT = """
import subprocess, sys, time
subprocess.Popen([sys.executable, "-c", sys.argv[1]])
time.sleep(120)
"""
CHILD = """
import os, time
import metaxm.run.children as c
if {no_prctl}:
    c._kill_me_with_parent = lambda: None
c.die_with_parent(poll_s={poll_s})
print(os.getpid(), flush=True)
time.sleep(120)
"""


def _python(*args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )


def _read_pids(proc: subprocess.Popen[bytes], n: int) -> list[int]:
    """The first ``n`` lines of ``proc``'s output, as pids (waits at most ``START_S``)."""
    return [int(x) for x in read_lines(proc, n)]


def read_lines(proc: subprocess.Popen[bytes], n: int) -> list[str]:
    """The first ``n`` lines ``proc`` prints (waits at most ``START_S``)."""
    assert proc.stdout is not None
    fd, text, deadline = proc.stdout.fileno(), b"", time.monotonic() + START_S
    while text.count(b"\n") < n and time.monotonic() < deadline:
        if select.select([fd], [], [], deadline - time.monotonic())[0]:
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            text += chunk
    lines = text.decode().splitlines()
    assert len(lines) >= n, f"expected {n} lines in time, got {lines}"
    return lines[:n]


def _children(pid: int) -> set[int]:
    tasks = Path(f"/proc/{pid}/task")
    return {int(c) for t in tasks.iterdir() for c in (t / "children").read_text().split()}


def _started(pid: int) -> str | None:
    """The start time of a live ``pid`` (tells it from a later process given the same pid);
    None once it has exited (a zombie has exited: its new parent may never reap it)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None if fields[0] in "ZX" else fields[19]


def _kill_and_wait_gone(parent: subprocess.Popen[bytes], pids: set[int]) -> set[int]:
    """SIGKILL ``parent``; the ``pids`` still alive ``DIE_S`` seconds later."""
    started = {p: _started(p) for p in pids}
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + DIE_S
    alive = set(pids)
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = {p for p in alive if _started(p) == started[p]}
    for p in alive:  # leave no orphans behind a failure
        os.kill(p, signal.SIGKILL)
    return alive


def test_sigkilled_evaluation_leaves_no_workers_or_resource_tracker(tmp_path: Path) -> None:
    script = tmp_path / "pool.py"
    script.write_text(POOL)
    proc = _python(str(script))
    try:
        workers = set(_read_pids(proc, 2))
        children = _children(proc.pid)
        assert workers < children, (workers, children)
        trackers = {
            p
            for p in children - workers
            if b"resource_tracker" in Path(f"/proc/{p}/cmdline").read_bytes()
        }
        assert len(trackers) == 1, children
        assert _kill_and_wait_gone(proc, workers | trackers) == set()
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize(
    ("no_prctl", "poll_s"),
    [(False, 3600.0), (True, 0.05)],  # each mechanism on its own
    ids=["prctl", "watchdog"],
)
def test_a_child_dies_with_its_sigkilled_parent(no_prctl: bool, poll_s: float) -> None:
    proc = _python("-c", PARENT, CHILD.format(no_prctl=no_prctl, poll_s=poll_s))
    try:
        child = _read_pids(proc, 1)[0]
        assert _children(proc.pid) == {child}
        assert _kill_and_wait_gone(proc, {child}) == set()
    finally:
        proc.kill()
        proc.wait()


def test_a_parent_dead_before_the_call_ends_the_child_at_once() -> None:
    """The child calls die_with_parent after its parent has exited: it must not go on, though
    the prctl it sets up will never fire (the watchdog is turned off to test the check alone)."""
    child = textwrap.dedent("""
        import os, sys, time
        import metaxm.run.children as c
        c._watch = lambda parent_pid, poll_s: None
        parent = int(sys.argv[1])
        while os.getppid() == parent:
            time.sleep(0.01)
        c.die_with_parent(parent)
        print("survived", flush=True)
    """)
    parent = "import os, subprocess, sys; subprocess.Popen([*sys.argv[1:], str(os.getpid())])"
    proc = _python("-c", parent, sys.executable, "-c", child)
    assert proc.stdout is not None
    ready = select.select([proc.stdout], [], [], START_S)[0]
    # the output closes when the child exits: at once, and with nothing printed
    assert ready and proc.stdout.read() == b""
    proc.wait()


def test_sigkilled_main_job_leaves_no_stage_processes(tmp_path: Path) -> None:
    """The main job's side-by-side stages (main.workers: 2) die with it, SIGKILL included."""
    import yaml

    spec = {
        "world": {"name": "gridnav", "size": 4, "horizon": 8},
        "modalities": {"train": {"vector": 2}, "heldout_variants": {"vector": 1}},
        "train": {"total_steps": 10_000_000, "num_envs": 8, "eval_episodes": 0},
        "log": {"mode": "disabled", "progress": False},
        "main": {"workers": 2, "evaluate": False, "render": False, "runs": {"ppo": {}, "rl2": {}}},
    }
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    proc = _python(
        "-m", "metaxm", "main", str(tmp_path / "spec.yaml"), "--out", str(tmp_path / "o")
    )
    try:
        stages: set[int] = set()
        deadline = time.monotonic() + START_S
        while len(stages) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
            stages = {
                p
                for p in _children(proc.pid)
                if b"resource_tracker" not in Path(f"/proc/{p}/cmdline").read_bytes()
            }
        assert len(stages) == 2, stages
        assert _kill_and_wait_gone(proc, stages) == set()
    finally:
        proc.kill()
        proc.wait()
