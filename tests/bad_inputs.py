"""Bad inputs shared by the fuzz test (``tests/test_fuzz.py``) and the adversarial sweep
(``scripts/bad_inputs.py``), after issue 18: the dotted key of every spec field, odd values,
YAML attacks, damaged checkpoints and awkward output paths.

Plain data and small file makers only (no hypothesis), so the sweep runs without test
dependencies. The keys are walked from :class:`metaxm.spec.Spec` and the registered worlds, so a
new field is fuzzed the day it lands.
"""

from __future__ import annotations

import codecs
import dataclasses
import hashlib
import pickle
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml

from metaxm.config.main import RUN_NAMES
from metaxm.envs import WORLDS, world_config_class
from metaxm.modalities import FAMILIES
from metaxm.spec import Spec

TINY: dict[str, Any] = {
    "seed": 3,
    "world": {"name": "gridnav", "size": 4, "horizon": 12},
    "modalities": {
        "train": {"vector": 1, "projected": 1},
        "heldout_variants": {"vector": 1},
        "heldout_families": {"pixels": 1},
    },
    "agent": {"latent_dim": 8, "encoder_width": 16, "hidden": 16},
    "ppo": {"num_steps": 16, "update_epochs": 2, "num_minibatches": 2},
    "maml": {"meta_batch": 2, "support_episodes": 2, "query_episodes": 2},
    "train": {
        "total_steps": 512,
        "num_envs": 8,
        "log_interval": 1,
        "checkpoint_interval": 1,
        "keep_checkpoints": 0,
        "eval_episodes": 16,
    },
    "align": {"pretrain_updates": 20, "eval_interval": 10, "eval_states": 32, "batch_size": 16},
    "evaluate": {"seeds": 1, "budgets": [0, 1], "eval_episodes": 4, "scratch_cap": 4},
    "log": {"mode": "disabled", "progress": False},
    "main": {"runs": {"ppo": {}, "maml": {"train.init_from": "{out}/ppo"}}},
}
"""The TINY spec of ``tests/run/conftest.py`` with two training families (pretraining pairs
them) and held-out splits (evaluation has something to measure): two updates, two checkpoints,
a few seconds."""


# --------------------------------------------------------------------------------- spec keys
@dataclass(frozen=True)
class Key:
    """A spec field as ``--set`` names it.

    Attributes:
        key: the dotted key, e.g. ``ppo.lr`` or ``world.max_action``.
        hint: its type hint.
        world: for a world field, the world it belongs to (``--set world={name: ...}`` first).
        range: the ``bounded`` range metaxm declares, if any (the sweep reports it; nothing
            here judges by it).
    """

    key: str
    hint: Any
    world: str | None = None
    range: tuple[float, float] | None = None


def _walk(cls: type, prefix: str, world: str | None = None) -> list[Key]:
    out = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        key, hint = f"{prefix}{f.name}", hints[f.name]
        if dataclasses.is_dataclass(hint):
            out += _walk(hint, f"{key}.", world)
            continue
        out.append(Key(key, hint, world, f.metadata.get("range")))
        if key.startswith("modalities."):  # dict[str, int]: one key per family too
            out += [Key(f"{key}.{fam}", int, None, f.metadata.get("range")) for fam in FAMILIES]
    return out


def spec_keys() -> list[Key]:
    """Every leaf of :class:`Spec` (``world`` of each registered world, ``main.runs`` of each
    stage), sorted by key."""
    keys = [k for k in _walk(Spec, "") if k.key != "world"]
    for name in sorted(WORLDS):
        keys += [
            k for k in _walk(world_config_class(name), "world.", name) if k.key != "world.name"
        ]
    keys += [Key(f"main.runs.{stage}", dict[str, Any]) for stage in RUN_NAMES]
    return sorted(keys, key=lambda k: (k.key, k.world or ""))


def run_keys() -> list[str]:
    """The dotted keys a ``main.runs.<stage>`` entry may hold (every spec key but ``main``)."""
    return sorted({k.key for k in spec_keys() if not k.key.startswith("main.")} | {"algo"})


# fmt: off
UNKNOWN_KEYS = (
    "garbage", "ppo.garbage", "world.garbage", "main.garbage", "main.runs.garbage",
    "modalities.garbage", "modalities.train.garbage", "ppo.lr.x", "seed.x", "", ".", "..", "ppo.",
    ".ppo", "ppo..lr", "PPO.LR", "ppo.lr ", " ppo.lr", "ppo.lr=1", "\u00e9t\u00e9", "world.name.x",
    "main.runs.ppo.train.total_steps", "evaluate.strategies.0",
)
# fmt: on


def numeric_kind(hint: Any) -> type | None:
    """``int`` or ``float`` for a numeric field (also ``int | None``, ``tuple[int, ...]``,
    ``dict[str, int]``); None for any other field."""
    if hint in (int, float):
        return hint
    if get_origin(hint) is Literal:
        return None
    args = get_args(hint)
    if get_origin(hint) is dict:
        args = args[1:]
    for arg in args:
        found = numeric_kind(arg) if arg is not Ellipsis else None
        if found is not None:
            return found
    return None


SPLIT_PROBES = (
    "modalities.train.vector",
    "modalities.heldout_variants.vector",
    "modalities.heldout_families.audio",
)


def numeric_keys() -> list[Key]:
    """The numeric fields (those :data:`NUMERIC_PROBES` are put to); of the split mappings one
    family each (:data:`SPLIT_PROBES`)."""
    return [
        k
        for k in spec_keys()
        if numeric_kind(k.hint) is not None
        and get_origin(k.hint) is not dict
        and (not k.key.startswith("modalities.") or k.key in SPLIT_PROBES)
    ]


def is_sequence(hint: Any) -> bool:
    return get_origin(hint) in (tuple, list) or any(
        get_origin(a) in (tuple, list) for a in get_args(hint)
    )


def world_sets(key: Key) -> list[str]:
    """``--set`` items that switch the spec to ``key``'s world (none for a non-world key)."""
    return [] if key.world is None else [f"world={{name: {key.world}}}"]


# ----------------------------------------------------------------------------------- values
NUMERIC_PROBES = ("1e9", "1e30", "-1", "nan", "inf", "0")


def probe_text(key: Key, probe: str) -> str:
    """The YAML text of ``probe`` for ``key``: integer literals for an int field (``1e9`` would
    only test the type check), YAML's ``.nan``/``.inf``, a one-item list for a list field."""
    kind = numeric_kind(key.hint)
    text = {
        "1e9": "1000000000" if kind is int else "1e9",
        "1e30": str(10**30) if kind is int else "1e30",
        "-1": "-1",
        "nan": ".nan",
        "inf": ".inf",
        "0": "0",
    }[probe]
    return f"[{text}]" if is_sequence(key.hint) else text


# fmt: off
LARGE_OK = {
    "seed", "train.total_steps", "train.loss_limit", "train.log_interval",
    "train.checkpoint_interval", "align.eval_interval",
}
# fmt: on
"""Fields where 1e9 is a big but meaningful value (a seed, a long run, a limit, an interval)."""

# fmt: off
ZERO_OK = {
    "seed", "agent.conv_layers", "agent.token_layers", "agent.adapter_rank", "agent.layers",
    "ppo.gamma", "ppo.gae_lambda", "ppo.vf_coef", "ppo.ent_coef", "maml.inner_lr",
    "maml.baseline_reg", "maml.gamma", "maml.gae_lambda", "maml.ent_coef", "maml.vf_coef",
    "train.checkpoint_interval", "train.keep_checkpoints", "train.eval_episodes", "train.threads",
    "align.weight", "align.views", "align.random_steps", "align.vae_beta",
    "align.pretrain_variants", "align.pretrain_updates", "align.fit_iters", "align.fit_mse",
    "align.fit_policy", "align.fit_prior", "align.meta_steps", "align.meta_inner_lr",
    "evaluate.budgets", "evaluate.threshold", "world.wall_fraction", "world.step_cost",
    "world.goal_range", "agent.init_log_std", "evaluate.target_episodes",
}
# fmt: on
"""Fields where 0 means something (no layers, no discount, off, every family, never)."""


def is_absurd(key: str, probe: str) -> bool:
    """Whether a run with ``key`` at ``probe`` makes no sense, judged here, independently of
    metaxm's own ranges: NaN and inf always; 1e30 except for a limit; 1e9 for sizes and rates;
    -1 except for a log-std; 0 where zero means nothing."""
    if probe in ("nan", "inf"):
        return True
    if probe == "1e30":
        return key != "train.loss_limit"
    if probe == "1e9":
        return key not in LARGE_OK
    if probe == "-1":
        return key != "agent.init_log_std"
    return key not in ZERO_OK


# fmt: off
ODD_VALUES = (
    "0", "-1", "1", "2147483648", "9223372036854775808", str(10**30), str(-(10**30)), "1e6", "1E6",
    "1e-3", "1.0e+6", "-1e6", "1e308", "1e309", "-1e309", "5e-324", "1e-400", ".nan", ".NaN",
    ".inf", "-.inf", "nan", "inf", "NaN", "Infinity", "0x10", "0o17", "0b11", "1_000", "+1", "+.5",
    "1.", ".5", "-0", "-0.0", "0.1", "0.5", "1.5", "", " ", "~", "null", "Null", "true", "false",
    "yes", "no", "on", "off", "y", "'1e6'", '"nan"', "''", "abc", "\u00e9", "\u0663", "\u00b2",
    "\u202e", "\U0001f600", "ppo", "vector", "cpu", "cuda", "meta", "gridnav", "{}", "[]",
    "[1, 2]", "[0, 1, 2]", "[[1]]", "{a: 1}", "{name: pointnav}", "{vector: 1}", "{vector: 0}",
    "[.nan]", "[-1]", "2024-01-01", "2024-13-45", "12:30:00", "!!int x", "!!float x",
    "!!binary AAAA", "!!str 1", "!!set {a}", "!!omap [a: 1]", "!!timestamp 2024-01-01", "{", "[",
    "]", "}", ": :", "- a", "a: b: c", "*a", "&a 1", "!foo 1", "%YAML 1.2", "---", "...", "@", "`",
    "|", ">", "#", "x\ny", "\t", "\x7f", "\ufeff1",
)
# fmt: on
"""``--set`` value texts: numbers at and past every edge, the YAML 1.1/1.2 gaps, strings,
unicode, collections, tags, and syntax that is not YAML."""


def yaml_text(value: Any) -> str:
    """``value`` as one line of YAML flow text (``.nan``, quoted strings, ``{a: [1]}``)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10**9, allow_unicode=True)
    return text.removesuffix("\n").removesuffix("\n...").removesuffix("...").strip()


# ------------------------------------------------------------------------------ YAML attacks
def billion_laughs(levels: int = 9, width: int = 9) -> str:
    """The alias bomb: ``width ** levels`` strings from a dozen lines."""
    lines = ['a0: &a0 "lol"']
    for i in range(1, levels + 1):
        refs = ", ".join([f"*a{i - 1}"] * width)
        lines.append(f"a{i}: &a{i} [{refs}]")
    return "\n".join(lines) + "\n"


def _nest(text: str, *keys: str) -> str:
    """``text`` (a block mapping) indented under ``keys`` (``main: runs: ppo: ...``)."""
    head = "".join(f"{'  ' * i}{k}:\n" for i, k in enumerate(keys))
    pad = "  " * len(keys)
    return head + "".join(pad + line + "\n" for line in text.splitlines())


def yaml_attacks(marker: Path, base: str) -> dict[str, bytes]:
    """Spec files that attack the YAML reader, by name; none may run, hang or leave a trace.

    Args:
        marker: a path the Python-tag payloads would create if they ran.
        base: a valid spec's text, to hide an attack inside (its ``main`` section is dropped,
            so that only the attack is wrong).
    """
    data = yaml.safe_load(base)
    data.pop("main", None)
    base = yaml.safe_dump(data, sort_keys=False)
    laughs = billion_laughs()
    runs = "main:\n  runs:\n    ppo: &r {train.total_steps: 1}\n    maml: *r\n"
    touch = f'!!python/object/apply:os.system ["touch {marker}"]'
    return {
        "billion laughs": laughs.encode(),
        "billion laughs inside main.runs": (base + _nest(laughs, "main", "runs", "ppo")).encode(),
        "aliases inside main.runs": (base + runs).encode(),
        "recursive alias": b"seed: &a [*a]\n",
        "recursive mapping alias": b"a: &a {b: *a}\n",
        "merge key": b"x: &x {lr: 0.1}\nppo:\n  <<: *x\n",
        "deep list nesting": b"seed: " + b"[" * 100_000 + b"]" * 100_000 + b"\n",
        "deep mapping nesting": b"a: " + b"{a: " * 5_000 + b"1" + b"}" * 5_000 + b"\n",
        "non-UTF-8 byte": base.encode() + b"log: {project: caf\xe9}\n",
        "UTF-16 with BOM": codecs.BOM_UTF16_LE + base.encode("utf-16-le"),
        "UTF-16 without BOM": base.encode("utf-16-le"),
        "UTF-32 with BOM": codecs.BOM_UTF32_LE + base.encode("utf-32-le"),
        "NUL byte": base.encode() + b"\x00\n",
        "duplicate top-level section": (base + "train:\n  total_steps: 1\n").encode(),
        "duplicate nested key": b"ppo:\n  lr: 0.1\n  lr: 0.2\n",
        "duplicate key in main.runs": b"main:\n  runs:\n    ppo: {algo: ppo, algo: ppo}\n",
        "python tag os.system": f"seed: {touch}\n".encode(),
        "python tag in main.runs": f"main:\n  runs:\n    ppo: {{seed: {touch}}}\n".encode(),
        "python/name tag": b"seed: !!python/name:os.system\n",
        "python/module tag": b"seed: !!python/module:os\n",
        "custom tag": b"seed: !foo 1\n",
        "binary tag": b"log: {project: !!binary aGVsbG8=}\n",
        "set tag": b"modalities: {train: !!set {vector}}\n",
        "bad timestamp": b"seed: 2024-13-45\n",
        "int of 100,000 digits": b"seed: " + b"9" * 100_000 + b"\n",
        "float 1e99999": b"ppo: {lr: 1e99999}\n",
        "YAML 1.1 octal int": b"seed: 010\n",
        "YAML 1.1 base-60 int": b"train: {total_steps: 1:30}\n",
        "empty main.runs": b"main: {runs: {}}\n",
        "two documents": (base + "---\n" + base).encode(),
        "top level a list": b"- seed: 1\n",
        "top level a string": b"hello\n",
        "mixed-type keys": b"1: 2\nfoo: 3\n",
        "mixed-type keys in a section": b"ppo: {1: 2, x: 3}\n",
        "tab indentation": b"ppo:\n\tlr: 0.1\n",
        "unclosed flow": b"ppo: {lr: 0.1\n",
    }


def big_spec(path: Path, megabytes: int) -> Path:
    """A spec of ``megabytes`` MB: a valid head, then a long list (written in chunks)."""
    chunk = ("  - " + "x" * 60 + "\n") * 1000
    with path.open("w") as f:
        f.write("seed: 0\nlog:\n  project:\n")
        for _ in range(megabytes * 1_000_000 // len(chunk) + 1):
            f.write(chunk)
    return path


# ------------------------------------------------------------------------------ checkpoints
class _Payload:
    """Pickles to a call that creates ``marker``: must never run."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (Path(self.marker),))


def write_sidecar(path: Path) -> Path:
    """Vouch for ``path`` with a valid ``.sha256`` file (so the loader gets past the checksum
    and has to judge the contents)."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    sidecar = path.with_name(path.name + ".sha256")
    sidecar.write_text(f"{digest}  {path.name}\n")
    return sidecar


def pickle_payload(path: Path, marker: Path, torch_format: bool = True) -> Path:
    """A checkpoint file whose unpickling would create ``marker``, with a valid checksum."""
    payload = {"algo": "ppo", "spec": {}, "trainer": {"agent": _Payload(marker)}}
    if torch_format:
        import torch

        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload))
    write_sidecar(path)
    return path


def flip_bytes(path: Path, count: int = 64) -> Path:
    """Invert ``count`` bytes in the middle of ``path`` (its checksum file now disagrees)."""
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    for i in range(mid, min(mid + count, len(data))):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


def truncate(path: Path, keep: float = 0.5) -> Path:
    """Cut ``path`` to the first ``keep`` of its bytes."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def garbage_checkpoint(path: Path, data: bytes = b"not a checkpoint\n" * 64) -> Path:
    """A file of ``data`` with a valid checksum: it verifies, but is no checkpoint."""
    path.write_bytes(data)
    write_sidecar(path)
    return path


# -------------------------------------------------------------------------------- --out paths
OUT_PATHS = {
    "empty": "",
    "blank": " ",
    "root": "/",
    "current folder": ".",
    "existing file": "{root}/a_file.txt",
    "nested under a file": "{root}/a_file.txt/run",
    "deeply under a file": "{root}/a_file.txt/a/b",
    "folder with metrics.jsonl": "{root}/foreign",
    "folder of other files": "{root}/notes",
    "/dev/null": "/dev/null",
    "/proc": "/proc/self",
}
"""``--out`` values a run must refuse, by name; ``{root}`` is where :func:`make_out_paths`
makes the files they need. Give ``root`` (``/``) only to commands that write a file: a folder
output that wrongly accepted it would write into ``/``."""


def out_paths(root: Path | str) -> dict[str, str]:
    """:data:`OUT_PATHS` under ``root`` (nothing is made)."""
    return {name: path.replace("{root}", str(root)) for name, path in OUT_PATHS.items()}


def make_out_paths(root: Path) -> dict[str, str]:
    """Make the files :data:`OUT_PATHS` needs under ``root``; returns :func:`out_paths`."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "a_file.txt").write_text("keep me\n")
    (root / "foreign").mkdir(exist_ok=True)
    (root / "foreign" / "metrics.jsonl").write_text('{"step": 1, "mine": true}\n')
    (root / "notes").mkdir(exist_ok=True)
    (root / "notes" / "notes.txt").write_text("keep me\n")
    return out_paths(root)
