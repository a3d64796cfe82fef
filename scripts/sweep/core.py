"""The bad-input sweep's core (``scripts/bad_inputs.py``): a case, how its command runs (a
session of its own, a timeout, an address-space limit) and how its end is classified."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def _load_shared() -> Any:
    # tests/bad_inputs.py by its path: on sys.path this script's own name would shadow it
    spec = importlib.util.spec_from_file_location("bad_inputs_", REPO / "tests" / "bad_inputs.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


bad = _load_shared()


FAILURES = ("traceback", "hang", "silent-acceptance", "left-behind", "messy-refusal",
            "other-exit", "wrong-refusal", "payload-ran", "orphan", "corrupt-metrics")  # fmt: skip


CLASSES = ("refusal", "accepted", "exit-1", *FAILURES)


TIMEOUT_S = 60.0


MARKER = "PAYLOAD_RAN"


MEMORY_LIMIT = int(os.environ.get("METAXM_SWEEP_MEMORY_GB", 8)) << 30
"""Address space a command may take (RLIMIT_AS): a spec that allocates without bound ends in a
MemoryError (a traceback) rather than bringing in the OOM killer on a shared machine."""


Setup = Callable[[Path], None]


@dataclass
class Case:
    """One bad input.

    Attributes:
        category: its row in the table.
        name: what is bad about it.
        argv: what follows ``python -m metaxm``; ``{dir}`` stands for the case's folder,
            ``{fx}`` for the fixtures' (the TINY spec, trained runs).
        absurd: exit 0 is a silent acceptance.
        valid: a control: anything but exit 0 is a wrong refusal.
        setup: makes the case's files in its folder.
        may_write: path prefixes (in the case's folder) a successful run may write.
        timeout: seconds before it is a hang.
        quick: part of ``--quick``.
        special: runs the case itself (concurrency, SIGKILL): (class, detail).
    """

    category: str
    name: str
    argv: list[str] = field(default_factory=list)
    absurd: bool = True
    valid: bool = False
    setup: Setup | None = None
    may_write: tuple[str, ...] = ()
    timeout: float = TIMEOUT_S
    quick: bool = False
    special: Callable[[Path], tuple[str, str]] | None = None


@dataclass
class Result:
    case: Case
    cls: str
    detail: str
    command: str


def _env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", WANDB_MODE="disabled",
               WANDB_SILENT="true", PYTHONPATH=str(REPO))  # fmt: skip
    env.pop("WORLD_SIZE", None)
    return env


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def metaxm(argv: list[str], cwd: Path, **popen: Any) -> subprocess.Popen:
    """Start ``python -m metaxm argv`` in a session of its own (a timeout kills all of it),
    within :data:`MEMORY_LIMIT`."""
    return subprocess.Popen([sys.executable, "-m", "metaxm", *argv], cwd=cwd, env=_env(),
                            start_new_session=True, preexec_fn=_limit_memory, **popen)  # fmt: skip


def processes() -> dict[int, tuple[str, int, int]]:
    """Every process: pid -> (state, parent pid, session id)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            state, ppid, _, sid = stat[stat.rindex(")") + 2 :].split()[:4]
            found[int(entry.name)] = (state, int(ppid), int(sid))
    return found


def session_pids(sid: int) -> set[int]:
    """The live (not zombie) processes of session ``sid``."""
    return {pid for pid, (state, _, s) in processes().items() if s == sid and state != "Z"}


def descendants(pid: int) -> set[int]:
    """The live descendants of ``pid``."""
    procs = {p: ppid for p, (state, ppid, _) in processes().items() if state != "Z"}
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {p for p, ppid in procs.items() if ppid in frontier} - found
        found |= frontier
    return found


def kill(pids: set[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _snapshot(root: Path) -> dict[str, tuple[int, int] | None]:
    seen: dict[str, tuple[int, int] | None] = {}
    for dirpath, _, files in os.walk(root):
        seen[os.path.relpath(dirpath, root)] = None
        for name in files:
            path = os.path.join(dirpath, name)
            with contextlib.suppress(OSError):
                st = os.lstat(path)
                seen[os.path.relpath(path, root)] = (st.st_size, st.st_mtime_ns)
    return seen


def _changes(before: dict, after: dict) -> list[str]:
    changed = [p for p in after if p not in before or (after[p] and after[p] != before[p])]
    return sorted(changed) + sorted(f"removed {p}" for p in before if p not in after)


def resolve(argv: list[str], case_dir: Path, fx: Path) -> list[str]:
    return [a.replace("{dir}", str(case_dir)).replace("{fx}", str(fx)) for a in argv]


def classify(case: Case, rc: int | None, stderr: str, written: list[str]) -> tuple[str, str]:
    """The class of a finished command (``rc`` None: it timed out) and a one-line detail."""
    lines = [ln for ln in stderr.strip("\n").splitlines() if ln.strip()]
    last = lines[-1][:200] if lines else ""
    if rc is None:
        return "hang", f"still running after {case.timeout:.0f} s"
    if "Traceback (most recent call last)" in stderr:
        return "traceback", last
    if rc == 0:
        if case.absurd:
            return "silent-acceptance", f"exit 0 ({len(written)} paths written)"
        stray = [p for p in written if not p.startswith(case.may_write or ("\0",))]
        if stray:
            return "left-behind", f"exit 0 but wrote {stray[:3]}"
        return "accepted", ""
    if case.valid:
        return "wrong-refusal", f"exit {rc}: {last}"
    if rc not in (1, 2):
        return "other-exit", f"exit {rc}: {last}"
    prefix = f"metaxm {case.argv[0]}: error:" if case.argv else "metaxm: error:"
    usage = rc == 2 and bool(lines) and lines[0].startswith("usage:")
    if not (usage or (len(lines) == 1 and lines[0].startswith(prefix))):
        return "messy-refusal", f"exit {rc}, {len(lines)} lines, the last: {last}"
    if written:
        return "left-behind", f"exit {rc} ({last}) but wrote {written[:3]}"
    return ("refusal" if rc == 2 else "exit-1"), last


def run_case(case: Case, case_dir: Path, fx: Path) -> tuple[str, str]:
    """Run and classify one case (its files are set up); all of its session is killed after."""
    if case.special is not None:
        return case.special(case_dir)
    before, fx_before = _snapshot(case_dir), _snapshot(fx)
    proc = metaxm(resolve(case.argv, case_dir, fx), case_dir, stdout=subprocess.DEVNULL,
                  stderr=subprocess.PIPE)  # fmt: skip
    try:
        _, err = proc.communicate(timeout=case.timeout)
        rc: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        kill(session_pids(proc.pid))
        _, err = proc.communicate()
        rc = None
    time.sleep(0.05)
    survivors = session_pids(proc.pid)
    kill(survivors)
    written = _changes(before, _snapshot(case_dir))
    written += [f"fixtures/{p}" for p in _changes(fx_before, _snapshot(fx))]
    if (fx / MARKER).exists():
        return "payload-ran", f"{MARKER} was made"
    cls, detail = classify(case, rc, err.decode("utf-8", "replace"), written)
    if survivors and cls not in FAILURES:
        return "orphan", f"{len(survivors)} processes outlived it"
    return cls, detail
