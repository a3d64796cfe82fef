"""Strict loading of YAML into frozen dataclasses, and `--set key=value` overrides.

Every config in metaxm is a frozen dataclass. :func:`from_dict` builds one from plain data and
refuses anything it does not understand: an unknown key, a value of the wrong type, a string
outside a ``Literal``. The error is a :class:`ConfigError` whose message is one line naming the
dotted key and what would have been accepted, so the CLI can print it and exit with status 2.

We do not use a general library (dacite, pydantic) here because the messages are the point:
they must name the key *and* the allowed values, and overrides must be type-checked by the very
same code path as the file.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

from metaxm.errors import ConfigError
from metaxm.yaml_io import parse_override, read_yaml

T = TypeVar("T")


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in get_args(tp))
    if tp is type(None):
        return "null"
    if origin is not None:
        return repr(tp).replace("typing.", "")
    return getattr(tp, "__name__", repr(tp))


def _convert(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the type hint ``tp`` and convert containers; raise on mismatch."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin is Literal:
        allowed = get_args(tp)
        if value not in allowed or isinstance(value, bool) != isinstance(allowed[0], bool):
            raise ConfigError(
                f"{key}: {value!r} is not allowed; choose one of {', '.join(map(repr, allowed))}"
            )
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, key)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, prefix=key)
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list ({_type_name(tp)}), got {value!r}")
        args = get_args(tp)
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
        if origin is tuple:
            if len(args) != len(value):
                raise ConfigError(f"{key}: expected {len(args)} items, got {len(value)}")
            return tuple(_convert(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(args, value)))
        return [_convert(v, args[0], f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        kt, vt = get_args(tp)
        return {_convert(k, kt, f"{key}"): _convert(v, vt, f"{key}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        try:
            value = float(value)
        except OverflowError:
            raise ConfigError(f"{key}: {value} is too large for a number") from None
        if not math.isfinite(value):
            raise ConfigError(f"{key}: expected a finite number, got {value}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    raise TypeError(f"config type {tp!r} at {key} is not supported by metaxm.config")


def bounded(default: Any, lo: float, hi: float) -> Any:
    """A config field with ``default`` whose numbers must lie in ``[lo, hi]``.

    Used for every numeric field of every config::

        num_envs: int = bounded(32, 1, 4096)

    :func:`from_dict` checks the value (each item of a list or tuple, each value of a mapping)
    and refuses one outside the range in one line naming the key and the range. Ranges are
    sanity bounds (what a run on one machine can mean), not tuning advice; the resource
    estimate (:mod:`metaxm.resources`) judges the sizes together.
    """
    return dataclasses.field(default=default, metadata={"range": (lo, hi)})


def check_range(value: Any, bounds: tuple[float, float], key: str) -> None:
    """Refuse a number (or a number inside a list, tuple or mapping) outside ``bounds``."""
    lo, hi = bounds
    if isinstance(value, dict):
        for k, v in value.items():
            check_range(v, bounds, f"{key}.{k}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            check_range(v, bounds, f"{key}[{i}]")
    elif isinstance(value, (int, float)) and not isinstance(value, bool) and not lo <= value <= hi:
        raise ConfigError(f"{key}: {_short(value)} is out of range; allowed {lo:g} to {hi:g}")


def _short(value: float) -> str:
    try:
        return f"{value:g}"
    except OverflowError:  # an int beyond float range
        text = str(value) if value.bit_length() < 4000 else "a huge integer"
        return text if len(text) <= 24 else f"{text[:6]}...({len(text)} digits)"


def from_dict(cls: type[T], data: Any, prefix: str = "") -> T:
    """Build the dataclass ``cls`` from ``data``, strictly.

    Args:
        cls: a (frozen) dataclass type whose fields carry type hints.
        data: a mapping (typically parsed YAML); ``None`` means "all defaults".
        prefix: dotted path of ``data`` inside the whole config, used in error messages.

    A field may carry ``metadata={"parse": fn}``; then ``fn(value, dotted_key)`` builds it (for
    sections whose type depends on their content, such as the world chosen by ``name``).

    Raises:
        ConfigError: an unknown key, a missing required key or a value of the wrong type.
    """
    where = prefix or "config"
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields), key=str)  # YAML keys may be numbers, null, ...
    if unknown:
        name = f"{prefix}.{unknown[0]}" if prefix else str(unknown[0])
        raise ConfigError(f"unknown key {name!r}; allowed keys: {', '.join(fields)}")
    kwargs = {}
    for name, f in fields.items():
        key = f"{prefix}.{name}" if prefix else name
        if name in data:
            parse = f.metadata.get("parse")
            kwargs[name] = (
                parse(data[name], key) if parse else _convert(data[name], hints[name], key)
            )
            if "range" in f.metadata:
                check_range(kwargs[name], f.metadata["range"], key)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"missing required key {key!r}")
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as err:  # __post_init__ validation
        if isinstance(err, ConfigError):
            raise
        raise ConfigError(f"{where}: {err}") from None


def to_dict(obj: Any) -> Any:
    """The plain-data form of a config dataclass (tuples become lists), ready for YAML."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key.sub=value`` strings to plain config data; values are parsed as YAML.

    Values are read as strictly as a spec file (:func:`metaxm.yaml_io.parse_override`: no
    anchors, ``1e6`` is a float, at most 64 KiB). Type checking happens afterwards, in
    :func:`from_dict`, exactly as for the file.
    """
    if isinstance(overrides, str):  # iterated, it would be one override per character
        raise TypeError(f"overrides: a list of 'key=value' strings, got the string {overrides!r}")
    data = _deepcopy(data)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. ppo.lr=0.001")
        key, raw = item.split("=", 1)
        value = parse_override(raw, key.strip())
        node = data
        parts = key.strip().split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"--set {key}: {part!r} is not a section")
            node = child
        node[parts[-1]] = value
    return data


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping strictly (:func:`metaxm.yaml_io.read_yaml`), with one-line errors.

    Raises:
        ConfigError: a missing, too large, non-UTF-8 or malformed file, an anchor, a duplicate
            key, ... (see :func:`metaxm.yaml_io.parse_yaml`), or a top level that is not a
            mapping.
    """
    path = Path(path)
    data = read_yaml(path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def _deepcopy(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _deepcopy(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_deepcopy(v) for v in data]
    return data
