"""Property-based fuzz of spec loading and every command's flags (issue 18).

Whatever the input, ``metaxm.cli.main`` must exit 0 or 2; on 2 print one line on stderr
beginning ``metaxm <command>: error:`` (argparse's usage message may come before its own
``error:`` line); let no exception escape (a traceback for the user); finish within
:data:`HANG_S`; and write nothing when it refuses. Inputs come from :mod:`bad_inputs`: every
dotted key of :class:`metaxm.spec.Spec` and each world's config, ``main.runs.<stage>`` entries,
unknown keys, odd value texts; raw and mutated spec files; and the flags of adapt, evaluate,
render, bench, and the ``--out`` of the commands that write a folder.

Two tiers: the fast one (the default run) draws :data:`FAST_EXAMPLES` examples per property,
derandomized so CI sees the same inputs every time and without shrinking (the first failure is
reported as it came); the slow one (``-m slow``) draws :data:`SLOW_EXAMPLES`, randomly, and
shrinks. ``METAXM_FUZZ_EXAMPLES=N`` sets both counts. The oracle itself is tested first
(``test_the_oracle_catches``), against commands that misbehave on purpose.
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
import shlex
import signal
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import bad_inputs as bad
from metaxm import cli
from metaxm.evaluate.strategies import STRATEGIES
from metaxm.modalities import FAMILIES
from metaxm.pipeline import RUN_NAMES

REPO = Path(__file__).resolve().parents[1]
TASKS = sorted((REPO / "tasks").glob("*.yaml"))
GRIDNAV = REPO / "tasks" / "gridnav.yaml"

FAST_EXAMPLES = int(os.environ.get("METAXM_FUZZ_EXAMPLES", 25))
SLOW_EXAMPLES = int(os.environ.get("METAXM_FUZZ_EXAMPLES", 500))
HANG_S = 20.0
"""An example still running after this many seconds is a hang (SIGALRM stops it)."""

_COMMON = dict(
    deadline=5000,  # ms; a spec check takes ~0.05 s, a refused flag less
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
FAST = settings(max_examples=FAST_EXAMPLES, derandomize=True,
                phases=[Phase.explicit, Phase.generate], **_COMMON)  # fmt: skip
SLOW = settings(max_examples=SLOW_EXAMPLES, **_COMMON)
TIERS = pytest.mark.parametrize(
    "tier", [pytest.param(FAST, id="fast"), pytest.param(SLOW, id="slow", marks=pytest.mark.slow)]
)


# ------------------------------------------------------------------------------------ oracle
class _Hang(BaseException):
    """Raised by SIGALRM inside an example; a BaseException so no ``except Exception`` in
    metaxm swallows it."""


@dataclass
class Outcome:
    """What one in-process ``metaxm ...`` did."""

    argv: list[str]
    rc: int | None = None
    stderr: str = ""
    escaped: str | None = None  # the traceback of an exception out of main(), or "hang"
    written: list[str] = field(default_factory=list)  # files added, changed or removed

    @property
    def repro(self) -> str:
        return "metaxm " + shlex.join(self.argv)


def _snapshot(roots: Sequence[Path]) -> dict[str, tuple[int, int] | None]:
    seen: dict[str, tuple[int, int] | None] = {}
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            seen[dirpath] = None
            for name in filenames:
                path = os.path.join(dirpath, name)
                with contextlib.suppress(OSError):
                    st_ = os.lstat(path)
                    seen[path] = (st_.st_size, st_.st_mtime_ns)
    return seen


def invoke(argv: Sequence[str], cwd: Path, watch: Sequence[Path] = (), main=None) -> Outcome:
    """Run ``metaxm argv`` in this process, in ``cwd``, and record what it did to ``cwd`` and
    ``watch``."""
    main = main or cli.main
    argv = list(argv)
    roots = [cwd, *watch]
    before = _snapshot(roots)
    outcome = Outcome(argv)
    err, out = io.StringIO(), io.StringIO()
    here, environ = os.getcwd(), dict(os.environ)

    def hang(signum: int, frame: object) -> None:
        raise _Hang

    previous = signal.signal(signal.SIGALRM, hang)
    signal.setitimer(signal.ITIMER_REAL, HANG_S)
    try:
        os.chdir(cwd)
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            try:
                outcome.rc = main(argv)
            except SystemExit as exit_:  # argparse: usage errors 2, --help 0
                code = exit_.code
                outcome.rc = code if isinstance(code, int) else (0 if code is None else 1)
    except _Hang:
        outcome.escaped = f"hang: still running after {HANG_S:.0f} s"
    except Exception:
        outcome.escaped = traceback.format_exc()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        os.chdir(here)
        os.environ.clear()
        os.environ.update(environ)
        torch.set_num_threads(1)  # bench sets its own
    outcome.stderr = err.getvalue()
    after = _snapshot(roots)
    changed = {p for p in after if p not in before or (after[p] and after[p] != before[p])}
    outcome.written = sorted(changed | {f"removed {p}" for p in before if p not in after})
    return outcome


def check(outcome: Outcome, command: str, exits: tuple[int, ...] = (0, 2),
          may_write: Callable[[str], bool] = lambda path: False) -> None:  # fmt: skip
    """Assert the contract of the module docstring; ``may_write`` says which paths a
    successful run may leave."""
    where = outcome.repro
    assert outcome.escaped is None, f"{where}\n{outcome.escaped}"
    assert outcome.rc in exits, f"{where}: exit {outcome.rc}, wanted {exits}\n{outcome.stderr}"
    if outcome.rc == 2:
        lines = outcome.stderr.strip("\n").splitlines()
        prefixes = (f"metaxm {command}: error:", "metaxm: error:")
        if lines and lines[0].startswith("usage:"):  # argparse: usage, then its error line
            assert lines[-1].startswith(prefixes), f"{where}: argparse said\n{outcome.stderr}"
        else:
            assert len(lines) == 1 and lines[0].startswith(prefixes[0]), (
                f"{where}: a refusal must be one line starting {prefixes[0]!r}, got\n"
                f"{outcome.stderr}"
            )
        assert not outcome.written, f"{where}: refused, but wrote {outcome.written}"
    else:
        stray = [p for p in outcome.written if not may_write(p)]
        assert not stray, f"{where}: exit {outcome.rc}, but wrote {stray}"


@contextlib.contextmanager
def scratch() -> Iterator[Path]:
    """A fresh folder per example (the test's ``tmp_path`` is shared by all its examples)."""
    with tempfile.TemporaryDirectory(prefix="metaxm-fuzz-") as name:
        yield Path(name).resolve()


# ------------------------------------------------------------------------- the oracle's test
def _fake(behaviour: str) -> Callable[[list[str]], int]:
    def main(argv: list[str]) -> int:
        if behaviour == "raises":
            raise KeyError("envs")
        if behaviour == "writes then refuses":
            Path("half-written.json").write_text("{}")
            print("metaxm train: error: too late", file=sys.stderr)
            return 2
        if behaviour == "two lines":
            print("metaxm train: error: one\nand another", file=sys.stderr)
            return 2
        if behaviour == "exit 1":
            return 1
        if behaviour == "accepts but writes":
            Path("out").mkdir()
            return 0
        if behaviour == "hangs":
            while True:
                pass
        raise AssertionError(behaviour)

    return main


@pytest.mark.parametrize(
    "behaviour",
    ["raises", "writes then refuses", "two lines", "exit 1", "accepts but writes", "hangs"],
)
def test_the_oracle_catches(behaviour: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.modules[__name__], "HANG_S", 0.5)
    with scratch() as root, pytest.raises(AssertionError):
        check(invoke(["train", "x.yaml"], root, main=_fake(behaviour)), "train")


def test_the_oracle_passes_a_clean_refusal(tmp_path: Path) -> None:
    out = tmp_path / "never"
    outcome = invoke(["train", str(tmp_path / "missing.yaml"), "--out", str(out)], tmp_path)
    check(outcome, "train", exits=(2,))
    assert not out.exists()


# -------------------------------------------------------------------------------- strategies
KEYS = bad.spec_keys()
RUN_KEYS = bad.run_keys()
TINY_TEXT = yaml.safe_dump(bad.TINY, sort_keys=False)


def text(max_size: int) -> st.SearchStrategy[str]:
    """Unicode text without NUL (no command line can carry one)."""
    return st.text(st.characters(exclude_characters="\x00"), max_size=max_size)


def _py_values() -> st.SearchStrategy:
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.sampled_from([0, -1, 1, 2**31, 2**63, 10**30, -(10**30), 10**400]),
        st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from([1e308, -1e308, 5e-324, 1e-300, 0.0, -0.0]),
        text(max_size=12),
    )
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text(max_size=6), inner,
                                                                    max_size=3),  # fmt: skip
        max_leaves=6,
    )


VALUES = st.one_of(
    st.sampled_from(bad.ODD_VALUES),
    _py_values().map(bad.yaml_text),
    text(max_size=20),
)
"""``--set`` value texts: odd ones, YAML of drawn data, raw text."""

UNKNOWN = st.one_of(st.sampled_from(bad.UNKNOWN_KEYS), text(max_size=12))


@st.composite
def overrides(draw: st.DrawFn) -> list[str]:
    """One ``--set`` item (or two, when a world field needs its world first)."""
    form = draw(st.sampled_from(["field", "field", "field", "world", "run", "unknown", "raw"]))
    if form == "field":
        key = draw(st.sampled_from([k for k in KEYS if k.world is None]))
        return [f"{key.key}={draw(VALUES)}"]
    if form == "world":
        key = draw(st.sampled_from([k for k in KEYS if k.world is not None]))
        return [*bad.world_sets(key), f"{key.key}={draw(VALUES)}"]
    if form == "run":  # main.runs.<stage>={dotted.key: value}
        stage = draw(st.sampled_from([*RUN_NAMES, "garbage"]))
        inner = draw(st.sampled_from(RUN_KEYS) | UNKNOWN)
        return [f"main.runs.{stage}={{{bad.yaml_text(inner)}: {draw(VALUES)}}}"]
    if form == "unknown":
        return [f"{draw(UNKNOWN)}={draw(VALUES)}"]
    return [draw(text(max_size=30))]


@st.composite
def spec_checks(draw: st.DrawFn) -> tuple[str, str | None, list[str], list[str]]:
    """(command, base spec, ``--set`` items, extra flags) for ``train|pretrain --check``."""
    command = draw(st.sampled_from(["train", "train", "pretrain"]))
    base = draw(st.sampled_from([None, None, *(str(p) for p in TASKS)]))  # None: TINY
    sets = [item for _ in range(draw(st.integers(1, 3))) for item in draw(overrides())]
    extra = draw(st.sampled_from([[], [], [], ["--resume"], ["--resume-last-good"]]))
    return command, base, sets, extra


def _spec_argv(root: Path, command: str, spec: str, extra: list[str] = ()) -> list[str]:
    return [command, spec, "--out", str(root / "out"), "--check", *extra]


def _may_not_write(path: str) -> bool:
    return False


# -------------------------------------------------------------------------------- properties
@TIERS
def test_set_overrides_of_every_field(tier: settings) -> None:
    """``train|pretrain SPEC --check --set KEY=VALUE`` for every field and odd values."""

    @tier
    @given(spec_checks())
    def prop(case: tuple[str, str | None, list[str], list[str]]) -> None:
        command, base, sets, extra = case
        with scratch() as root:
            spec = base or str(root / "tiny.yaml")
            if base is None:
                Path(spec).write_text(TINY_TEXT)
            argv = _spec_argv(root, command, spec, extra)
            for item in sets:
                argv += ["--set", item]
            outcome = invoke(argv, root)
            check(outcome, command)
            assert not (root / "out").exists()

    prop()


MUTATIONS = ("delete", "retype", "unknown key", "duplicate section", "duplicate leaf",
             "anchor", "tag", "truncate", "splice")  # fmt: skip


def _paths(data: object, prefix: tuple = ()) -> list[tuple]:
    if not isinstance(data, dict):
        return []
    out = []
    for k, v in data.items():
        out.append((*prefix, k))
        out += _paths(v, (*prefix, k))
    return out


@st.composite
def mutated_gridnav(draw: st.DrawFn) -> str:
    """``tasks/gridnav.yaml`` with one to three structural mutations."""
    text = GRIDNAV.read_text()
    data = yaml.safe_load(text)
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(MUTATIONS))
        paths = _paths(data)
        path = draw(st.sampled_from(paths))
        parent = data
        for part in path[:-1]:
            parent = parent[part]
        if kind == "delete":
            del parent[path[-1]]
        elif kind == "retype":
            parent[path[-1]] = draw(_py_values())
        elif kind == "unknown key":
            parent[draw(st.sampled_from(bad.UNKNOWN_KEYS))] = draw(_py_values())
        else:  # text-level mutations, on the dump of what we have
            text = yaml.safe_dump(data, sort_keys=False)
            lines = text.splitlines()
            i = draw(st.integers(0, len(lines) - 1))
            if kind == "duplicate section":
                top = [j for j, ln in enumerate(lines) if ln and not ln.startswith(" ")]
                j = draw(st.sampled_from(top))
                end = next((t for t in top if t > j), len(lines))
                lines += lines[j:end]
            elif kind == "duplicate leaf":
                lines.insert(i, lines[i])
            elif kind == "anchor" and ":" in lines[i]:
                k, _, v = lines[i].partition(":")
                lines[i] = f"{k}: &a{v}" if v.strip() else f"{k}: &a"
                lines.append("extra: *a")
            elif kind == "tag" and ":" in lines[i]:
                k, _, _ = lines[i].partition(":")
                tag = draw(st.sampled_from(["!!python/name:os.system", "!!binary AAAA",
                                            "!foo 1", "!!set {a}", "!!int x"]))  # fmt: skip
                lines[i] = f"{k}: {tag}"
            elif kind == "truncate":
                lines = lines[:i]
            elif kind == "splice":
                lines.insert(i, draw(st.sampled_from(bad.ODD_VALUES)))
            return "\n".join(lines) + "\n"
    return yaml.safe_dump(data, sort_keys=False)


SPEC_TEXTS = st.one_of(
    mutated_gridnav(),
    text(max_size=300),
    st.binary(max_size=300),
    st.lists(st.sampled_from(bad.ODD_VALUES), max_size=6).map(lambda xs: "\n".join(xs)),
    st.sampled_from(list(bad.yaml_attacks(Path("/nonexistent/PAYLOAD_RAN"), TINY_TEXT).values())),
)


@TIERS
def test_spec_files(tier: settings) -> None:
    """``train|pretrain FILE --check`` on raw text, raw bytes, YAML attacks and mutations of
    ``tasks/gridnav.yaml``."""

    @tier
    @given(SPEC_TEXTS, st.sampled_from(["train", "train", "pretrain"]))
    def prop(content: str | bytes, command: str) -> None:
        with scratch() as root:
            spec = root / "spec.yaml"
            spec.write_bytes(content.encode() if isinstance(content, str) else content)
            check(invoke(_spec_argv(root, command, str(spec)), root), command)
            assert not (root / "out").exists()

    prop()


# ------------------------------------------------------------------------------ the commands
@pytest.fixture(scope="module")
def fixtures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A trained TINY PPO run (a few seconds) and damaged checkpoints beside it."""
    root = tmp_path_factory.mktemp("fuzz-fixtures").resolve()
    spec = root / "tiny.yaml"
    spec.write_text(TINY_TEXT)
    with scratch() as cwd:
        outcome = invoke(["train", str(spec), "--out", str(root / "ppo")], cwd)
    assert outcome.rc == 0, outcome.stderr
    good = sorted((root / "ppo" / "checkpoints").glob("ckpt-*.pt"))[-1]
    marker = root / "PAYLOAD_RAN"
    made = {"spec": spec, "run": root / "ppo", "good": good, "marker": marker, "root": root}
    made["payload"] = bad.pickle_payload(root / "payload.pt", marker)
    made["payload_pickle"] = bad.pickle_payload(root / "payload.pkl", marker, torch_format=False)
    made["garbage"] = bad.garbage_checkpoint(root / "garbage.pt")
    made["zero"] = bad.garbage_checkpoint(root / "zero.pt", b"")
    for name, damage in (("flipped", bad.flip_bytes), ("truncated", bad.truncate)):
        path = root / f"{name}.pt"
        path.write_bytes(good.read_bytes())
        (root / f"{name}.pt.sha256").write_text(
            good.with_name(good.name + ".sha256").read_text().replace(good.name, path.name)
        )
        made[name] = damage(path)
    made["no_sidecar"] = root / "no_sidecar.pt"
    made["no_sidecar"].write_bytes(good.read_bytes())
    made["empty_dir"] = root / "empty_dir"
    made["empty_dir"].mkdir()
    return made


BAD_CHECKPOINTS = ("payload", "payload_pickle", "garbage", "zero", "flipped", "truncated",
                   "no_sidecar", "empty_dir", "missing", "spec")  # fmt: skip
ODD_INTS = st.one_of(st.integers(), st.sampled_from([-1, 0, 2**31, 2**63, 10**23]))
GARBAGE = st.one_of(text(max_size=16), st.sampled_from(["", " ", "-", "--", "x:y", "::"]))


def _checkpoint(fx: dict[str, Path], name: str) -> str:
    return str(fx["root"] / "missing.pt") if name == "missing" else str(fx[name])


def _out_value(root: Path, name: str) -> str:
    return bad.out_paths(root / "paths")[name]


def _command_check(fx: dict[str, Path], root: Path, argv: list[str], command: str,
                   exits: tuple[int, ...], may_write=_may_not_write) -> None:  # fmt: skip
    check(invoke(argv, root, watch=[fx["root"]]), command, exits, may_write)
    assert not fx["marker"].exists(), f"metaxm {shlex.join(argv)}: the pickle payload ran"


@st.composite
def adapt_argv(draw: st.DrawFn, fx: dict[str, Path], root: Path) -> tuple[list[str], bool]:
    """(argv, sure to be refused). With the good checkpoint only strategies that finish at
    once (zeroshot) or need an agent the run lacks are drawn."""
    good = draw(st.booleans())
    ckpt = str(fx["run"] if draw(st.booleans()) else fx["good"]) if good else _checkpoint(
        fx, draw(st.sampled_from(BAD_CHECKPOINTS)))  # fmt: skip
    family = draw(st.sampled_from([*FAMILIES, "garbage", ""]))
    variant = draw(ODD_INTS.map(str) | GARBAGE)
    modality = draw(st.sampled_from([f"{family}:{variant}", "vector:1", "audio:7"]) | GARBAGE)
    strategy = draw(st.sampled_from(["zeroshot", "maml", "rl2", "metafit"]) | GARBAGE)
    out_name = draw(st.sampled_from(["fresh", "empty", "existing file", "nested under a file",
                                     "root", "current folder"]))  # fmt: skip
    out = str(root / "result.json") if out_name == "fresh" else _out_value(root, out_name)
    argv = ["adapt", ckpt, "--modality", modality, "--strategy", strategy, "--out", out]
    if draw(st.booleans()):
        argv += [f"--episodes={draw(ODD_INTS)}"]
    if draw(st.booleans()):
        argv += [f"--seed={draw(ODD_INTS)}"]
    if draw(st.booleans()):
        argv += ["--device", draw(st.sampled_from(["cpu", "garbage", "", "cuda:99", "meta"]))]
    return argv, not good


@TIERS
def test_adapt_flags(tier: settings, fixtures: dict[str, Path]) -> None:
    @tier
    @given(st.data())
    def prop(data: st.DataObject) -> None:
        with scratch() as root:
            argv, refused = data.draw(adapt_argv(fixtures, root))
            out = argv[argv.index("--out") + 1]
            _command_check(fixtures, root, argv, "adapt", (2,) if refused else (0, 2),
                           may_write=lambda p: p == out)  # fmt: skip

    prop()


@st.composite
def evaluate_argv(draw: st.DrawFn, fx: dict[str, Path], root: Path) -> list[str]:
    """Evaluate flags with at least one bad one (a good run with good flags would evaluate)."""
    bads = {
        "checkpoint": lambda: None,
        "seeds": lambda: ["--seeds", str(draw(st.sampled_from([0, -1, 10**6, 10**23])))],
        "out": lambda: ["--out", _out_value(root, draw(st.sampled_from(
            ["empty", "existing file", "nested under a file", "deeply under a file"])))],
        "set": lambda: ["--set", draw(st.sampled_from(
            ["evaluate.seeds=0", "evaluate.workers=0", "evaluate.budgets=[]", "garbage=1",
             "evaluate.eval_episodes=.nan", "world.size=1000", "evaluate=3"]))],
        "spec": lambda: ["--spec", draw(st.sampled_from([str(root / "missing.yaml"), "/",
                                                         str(fx["good"])]))],
        "device": lambda: ["--device", draw(st.sampled_from(["garbage", "", "cuda:99", "meta"]))],
        "strategy": lambda: ["--strategy", draw(GARBAGE.filter(lambda s: s not in STRATEGIES))],
    }  # fmt: skip
    chosen = draw(st.sets(st.sampled_from(sorted(bads)), min_size=1, max_size=3))
    ckpt = (
        _checkpoint(fx, draw(st.sampled_from(BAD_CHECKPOINTS)))
        if "checkpoint" in chosen
        else str(fx["run"])
    )
    argv = ["evaluate", ckpt]
    if "out" not in chosen:
        argv += ["--out", str(root / "report")]
    for name in sorted(chosen - {"checkpoint"}):
        argv += bads[name]()
    return argv


@TIERS
def test_evaluate_flags(tier: settings, fixtures: dict[str, Path]) -> None:
    @tier
    @given(st.data())
    def prop(data: st.DataObject) -> None:
        with scratch() as root:
            argv = data.draw(evaluate_argv(fixtures, root))
            _command_check(fixtures, root, argv, "evaluate", (2,))

    prop()


@TIERS
def test_render_flags(tier: settings, fixtures: dict[str, Path]) -> None:
    @tier
    @given(st.data())
    def prop(data: st.DataObject) -> None:
        with scratch() as root:
            spec = data.draw(st.sampled_from([str(fixtures["spec"]), str(root / "missing.yaml")]))
            name = data.draw(st.sampled_from(["fresh", "fresh in a new folder", "empty",
                                              "existing file", "nested under a file", "root",
                                              "current folder", "/dev/null"]))  # fmt: skip
            out = {"fresh": str(root / "r.png"), "fresh in a new folder": str(root / "d/r.png")}
            out = out.get(name) or _out_value(root, name)
            argv = ["render", spec, "--out", out]
            if data.draw(st.booleans()):
                argv += [f"--variants={data.draw(st.sampled_from([-1, 0, 1, 3, 65, 10**23]))}"]
            for _ in range(data.draw(st.integers(0, 2))):
                argv += ["--set", data.draw(overrides())[-1]]
            may = {out, str(Path(out).parent)} if name.startswith("fresh") else set()
            _command_check(fixtures, root, argv, "render", (0, 2), may_write=may.__contains__)

    prop()


@st.composite
def bench_argv(draw: st.DrawFn, root: Path) -> list[str]:
    """Bench flags with at least one bad one (good flags would start timing)."""
    bads = {
        "what": lambda: [],
        "threads": lambda: ["--threads", str(draw(st.sampled_from([0, -1, 1025, 10**23])))],
        "worlds": lambda: ["--worlds", draw(GARBAGE.filter(lambda s: not s.startswith("-")))],
        "families": lambda: ["--families", draw(GARBAGE.filter(lambda s: not s.startswith("-")))],
        "variant": lambda: [f"--variant={draw(st.sampled_from([-1, 2**31, 10**23]))}"],
        "batches": lambda: [f"--batches={draw(st.sampled_from([0, -1, 65537, 10**23]))}"],
        "json": lambda: ["--json", _out_value(root, draw(st.sampled_from(
            ["empty", "root", "nested under a file", "current folder"])))],
    }  # fmt: skip
    chosen = draw(st.sets(st.sampled_from(sorted(bads)), min_size=1, max_size=3))
    what = draw(GARBAGE.filter(lambda s: s not in ("envs", "maml")) if "what" in chosen
                else st.sampled_from(["envs", "maml"]))  # fmt: skip
    argv = ["bench", what, "--quick"]
    for name in sorted(chosen):
        argv += bads[name]()
    if what == "maml" and not chosen & {"threads", "json"}:
        argv += ["--threads", "0"]  # maml takes none of the envs flags: keep one bad flag
    return argv


@TIERS
def test_bench_flags(tier: settings, fixtures: dict[str, Path]) -> None:
    @tier
    @given(st.data())
    def prop(data: st.DataObject) -> None:
        with scratch() as root:
            argv = data.draw(bench_argv(root))
            _command_check(fixtures, root, argv, "bench", (2,))

    prop()


OUT_NAMES = ("empty", "blank", "root", "current folder", "existing file", "nested under a file",
             "deeply under a file", "folder with metrics.jsonl", "folder of other files",
             "/dev/null", "/proc")  # fmt: skip


@TIERS
def test_out_paths_of_the_writing_commands(tier: settings, fixtures: dict[str, Path]) -> None:
    """``train|pretrain|main SPEC --out BAD`` (no ``--check``: a wrong acceptance would run)."""

    @tier
    @given(st.sampled_from(["train", "pretrain", "main"]), st.sampled_from(OUT_NAMES),
           st.sampled_from([[], ["--resume"]]))  # fmt: skip
    def prop(command: str, name: str, resume: list[str]) -> None:
        with scratch() as root:
            out = _out_value(root, name)
            argv = [command, str(fixtures["spec"]), "--out", out]
            if command != "main":
                argv += resume
            _command_check(fixtures, root, argv, command, (2,))

    prop()


def test_fixtures_are_what_the_fuzz_assumes(fixtures: dict[str, Path]) -> None:
    """The good run adapts (so the adapt fuzz reaches the later checks) and every damaged
    checkpoint is refused in one line."""
    with scratch() as root:
        out = str(root / "r.json")
        argv = ["adapt", str(fixtures["run"]), "--modality", "vector:1", "--strategy",
                "zeroshot", "--out", out]  # fmt: skip
        _command_check(fixtures, root, argv, "adapt", (0,), may_write=lambda p: p == out)
        for name in BAD_CHECKPOINTS:
            argv[1] = _checkpoint(fixtures, name)
            _command_check(fixtures, root, argv, "adapt", (2,))
