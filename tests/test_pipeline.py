"""The main job on a tiny spec: every run trains, the evaluation reports, a rerun continues."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from metaxm.cli import main
from metaxm.config import ConfigError
from metaxm.spec import spec_from_dict

TINY = {
    "seed": 2,
    "world": {"name": "gridnav", "size": 4, "horizon": 8},
    "modalities": {"train": {"vector": 2}, "heldout_variants": {"vector": 1}},
    "ppo": {"num_steps": 8, "update_epochs": 1, "num_minibatches": 1},
    "train": {"total_steps": 128, "num_envs": 8, "checkpoint_interval": 0, "eval_episodes": 0},
    "log": {"mode": "disabled", "progress": False},
    "evaluate": {
        "seeds": 2,
        "budgets": [0, 1],
        "scratch_cap": 2,
        "eval_episodes": 4,
        "strategies": ["zeroshot", "finetune"],
    },
    "main": {"runs": {"ppo": {"train.total_steps": 256}}, "render": True},
}


def test_main_job_trains_evaluates_and_continues(tmp_path: Path, capsys) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(TINY))
    out = tmp_path / "out"
    assert main(["main", str(spec), "--out", str(out)]) == 0
    assert (out / "render.png").read_bytes()[:4] == b"\x89PNG"
    summary = json.loads((out / "ppo" / "summary.json").read_text())
    assert summary["env_steps"] == 256  # the run's own override of train.total_steps
    report = json.loads((out / "report" / "report.json").read_text())
    assert report["strategies"] == ["zeroshot", "finetune", "scratch"]
    seconds = json.loads((out / "main.json").read_text())["seconds"]
    assert set(seconds) >= {"render", "ppo", "evaluate", "total"}
    capsys.readouterr()
    assert main(["main", str(spec), "--out", str(out)]) == 0
    assert "ppo: finished run kept" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("runs", "message"),
    [
        ({"dqn": {}}, "main: runs.dqn: run names are ppo, maml or rl2"),
        ({"ppo": {"algo": "maml"}}, "main: runs.ppo: algo must be 'ppo'"),
    ],
)
def test_main_section_errors(runs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        spec_from_dict({**TINY, "main": {"runs": runs}})


def test_a_bad_run_override_fails_before_any_work(tmp_path: Path, capsys) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({**TINY, "main": {"runs": {"ppo": {"ppo.lrr": 1}}}}))
    assert main(["main", str(spec), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "main.runs.ppo: unknown key 'ppo.lrr'" in err
    assert not (tmp_path / "out" / "render.png").exists()


def test_out_in_a_run_override_is_the_output_folder() -> None:
    from metaxm.pipeline import run_spec

    spec = spec_from_dict({**TINY, "main": {"runs": {"ppo": {}, "rl2": {
        "train.init_from": "{out}/ppo", "train.total_steps": 64}}}})  # fmt: skip
    rl2 = run_spec(spec, "rl2", "/data/job")
    assert rl2.algo == "rl2" and rl2.train.init_from == "/data/job/ppo"
    assert rl2.train.total_steps == 64 and run_spec(spec, "ppo", "x").train.init_from is None
