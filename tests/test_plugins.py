"""Plugins (:mod:`metaxm.plugins`): the worked package ``examples/linenav`` installed and run
through the plain CLI, a spec's ``imports:``, and one-line errors for missing or broken ones."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from metaxm.cli import main

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "linenav"
SPEC = EXAMPLE / "linenav.yaml"
SHORT = ["--set", "train.total_steps=1024", "--set", "train.eval_episodes=8"]


def _metaxm(
    args: list[str], pythonpath: Path, cwd: Path, **extra: str
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(pythonpath), "OMP_NUM_THREADS": "1", **extra}
    cmd = [sys.executable, "-m", "metaxm", *args]
    return subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``examples/linenav`` installed by pip into a folder of its own (its entry points live in
    its ``.dist-info`` there, as in any site-packages)."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
         "--no-index", "--target", str(target), str(EXAMPLE)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    assert list(target.glob("metaxm_linenav-*.dist-info"))
    return target


def test_an_installed_plugin_trains_and_evaluates_through_the_plain_cli(
    installed: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    done = _metaxm(["train", str(SPEC), "--out", str(run), *SHORT], installed, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "oracle" in done.stdout
    report = tmp_path / "report"
    args = ["evaluate", str(run), "--out", str(report), "--strategy", "zeroshot"]
    done = _metaxm(args, installed, tmp_path)
    assert done.returncode == 0, done.stderr
    data = json.loads((report / "report.json").read_text())
    families = {m["family"] for m in data["modalities"].values()}
    assert "thermometer" in families  # the plugin's family, held out


def test_without_the_plugin_the_error_says_how_to_register_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", str(SPEC), "--out", str(tmp_path / "r"), "--check"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown world 'linenav'" in err
    assert "imports: list or in a metaxm.plugins entry point" in err
    assert not (tmp_path / "r").exists()


def test_a_spec_can_import_the_plugin_from_a_source_checkout(tmp_path: Path) -> None:
    args = ["train", str(SPEC), "--out", str(tmp_path / "r"), "--check"]
    done = _metaxm([*args, "--set", "imports=[metaxm_linenav]"], EXAMPLE, tmp_path)
    assert done.returncode == 0, done.stderr
    done = _metaxm([*args, "--set", "imports=[metaxm_nowhere]"], EXAMPLE, tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "metaxm train: error: imports: cannot import 'metaxm_nowhere' (No module named "
        "'metaxm_nowhere'); is it installed, or on PYTHONPATH?"
    )


def test_a_broken_plugin_is_one_line_naming_it(tmp_path: Path) -> None:
    site = tmp_path / "site"
    info = site / "broken_plugin-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[metaxm.plugins]\nbroken = broken_plugin\n")
    (site / "broken_plugin.py").write_text("raise RuntimeError('no licence file found')\n")
    done = _metaxm(["render", "--help"], site, tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "metaxm: error: plugin 'broken' (broken_plugin, entry point group metaxm.plugins) "
        "failed to load: RuntimeError: no licence file found (uninstall or fix it; "
        "METAXM_NO_PLUGINS=1 runs metaxm without installed plugins)"
    )
    # and that way out works: help, and any command, run without it
    done = _metaxm(["render", "--help"], site, tmp_path, METAXM_NO_PLUGINS="1")
    assert done.returncode == 0 and "usage: metaxm render" in done.stdout


@pytest.mark.slow
def test_torchrun_sees_an_installed_plugin(installed: Path, tmp_path: Path) -> None:
    """``torchrun -m metaxm train`` on the plugin's world: every rank loads the entry point
    (two ranks share out the spec's two training families)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
           f"--master_port={port}", "-m", "metaxm", "train", str(SPEC), "--out", str(run),
           *SHORT]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(installed), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("run: ") == 1  # rank 0 reports
    assert (run / "summary.json").exists()


def test_a_saved_runs_imports_are_not_run_from_the_current_folder(tmp_path: Path) -> None:
    """A run folder could come with a module beside it that its spec imports: evaluating it
    from there must not run that module (``python -m`` puts the current folder on the path)."""
    marker = tmp_path / "PAYLOAD_RAN"
    (tmp_path / "plug.py").write_text(f"import pathlib\npathlib.Path({str(marker)!r}).touch()\n")
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "imports: [plug]\nworld: {name: gridnav, size: 4, horizon: 8}\n"
        "modalities: {train: {vector: 1}, heldout_variants: {vector: 1}}\n"
        "train: {total_steps: 256, num_envs: 8, eval_episodes: 0}\n"
        "ppo: {num_steps: 16, update_epochs: 1, num_minibatches: 1}\n"
        "log: {mode: disabled, progress: false}\n"
    )
    done = _metaxm(["train", "spec.yaml", "--out", "run"], tmp_path, tmp_path)
    assert done.returncode == 0, done.stderr  # the user's own spec: its imports are run
    marker.unlink()
    for argv in (["evaluate", "run"], ["adapt", "run", "--modality", "vector:1",
                                      "--strategy", "zeroshot"]):  # fmt: skip
        done = _metaxm(argv, tmp_path, tmp_path)
        assert done.returncode == 2
        assert done.stderr.count("\n") == 1 and "found in the current folder" in done.stderr
        assert not marker.exists()
    # below the current folder, on a path the user set (a source checkout's plugin, an in-tree
    # .venv's site-packages), it is the user's own: imported; but not through a link in the
    # folder itself
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plug.py").rename(tmp_path / "plugins" / "plug.py")
    (tmp_path / "plug.py").symlink_to(tmp_path / "plugins" / "plug.py")
    done = _metaxm(["evaluate", "run"], tmp_path, tmp_path)
    assert done.returncode == 2 and "found in the current folder" in done.stderr
    assert not marker.exists()
    (tmp_path / "plug.py").unlink()
    argv = ["adapt", "run", "--modality", "vector:1", "--strategy", "zeroshot", "--out", "a"]
    done = _metaxm(argv, tmp_path / "plugins", tmp_path)
    assert done.returncode == 0, done.stderr
    assert marker.exists()


def test_a_family_a_spec_imports_reaches_every_spawned_process(tmp_path: Path) -> None:
    """``main.workers: 2`` trains the stage in a spawned process and ``evaluate.workers: 2``
    measures in spawned workers: each imports the spec's ``imports:``, as the parent did,
    so a family only a plugin registers is there (a spawned interpreter has metaxm's own);
    and ``metaxm adapt`` checks ``--modality`` after the saved spec's imports are run."""
    import yaml

    from tests.test_pipeline import TINY
    from tests.test_plugin_source import write_plugin

    code = tmp_path / "code"
    code.mkdir()
    write_plugin(code, "spawned_plugin", "spawnfam")
    spec = {
        **TINY,
        "imports": ["spawned_plugin"],
        "modalities": {"train": {"vector": 1, "spawnfam": 1}, "heldout_variants": {"spawnfam": 1}},
        "evaluate": {**TINY["evaluate"], "workers": 2, "strategies": ["zeroshot"]},
        "main": {"runs": {"ppo": {}}, "render": False, "workers": 2},
    }
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    sys.path.insert(0, str(code))
    try:
        assert main(["main", str(path), "--out", str(tmp_path / "out")]) == 0
    finally:
        from metaxm.modalities.base import FAMILIES

        FAMILIES.pop("spawnfam", None)
        for name in [m for m in sys.modules if m.split(".")[0] == "spawned_plugin"]:
            del sys.modules[name]
        sys.path.remove(str(code))
    report = json.loads((tmp_path / "out" / "report" / "report.json").read_text())
    assert [m.split(":")[0] for m in report["modalities"]] == ["spawnfam"]
    assert report["workers"] == 2  # measured in spawned workers
    # a fresh interpreter: adapt knows the family once the run's saved spec has imported it
    argv = ["adapt", str(tmp_path / "out" / "ppo"), "--modality", "spawnfam:7", "--strategy",
            "zeroshot", "--episodes", "0", "--out", str(tmp_path / "adapt.json")]  # fmt: skip
    done = _metaxm(argv, code, tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "adapt.json").read_text())["modality"] == "spawnfam:7"


CORRIDOR = """
import gymnasium as gym
import numpy as np
import pathlib

pathlib.Path({marker!r}).touch()


class Corridor(gym.Env):
    observation_space = gym.spaces.Box(0.0, 3.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos, self.goal = 0, 3
        return np.array([self.pos, self.goal], np.float32), {{}}

    def step(self, action):
        self.pos = min(max(self.pos + (1 if int(action) else -1), 0), 3)
        done = self.pos == self.goal
        return np.array([self.pos, self.goal], np.float32), float(done), done, False, {{}}


gym.register("MetaxmTestCorridor-v0", entry_point=Corridor, max_episode_steps=8)
"""


def test_a_saved_runs_gym_env_module_is_checked_like_its_imports(tmp_path: Path) -> None:
    """``world.env_id: module:Id`` makes gymnasium import ``module``: a saved run's is not
    imported from the current folder (one line, nothing run), and one that cannot be imported
    at all is one line too, never a traceback."""
    marker = tmp_path / "ENV_MODULE_RAN"
    code = tmp_path / "code"
    code.mkdir()
    (code / "corridor_env.py").write_text(CORRIDOR.format(marker=str(marker)))
    (code / "spec.yaml").write_text(
        "world: {name: gym, env_id: 'corridor_env:MetaxmTestCorridor-v0'}\n"
        "modalities: {train: {vector: 1}, heldout_variants: {vector: 1}}\n"
        "train: {total_steps: 256, num_envs: 4, eval_episodes: 0}\n"
        "ppo: {num_steps: 16, update_epochs: 1, num_minibatches: 1}\n"
        "log: {mode: disabled, progress: false}\n"
    )
    done = _metaxm(["train", "spec.yaml", "--out", str(tmp_path / "run")], code, code)
    assert done.returncode == 0, done.stderr  # the user's own spec, from their own folder
    marker.unlink()
    adapt = ["adapt", str(tmp_path / "run"), "--modality", "vector:1", "--strategy", "zeroshot",
             "--episodes", "0", "--out", str(tmp_path / "a.json")]  # fmt: skip
    for argv in (["evaluate", str(tmp_path / "run")], adapt):
        done = _metaxm(argv, code, code)  # the saved run, from the folder holding the module
        assert done.returncode == 2
        assert done.stderr.count("\n") == 1 and "found in the current folder" in done.stderr
        assert not marker.exists()
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir(exist_ok=True)
        done = _metaxm(argv, elsewhere, elsewhere)  # the module nowhere on the path
        assert done.returncode == 2
        assert done.stderr.count("\n") == 1 and "No module named 'corridor_env'" in done.stderr
    done = _metaxm(adapt, code, tmp_path)  # on PYTHONPATH, from another folder: run
    assert done.returncode == 0, done.stderr
    assert marker.exists()


def test_a_family_whose_render_does_not_fit_its_space_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A plugin's family rendering (B, 4) under a space of (12,): ``train --check`` said the
    spec was fine, and training failed in its first update with a 74-line traceback
    (``mat1 and mat2 shapes cannot be multiplied``)."""
    import gymnasium as gym
    import torch
    import yaml

    from metaxm.modalities import FAMILIES, register

    register(
        "wrongshape",
        lambda scene, params, generator: torch.zeros(scene.batch_size, 4),
        gym.spaces.Box(-1.0, 1.0, (12,)),
    )
    try:
        spec = tmp_path / "spec.yaml"
        spec.write_text(yaml.safe_dump({
            "world": {"name": "gridnav", "size": 4, "horizon": 8},
            "modalities": {"train": {"vector": 1, "wrongshape": 1}},
            "log": {"mode": "disabled", "progress": False},
        }))  # fmt: skip
        out = tmp_path / "run"
        assert main(["train", str(spec), "--out", str(out), "--check"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "'wrongshape' renders observations of shape (4,)" in err
        assert "its observation_space says (12,)" in err and not out.exists()
        register("wrongshape", _raise, gym.spaces.Box(-1.0, 1.0, (12,)), overwrite=True)
        assert main(["train", str(spec), "--out", str(out), "--check"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1
        assert "'wrongshape' failed to render one observation: KeyError: 'colour'" in err
    finally:
        del FAMILIES["wrongshape"]


def _raise(scene: object, params: object, generator: object) -> None:
    raise KeyError("colour")


def test_a_world_whose_features_leave_minus_one_to_one_is_refused() -> None:
    """The families render from ``scene.features`` in [-1, 1]; a plugin world returning them
    five times larger passed ``--check`` and trained on saturated renders."""
    import dataclasses

    from metaxm.errors import ConfigError
    from metaxm.resources import _check_renders, build_world
    from metaxm.spec import spec_from_dict

    spec = spec_from_dict({"world": {"name": "pointnav"}, "modalities": {"train": {"vector": 1}}})
    world = build_world(spec)
    _check_renders(spec, world)  # as it is: fine
    scene = world.scene
    world.scene = lambda: dataclasses.replace(scene(), features=5 * scene().features)
    with pytest.raises(ConfigError, match=r"world pointnav: its scene's features reach [\d.]+ at"):
        _check_renders(spec, world)
