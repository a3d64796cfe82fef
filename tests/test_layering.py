"""The config layer is a leaf: importing the spec loads no algorithm code (and not torch), and
building a spec loads only the worlds and modality families it names, never a trainer."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

LEAF = {
    "metaxm",
    "metaxm.errors",
    "metaxm.gym_ids",
    "metaxm.plugins",
    "metaxm.spec",
    "metaxm.yaml_io",
}
"""Besides ``metaxm.config`` and its section modules, all that ``import metaxm.spec`` may load."""

ALGORITHMS = ("metaxm.meta", "metaxm.rl", "metaxm.nn", "metaxm.align", "metaxm.run")
"""Packages of algorithm code: a spec never needs them."""


def loaded_after(code: str) -> tuple[list[str], bool]:
    """The ``metaxm`` modules loaded, and whether torch was, after ``code`` in a fresh
    interpreter."""
    probe = (
        f"import json, sys\n{code}\n"
        "print(json.dumps([sorted(m for m in sys.modules if m.startswith('metaxm')),"
        " 'torch' in sys.modules]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    modules, torch_loaded = json.loads(out.strip().splitlines()[-1])
    return modules, torch_loaded


def is_config(name: str) -> bool:
    return name == "metaxm.config" or name.startswith("metaxm.config.")


def test_importing_the_spec_loads_only_the_config_layer() -> None:
    modules, torch_loaded = loaded_after("import metaxm.spec")
    extra = [m for m in modules if not is_config(m) and m not in LEAF]
    assert extra == []
    assert "metaxm.config.ppo" in modules  # the sections come from the config layer
    assert not torch_loaded


def test_building_a_spec_loads_worlds_and_families_but_no_algorithm() -> None:
    modules, _ = loaded_after(
        "from metaxm.config import load_yaml\n"
        "from metaxm.spec import spec_from_dict\n"
        "spec = spec_from_dict(load_yaml('tasks/gridnav.yaml'))\n"
        "assert spec.world.name == 'gridnav'"
    )
    algorithms = [m for m in modules if m.startswith(ALGORITHMS) or m == "metaxm.pipeline"]
    assert algorithms == []
    assert "metaxm.envs.gridnav" in modules and "metaxm.modalities.pixels" in modules


def test_building_a_ppo_trainer_imports_no_other_trainer() -> None:
    modules, _ = loaded_after(
        "from metaxm.build import make_trainer\n"
        "from metaxm.config import load_yaml\n"
        "from metaxm.spec import spec_from_dict\n"
        "data = load_yaml('tasks/gridnav.yaml')\n"
        "data['modalities'] = {'train': {'vector': 1}}\n"
        "data['train'] = {'num_envs': 2, 'total_steps': 256}\n"
        "make_trainer(spec_from_dict(data))"
    )
    assert "metaxm.rl.trainer" in modules
    for other in (
        "metaxm.meta.maml_trainer", "metaxm.meta.rl2", "metaxm.align.metafit_trainer",
        "metaxm.align.selffit_trainer",
    ):  # fmt: skip
        assert other not in modules


def test_dir_offers_the_lazy_api_without_importing_it() -> None:
    """``dir(metaxm)`` was ``['annotations', 'gym_ids']``: tab completion offered nothing."""
    modules, torch_loaded = loaded_after(
        "import metaxm, metaxm.meta\n"
        "assert {'MAML', 'RL2', 'make_env', 'AdaptedPolicy'} <= set(dir(metaxm)), dir(metaxm)\n"
        "assert {'MAML', 'MetaSGD'} <= set(dir(metaxm.meta))"
    )
    assert not torch_loaded and "metaxm.learners" not in modules
