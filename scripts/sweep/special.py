"""The bad-input sweep's cases that run themselves: two writers on one ``--out``, ``--resume``
beside a running writer, and SIGKILL of an evaluation with worker processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from sweep.core import Case, descendants, kill, metaxm, processes, session_pids
from sweep.fixtures import fixtures_of


def _metrics(run: Path) -> list[dict]:
    path = run / "metrics.jsonl"
    return [json.loads(ln) for ln in path.read_text().splitlines()] if path.is_file() else []


def two_writers(case_dir: Path, stagger: float = 0.0) -> tuple[str, str]:
    """Two ``metaxm train`` into one ``--out``, the second ``stagger`` seconds after the first.
    One must be refused in one line, and ``metrics.jsonl`` must be exactly a lone run's."""
    argv = ["train", str(fixtures_of(case_dir) / "tiny.yaml"), "--set", "train.total_steps=4096"]
    quiet: dict[str, Any] = {"stdout": subprocess.DEVNULL, "stderr": subprocess.PIPE}
    metaxm([*argv, "--out", str(case_dir / "solo")], case_dir, **quiet).communicate(timeout=300)
    procs = []
    for wait in (stagger, 0.0):
        procs.append(metaxm([*argv, "--out", str(case_dir / "shared")], case_dir, **quiet))
        time.sleep(wait)
    outs = []
    for proc in procs:
        try:
            _, err = proc.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            kill(session_pids(procs[0].pid) | session_pids(procs[1].pid))
            return "hang", "a writer still ran after 300 s"
        outs.append((proc.returncode, err.decode("utf-8", "replace")))
    if any("Traceback" in err for _, err in outs):
        return "traceback", next(e for _, e in outs if "Traceback" in e).strip().splitlines()[-1]
    codes = [rc for rc, _ in outs]
    if sorted(codes) != [0, 2]:
        return "corrupt-metrics", f"exit codes {codes}: both ran, or neither"
    said = next(err for rc, err in outs if rc == 2).strip().splitlines()
    if len(said) != 1 or not said[0].startswith("metaxm train: error:"):
        return "messy-refusal", f"the refused writer said {said[:3]}"
    runs, alone = _metrics(case_dir / "shared"), _metrics(case_dir / "solo")
    if runs != alone:
        return "corrupt-metrics", f"metrics.jsonl: {len(runs)} lines, a lone run's {len(alone)}"
    return "refusal", f"writer {codes.index(2) + 1} refused: {said[0][:160]}"


def resume_while_running(case_dir: Path) -> tuple[str, str]:
    """``metaxm train --resume`` into the folder of a run still writing: refused in one line
    naming the writer, which goes on undisturbed."""
    argv = ["train", str(fixtures_of(case_dir) / "tiny.yaml"), "--out", str(case_dir / "run"),
            "--set", "train.total_steps=10000000"]  # fmt: skip
    quiet: dict[str, Any] = {"stdout": subprocess.DEVNULL, "stderr": subprocess.PIPE}
    first = metaxm(argv, case_dir, **quiet)
    try:
        deadline = time.monotonic() + 120
        while len(_metrics(case_dir / "run")) < 2:
            if first.poll() is not None or time.monotonic() > deadline:
                return "other-exit", f"the first writer ended (exit {first.poll()}) too soon"
            time.sleep(0.1)
        try:
            _, err = metaxm([*argv, "--resume"], case_dir, **quiet).communicate(timeout=120)
        except subprocess.TimeoutExpired:
            return "hang", "the second writer still ran after 120 s"
        said = err.decode("utf-8", "replace").strip().splitlines()
        if first.poll() is not None:
            return "other-exit", f"the first writer ended (exit {first.returncode}) meanwhile"
        updates = [m.get("update") for m in _metrics(case_dir / "run")]
        if updates != sorted(set(updates)):
            return "corrupt-metrics", "metrics.jsonl has repeated or unordered updates"
        if any("Traceback" in line for line in said):
            return "traceback", said[-1]
        if len(said) != 1 or not said[0].startswith("metaxm train: error:") or "pid" not in said[0]:
            return "messy-refusal", f"the second writer said {said[:3]}"
        return "refusal", said[0][:200]
    finally:
        kill(session_pids(first.pid))
        first.wait()


def sigkill_evaluate(case_dir: Path) -> tuple[str, str]:
    """SIGKILL ``metaxm evaluate --set evaluate.workers=2`` once its workers run; none of its
    processes may be alive 10 s later."""
    argv = ["evaluate", str(fixtures_of(case_dir) / "ppo"), "--out", str(case_dir / "report"),
            "--set", "evaluate.workers=2", "--set", "evaluate.seeds=20"]  # fmt: skip
    proc = metaxm(argv, case_dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 90
    while proc.poll() is None and len(descendants(proc.pid)) < 2:
        if time.monotonic() > deadline:
            kill(session_pids(proc.pid))
            return "hang", "no two workers within 90 s"
        time.sleep(0.2)
    if proc.poll() is not None:
        return "other-exit", f"evaluate ended (exit {proc.returncode}) before two workers ran"
    time.sleep(1.0)  # let them get to work
    kids = descendants(proc.pid)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    for _ in range(50):
        alive = {p for p in kids if p in processes() and processes()[p][0] != "Z"}
        if not alive:
            return "refusal", f"its {len(kids)} child processes ended with it"
        time.sleep(0.2)
    kill(alive | session_pids(proc.pid))
    return "orphan", f"{len(alive)} of its {len(kids)} child processes alive 10 s after SIGKILL"


def special_cases() -> list[Case]:
    # fmt: off
    return [
        Case("concurrency", "two writers started together", special=two_writers, quick=True),
        Case("concurrency", "two writers, the second 2 s later",
             special=lambda d: two_writers(d, stagger=2.0)),
        Case("concurrency", "--resume while the first still writes",
             special=resume_while_running),
        Case("orphans", "SIGKILL of evaluate with 2 workers", special=sigkill_evaluate,
             quick=True),
    ]
