"""`metaxm render` and `metaxm bench envs`, and the one-line errors of those and `metaxm main`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from metaxm import cli
from metaxm.bench import envs as bench_envs
from metaxm.bench.envs import EnvBenchRecord, Timing
from metaxm.envs.gym_api import build_world
from metaxm.modalities import FAMILIES

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
RECORD_KEYS = {"world", "family", "batch", "steps_per_s", "gym_steps_per_s", "ratio"}


@pytest.fixture(autouse=True)
def only_these_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    """Build the parser from the commands under test alone (others may not have landed)."""
    monkeypatch.setattr(cli, "COMMANDS", ("main", "render", "bench"))


@pytest.fixture
def instant_timing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Time one step per run: these tests check what is written, not how fast it steps."""
    fast = Timing(min_time=0.0, min_steps=1, max_env_steps=10, max_steps=1, warmup=1, gym_warmup=0)
    monkeypatch.setattr(bench_envs, "QUICK", fast)


def write_spec(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    """A small spec naming every registered family, so new families get drawn too."""
    infos = [build_world(w, 1).scene_info for w in ("gridnav", "pointnav")]
    families = []
    for family in sorted(FAMILIES):  # those that draw both worlds' scenes (not MiniGrid's)
        try:
            for info in infos:
                FAMILIES[family].check_scene(info)
        except ValueError:
            continue
        families.append(family)
    return write_spec(
        tmp_path / "spec.yaml",
        {
            "seed": 1,
            "world": {"name": "gridnav", "size": 5, "walls": True},
            "modalities": {
                "train": {f: 2 for f in families},
                "heldout_variants": {families[0]: 1},
            },
        },
    )


def test_render_writes_a_png(spec: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "figs" / "render.png"
    assert cli.main(["render", str(spec), "--out", str(out), "--variants", "2"]) == 0
    assert out.read_bytes()[:8] == PNG_MAGIC
    assert str(out) in capsys.readouterr().out


def test_render_pointnav_with_overrides(spec: Path, tmp_path: Path) -> None:
    out = tmp_path / "p.png"
    args = ["render", str(spec), "--out", str(out), "--variants", "1"]
    args += ["--set", "world={name: pointnav}"]
    assert cli.main(args) == 0
    assert out.read_bytes()[:8] == PNG_MAGIC


@pytest.mark.usefixtures("instant_timing")
def test_bench_envs_writes_records(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "bench.json"
    args = ["bench", "envs", "--quick", "--json", str(out), "--families", "vector"]
    args += ["--worlds", "gridnav", "pointnav"]
    assert cli.main([*args, "--batches", "1", "3"]) == 0
    records = json.loads(out.read_text())
    # the worlds named, each at both batch sizes
    named = ("gridnav", "pointnav")
    assert [(r["world"], r["batch"]) for r in records] == [(w, b) for w in named for b in (1, 3)]
    for r in records:
        assert set(r) >= RECORD_KEYS and r["family"] == "vector" and r["threads"] == 1
        assert r["steps_per_s"] > 0 and r["gym_steps_per_s"] > 0
        assert r["ratio"] == pytest.approx(r["steps_per_s"] / r["gym_steps_per_s"])
        EnvBenchRecord(**r)  # nothing more, nothing less
    printed = capsys.readouterr().out
    assert "torch threads = 1" in printed and "ratio" in printed
    # an earlier result is replaced; any other file is refused before the benchmark runs
    assert cli.main([*args, "--batches", "2"]) == 0
    assert [r["batch"] for r in json.loads(out.read_text())] == [2, 2]
    notes = tmp_path / "notes.md"
    notes.write_text("# my notes\n")
    capsys.readouterr()
    assert cli.main(["bench", "envs", "--quick", "--json", str(notes)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "exists and holds no metaxm bench result" in err
    assert notes.read_text() == "# my notes\n"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        ("world: {name: gridnav\n", "not valid YAML"),
        ("seed: 0\nworld: {name: gridnav, sise: 5}\n", "unknown key 'world.sise'"),
        ("modalities: {train: {smell: 2}}\n", "modalities.train.smell: unknown modality family"),
        ("world: {name: maze}\n", "unknown world 'maze'"),
    ],
    ids=["missing", "malformed", "unknown-key", "unknown-family", "unknown-world"],
)
@pytest.mark.parametrize("command", ["render", "main"])
def test_bad_specs_exit_2_with_one_line(
    command: str, content: str | None, message: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    path = tmp_path / "spec.yaml"
    if content is not None:
        path.write_text(content)
    assert cli.main([command, str(path), "--out", str(tmp_path / "out")]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"metaxm {command}: error: ")
    assert message in lines[0] and "Traceback" not in captured.err + captured.out
    assert not (tmp_path / "out").exists()  # nothing is written for a bad spec


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--families", "smell"], "unknown modality family 'smell'"),
        (["--worlds", "maze"], "unknown world 'maze'"),
        (["--batches", "0"], "--batches: need 1 to 65536 each, got [0]"),
        (["--threads", "0"], "--threads: need at least 1"),
    ],
)
def test_bad_bench_arguments_exit_2(args: list[str], message: str, capsys) -> None:
    assert cli.main(["bench", "envs", "--quick", *args]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]
    assert captured.out == ""  # refused before the table's header


@pytest.mark.parametrize("what", ["maml", "sensory"])
def test_the_envs_flags_are_refused_by_the_other_benchmarks(what: str, capsys) -> None:
    """``bench maml --worlds gym`` benchmarked GridNav without a word."""
    assert cli.main(["bench", what, "--quick", "--worlds", "gym"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"metaxm bench: error: --worlds: only for bench envs; bench {what} times one fixed setting"
    )


def test_render_rejects_zero_variants(spec: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["render", str(spec), "--variants", "0"]) == 2
    assert "--variants: need 1 to 64, got 0" in capsys.readouterr().err


def test_an_allocation_past_the_estimate_is_one_line_and_other_errors_are_not_hidden(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import metaxm.commands.render as render

    def oom(args):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 8 GB")

    monkeypatch.setattr(render, "run", oom)
    assert cli.main(["render", "tasks/gridnav.yaml"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "out of memory (DefaultCPUAllocator" in err

    def bug(args):
        raise RuntimeError("shape mismatch")

    monkeypatch.setattr(render, "run", bug)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        cli.main(["render", "tasks/gridnav.yaml"])


def test_each_benchmarks_json_is_known_as_a_bench_result(tmp_path: Path) -> None:
    """``--json`` replaces what any of the three benchmarks wrote: a list of records (envs) or
    a mapping with ``cases`` (maml, sensory); a run's eval.json or a text file it refuses."""
    from metaxm.commands.bench import _a_bench_result

    shapes = {
        "envs": [{"world": "gridnav", "threads": 1}],
        "maml": {"case": "a", "threads": 1, "cases": [{"case": "a", "threads": 1}]},
        "sensory": {"target": 2.0, "cases": [{"case": "b", "threads": 1}]},
        "eval": {"success": 0.5, "return": 1.0},
        "empty": [],
    }
    for name, data in shapes.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(data))
    known = {n for n in shapes if _a_bench_result(tmp_path / f"{n}.json")}
    assert known == {"envs", "maml", "sensory"}
    (tmp_path / "text.json").write_text("not json")
    assert not _a_bench_result(tmp_path / "text.json")
