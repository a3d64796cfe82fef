"""What an evaluation's fingerprint hashes of the plugins in use
(:func:`metaxm.plugin_source.plugin_sources`): the package a registered object comes from, read
anew on every call; a notebook's code by its source; a ``gym`` world's env."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from metaxm.modalities.base import FAMILIES
from metaxm.plugin_source import _UNREADABLE, _object_digest, plugin_sources
from metaxm.spec import spec_from_dict

PLUGIN = """
import gymnasium as gym
import torch
from metaxm.modalities import register
from {package}.render import render

register("{family}", render, gym.spaces.Box(-1.0, 1.0, (4,)))
"""
RENDER = """
def render(scene, params, generator):
    return scene.features{tail}
"""


def write_plugin(root: Path, package: str, family: str, tail: str = "") -> None:
    """A plugin package in ``root``: a family whose render lives in a second module."""
    (root / package).mkdir(exist_ok=True)
    (root / package / "__init__.py").write_text(PLUGIN.format(package=package, family=family))
    (root / package / "render.py").write_text(RENDER.format(tail=tail))


@pytest.fixture
def plugin(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """``plugsrc_pkg`` imported from ``tmp_path`` (registering family ``plugsrc``); removed
    from the registry and ``sys.modules`` after the test."""
    write_plugin(tmp_path, "plugsrc_pkg", "plugsrc")
    sys.path.insert(0, str(tmp_path))
    importlib.import_module("plugsrc_pkg")
    yield tmp_path, "plugsrc_pkg"
    FAMILIES.pop("plugsrc", None)
    for name in [m for m in sys.modules if m.split(".")[0] == "plugsrc_pkg"]:
        del sys.modules[name]
    sys.path.remove(str(tmp_path))


def test_a_registered_plugin_is_hashed_by_its_package_and_an_edit_changes_it(plugin) -> None:
    root, package = plugin
    before = plugin_sources()
    assert package in before and len(before[package]) == 64
    assert plugin_sources() == before  # stable while the code is
    # an edit of a module the registered function does not live in still counts: the package's
    (root / package / "render.py").write_text(RENDER.format(tail=" * 1.0"))
    after = plugin_sources()
    assert after[package] != before[package]
    assert {k: v for k, v in after.items() if k != package} == {
        k: v for k, v in before.items() if k != package
    }
    FAMILIES.pop("plugsrc")
    assert package not in plugin_sources()


def test_metaxm_own_registrations_are_not_plugins() -> None:
    assert not any(k == "metaxm" or k.startswith("metaxm.") for k in plugin_sources())


def test_code_without_a_file_is_hashed_by_its_source_or_never_matches() -> None:
    def render(scene, params, generator):  # a notebook's function: its source is found
        return scene.features

    assert _object_digest(render) == _object_digest(render) != _UNREADABLE
    namespace: dict = {}
    exec("def render(scene, params, generator):\n    return scene.features\n", namespace)
    assert _object_digest(namespace["render"]) == _UNREADABLE  # no source: this process only


def test_a_gym_world_hashes_the_package_of_its_env() -> None:
    spec = spec_from_dict(
        {"world": {"name": "gym", "env_id": "CartPole-v1"}, "modalities": {"train": {"vector": 1}}}
    )
    assert "gymnasium" in plugin_sources(spec)
    assert "gymnasium" not in plugin_sources()
