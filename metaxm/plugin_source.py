"""The source of the plugins in use: what an evaluation's fingerprint hashes beside metaxm's own.

A plugin (``docs/plugins.md``) puts its code in metaxm's registries: a world, a modality
family, an encoder, a translator, a strategy, a learner. :func:`plugin_sources` finds every
registered object defined outside metaxm, and a gymnasium env a ``gym`` world names, and
hashes the code of the top-level package (or the single module) each comes from. So a curve
measured before a plugin's code changed is not taken back by ``metaxm evaluate --resume``
(:mod:`metaxm.evaluate.curve_log`). Code with no file (a notebook's cell) is hashed from its
source as ``inspect`` finds it; code whose source cannot be found gets a token drawn once per
process, so its curves are never taken back by another process.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_UNREADABLE = os.urandom(16).hex()
"""What an object whose source cannot be found hashes to, in this process only."""


def _own(module: str) -> bool:
    return module == "metaxm" or module.startswith("metaxm.")


def _registered() -> Iterator[Any]:
    """Every object in metaxm's registries: classes, functions, instances."""
    from metaxm.align.translate import TRANSLATORS
    from metaxm.envs import WORLDS
    from metaxm.evaluate.strategies import STRATEGIES
    from metaxm.learners import LEARNERS
    from metaxm.modalities.base import FAMILIES, FunctionFamily
    from metaxm.nn.encoders import ENCODERS

    for world_cls, config_cls in WORLDS.values():
        yield from (world_cls, config_cls)
    for family in FAMILIES.values():
        yield type(family)
        if isinstance(family, FunctionFamily):
            yield from (f for f in (family._render, family._space, family._variant) if f)
    for registry in (ENCODERS, TRANSLATORS, STRATEGIES, LEARNERS):
        for obj in registry.values():
            yield obj if inspect.isclass(obj) or inspect.isroutine(obj) else type(obj)


def _gym_module(spec: Any) -> str | None:
    """The module of the gymnasium env a ``gym`` world names (its entry point's), if any."""
    env_id = getattr(getattr(spec, "world", None), "env_id", None)
    if not isinstance(env_id, str):
        return None
    module, _, name = env_id.rpartition(":")
    import gymnasium

    entry = getattr(gymnasium.registry.get(name), "entry_point", None)
    if isinstance(entry, str):
        return entry.split(":")[0]
    return getattr(entry, "__module__", None) or module or None


def _package_digest(top: str) -> str:
    """SHA-256 of every ``.py`` file of the top-level package or module ``top`` (by path),
    located without importing it, read anew on every call (a notebook may reload a plugin);
    empty where it has no files (a built-in module)."""
    try:
        found = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        found = None
    if found is None:
        return ""
    roots = [Path(p) for p in found.submodule_search_locations or []]
    files = [p for r in roots for p in sorted(r.rglob("*.py"))]
    if not roots and found.has_location and found.origin and found.origin.endswith(".py"):
        files, roots = [Path(found.origin)], [Path(found.origin).parent]
    if not files:
        return ""
    digest = hashlib.sha256()
    for path in files:
        label = next((str(path.relative_to(r)) for r in roots if path.is_relative_to(r)), "")
        try:
            code = path.read_bytes()
        except OSError:  # unreadable: never the same code as another process's
            code = _UNREADABLE.encode()
        digest.update(label.encode() + b"\0" + code + b"\0")
    return digest.hexdigest()


def _object_digest(obj: Any) -> str:
    try:
        text = inspect.getsource(obj)
    except (OSError, TypeError):
        return _UNREADABLE
    return hashlib.sha256(text.encode()).hexdigest()


def plugin_sources(spec: Any = None) -> dict[str, str]:
    """``{package or object: SHA-256}`` for the plugins registered now and the gymnasium env
    ``spec``'s world names (see the module docstring); empty where only metaxm's own are."""
    out: dict[str, str] = {}
    modules = [(getattr(obj, "__module__", None), obj) for obj in _registered()]
    modules.append((_gym_module(spec), None))
    for module, obj in modules:
        if not isinstance(module, str) or _own(module):
            continue
        top = module.split(".")[0]
        digest = _package_digest(top) if top != "__main__" else ""
        if digest:
            out[top] = digest
        elif obj is not None:
            name = getattr(obj, "__qualname__", type(obj).__name__)
            out[f"{module}.{name}"] = _object_digest(obj)
    return dict(sorted(out.items()))
