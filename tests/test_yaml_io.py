"""Strict spec YAML (:mod:`metaxm.yaml_io`): hostile and mistaken files give one-line errors."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest
import yaml

from metaxm import yaml_io
from metaxm.config import apply_overrides
from metaxm.errors import ConfigError
from metaxm.spec import load_spec, spec_to_dict
from metaxm.yaml_io import MAX_DEPTH, dump_yaml, parse_override, parse_yaml

TASKS = sorted((Path(__file__).parents[1] / "tasks").glob("*.yaml"))


def refused(path: Path, content: str | bytes, overrides: list[str] | None = None) -> str:
    """Write ``content`` to ``path``; the one-line message :func:`load_spec` refuses it with."""
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_spec(path, overrides)
    message = str(err.value)
    assert "\n" not in message
    return message


def refused_override(item: str) -> str:
    with pytest.raises(ConfigError) as err:
        apply_overrides({}, [item])
    message = str(err.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("task", TASKS, ids=lambda p: p.name)
def test_every_task_spec_still_loads(task: Path) -> None:
    spec = load_spec(task)
    assert spec_to_dict(spec)["seed"] == yaml.safe_load(task.read_text())["seed"]


def test_exponent_floats_in_a_file_and_in_overrides(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text("seed: 7\nppo: {lr: 3e-4, ent_coef: 1E-2}\n")
    spec = load_spec(path)
    assert spec.ppo.lr == 3e-4 and spec.ppo.ent_coef == 0.01 and spec.seed == 7
    assert load_spec(path, ["ppo.lr=1e-3"]).ppo.lr == 0.001
    data = apply_overrides({}, ["ppo.lr=1e6", "a=-2e+5", "b=7", "c='1e6'", "d=.inf"])
    assert data["ppo"]["lr"] == 1000000.0 and type(data["ppo"]["lr"]) is float
    assert data["a"] == -200000.0 and type(data["a"]) is float
    assert data["b"] == 7 and type(data["b"]) is int
    assert data["c"] == "1e6" and data["d"] == math.inf


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1e6", 1e6),
        ("1E-3", 1e-3),
        ("-2e+5", -2e5),
        ("+.5e2", 50.0),
        ("1.0e3", 1000.0),
        ("1.e3", 1000.0),
        ("2.5", 2.5),
        ("7", 7),
        ("-3", -3),
        ("'1e6'", "1e6"),
        ("1e6x", "1e6x"),
        ("e6", "e6"),
        ("1e", "1e"),
    ],
)
def test_yaml_1_2_numbers(text: str, value: object) -> None:
    got = parse_yaml(f"x: {text}", "t.yaml")["x"]
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize("text", ["010", "-007", "00", "1:30", "!!int 012"])
def test_an_integer_yaml_1_1_reads_otherwise_is_refused(text: str) -> None:
    """``seed: 010`` was seed 8 (YAML 1.1 octal; 10 in YAML 1.2), ``1:30`` was 90."""
    with pytest.raises(ConfigError, match=r"reads as octal or base 60 in YAML 1.1 .* \(line 2\)"):
        parse_yaml(f"a: 1\nx: {text}", "t.yaml")
    assert parse_yaml("x: 0\ny: 10\nz: '010'\nw: 1_000", "t.yaml") == {
        "x": 0, "y": 10, "z": "010", "w": 1000,
    }  # fmt: skip


def test_nan_stays_a_float_and_safe_load_is_unchanged() -> None:
    assert math.isnan(parse_yaml("x: .nan", "t.yaml")["x"])
    assert yaml.safe_load("x: 1e6") == {"x": "1e6"}  # SafeLoader's own resolvers untouched


def test_billion_laughs_is_refused_at_once(tmp_path: Path) -> None:
    lines = ["seed: 0", 'a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, 9):
        prev, name = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"{name}: &{name} [{', '.join(['*' + prev] * 9)}]")
    start = time.perf_counter()
    message = refused(tmp_path / "lol.yaml", "\n".join(lines) + "\n")
    assert time.perf_counter() - start < 0.5
    assert message == (
        f"{tmp_path / 'lol.yaml'}: YAML anchors and aliases are not allowed in specs (line 2)"
    )


def test_recursive_and_undefined_aliases_are_refused(tmp_path: Path) -> None:
    message = refused(tmp_path / "spec.yaml", "seed: 0\nworld: &w {name: gridnav, x: *w}\n")
    assert message.endswith("spec.yaml: YAML anchors and aliases are not allowed in specs (line 2)")
    message = refused(tmp_path / "spec.yaml", "seed: 0\n\nworld: *w\n")
    assert message.endswith("YAML anchors and aliases are not allowed in specs (line 3)")
    assert refused_override("world=&w [*w]") == (
        "--set world: YAML anchors and aliases are not allowed in specs (line 1)"
    )


def test_a_file_over_the_size_limit_is_refused_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    message = refused(path, b"seed: 0\n" + b"# padding\n" * 200_000)  # 2 MB
    assert message == f"{path}: the file is 2,000,008 bytes; a spec may hold at most 1,048,576"
    message = refused(path, b"[" * (yaml_io.MAX_SPEC_BYTES + 1))  # would be a depth error
    assert message.endswith("is 1,048,577 bytes; a spec may hold at most 1,048,576")


def test_an_override_over_the_size_limit_is_refused() -> None:
    assert refused_override("log.project=" + "x" * 70_000) == (
        "--set log.project: the value is 70,000 bytes; an override may hold at most 65,536"
    )
    assert apply_overrides({}, ["p=" + "x" * 60_000])["p"] == "x" * 60_000


def test_deep_nesting_is_refused_in_one_line_and_fast(tmp_path: Path) -> None:
    start = time.perf_counter()
    message = refused(tmp_path / "deep.yaml", "seed: 0\nworld: " + "[" * 100_000 + "\n")
    assert time.perf_counter() - start < 1.0
    assert message.endswith(f"deep.yaml: nested more than {MAX_DEPTH} levels deep (line 2)")
    assert refused_override("world=" + "{a: " * 10_000) == (
        f"--set world: nested more than {MAX_DEPTH} levels deep (line 1)"
    )
    inside = MAX_DEPTH - 1  # the top-level mapping is the first level
    assert parse_yaml("x: " + "[" * inside + "]" * inside, "t.yaml")["x"] is not None
    with pytest.raises(ConfigError, match="nested more than"):
        parse_yaml("x: " + "[" * (inside + 1) + "]" * (inside + 1), "t.yaml")


def test_recursion_error_is_a_one_line_error_as_a_last_resort(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(yaml_io, "MAX_DEPTH", 10**9)
    with pytest.raises(ConfigError) as err:
        parse_yaml("x: " + "[" * 5_000, "deep.yaml")
    assert str(err.value) == "deep.yaml: nested too deeply to read"


def test_bytes_that_are_not_utf8_are_refused_with_their_offset(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    message = refused(path, "seed: 0\nlog: {project: café}\n".encode("latin-1"))
    assert message == f"{path}: not UTF-8 text (byte offset 26); save it as UTF-8"
    bom = b"\xef\xbb\xbf"
    message = refused(path, bom + "seed: 0\nlog: {project: café}\n".encode("latin-1"))
    assert message.endswith("not UTF-8 text (byte offset 29); save it as UTF-8")
    path.write_bytes(bom + "seed: 3\nlog: {project: café}\n".encode())
    spec = load_spec(path)
    assert spec.seed == 3 and spec.log.project == "café"


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-32", "utf-32-be"])
def test_utf16_and_utf32_files_are_refused(tmp_path: Path, encoding: str) -> None:
    path = tmp_path / "wide.yaml"
    text = "seed: 0\n".encode(encoding)
    if not encoding.endswith("be"):  # the plain codec writes the native mark, be ones none
        assert text[:2] in (b"\xff\xfe", b"\xfe\xff")
    else:
        text = ("\ufeff" + "seed: 0\n").encode(encoding)
    wide = "UTF-16" if "16" in encoding else "UTF-32"
    assert refused(path, text) == (
        f"{path}: the file is {wide} text (it starts with a {wide} byte-order mark); "
        "save it as UTF-8"
    )


def test_duplicate_keys_are_refused_at_any_depth(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    top = "seed: 0\nalgo: ppo\nseed: 1\n"
    assert refused(path, top) == f"{path}: duplicate key 'seed' (line 3)"
    nested = "seed: 0\ntrain:\n  num_envs: 4\n  total_steps: 100\n  num_envs: 8\n"
    assert refused(path, nested) == f"{path}: duplicate key 'num_envs' (line 5)"
    flow = "modalities: {train: {vector: 1, vector: 2}}\n"
    assert refused(path, flow) == f"{path}: duplicate key 'vector' (line 1)"
    assert refused_override("modalities.train={vector: 1, vector: 2}") == (
        "--set modalities.train: duplicate key 'vector' (line 1)"
    )


def test_python_tags_stay_refused(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    text = f"seed: 0\nlog: !!python/object/apply:os.system ['touch {marker}']\n"
    message = refused(tmp_path / "spec.yaml", text)
    assert message.endswith(
        "spec.yaml: the YAML tag !!python/object/apply:os.system is not allowed in specs (line 2)"
    )
    assert refused_override("seed=!!python/name:os.system") == (
        "--set seed: the YAML tag !!python/name:os.system is not allowed in specs (line 1)"
    )
    assert not marker.exists()


def test_malformed_yaml_and_bad_values_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    message = refused(path, "seed: 0\nworld: {name: gridnav\nalgo: ppo\n")
    assert message.startswith(f"{path}: not valid YAML (line 3): ")
    message = refused(path, "seed: 0\n---\nseed: 1\n")
    assert message == (
        f"{path}: not valid YAML (line 2): expected a single document in the stream, "
        "but found another document"
    )
    assert refused(path, "seed: !!int x\n") == f"{path}: cannot read 'x' as int (line 1)"
    assert refused(path, "seed: 0\ndevice: 2024-13-45\n") == (
        f"{path}: cannot read '2024-13-45' as timestamp (line 2)"
    )
    assert refused(path, "seed: 0\n<<: {algo: ppo}\n") == (
        f"{path}: YAML merge keys (<<) are not allowed in specs (line 2)"
    )
    assert refused(path, "seed: 0\nalgo: ppo\0\n") == (
        f"{path}: character U+0000 is not allowed in YAML (line 2)"
    )
    assert refused_override("ppo=[1, 2").startswith("--set ppo: not valid YAML (line 1): ")


def test_dump_yaml_reads_back_equal() -> None:
    shared = [1, 2]
    data = {"project": "1e6", "lr": 1e-5, "big": 1e20, "a": shared, "b": shared, "n": 7}
    text = dump_yaml(data)
    assert "&" not in text and "*" not in text
    assert parse_yaml(text, "dump") == data
    assert parse_override("1e6", "k") == 1e6 and parse_override(" ", "k") == ""
