from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

from metaxm.config import ConfigError, apply_overrides, from_dict, load_yaml, to_dict


@dataclass(frozen=True)
class Inner:
    lr: float = 0.1
    mode: Literal["a", "b"] = "a"


@dataclass(frozen=True)
class Outer:
    steps: int = 3
    flag: bool = False
    name: str = "x"
    sizes: tuple[int, ...] = (1, 2)
    counts: dict[str, int] = field(default_factory=dict)
    inner: Inner = field(default_factory=Inner)
    maybe: int | None = None


def test_defaults_and_values() -> None:
    cfg = from_dict(Outer, {"steps": 5, "inner": {"lr": 1}, "sizes": [4], "counts": {"v": 2}})
    assert cfg == Outer(steps=5, inner=Inner(lr=1.0), sizes=(4,), counts={"v": 2})
    assert isinstance(cfg.inner.lr, float)
    assert from_dict(Outer, None) == Outer()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"stepz": 1}, "unknown key 'stepz'; allowed keys: steps, flag"),
        ({"inner": {"lrr": 1}}, "unknown key 'inner.lrr'"),
        ({"steps": "many"}, "steps: expected an integer, got 'many'"),
        ({"steps": True}, "steps: expected an integer, got True"),
        ({"flag": 1}, "flag: expected true or false, got 1"),
        ({"inner": {"mode": "c"}}, "inner.mode: 'c' is not allowed; choose one of 'a', 'b'"),
        ({"sizes": 3}, "sizes: expected a list"),
        ({"sizes": [1, "x"]}, "sizes[1]: expected an integer"),
        ({"counts": {"v": 1.5}}, "counts.v: expected an integer"),
        ({"inner": 3}, "inner: expected a mapping"),
        ({"maybe": "x"}, "maybe: expected int | null"),
    ],
)
def test_errors_name_the_key(data: dict, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        from_dict(Outer, data)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_overrides_parse_yaml_and_nest() -> None:
    data = apply_overrides({"inner": {"lr": 0.1}}, ["inner.lr=0.5", "sizes=[3, 4]", "steps=7"])
    assert from_dict(Outer, data) == Outer(steps=7, sizes=(3, 4), inner=Inner(lr=0.5))
    with pytest.raises(ConfigError, match="expected key=value"):
        apply_overrides({}, ["inner.lr"])
    with pytest.raises(ConfigError, match="'steps' is not a section"):
        apply_overrides({"steps": 3}, ["steps.x=1"])


def test_to_dict_round_trips() -> None:
    cfg = Outer(sizes=(5, 6), inner=Inner(mode="b"))
    assert from_dict(Outer, to_dict(cfg)) == cfg


def test_load_yaml_errors(tmp_path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_yaml(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\nb: 3\n")
    with pytest.raises(ConfigError, match=r"not valid YAML \(line"):
        load_yaml(bad)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("3\n")
    with pytest.raises(ConfigError, match="expected a mapping at the top level"):
        load_yaml(scalar)


def test_a_documented_zero_is_in_range() -> None:
    """``align.eval_interval: 0`` (only at the end) is documented and handled: it was refused."""
    from metaxm.spec import spec_from_dict

    assert spec_from_dict({"align": {"eval_interval": 0}}).align.eval_interval == 0


def test_overrides_given_as_one_string_are_refused() -> None:
    """``load_spec(path, "seed=3")`` said ``--set 's': expected key=value``."""
    from metaxm.config import apply_overrides

    with pytest.raises(TypeError, match="a list of 'key=value' strings, got the string 'seed=3'"):
        apply_overrides({}, "seed=3")  # type: ignore[arg-type]
