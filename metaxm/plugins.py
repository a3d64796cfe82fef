"""Plugins: a user's own worlds, modality families and strategies, seen by every command.

A world or family is registered by running ``register_world(...)`` or ``register(...)``; a
plugin is any module that does so when imported. metaxm imports plugins in two ways:

* **``imports:`` in a spec**: ``imports: [my_pkg.worlds]`` names modules to import before the
  rest of the spec is checked, so its ``world.name`` and families may be the plugin's. The list
  is part of the spec, so ``config.yaml`` and every checkpoint carry it and ``evaluate``,
  ``adapt`` and ``--resume`` import the same modules.
* **the ``metaxm.plugins`` entry-point group** of an installed package::

      [project.entry-points."metaxm.plugins"]
      linenav = "metaxm_linenav"            # a module, imported
      # or: linenav = "metaxm_linenav:register"   (a function, called)

  Every command loads them at start (``metaxm ...``, ``python -m metaxm``, ``torchrun -m
  metaxm``), and so does :func:`metaxm.spec.spec_from_dict` for library users.

A plugin that fails to import is a one-line :class:`~metaxm.errors.ConfigError` naming it.
``examples/linenav`` is a worked plugin package.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import re
from collections.abc import Iterable

from metaxm.errors import ConfigError

GROUP = "metaxm.plugins"
MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
HOW_TO_REGISTER = (
    "register yours in a module named in the spec's imports: list or in a metaxm.plugins "
    "entry point (see docs/plugins.md)"
)

_loaded: list[str] | None = None


SKIP_ENV = "METAXM_NO_PLUGINS"
"""Set (to anything but 0) to load no installed plugin: a broken one then stops nothing."""


def load_plugins() -> list[str]:
    """Import (or call) every ``metaxm.plugins`` entry point once; their names.

    Raises:
        ConfigError: a plugin failed to load (one line naming it and the error).
    """
    global _loaded
    if _loaded is not None:
        return _loaded
    names: list[str] = []
    if os.environ.get(SKIP_ENV, "") not in ("", "0"):  # a broken plugin must not lock one out
        _loaded = names
        return names
    for ep in sorted(importlib.metadata.entry_points(group=GROUP), key=lambda e: e.name):
        try:
            target = ep.load()
            if callable(target):
                target()
        except Exception as err:  # noqa: BLE001 (any failure of user code is one line)
            raise ConfigError(
                f"plugin {ep.name!r} ({ep.value}, entry point group {GROUP}) failed to load: "
                f"{type(err).__name__}: {_first_line(err)} (uninstall or fix it; {SKIP_ENV}=1 "
                "runs metaxm without installed plugins)"
            ) from None
        names.append(ep.name)
    _loaded = names
    return names


def import_modules(modules: Iterable[object], key: str = "imports") -> None:
    """Import the modules a spec names (``imports:``); one-line errors naming the module."""
    if isinstance(modules, (str, bytes)) or not isinstance(modules, (list, tuple)):
        raise ConfigError(f"{key}: expected a list of module names, got {modules!r}")
    for i, name in enumerate(modules):
        if not isinstance(name, str) or not MODULE.match(name):
            raise ConfigError(f"{key}[{i}]: {name!r} is not a module name (e.g. my_pkg.worlds)")
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as err:
            raise ConfigError(
                f"{key}: cannot import {name!r} ({_first_line(err)}); is it installed, or on "
                "PYTHONPATH?"
            ) from None
        except Exception as err:  # noqa: BLE001 (any failure of user code is one line)
            raise ConfigError(
                f"{key}: importing {name!r} failed: {type(err).__name__}: {_first_line(err)}"
            ) from None


def load_in_child(imports: Iterable[str]) -> None:
    """In a spawned process (an evaluation worker, a main job's stage or early evaluation):
    load what its parent had loaded, the entry points and the spec's ``imports:``, so that a
    family or world a plugin registers is there too (a spawned interpreter starts with
    metaxm's own only). The parent has checked and imported these modules already."""
    load_plugins()
    import_modules(list(imports))


def import_saved(modules: Iterable[object], key: str = "imports") -> None:
    """:func:`import_modules` for a spec saved in a run or checkpoint (anyone's file): a module
    not yet imported is imported only if it is not found in the current folder itself, since a
    module dropped into the folder a command runs from (``python -m`` puts it on ``sys.path``)
    is anyone's code. Below it is the user's choice: a folder on ``PYTHONPATH`` (a source
    checkout's plugin), an in-tree virtualenv's site-packages. Install such a plugin (a
    ``metaxm.plugins`` entry point) instead.

    Raises:
        ConfigError: a module found in the current folder, or one that cannot be imported.
    """
    if isinstance(modules, (list, tuple)):
        for name in modules:
            if isinstance(name, str) and MODULE.match(name):
                refuse_current_folder(name, f"{key}: the saved spec imports {name!r}")
    import_modules(modules, key)


def refuse_saved_env(world: object) -> None:
    """:func:`refuse_current_folder` for the module of a saved spec's ``world.env_id`` written
    ``module:Id``, which gymnasium imports when the env is made."""
    env_id = world.get("env_id") if isinstance(world, dict) else None
    module = env_id.partition(":")[0] if isinstance(env_id, str) and ":" in env_id else ""
    if MODULE.match(module):
        refuse_current_folder(
            module, f"world.env_id: the saved spec's {env_id!r} imports {module!r}"
        )


def refuse_current_folder(name: str, what: str) -> None:
    """Refuse module ``name`` of a saved spec (``what`` says where it names it) if it is not
    imported yet and is found in the current folder itself (see :func:`import_saved`); it is
    located, not imported.

    Raises:
        ConfigError: it is found there.
    """
    import importlib.util
    import sys
    from pathlib import Path

    if name in sys.modules:
        return
    here = Path.cwd().resolve()
    top = name.split(".")[0]
    try:
        found = importlib.util.find_spec(top)  # locates; runs nothing of a top level
    except (ImportError, ValueError):
        found = None
    # the folders it is found in (the sys.path entry that finds it), the last link not
    # followed: a link in the current folder to a module below it is in the folder
    places = []
    if found is not None and found.submodule_search_locations:  # a package
        places = [Path(p) for p in found.submodule_search_locations]
    elif found is not None and found.has_location and found.origin:  # a module file
        places = [Path(found.origin)]
    for place in places:
        if place.parent.resolve() == here:  # below it: a path the user set
            raise ConfigError(
                f"{what}, found in the current folder ({place}); a saved run's imports are "
                "not run from there (they could be anyone's code): install the plugin, or "
                "run from another folder"
            )


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return (text[0] if text else type(err).__name__)[:200]
