"""Property-based fuzz of spec loading and every command's flags (issue 18).

Whatever the input, ``metaxm.cli.main`` must exit 0 or 2; on 2 print one line on stderr
beginning ``metaxm <command>: error:`` (argparse's usage message may come before its own
``error:`` line); let no exception escape (a traceback for the user); finish within
:data:`HANG_S`; and write nothing when it refuses. Inputs come from :mod:`bad_inputs`: every
dotted key of :class:`metaxm.spec.Spec` and each world's config, ``main.runs.<stage>`` entries,
unknown keys, odd value texts; raw and mutated spec files; and the flags of adapt, evaluate,
render, bench, and the ``--out`` of the commands that write a folder.

Two tiers (:func:`tiers`): the fast one (the default run; ~20 s on 2 cores) draws 50 command
lines per command and 200 specs per spec property, derandomized so CI sees the same inputs
every time, and reports a failure as it came (no shrinking); the slow one (``-m slow``) draws
ten times as many, at random, and shrinks. ``METAXM_FUZZ_EXAMPLES=N`` sets every count. Each
example runs in process under a SIGALRM (:data:`HANG_S`) and an address-space limit
(:data:`MEMORY_HEADROOM`). The oracle itself is tested first (``test_the_oracle_catches``),
against commands that misbehave on purpose. ``scripts/bad_inputs.py`` runs the same inputs as
real subprocesses.
"""

from __future__ import annotations

import contextlib
import io
import os
import resource
import shlex
import signal
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import bad_inputs as bad
import pytest
import torch
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from metaxm import cli
from metaxm.config.main import RUN_NAMES
from metaxm.evaluate.strategies import STRATEGIES
from metaxm.modalities import FAMILIES

REPO = Path(__file__).resolve().parents[1]
TASKS = sorted((REPO / "tasks").glob("*.yaml"))
GRIDNAV = REPO / "tasks" / "gridnav.yaml"

HANG_S = 10.0
"""An example still running after this many seconds is a hang (SIGALRM stops it)."""
MEMORY_HEADROOM = 4 << 30
"""Address space an example may add (RLIMIT_AS): an input that makes metaxm allocate without
bound fails with a MemoryError here instead of bringing in the OOM killer."""

_COMMON = dict(
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def tiers(fast: int, slow: int, deadline_s: float = 5.0) -> pytest.MarkDecorator:
    """Parametrize a test by tier: ``fast`` examples, derandomized and not shrunk (the default
    run), or ``slow`` random ones, shrunk (``-m slow``). ``METAXM_FUZZ_EXAMPLES`` sets both.
    An example slower than ``deadline_s`` fails (a spec check takes ~0.02 s; evaluate's latest
    refusals, after loading the agents, ~2 s)."""
    if "METAXM_FUZZ_EXAMPLES" in os.environ:
        fast = slow = int(os.environ["METAXM_FUZZ_EXAMPLES"])
    common = {**_COMMON, "deadline": deadline_s * 1000}
    quick = settings(
        max_examples=fast, derandomize=True, phases=[Phase.explicit, Phase.generate], **common
    )
    thorough = settings(max_examples=slow, **common)
    return pytest.mark.parametrize(
        "tier",
        [
            pytest.param(quick, id="fast"),
            pytest.param(thorough, id="slow", marks=pytest.mark.slow),
        ],
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
        for dirpath, _, filenames in os.walk(root):
            seen[dirpath] = None
            for name in filenames:
                path = os.path.join(dirpath, name)
                with contextlib.suppress(OSError):
                    st_ = os.lstat(path)
                    seen[path] = (st_.st_size, st_.st_mtime_ns)
    return seen


def _address_space() -> int:
    """Bytes of address space this process holds now (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")


def invoke(
    argv: Sequence[str],
    cwd: Path,
    watch: Sequence[Path] = (),
    main: Callable[[list[str]], int] | None = None,
) -> Outcome:
    """Run ``metaxm argv`` (or ``main(argv)``) in this process, in ``cwd``, and record what it
    did to ``cwd`` and ``watch``."""
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
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = _address_space() + MEMORY_HEADROOM
    resource.setrlimit(
        resource.RLIMIT_AS, (limit if hard == resource.RLIM_INFINITY else min(limit, hard), hard)
    )
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
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
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


def check(
    outcome: Outcome,
    command: str,
    exits: tuple[int, ...] = (0, 2),
    may_write: Callable[[str], bool] = lambda path: False,
) -> None:
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
        if behaviour == "eats memory":
            return len(bytearray(MEMORY_HEADROOM + (1 << 30)))
        if behaviour == "hangs":
            while True:
                pass
        raise AssertionError(behaviour)

    return main


@pytest.mark.parametrize(
    "behaviour",
    [
        "raises",
        "writes then refuses",
        "two lines",
        "exit 1",
        "accepts but writes",
        "eats memory",
        "hangs",
    ],
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


def text(max_size: int, printable: bool = False) -> st.SearchStrategy[str]:
    """Unicode text as a command line carries it: no NUL, and lone surrogates only as Python
    decodes bytes that are not UTF-8 (``os.fsdecode``: U+DC80 to U+DCFF); ``printable``:
    letters, digits, punctuation, symbols and spaces only (past YAML's refusal of control
    characters)."""
    if printable:
        return st.text(st.characters(categories=["L", "N", "P", "S", "Zs"]), max_size=max_size)
    chars = st.characters(exclude_categories=["Cs"], exclude_characters="\x00")
    return st.text(chars, max_size=max_size) | st.binary(max_size=max_size).map(
        lambda b: os.fsdecode(b.replace(b"\x00", b""))
    )


def py_values() -> st.SearchStrategy:
    """Plain data of every YAML kind, with numbers at and past every edge."""
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.sampled_from([0, -1, 1, 2**31, 2**63, 10**30, -(10**30), 10**400]),
        st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from([1e308, -1e308, 5e-324, 1e-300, 0.0, -0.0]),
        text(12, printable=True),
    )
    return st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(text(6, printable=True), inner, max_size=3)
        ),
        max_leaves=6,
    )


VALUES = st.one_of(
    st.sampled_from(bad.ODD_VALUES),
    st.sampled_from(bad.ODD_VALUES),
    py_values().map(bad.yaml_text),
    py_values().map(bad.yaml_text),
    text(20),
)
"""``--set`` value texts: odd ones, YAML of drawn data, raw text (weighted in that order)."""

UNKNOWN = st.one_of(st.sampled_from(bad.UNKNOWN_KEYS), text(12, printable=True))


@st.composite
def overrides(draw: st.DrawFn) -> list[str]:
    """One ``--set`` item (two when a world field needs its world first): a field of the spec
    or of a world, a ``main.runs`` entry, an unknown key, or raw text."""
    form = draw(st.sampled_from(["field"] * 4 + ["world", "run", "run", "unknown", "raw"]))
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
    return [draw(text(30))]


@st.composite
def spec_checks(draw: st.DrawFn) -> tuple[str, str | None, list[str], list[str]]:
    """(command, base spec or None for TINY, ``--set`` items, extra flags) for ``--check``."""
    command = draw(st.sampled_from(["train", "train", "pretrain"]))
    base = draw(st.sampled_from([None, None, *(str(p) for p in TASKS)]))
    sets = [
        item for _ in range(draw(st.sampled_from([1, 1, 1, 2, 3]))) for item in draw(overrides())
    ]
    extra = draw(st.sampled_from([[]] * 8 + [["--resume"], ["--resume-last-good"]]))
    return command, base, sets, extra


def _check_argv(root: Path, command: str, spec: str, extra: Sequence[str] = ()) -> list[str]:
    return [command, spec, "--out", str(root / "out"), "--check", *extra]


# ---------------------------------------------------------------------------- spec properties
@tiers(fast=200, slow=2000)
def test_set_overrides_of_every_field(tier: settings) -> None:
    """``train|pretrain SPEC --check --set KEY=VALUE`` over every field and odd values."""

    @tier
    @given(spec_checks())
    def prop(case: tuple[str, str | None, list[str], list[str]]) -> None:
        command, base, sets, extra = case
        with scratch() as root:
            spec = base or str(root / "tiny.yaml")
            if base is None:
                Path(spec).write_text(TINY_TEXT)
            argv = _check_argv(root, command, spec, extra)
            for item in sets:
                argv += ["--set", item]
            check(invoke(argv, root), command)
            assert not (root / "out").exists()

    prop()


# fmt: off
TAGS = (
    "!!python/name:os.system", "!!python/object:os.system", "!!binary AAAA", "!foo 1", "!!set {a}",
    "!!int x",
)
MUTATIONS = (
    "delete", "retype", "unknown key", "duplicate section", "duplicate leaf", "anchor", "tag",
    "truncate", "splice",
)
# fmt: on


def _paths(data: object, prefix: tuple = ()) -> list[tuple]:
    if not isinstance(data, dict):
        return []
    out = []
    for k, v in data.items():
        out += [(*prefix, k), *_paths(v, (*prefix, k))]
    return out


def _mutate_lines(draw: st.DrawFn, kind: str, lines: list[str]) -> list[str]:
    i = draw(st.integers(0, len(lines) - 1))
    key, colon, value = lines[i].partition(":")
    if kind == "duplicate section":
        top = [j for j, ln in enumerate(lines) if ln and not ln.startswith(" ")]
        j = draw(st.sampled_from(top))
        end = next((t for t in top if t > j), len(lines))
        return lines + lines[j:end]
    if kind == "duplicate leaf":
        return [*lines[: i + 1], lines[i], *lines[i + 1 :]]
    if kind == "anchor" and colon:
        lines[i] = f"{key}: &a{value}" if value.strip() else f"{key}: &a"
        return [*lines, "extra: *a"]
    if kind == "tag" and colon:
        tag = draw(st.sampled_from(TAGS))
        lines[i] = f"{key}: {tag}"
        return lines
    if kind == "truncate":
        return lines[:i]
    return [*lines[:i], draw(st.sampled_from(bad.ODD_VALUES)), *lines[i:]]  # splice


@st.composite
def mutated_gridnav(draw: st.DrawFn) -> str:
    """``tasks/gridnav.yaml`` after one to three structural mutations: a key deleted, a value
    of another type, an unknown key, a section or leaf repeated, an anchor, a tag, a cut, a
    line of garbage."""
    data = yaml.safe_load(GRIDNAV.read_text())
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(MUTATIONS))
        path = draw(st.sampled_from(_paths(data)))
        parent = data
        for part in path[:-1]:
            parent = parent[part]
        if kind == "delete":
            del parent[path[-1]]
        elif kind == "retype":
            parent[path[-1]] = draw(py_values())
        elif kind == "unknown key":
            parent[draw(st.sampled_from(bad.UNKNOWN_KEYS))] = draw(py_values())
        else:  # the text-level mutations end the sequence
            lines = yaml.safe_dump(data, sort_keys=False).splitlines()
            return "\n".join(_mutate_lines(draw, kind, lines)) + "\n"
    return yaml.safe_dump(data, sort_keys=False)


SPEC_TEXTS = st.one_of(
    mutated_gridnav(),
    mutated_gridnav(),
    text(300),
    st.binary(max_size=300),
    st.lists(st.sampled_from(bad.ODD_VALUES), max_size=6).map("\n".join),
    st.sampled_from(list(bad.yaml_attacks(Path("/nonexistent/PAYLOAD_RAN"), TINY_TEXT).values())),
)


@tiers(fast=200, slow=2000)
def test_spec_files(tier: settings) -> None:
    """``train|pretrain FILE --check`` on raw text and bytes, YAML attacks and mutations of
    ``tasks/gridnav.yaml``."""

    @tier
    @given(SPEC_TEXTS, st.sampled_from(["train", "train", "pretrain"]))
    def prop(content: str | bytes, command: str) -> None:
        with scratch() as root:
            spec = root / "spec.yaml"
            if isinstance(content, str):  # lone surrogates as the bytes they stand for
                content = content.encode("utf-8", "surrogateescape")
            spec.write_bytes(content)
            check(invoke(_check_argv(root, command, str(spec)), root), command)
            assert not (root / "out").exists()

    prop()


# -------------------------------------------------------------------------- command properties
@pytest.fixture(scope="module")
def fixtures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A trained TINY PPO run (a few seconds), and damaged checkpoints beside it."""
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
        sidecar = good.with_name(good.name + ".sha256").read_text()
        path.with_name(path.name + ".sha256").write_text(sidecar.replace(good.name, path.name))
        made[name] = damage(path)
    made["no_sidecar"] = root / "no_sidecar.pt"
    made["no_sidecar"].write_bytes(good.read_bytes())
    made["empty_dir"] = root / "empty_dir"
    made["empty_dir"].mkdir()
    made["missing"] = root / "missing.pt"
    return made


# fmt: off
BAD_CHECKPOINTS = (
    "payload", "payload_pickle", "garbage", "zero", "flipped", "truncated", "no_sidecar",
    "empty_dir", "missing", "spec",
)
# fmt: on
HUGE = [2**31, 2**63, 10**23]
GARBAGE = st.one_of(text(16), st.sampled_from(["", " ", "-", "--", "x:y", "::", "vector:"]))
BAD_DEVICES = ["garbage", "", "cuda:99", "meta", "cpu:-1"]

Spoilt = st.SearchStrategy[tuple[list[str], bool]]
"""Flags that spoil a command line, and whether metaxm must refuse them (else a clean
acceptance is fine too: a negative seed, a budget the strategy ignores)."""


def flag(*values: object, prefix: str, must_refuse: bool = True) -> Spoilt:
    """``prefix`` and one of ``values`` (or a draw of the strategies among them): ``--seed=V``
    when ``prefix`` ends in ``=``, else ``--seed V``."""
    options = st.one_of([v if isinstance(v, st.SearchStrategy) else st.just(v) for v in values])
    if prefix.endswith("="):
        return options.map(lambda v: ([f"{prefix}{v}"], must_refuse))
    return options.map(lambda v: ([prefix, str(v)], must_refuse))


def positional(head: list[str], values: st.SearchStrategy[str], tail: Sequence[str] = ()) -> Spoilt:
    """A spoilt positional argument: ``head + [value] + tail``, always to be refused."""
    return values.map(lambda v: ([*head, v, *tail], True))


@st.composite
def spoilt(
    draw: st.DrawFn, good: dict[str, list[str]], flags: dict[str, Spoilt], most: int = 2
) -> tuple[list[str], bool]:
    """A good command line with one to ``most`` of its parts spoiled: (argv, must refuse).

    ``good`` maps a name to its good flags (``"_"``, the command and its positional argument,
    first); ``flags`` maps a name to its spoilt forms, which replace the good ones."""
    chosen = draw(st.sets(st.sampled_from(sorted(flags)), min_size=1, max_size=most))
    argv: list[str] = []
    refuse = False
    for name in dict.fromkeys([*good, *flags]):
        if name in chosen:
            part, must = draw(flags[name])
            argv += part
            refuse = refuse or must
        else:
            argv += good.get(name, [])
    return argv, refuse


def _out(root: Path, name: str) -> str:
    return bad.make_out_paths(root / "paths")[name]


def _outs(root: Path, *names: str) -> list[str]:
    return [_out(root, name) for name in names]


def command_check(
    fx: dict[str, Path],
    root: Path,
    argv: list[str],
    exits: tuple[int, ...],
    may_write: Callable[[str], bool] = lambda path: False,
) -> None:
    """:func:`check`, watching the fixtures too; the pickle payload must not have run."""
    check(invoke(argv, root, watch=[fx["root"]]), argv[0], exits, may_write)
    assert not fx["marker"].exists(), f"metaxm {shlex.join(argv)}: the pickle payload ran"


def adapt_case(fx: dict[str, Path], root: Path) -> st.SearchStrategy[tuple[list[str], bool]]:
    """``adapt`` of the good run by ``zeroshot`` (it finishes at once), one or two parts
    spoiled."""
    good = {
        "_": ["adapt", str(fx["run"])],
        "modality": ["--modality", "vector:1"],
        "strategy": ["--strategy", "zeroshot"],
        "out": ["--out", str(root / "result.json")],
    }
    families = st.sampled_from(sorted(FAMILIES))
    flags = {
        "_": positional(["adapt"], st.sampled_from(BAD_CHECKPOINTS).map(lambda n: str(fx[n]))),
        "modality": flag(
            GARBAGE, "garbage:1", "audio:1", families.map(lambda f: f"{f}:x"), prefix="--modality"
        )
        | flag(*HUGE, -(10**23), st.integers(), prefix="--modality=vector:", must_refuse=False),
        "strategy": flag(GARBAGE, "maml", "rl2", "metafit", prefix="--strategy"),
        "episodes": flag(-1, -(10**23), prefix="--episodes=")
        | flag(*HUGE, st.integers(0), prefix="--episodes=", must_refuse=False),
        "seed": flag(*HUGE, -1, st.integers(), prefix="--seed=", must_refuse=False),
        "out": flag(
            *_outs(root, "empty", "blank", "root", "current folder", "nested under a file"),
            prefix="--out",
        ),
        "device": flag(*BAD_DEVICES, prefix="--device"),
        # zeroshot has no learner, so any --save-policy is refused, before anything runs
        "save_policy": flag(
            *_outs(root, "empty", "root", "nested under a file"),
            str(root / "p.pt"),
            prefix="--save-policy",
        ),  # fmt: skip
    }
    return spoilt(good, flags)


@tiers(fast=50, slow=500)
def test_adapt_flags(tier: settings, fixtures: dict[str, Path]) -> None:
    @tier
    @given(st.data())
    def prop(data: st.DataObject) -> None:
        with scratch() as root:
            argv, must_refuse = data.draw(adapt_case(fixtures, root))
            out = str(root / "result.json")
            command_check(
                fixtures,
                root,
                argv,
                (2,) if must_refuse else (0, 2),
                may_write=lambda path: path == out,
            )

    prop()


def evaluate_case(fx: dict[str, Path], root: Path) -> st.SearchStrategy[tuple[list[str], bool]]:
    """``evaluate`` of the good run with one or two parts spoiled (all must be refused: a good
    command line would evaluate for seconds)."""
    good = {"_": ["evaluate", str(fx["run"])], "out": ["--out", str(root / "report")]}
    flags = {
        "_": positional(["evaluate"], st.sampled_from(BAD_CHECKPOINTS).map(lambda n: str(fx[n]))),
        "seeds": flag(0, -1, 10**6, *HUGE, prefix="--seeds"),
        "out": flag(
            *_outs(
                root,
                "empty",
                "blank",
                "existing file",
                "nested under a file",
                "deeply under a file",
                "folder with metrics.jsonl",  # another's folder, as train refuses it
            ),
            prefix="--out",
        ),
        "set": flag(
            "evaluate.seeds=0",
            "evaluate.workers=0",
            "evaluate.budgets=[]",
            "garbage=1",
            "evaluate.eval_episodes=.nan",
            "world.size=1000",
            "evaluate=3",
            "evaluate.seeds=1000000",
            "evaluate.strategies=[garbage]",
            prefix="--set",
        ),
        "spec": flag(str(root / "missing.yaml"), "/", str(fx["good"]), prefix="--spec"),
        "device": flag(*BAD_DEVICES, prefix="--device"),
        "strategy": flag(GARBAGE.filter(lambda s: s not in STRATEGIES), prefix="--strategy"),
    }
    return spoilt(good, flags)


@tiers(fast=50, slow=500, deadline_s=HANG_S)
def test_evaluate_flags(tier: settings, fixtures: dict[str, Path]) -> None:
    @tier
    @given(st.data())
    def prop(data: st.DataObject) -> None:
        with scratch() as root:
            argv, _ = data.draw(evaluate_case(fixtures, root))
            command_check(fixtures, root, argv, (2,))

    prop()


def render_case(fx: dict[str, Path], root: Path) -> st.SearchStrategy[tuple[list[str], bool]]:
    """``render`` of the TINY spec with one or two parts spoiled; a ``--set`` of the spec fuzz
    may be fine."""
    good = {"_": ["render", str(fx["spec"])], "out": ["--out", str(root / "r.png")]}
    flags = {
        "_": positional(
            ["render"], st.sampled_from([str(root / "missing.yaml"), str(fx["good"]), "/"])
        ),
        "out": flag(
            *_outs(
                root,
                "empty",
                "blank",
                "root",
                "current folder",
                "existing file",
                "nested under a file",
            ),
            prefix="--out",
        ),
        "variants": flag(-1, 0, 65, *HUGE, prefix="--variants="),
        "set": overrides().map(lambda items: (["--set", items[-1]], False)),
    }
    return spoilt(good, flags)


@tiers(fast=50, slow=500)
def test_render_flags(tier: settings, fixtures: dict[str, Path]) -> None:
    @tier
    @given(st.data())
    def prop(data: st.DataObject) -> None:
        with scratch() as root:
            argv, must_refuse = data.draw(render_case(fixtures, root))
            out = str(root / "r.png")
            command_check(
                fixtures,
                root,
                argv,
                (2,) if must_refuse else (0, 2),
                may_write=lambda path: path == out,
            )

    prop()


def bench_case(root: Path, what: str) -> st.SearchStrategy[tuple[list[str], bool]]:
    """``bench envs|maml --quick`` with one or two parts spoiled (all must be refused: good
    flags would start timing)."""
    names = GARBAGE.filter(lambda s: not s.startswith("-"))
    good = {"_": ["bench", what, "--quick"]}
    flags = {
        "_": positional(["bench"], names.filter(lambda s: s not in ("envs", "maml")), ["--quick"]),
        "threads": flag(0, -1, 1025, *HUGE, prefix="--threads"),
        "json": flag(
            *_outs(root, "empty", "blank", "root", "nested under a file", "current folder"),
            prefix="--json",
        ),
    }
    if what == "envs":  # maml takes none of these
        flags |= {
            "worlds": flag(names, prefix="--worlds"),
            "families": flag(names, prefix="--families"),
            "variant": flag(-1, *HUGE, prefix="--variant="),
            "batches": flag(0, -1, 65537, *HUGE, prefix="--batches="),
        }
    return spoilt(good, flags)


@tiers(fast=50, slow=500)
def test_bench_flags(tier: settings, fixtures: dict[str, Path]) -> None:
    @tier
    @given(st.data(), st.sampled_from(["envs", "envs", "maml"]))
    def prop(data: st.DataObject, what: str) -> None:
        with scratch() as root:
            argv, _ = data.draw(bench_case(root, what))
            command_check(fixtures, root, argv, (2,))

    prop()


# fmt: off
OUT_NAMES = (  # no "/": a wrong acceptance would write a run into it (bad.OUT_PATHS)
    "empty", "blank", "current folder", "existing file", "nested under a file",
    "deeply under a file", "folder with metrics.jsonl", "folder of other files", "/dev/null",
    "/proc",
)
# fmt: on
# fmt: off
MUST_REFUSE_SETS = (
    "ppo.lr=.nan", "ppo.lr=1e6", "train.total_steps=-1", "world.size=1000000000",
    "agent.hidden=1000000000", "world.horizon=1000000000", "garbage=1", "main.runs={garbage: {}}",
    "main.runs.ppo={train.total_steps: -1}", "main.runs.maml={maml.inner_lr: .nan}",
    "main.runs.ppo={agent.adapters: -1}", "main.runs.ppo={align.init_from: '{out}/maml'}",
    "evaluate.eval_episodes=1e12", "align.fit_lr=1e12", "maml.inner_lr=-1", "ppo.target_kl=.nan",
    "agent.init_log_std=.nan", "modalities.heldout_families={minigrid_rgb: 1}", "log.project=''",
    "ppo=3",
)
# fmt: on
"""Overrides every command must refuse before it writes (issue 18's silent acceptances)."""


@tiers(fast=25, slow=300)
def test_writing_commands_refuse_before_writing(tier: settings, fixtures: dict[str, Path]) -> None:
    """``train|pretrain|main SPEC`` with a bad ``--out`` or a bad ``--set`` and no
    ``--check``: a wrong acceptance would start the run."""

    @tier
    @given(
        st.sampled_from(["train", "pretrain", "main"]),
        st.sampled_from([*OUT_NAMES, None]),
        st.sampled_from([None, *MUST_REFUSE_SETS]),
        st.booleans(),
    )
    def prop(command: str, out_name: str | None, item: str | None, resume: bool) -> None:
        if out_name is None and item is None:
            item = MUST_REFUSE_SETS[0]
        with scratch() as root:
            out = str(root / "run") if out_name is None else _out(root, out_name)
            argv = [command, str(fixtures["spec"]), "--out", out]
            argv += ["--set", item] if item else []
            argv += ["--resume"] if resume and command != "main" else []
            command_check(fixtures, root, argv, (2,))

    prop()


def test_fixtures_are_what_the_fuzz_assumes(fixtures: dict[str, Path]) -> None:
    """The good command lines run (so the fuzz reaches the checks after the one it spoils) and
    every damaged checkpoint is refused in one line."""
    with scratch() as root:
        out = str(root / "r.json")
        argv = [
            "adapt",
            str(fixtures["run"]),
            "--modality",
            "vector:1",
            "--strategy",
            "zeroshot",
            "--out",
            out,
        ]
        command_check(fixtures, root, argv, (0,), may_write=lambda path: path == out)
        for name in BAD_CHECKPOINTS:
            argv[1] = str(fixtures[name])
            command_check(fixtures, root, argv, (2,))
        png = str(root / "r.png")
        argv = ["render", str(fixtures["spec"]), "--out", png]
        command_check(fixtures, root, argv, (0,), may_write=lambda path: path == png)
