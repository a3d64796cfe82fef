"""Adversarial sweep of the ``metaxm`` command line (issue 18): every bad input is run as a real
``python -m metaxm ...`` subprocess, with a timeout, and classified.

    .venv/bin/python scripts/bad_inputs.py            # the full sweep (~40 min on 2 cores)
    .venv/bin/python scripts/bad_inputs.py --quick    # a representative subset (~2 min)
    .venv/bin/python scripts/bad_inputs.py --only yaml --match laughs --keep /tmp/sweep

Categories: YAML attacks on spec files; ``--set`` forms; every numeric field at 1e9, 1e30, -1,
NaN, inf and 0 (with ``--check``) and a few real short runs at the edges of the ranges;
mutations of ``tasks/gridnav.yaml``; ``--out`` paths; damaged and foreign checkpoints; the flags
of adapt, evaluate, render and bench; two writers on one ``--out``; SIGKILL of an evaluation
with worker processes. The inputs come from ``tests/bad_inputs.py``, shared with the fuzz test
(``tests/test_fuzz.py``); the checkpoints from TINY runs trained first (a few seconds each).

Each case runs in a folder of its own, in a session of its own, within an address-space limit.
Its class is one of:

* ``refusal``: exit 2 and one line ``metaxm <cmd>: error: ...`` (or argparse's usage and error),
  nothing written or changed; ``accepted``: exit 0 on an input that makes sense; ``exit-1``: a
  one-line exit 1 (a divergence);
* failures: ``traceback``; ``hang`` (past its timeout); ``silent-acceptance`` (exit 0 on an
  input judged absurd); ``left-behind`` (a refusal that wrote or changed files, or a success
  that wrote outside its output); ``messy-refusal`` (not one line); ``other-exit``;
  ``wrong-refusal`` (a control input refused); ``payload-ran`` (a pickle or YAML payload made
  its marker file); ``orphan`` (a process of the command outlived it); ``corrupt-metrics``
  (both of two writers ran, or ``metrics.jsonl`` differs from a lone run's).

It prints a table of counts per category and class, then each failure with its command, and
exits 1 if there was any failure.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]


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


# ------------------------------------------------------------------------ running a command
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


def _processes() -> dict[int, tuple[str, int, int]]:
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


def _session(sid: int) -> set[int]:
    """The live (not zombie) processes of session ``sid``."""
    return {pid for pid, (state, _, s) in _processes().items() if s == sid and state != "Z"}


def _descendants(pid: int) -> set[int]:
    """The live descendants of ``pid``."""
    procs = {p: ppid for p, (state, ppid, _) in _processes().items() if state != "Z"}
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {p for p, ppid in procs.items() if ppid in frontier} - found
        found |= frontier
    return found


def _kill(pids: set[int]) -> None:
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
        _kill(_session(proc.pid))
        _, err = proc.communicate()
        rc = None
    time.sleep(0.05)
    survivors = _session(proc.pid)
    _kill(survivors)
    written = _changes(before, _snapshot(case_dir))
    written += [f"fixtures/{p}" for p in _changes(fx_before, _snapshot(fx))]
    if (fx / MARKER).exists():
        return "payload-ran", f"{MARKER} was made"
    cls, detail = classify(case, rc, err.decode("utf-8", "replace"), written)
    if survivors and cls not in FAILURES:
        return "orphan", f"{len(survivors)} processes outlived it"
    return cls, detail


# ---------------------------------------------------------------------------------- fixtures
def build_fixtures(fx: Path, quick: bool) -> None:
    """The TINY spec (and a one-family variant) and its trained runs: ppo, maml, pretrain and,
    unless ``quick``, ppo with another agent size."""
    fx.mkdir(parents=True)
    (fx / "tiny.yaml").write_text(yaml.safe_dump(bad.TINY, sort_keys=False))
    one = {**bad.TINY, "modalities": {"train": {"vector": 1}}}
    (fx / "one-family.yaml").write_text(yaml.safe_dump(one, sort_keys=False))
    runs = {
        "ppo": ["train", "tiny.yaml"],
        "maml": ["train", "tiny.yaml", "--set", "algo=maml"],
        "pretrain": ["pretrain", "tiny.yaml"],
        "ppo_h32": ["train", "tiny.yaml", "--set", "agent.hidden=32"],
    }
    for name, argv in list(runs.items())[: 3 if quick else 4]:
        t = time.perf_counter()
        proc = metaxm([*argv, "--out", name], fx, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, err = proc.communicate(timeout=300)
        if proc.returncode != 0:
            sys.exit(f"bad_inputs: the fixture run {name} failed:\n{err.decode()}")
        print(f"fixture {name}: {time.perf_counter() - t:.1f} s", flush=True)


def _fixtures(case_dir: Path) -> Path:
    return case_dir.parent.parent / "fixtures"


def write(name: str, data: bytes | Callable[[Path], object]) -> Setup:
    """A setup writing ``data`` (or calling it with the path) to ``name`` in the case folder."""

    def setup(case_dir: Path) -> None:
        if callable(data):
            data(case_dir / name)
        else:
            (case_dir / name).write_bytes(data)

    return setup


def copy_run(src: str) -> Setup:
    """A setup copying fixture run ``src`` into the case folder as ``run``."""
    return lambda case_dir: shutil.copytree(_fixtures(case_dir) / src, case_dir / "run")


def damaged(src: str, how: str, every: bool = False) -> Setup:
    """A setup copying fixture run ``src`` to ``run`` and damaging its newest checkpoint (or
    ``every`` one): ``flip``, ``truncate``, ``zero``, ``garbage``, ``no-sidecar``, ``payload``,
    or ``foreign-<run>`` (that run's newest checkpoint added as the newest, with a checksum)."""

    def setup(case_dir: Path) -> None:
        fx, run = _fixtures(case_dir), case_dir / "run"
        shutil.copytree(fx / src, run)
        found = sorted((run / "checkpoints").glob("ckpt-*.pt"))
        for path in found if every else found[-1:]:
            if how == "flip":
                bad.flip_bytes(path)
            elif how == "truncate":
                bad.truncate(path)
            elif how == "zero":
                bad.garbage_checkpoint(path, b"")
            elif how == "garbage":
                bad.garbage_checkpoint(path)
            elif how == "no-sidecar":
                path.with_name(path.name + ".sha256").unlink()
            elif how == "payload":
                bad.pickle_payload(path, fx / MARKER)
            elif how.startswith("foreign-"):
                other = sorted((fx / how.removeprefix("foreign-") / "checkpoints").glob("*.pt"))
                shutil.copy(other[-1], run / "checkpoints" / "ckpt-00000099.pt")
                bad.write_sidecar(run / "checkpoints" / "ckpt-00000099.pt")
            else:
                raise ValueError(how)

    return setup


def payload_file(name: str, torch_format: bool = True) -> Setup:
    return lambda d: bad.pickle_payload(d / name, _fixtures(d) / MARKER, torch_format)


def run_importing_a_module(case_dir: Path) -> None:
    """A setup: ``plug.py`` (it makes the marker file when imported) beside ``run``, a TINY
    run whose spec imports it, as a downloaded run folder could hold them."""
    fx = _fixtures(case_dir)
    (case_dir / "plug.py").write_text(
        f"import pathlib\npathlib.Path({str(fx / MARKER)!r}).touch()\n"
    )
    spec = {**bad.TINY, "imports": ["plug"]}
    (case_dir / "spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    proc = metaxm(["train", "spec.yaml", "--out", "run"], case_dir, stdout=subprocess.DEVNULL,
                  stderr=subprocess.PIPE)  # fmt: skip
    _, err = proc.communicate(timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"the run importing plug.py failed: {err.decode()}")
    (fx / MARKER).unlink()  # made by the training itself, which asked for it
    (case_dir / "spec.yaml").unlink()


def out_files(case_dir: Path) -> None:
    bad.make_out_paths(case_dir / "paths")


# --------------------------------------------------------------------------------- the cases
TINY = "{fx}/tiny.yaml"
CHECK = ["--out", "{dir}/out", "--check"]
OUT = bad.out_paths("{dir}/paths")  # made in each case's folder by out_files


def yaml_cases() -> list[Case]:
    """Spec files that attack the YAML reader (``--check``; a few as real runs and ``main``)."""
    tiny_text = yaml.safe_dump(bad.TINY, sort_keys=False)
    quick = {"billion laughs", "recursive alias", "non-UTF-8 byte", "duplicate top-level section",
             "python tag os.system"}  # fmt: skip
    cases = []
    for name, data in bad.yaml_attacks(Path("{marker}"), tiny_text).items():

        def setup(case_dir: Path, data: bytes = data) -> None:
            marker = str(_fixtures(case_dir) / MARKER).encode()
            (case_dir / "spec.yaml").write_bytes(data.replace(b"{marker}", marker))

        spec = "{dir}/spec.yaml"
        cases.append(Case("yaml", name, ["train", spec, *CHECK], setup=setup, quick=name in quick))
        if name in ("billion laughs", "billion laughs inside main.runs", "python tag os.system"):
            cases += [
                Case("yaml", f"{name} (train)", ["train", spec, "--out", "{dir}/out"], setup=setup),
                Case("yaml", f"{name} (main)", ["main", spec, "--out", "{dir}/out"], setup=setup,
                     timeout=120),
            ]  # fmt: skip
    bom = b"\xef\xbb\xbf" + tiny_text.encode()
    # fmt: off
    cases += [
        Case("yaml", "50 MB spec", ["train", "{dir}/spec.yaml", *CHECK],
             setup=write("spec.yaml", lambda p: bad.big_spec(p, 50)), timeout=120, quick=True),
        Case("yaml", "2 MB spec", ["train", "{dir}/spec.yaml", *CHECK],
             setup=write("spec.yaml", lambda p: bad.big_spec(p, 2))),
        Case("yaml", "spec is /dev/zero", ["train", "/dev/zero", *CHECK]),
        Case("yaml", "spec is /proc/self/status", ["train", "/proc/self/status", *CHECK]),
        Case("yaml", "spec is a folder", ["train", "{dir}", *CHECK]),
        Case("yaml", "no such spec", ["train", "{dir}/missing.yaml", *CHECK]),
        Case("yaml", "UTF-8 BOM (control)", ["train", "{dir}/spec.yaml", *CHECK],
             setup=write("spec.yaml", bom), absurd=False, valid=True),
        Case("yaml", "empty file, all defaults (control)", ["train", "{dir}/spec.yaml", *CHECK],
             setup=write("spec.yaml", b""), absurd=False, valid=True),
        Case("yaml", "the TINY spec (control)", ["train", TINY, *CHECK], absurd=False,
             valid=True, quick=True),
    ]
    # fmt: on
    return cases


def set_cases() -> list[Case]:
    """``--set`` values and keys, and the issue's silent acceptances, through ``--check`` (a few
    through real runs and ``main``, where a check that comes too late would show)."""
    import torch

    laughs = bad.billion_laughs()
    # fmt: off
    absurd = [
        ("billion laughs as --set", f"log.project={laughs}"),
        ("billion laughs as a main.runs --set", f"main.runs.ppo={laughs}"),
        ("100 KB value", "log.project=" + "x" * 100_000),
        ("anchor and alias in a value", "ppo={lr: &a 0.1, ent_coef: *a}"),
        ("ppo.lr=1e6", "ppo.lr=1e6"), ("ppo.lr=1e309 (inf)", "ppo.lr=1e309"),
        ("ppo.lr=nan (a string)", "ppo.lr=nan"), ("seed of 5000 digits", "seed=" + "9" * 5000),
        ("no '='", "ppo.lr"), ("empty key", "=1"), ("key '.'", ".=1"),
        ("double dot", "ppo..lr=1"), ("a key under a number", "ppo.lr.x=1"),
        ("section as a number", "ppo=3"), ("section as a list", "ppo=[1]"),
        ("world null", "world=null"), ("mixed-type keys", "ppo={1: 2, x: 3}"),
        ("an int key in main.runs", "main.runs.ppo={1: 2}"),
        ("an int key in modalities", "modalities.train={1: 1}"), ("a unicode key", "été=1"),
        ("unknown world", "world={name: garbage}"),
        ("minigrid unknown env_id", "world={name: minigrid, env_id: garbage}"),
        ("minigrid without actions", "world={name: minigrid, actions: []}"),
        ("gym unknown env_id", "world={name: gym, env_id: garbage}"),
        ("unknown strategy in evaluate.strategies", "evaluate.strategies=[garbage]"),
        ("device garbage", "device=garbage"), ("device ''", "device=''"),
        ("device meta", "device=meta"),
        ("train.init_from missing", "train.init_from={dir}/missing"),
        ("align.init_from missing", "align.init_from={dir}/missing"),
        ("log.mode garbage", "log.mode=garbage"),
        ("main.runs unknown stage", "main.runs={garbage: {}}"),
        ("main.runs.ppo total_steps -1", "main.runs.ppo={train.total_steps: -1}"),
        ("main.runs.maml total_steps nan", "main.runs.maml={train.total_steps: .nan}"),
        ("main.runs.ppo adapters -1", "main.runs.ppo={agent.adapters: -1}"),
        ("main.runs link to a later stage", "main.runs.ppo={align.init_from: '{out}/maml'}"),
        ("main.runs value a date", "main.runs.ppo={seed: 2024-01-01}"),
        ("main.runs value bytes", "main.runs.ppo={log.project: !!binary aGVsbG8=}"),
        ("evaluate.eval_episodes=1e12", "evaluate.eval_episodes=1e12"),
        ("align.fit_lr=1e12", "align.fit_lr=1e12"), ("maml.inner_lr=-1", "maml.inner_lr=-1"),
        ("ppo.target_kl=nan", "ppo.target_kl=.nan"),
        ("agent.init_log_std=nan", "agent.init_log_std=.nan"),
        ("held-out family that cannot render", "modalities.heldout_families={minigrid_rgb: 1}"),
        ("no training family", "modalities.train={}"),
        ("held-out variant of no training family", "modalities.heldout_variants={audio: 1}"),
        ("evaluate.budgets decreasing", "evaluate.budgets=[4, 2]"),
    ]
    if not torch.cuda.is_available():
        absurd.append(("device cuda without CUDA", "device=cuda"))
    fine = [
        ("ppo.lr=1e-3", "ppo.lr=1e-3"), ("ppo.lr=1.0e-3", "ppo.lr=1.0e-3"),
        ("ppo.lr=1E-3", "ppo.lr=1E-3"), ("another world", "world={name: pointnav}"),
        ("main.runs emptied", "main.runs={}"), ("a quoted '1e6'", "log.project='1e6'"),
    ]
    quick = {"billion laughs as --set", "mixed-type keys", "minigrid unknown env_id",
             "unknown strategy in evaluate.strategies", "ppo.lr=1e-3"}
    cases = [Case("set", n, ["train", TINY, *CHECK, "--set", v], quick=n in quick)
             for n, v in absurd]
    cases += [Case("set", n, ["train", TINY, *CHECK, "--set", v], absurd=False, valid=True,
                   quick=n in quick) for n, v in fine]
    run = ["--out", "{dir}/out"]
    cases += [
        Case("set", "ppo=null (all defaults: either is fine)",
             ["train", TINY, *CHECK, "--set", "ppo=null"], absurd=False),
        Case("set", "modalities=null (all defaults: either is fine)",
             ["train", TINY, *CHECK, "--set", "modalities=null"], absurd=False),
        Case("set", "seed=1e6 (a float for an int: a refusal is fine)",
             ["train", TINY, *CHECK, "--set", "seed=1e6"], absurd=False),
        Case("set", "a key, then a key under it", ["train", TINY, *CHECK, "--set", "x=1",
             "--set", "x.y=2"]),
        Case("set", "pretrain --check of a one-family spec",
             ["pretrain", "{fx}/one-family.yaml", *CHECK]),
        Case("set", "pretrain of a one-family spec", ["pretrain", "{fx}/one-family.yaml", *run]),
        Case("set", "train.init_from missing (train)",
             ["train", TINY, *run, "--set", "train.init_from={dir}/missing"]),
        Case("set", "device garbage (train)", ["train", TINY, *run, "--set", "device=garbage"]),
        Case("set", "unknown strategy in evaluate.strategies (main)",
             ["main", TINY, *run, "--set", "evaluate.strategies=[garbage]"], timeout=180),
        Case("set", "main.runs.ppo total_steps -1 (main)",
             ["main", TINY, *run, "--set", "main.runs.ppo={train.total_steps: -1}"], timeout=180),
    ]
    # fmt: on
    return cases


QUICK_NUMERIC = {
    ("ppo.lr", "nan"), ("ppo.lr", "inf"), ("agent.hidden", "1e9"), ("world.size<gridnav>", "1e30"),
    ("evaluate.seeds", "0"), ("train.total_steps", "-1"), ("maml.inner_lr", "-1"),
    ("ppo.target_kl", "nan"),
}  # fmt: skip
"""The (field, probe) pairs of the numeric sweep that ``--quick`` runs."""


def numeric_cases() -> list[Case]:
    """Every numeric field at every probe (``--check``), switched to its world first."""
    cases = []
    for key in bad.numeric_keys():
        where = f"{key.key}<{key.world}>" if key.world else key.key
        for probe in bad.NUMERIC_PROBES:
            argv = ["train", TINY, *CHECK]
            for item in [*bad.world_sets(key), f"{key.key}={bad.probe_text(key, probe)}"]:
                argv += ["--set", item]
            cases.append(Case("numeric", f"{where}={probe}", argv, absurd=bad.is_absurd(
                key.key, probe), quick=(where, probe) in QUICK_NUMERIC))  # fmt: skip
    for world in sorted({k.world for k in bad.numeric_keys() if k.world}):
        argv = ["train", TINY, *CHECK, "--set", f"world={{name: {world}}}"]
        cases.append(Case("numeric", f"world {world} (control)", argv, absurd=False, valid=True))
    return cases


def numeric_run_cases() -> list[Case]:
    """Real short runs at the edges of the ranges: accepting is fine; a traceback, a hang or a
    many-line error is not."""
    # fmt: off
    runs = [
        ("ppo.lr=1", ["ppo.lr=1"]),
        ("ppo.lr=1 without gradient clipping", ["ppo.lr=1", "ppo.max_grad_norm=1000000"]),
        ("maml.inner_lr=100", ["algo=maml", "maml.inner_lr=100"]),
        ("world.horizon=10000", ["world.horizon=10000"]),
        ("train.num_envs=65536", ["train.num_envs=65536", "train.total_steps=1"]),
        ("ppo.num_steps=100000 (100,000 steps, not 256)",
         ["ppo.num_steps=100000", "train.num_envs=1"]),
        ("agent.hidden=8192 x 32 layers", ["agent.hidden=8192", "agent.layers=32"]),
        ("loss_limit=1, stop on divergence", ["train.loss_limit=1",
                                              "train.stop_on_divergence=true"]),
        ("train.total_steps=1", ["train.total_steps=1"]),
        ("ppo.num_minibatches=65536", ["ppo.num_minibatches=65536"]),
        ("align.batch_size=65536 (pretrain)", ["align.batch_size=65536",
                                               "align.pretrain_updates=1"]),
    ]
    # fmt: on
    cases = []
    for name, sets in runs:
        argv = ["pretrain" if "pretrain" in name else "train", TINY, "--out", "{dir}/out"]
        for item in sets:
            argv += ["--set", item]
        cases.append(Case("numeric-run", name, argv, absurd=False, may_write=("out",),
                          timeout=300, quick=name == "ppo.lr=1"))  # fmt: skip
    return cases


def mutation_cases() -> list[Case]:
    """``tasks/gridnav.yaml`` changed once: each key deleted, each number at -1 and NaN, each
    section repeated, an anchor and alias on each section."""
    text = (REPO / "tasks" / "gridnav.yaml").read_text()
    spec = ["train", "{dir}/spec.yaml", *CHECK]
    cases = []

    def paths(d: dict, prefix: tuple = ()) -> list[tuple]:
        return [p for k, v in d.items() for p in [(*prefix, k),
                *(paths(v, (*prefix, k)) if isinstance(v, dict) else [])]]  # fmt: skip

    for path in paths(yaml.safe_load(text)):
        dotted = ".".join(map(str, path))
        field_key = str(path[-1]) if path[:2] == ("main", "runs") else dotted
        for what, value in (("deleted", None), ("-1", -1), ("nan", float("nan"))):
            data = yaml.safe_load(text)
            node = data
            for part in path[:-1]:
                node = node[part]
            old = node[path[-1]]
            if what == "deleted":
                del node[path[-1]]
            elif isinstance(old, bool) or not isinstance(old, (int, float)):
                continue
            else:
                node[path[-1]] = value
            body = yaml.safe_dump(data, sort_keys=False).encode()
            absurd = what != "deleted" and bad.is_absurd(field_key, what)
            quick = dotted == "main.runs.ppo.train.total_steps" and what != "deleted"
            cases.append(Case("mutation", f"{dotted} {what}", spec, setup=write("spec.yaml", body),
                              absurd=absurd, quick=quick))  # fmt: skip
    lines = text.splitlines()
    tops = [i for i, ln in enumerate(lines) if ln[:1].isalpha()]
    for j, i in enumerate(tops):
        end = tops[j + 1] if j + 1 < len(tops) else len(lines)
        section = lines[i].split(":")[0]
        repeated = "\n".join(lines + lines[i:end]) + "\n"
        cases.append(Case("mutation", f"{section} repeated", spec,
                          setup=write("spec.yaml", repeated.encode())))  # fmt: skip
        if lines[i].rstrip().endswith(":"):
            anchored = [*lines[:i], lines[i].rstrip() + " &s", *lines[i + 1 :], "extra: *s"]
            cases.append(Case("mutation", f"{section} anchored and aliased", spec,
                              setup=write("spec.yaml", "\n".join(anchored).encode())))  # fmt: skip
    gridnav = str(REPO / "tasks" / "gridnav.yaml")
    cases.append(Case("mutation", "tasks/gridnav.yaml (control)", ["train", gridnav, *CHECK],
                      absurd=False, valid=True))  # fmt: skip
    return cases


def out_cases() -> list[Case]:
    """``--out`` paths of every command that writes (real runs: a wrong acceptance writes)."""
    adapt = ["adapt", "{fx}/ppo", "--modality", "vector:1", "--strategy", "zeroshot"]
    cases = []
    folders = {n: p for n, p in OUT.items() if n != "root"}  # see bad.OUT_PATHS
    for command in ("train", "pretrain", "main"):
        for name, path in folders.items():
            quick = command == "train" and name in ("empty", "existing file")
            cases.append(Case("out", f"{command} --out {name}", [command, TINY, "--out", path],
                              setup=out_files, timeout=120, quick=quick))  # fmt: skip
        cases.append(Case("out", f"{command} into a finished run", [command, TINY, "--out",
                          "{dir}/run"], setup=copy_run("ppo"), timeout=120))  # fmt: skip
    for name in ("empty", "blank", "root", "current folder", "nested under a file", "/proc"):
        cases += [
            Case("out", f"adapt --out {name}", [*adapt, "--out", OUT[name]], setup=out_files,
                 quick=name == "empty"),
            Case("out", f"render --out {name}", ["render", TINY, "--out", OUT[name]],
                 setup=out_files),
        ]  # fmt: skip
    for name in ("empty", "blank", "existing file", "nested under a file",
                 "folder with metrics.jsonl", "folder of other files", "/dev/null"):  # fmt: skip
        cases.append(Case("out", f"evaluate --out {name}", ["evaluate", "{fx}/ppo", "--out",
                          OUT[name]], setup=out_files, timeout=120))  # fmt: skip
    # fmt: off
    cases += [
        Case("out", "train --resume --out a folder of other files",
             ["train", TINY, "--out", OUT["folder of other files"], "--resume"], setup=out_files),
        Case("out", "train --resume --out a missing folder",
             ["train", TINY, "--out", "{dir}/missing", "--resume"]),
        Case("out", "train --resume of another spec's run",
             ["train", TINY, "--out", "{dir}/run", "--resume", "--set", "seed=4"],
             setup=copy_run("ppo")),
        Case("out", "adapt --out an existing file (overwritten, as -o does)",
             [*adapt, "--out", OUT["existing file"]], setup=out_files, absurd=False,
             may_write=("paths/a_file.txt",)),
    ]
    # fmt: on
    return cases


def checkpoint_cases() -> list[Case]:
    """Damaged, foreign and malicious checkpoints through every loader."""
    resume = ["train", TINY, "--out", "{dir}/run", "--resume"]
    adapt = ["--modality", "vector:1", "--strategy", "zeroshot", "--out", "{dir}/r.json"]
    fresh = ["train", TINY, "--out", "{dir}/out", "--set"]
    cases = []
    for how in ("flip", "truncate", "zero", "garbage", "no-sidecar", "payload"):
        # fmt: off
        cases += [
            Case("checkpoints", f"--resume, newest {how}", resume, setup=damaged("ppo", how),
                 quick=how in ("flip", "payload")),
            Case("checkpoints", f"evaluate, newest {how}",
                 ["evaluate", "{dir}/run", "--out", "{dir}/report"], setup=damaged("ppo", how)),
            Case("checkpoints", f"adapt, newest {how}", ["adapt", "{dir}/run", *adapt],
                 setup=damaged("ppo", how)),
            Case("checkpoints", f"train.init_from, newest {how}",
                 [*fresh, "train.init_from={dir}/run"], setup=damaged("ppo", how)),
            Case("checkpoints", f"align.init_from, pretraining's newest {how}",
                 [*fresh, "align.init_from={dir}/run"], setup=damaged("pretrain", how)),
            Case("checkpoints", f"pretrain --resume, newest {how}",
                 ["pretrain", TINY, "--out", "{dir}/run", "--resume"],
                 setup=damaged("pretrain", how)),
        ]
        # fmt: on
    for other, name in (("maml", "another algorithm"), ("ppo_h32", "another agent size"),
                        ("pretrain", "pretraining")):  # fmt: skip
        setup = damaged("ppo", f"foreign-{other}")
        cases.append(Case("checkpoints", f"--resume with {name}'s checkpoint", resume,
                          setup=setup, quick=other == "maml"))  # fmt: skip
    # fmt: off
    cases += [
        Case("checkpoints", "pretrain --resume with a PPO checkpoint",
             ["pretrain", TINY, "--out", "{dir}/run", "--resume"],
             setup=damaged("pretrain", "foreign-ppo")),
        Case("checkpoints", "--resume-last-good past a flipped newest (control)",
             [*resume, "--resume-last-good"], setup=damaged("ppo", "flip"), absurd=False,
             valid=True, may_write=("run",), timeout=120),
        Case("checkpoints", "--resume-last-good with every checkpoint flipped",
             [*resume, "--resume-last-good"], setup=damaged("ppo", "flip", every=True)),
        Case("checkpoints", "evaluate a pretraining run",
             ["evaluate", "{fx}/pretrain", "--out", "{dir}/report"], quick=True),
        Case("checkpoints", "adapt a pretraining run", ["adapt", "{fx}/pretrain", *adapt]),
        Case("checkpoints", "adapt a MAML run by zeroshot", ["adapt", "{fx}/maml", *adapt]),
        Case("checkpoints", "train.init_from a pretraining run (its matching parts: fine)",
             [*fresh, "train.init_from={fx}/pretrain"], absurd=False, may_write=("out",)),
        Case("checkpoints", "align.init_from a PPO run (its encoders: fine)",
             [*fresh, "align.init_from={fx}/ppo"], absurd=False, may_write=("out",)),
        Case("checkpoints", "evaluate a plain pickle with a checksum",
             ["evaluate", "{dir}/x.pkl", "--out", "{dir}/report"],
             setup=payload_file("x.pkl", torch_format=False)),
        Case("checkpoints", "adapt a torch payload with a checksum",
             ["adapt", "{dir}/x.pt", *adapt], setup=payload_file("x.pt"), quick=True),
        Case("checkpoints", "evaluate, in its folder, a run whose spec imports a module there",
             ["evaluate", "run", "--out", "report"], setup=run_importing_a_module),
        Case("checkpoints", "adapt, in its folder, a run whose spec imports a module there",
             ["adapt", "run", *adapt], setup=run_importing_a_module),
        Case("checkpoints", "train.init_from a torch payload with a checksum",
             [*fresh, "train.init_from={dir}/x.pt"], setup=payload_file("x.pt")),
    ]
    # fmt: on
    return cases


def flag_cases() -> list[Case]:
    """The flags of adapt, evaluate, render and bench, and the parser's own errors."""
    adapt = ["adapt", "{fx}/ppo", "--out", "{dir}/r.json"]
    vz = ["--modality", "vector:1", "--strategy", "zeroshot"]
    ev = ["evaluate", "{fx}/ppo", "--out", "{dir}/report"]
    big = str(10**23)
    # fmt: off
    rows = [
        ("adapt --episodes -1", [*adapt, *vz, "--episodes=-1"]),
        ("adapt --modality garbage", [*adapt, "--modality", "garbage", "--strategy", "zeroshot"]),
        ("adapt --modality of an unknown family", [*adapt, *vz, "--modality", "garbage:1"]),
        ("adapt --modality the agent cannot read", [*adapt, *vz, "--modality", "audio:1"]),
        ("adapt --modality with a huge variant", [*adapt, *vz, "--modality", f"vector:{big}"]),
        ("adapt --seed huge", [*adapt, *vz, f"--seed={big}"]),
        ("adapt --strategy garbage", [*adapt, *vz, "--strategy", "garbage"]),
        ("adapt --strategy maml of a PPO run", [*adapt, *vz, "--strategy", "maml"]),
        ("adapt --strategy finetune --episodes 1e9",
         [*adapt, *vz, "--strategy", "finetune", "--episodes=1000000000"]),
        ("adapt --device garbage", [*adapt, *vz, "--device", "garbage"]),
        ("adapt a missing checkpoint", ["adapt", "{dir}/missing.pt", *vz]),
        ("evaluate --seeds 0", [*ev, "--seeds", "0"]),
        ("evaluate --seeds -1", [*ev, "--seeds", "-1"]),
        ("evaluate --seeds 2**31", [*ev, "--seeds", str(2**31)]),
        ("evaluate --seeds 1e6", [*ev, "--seeds", "1000000"]),
        ("evaluate --strategy garbage", [*ev, "--strategy", "garbage"]),
        ("evaluate --set evaluate.workers=0", [*ev, "--set", "evaluate.workers=0"]),
        ("evaluate --set evaluate.seeds=1e6", [*ev, "--set", "evaluate.seeds=1000000"]),
        ("evaluate --spec missing", [*ev, "--spec", "{dir}/missing.yaml"]),
        ("evaluate --device garbage", [*ev, "--device", "garbage"]),
        ("evaluate a missing run", ["evaluate", "{dir}/missing", "--out", "{dir}/report"]),
        ("render --variants 0", ["render", TINY, "--out", "{dir}/r.png", "--variants=0"]),
        ("render --out r.txt", ["render", TINY, "--out", "{dir}/r.txt"]),
        ("render --variants 1e23", ["render", TINY, "--out", "{dir}/r.png", f"--variants={big}"]),
        ("render --set world.size=1000",
         ["render", TINY, "--out", "{dir}/r.png", "--set", "world.size=1000"]),
        ("bench envs --threads 0", ["bench", "envs", "--quick", "--threads", "0"]),
        ("bench envs --worlds garbage", ["bench", "envs", "--quick", "--worlds", "garbage"]),
        ("bench envs --families garbage", ["bench", "envs", "--quick", "--families", "garbage"]),
        ("bench envs --batches 0", ["bench", "envs", "--quick", "--batches=0"]),
        ("bench envs --variant -1", ["bench", "envs", "--quick", "--variant=-1"]),
        ("bench envs --json ''", ["bench", "envs", "--quick", "--json", ""]),
        ("bench maml --threads 0", ["bench", "maml", "--quick", "--threads", "0"]),
        ("bench garbage", ["bench", "garbage"]),
        ("no command", []),
        ("an unknown command", ["garbage"]),
        ("train without --out", ["train", TINY]),
    ]
    quick = {"adapt --modality with a huge variant", "evaluate --seeds 2**31",
             "evaluate --strategy garbage", "bench envs --worlds garbage"}
    cases = [Case("flags", n, a, quick=n in quick, timeout=90) for n, a in rows]
    cases.append(Case("flags", "adapt --episodes 1e23 by zeroshot (it takes none: fine)",
                      [*adapt, *vz, f"--episodes={big}"], absurd=False, may_write=("r.json",)))
    # fmt: on
    return cases


# ------------------------------------------------------------------------- the special cases
def _metrics(run: Path) -> list[dict]:
    path = run / "metrics.jsonl"
    return [json.loads(ln) for ln in path.read_text().splitlines()] if path.is_file() else []


def two_writers(case_dir: Path, stagger: float = 0.0) -> tuple[str, str]:
    """Two ``metaxm train`` into one ``--out``, the second ``stagger`` seconds after the first.
    One must be refused in one line, and ``metrics.jsonl`` must be exactly a lone run's."""
    argv = ["train", str(_fixtures(case_dir) / "tiny.yaml"), "--set", "train.total_steps=4096"]
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
            _kill(_session(procs[0].pid) | _session(procs[1].pid))
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
    argv = ["train", str(_fixtures(case_dir) / "tiny.yaml"), "--out", str(case_dir / "run"),
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
        _kill(_session(first.pid))
        first.wait()


def sigkill_evaluate(case_dir: Path) -> tuple[str, str]:
    """SIGKILL ``metaxm evaluate --set evaluate.workers=2`` once its workers run; none of its
    processes may be alive 10 s later."""
    argv = ["evaluate", str(_fixtures(case_dir) / "ppo"), "--out", str(case_dir / "report"),
            "--set", "evaluate.workers=2", "--set", "evaluate.seeds=20"]  # fmt: skip
    proc = metaxm(argv, case_dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 90
    while proc.poll() is None and len(_descendants(proc.pid)) < 2:
        if time.monotonic() > deadline:
            _kill(_session(proc.pid))
            return "hang", "no two workers within 90 s"
        time.sleep(0.2)
    if proc.poll() is not None:
        return "other-exit", f"evaluate ended (exit {proc.returncode}) before two workers ran"
    time.sleep(1.0)  # let them get to work
    kids = _descendants(proc.pid)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    for _ in range(50):
        alive = {p for p in kids if p in _processes() and _processes()[p][0] != "Z"}
        if not alive:
            return "refusal", f"its {len(kids)} child processes ended with it"
        time.sleep(0.2)
    _kill(alive | _session(proc.pid))
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
    # fmt: on


def all_cases() -> list[Case]:
    return [*yaml_cases(), *set_cases(), *numeric_cases(), *numeric_run_cases(),
            *mutation_cases(), *out_cases(), *checkpoint_cases(), *flag_cases(),
            *special_cases()]  # fmt: skip


# ------------------------------------------------------------------------------------ report
def table(results: list[Result]) -> str:
    """Counts per category (rows) and class (columns)."""
    counts: dict[str, Counter] = defaultdict(Counter)
    for r in results:
        counts[r.case.category][r.cls] += 1
    shown = [c for c in CLASSES if any(row[c] for row in counts.values())]
    width = max(len(c) for c in [*counts, "category"]) + 2

    def row(name: str, cells: Counter) -> str:
        values = "".join(f"{cells[c]:>{max(len(c), 5) + 2}}" for c in shown)
        return f"{name:<{width}}{sum(cells.values()):>7}{values}"

    head = f"{'category':<{width}}{'total':>7}"
    head += "".join(f"{c:>{max(len(c), 5) + 2}}" for c in shown)
    total = sum(counts.values(), Counter())
    rule = "-" * len(head)
    return "\n".join([head, rule, *(row(c, counts[c]) for c in counts), rule, row("all", total)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a representative subset (~2 min)")
    parser.add_argument("--only", action="append", metavar="CATEGORY",
                        help="only this category (repeatable): yaml, set, numeric, numeric-run, "
                        "mutation, out, checkpoints, flags, concurrency, orphans")  # fmt: skip
    parser.add_argument("--match", action="append", metavar="TEXT",
                        help="only cases whose name holds TEXT (repeatable)")  # fmt: skip
    parser.add_argument("--keep", metavar="DIR", help="work in DIR (emptied first) and keep it, "
                        "to redo a case by hand; default: a temporary folder")  # fmt: skip
    parser.add_argument("--verbose", action="store_true", help="print every case as it ends")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    work = Path(args.keep or tempfile.mkdtemp(prefix="metaxm-bad-inputs-")).resolve()
    if args.keep:
        shutil.rmtree(work, ignore_errors=True)
    fx = work / "fixtures"
    cases = [c for c in all_cases() if c.quick or not args.quick]
    cases = [c for c in cases if not args.only or c.category in args.only]
    cases = [c for c in cases if not args.match or any(m in c.name for m in args.match)]
    results: list[Result] = []
    try:
        build_fixtures(fx, quick=args.quick)
        print(f"{len(cases)} cases", flush=True)
        for i, case in enumerate(cases):
            case_dir = work / "cases" / f"{i:04d}"
            case_dir.mkdir(parents=True)
            if case.setup is not None:
                case.setup(case_dir)
            t = time.perf_counter()
            cls, detail = run_case(case, case_dir, fx)
            seconds = time.perf_counter() - t
            command = "python -m metaxm " + shlex.join(resolve(case.argv, case_dir, fx))
            results.append(Result(case, cls, detail, command))
            (fx / MARKER).unlink(missing_ok=True)
            if args.verbose or cls in FAILURES:
                print(f"[{i + 1}/{len(cases)}] {seconds:.1f} s {case.category}: {case.name}: {cls}"
                      f"  {detail}", flush=True)  # fmt: skip
            elif (i + 1) % 50 == 0:
                print(f"[{i + 1}/{len(cases)}] {time.perf_counter() - started:.0f} s", flush=True)
            if not args.keep:
                shutil.rmtree(case_dir, ignore_errors=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    failed = [r for r in results if r.cls in FAILURES]
    print(f"\n{table(results)}\n\n{len(results)} inputs in {time.perf_counter() - started:.0f} s "
          f"(fixtures included); {len(failed)} failures")  # fmt: skip
    for r in failed:
        print(f"\n* {r.case.category}: {r.case.name}: {r.cls}: {r.detail}")
        if r.case.special is None:
            print(f"  {r.command}")
    if failed and not args.keep:
        print("\n(the cases' folders are gone: rerun with --keep DIR --only CATEGORY to redo one)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
