"""Every numeric spec field has a range next to it, and every field refuses what lies outside
it, NaN and inf in one line (``metaxm.config.bounded``); sizes that fit no machine are refused
by the resource estimate before anything is built (``metaxm.resources``)."""

from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any, get_args, get_origin

import pytest

from metaxm.config import apply_overrides
from metaxm.envs import WORLDS, world_config_class
from metaxm.errors import ConfigError
from metaxm.spec import Spec, load_spec, spec_from_dict


def _numeric(tp: Any) -> type | None:
    if tp in (int, float):
        return tp
    if get_origin(tp) is typing.Literal:
        return None
    for arg in get_args(tp):
        found = _numeric(arg) if arg is not Ellipsis else None
        if found is not None:
            return found
    return None


def _fields(cls: type, prefix: str) -> list[tuple[str, dataclasses.Field, type]]:
    out = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        key, tp = f"{prefix}{f.name}", hints[f.name]
        if dataclasses.is_dataclass(tp):
            out += _fields(tp, f"{key}.")
        elif (kind := _numeric(tp)) is not None:
            out.append((key, f, kind))
    return out


WORLD_FIELDS = [
    (f"world<{name}>.{k[len('world.') :]}", f, kind)
    for name in sorted(WORLDS)
    for k, f, kind in _fields(world_config_class(name), "world.")
]
FIELDS = [x for x in _fields(Spec, "") if not x[0].startswith("world.")] + WORLD_FIELDS


def test_every_numeric_field_of_every_config_has_a_range_holding_its_default() -> None:
    assert len(FIELDS) > 90  # the walk reached every section
    missing = [key for key, f, _ in FIELDS if "range" not in f.metadata]
    assert not missing, f"numeric config fields without a range (use bounded): {missing}"
    for key, f, _ in FIELDS:
        lo, hi = f.metadata["range"]
        if f.default is not dataclasses.MISSING and f.default is not None:
            values = f.default if isinstance(f.default, tuple) else (f.default,)
            assert all(lo <= v <= hi for v in values), (key, f.default, lo, hi)


def _data(key: str, value: Any) -> dict[str, Any]:
    if key.startswith("world<"):
        name, _, rest = key[len("world<") :].partition(">.")
        data: dict[str, Any] = {"world": {"name": name}}
        if name == "minigrid":
            pytest.importorskip("minigrid")
        key = f"world.{rest}"
    else:
        data = {}
    if key.startswith("modalities."):  # a family count: {vector: value}
        value = {"vector": value}
        data["modalities"] = {"train": {"vector": 1}}
        if not key.endswith(".train"):
            data["modalities"]["train"] = {"vector": 1, "pixels": 1}
            value = {"vector": value["vector"]} if "variants" in key else {"text": value["vector"]}
    return apply_overrides(data, [f"{key}={_yaml(value)}"])


def _yaml(value: Any) -> str:
    if isinstance(value, float) and math.isnan(value):
        return ".nan"
    if isinstance(value, float) and math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_yaml(v)}" for k, v in value.items()) + "}"
    return repr(value)


@pytest.mark.parametrize(("key", "f", "kind"), FIELDS, ids=[k for k, _, _ in FIELDS])
def test_every_numeric_field_refuses_out_of_range_nan_and_inf(
    key: str, f: dataclasses.Field, kind: type
) -> None:
    lo, hi = f.metadata["range"]
    bad: list[Any] = [10**30 if kind is int else 1e300]
    if kind is int:
        bad += [int(hi) + 1, int(math.floor(lo)) - 1]
    else:
        bad += [hi * 10 + 1, math.nan, math.inf, -math.inf]
        if lo > -math.inf:
            bad.append(lo - abs(lo) - 1)
    tuple_field = "tuple" in str(f.type)
    for value in bad:
        wrapped = [value] if tuple_field else value
        with pytest.raises(ConfigError) as err:
            spec_from_dict(_data(key, wrapped))
        message = str(err.value)
        assert "\n" not in message
        name = key.split(">.")[-1].split(".")[-1]
        assert name in message, message


def test_resource_estimate_refuses_a_rollout_that_fits_no_machine(tmp_path) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text("modalities: {train: {pixels: 8}}\ntrain: {num_envs: 65536}\n")
    with pytest.raises(
        ConfigError,
        match=r"would allocate ~[\d,]+ GB \([\d,]+ GB for the PPO "
        r"rollout buffer \(train.num_envs 65536 x 1 families x ppo.num_steps",
    ):
        load_spec(spec, ["ppo.num_steps=4096"])


def test_resource_estimate_counts_infonce_similarity_matrices(tmp_path) -> None:
    """A batch of 65,536 states is 0.6 GB of observations but 17 GB per similarity matrix."""
    spec = tmp_path / "s.yaml"
    spec.write_text("modalities: {train: {vector: 1, projected: 1}}\n")
    with pytest.raises(ConfigError, match="for alignment's similarity matrices"):
        load_spec(spec, ["align.batch_size=65536"])


def test_the_memory_limit_of_the_process_counts_as_the_machine(tmp_path) -> None:
    """Under ``ulimit -v`` the estimate compares with the limit, not the RAM."""
    import subprocess
    import sys

    from metaxm.resources import device_memory

    code = (
        "import resource; resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30)); "
        "from metaxm.resources import device_memory; print(device_memory('cpu'))"
    )
    limited = int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                 check=True).stdout)  # fmt: skip
    assert limited == min(6 << 30, device_memory("cpu"))


def test_a_family_that_cannot_render_the_world_is_refused_at_load(tmp_path) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text("modalities: {train: {vector: 1}, heldout_families: {minigrid_rgb: 1}}\n")
    with pytest.raises(
        ConfigError,
        match="modalities.heldout_families.minigrid_rgb: cannot render the gridnav world",
    ):
        load_spec(spec)


def test_every_main_run_is_built_and_checked_when_the_spec_loads() -> None:
    for override, message in [
        ("main.runs.ppo.train.total_steps=-1", "main.runs.ppo: train.total_steps: -1 is out of"),
        ("main.runs.maml.train.total_steps=.nan", "main.runs.maml: train.total_steps: expected"),
        ("main.runs.ppo.agent.adapters=-1", "main.runs.ppo: agent.adapters: -1 is not allowed"),
        ("main.runs.maml.train.num_envs=65536", "main.runs.maml: the spec would allocate"),
        ("main.runs.rl2.rl2.state_probe=-1", "main.runs.rl2: rl2.state_probe: -1 is out of"),
        ("main.runs.rl2.rl2.state_probe_lags=[0]", "main.runs.rl2: rl2.state_probe_lags"),
    ]:
        with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
            load_spec("tasks/gridnav.yaml", [override])
