"""`metaxm bench sensory`: both encoders timed on the same spec, the record and the cost ratio."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from metaxm import cli
from metaxm.bench import sensory as bench


def test_bench_sensory_times_both_encoders_and_writes_the_cost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    tiny = {
        k: {**v, "ppo": {"num_steps": 4}, "train": {"num_envs": 2}} for k, v in bench.CASES.items()
    }
    monkeypatch.setattr(bench, "CASES", tiny)
    out = tmp_path / "sensory.json"
    assert cli.main(["bench", "sensory", "--quick", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["target"] == bench.COST_TARGET
    rows = {r["case"]: r for r in data["cases"]}
    assert set(rows) == {"gridnav", "cartpole"}
    # GridNav 7 x 7: 4 state features + 4 noise channels as vector, 32 sensors as projected
    assert rows["gridnav"]["channels"] == {"vector": 8, "projected": 32}
    assert rows["gridnav"]["steps_per_update"] == 2 * 4 * 2
    for r in rows.values():
        assert r["family_steps_per_s"] > 0 and r["sensory_steps_per_s"] > 0
        assert r["cost"] == pytest.approx(r["family_steps_per_s"] / r["sensory_steps_per_s"])
        assert r["threads"] == 1 and r["repeats"] == 3
    printed = capsys.readouterr().out
    assert "MLP vs sensory encoder" in printed and "cost" in printed


def test_an_unknown_case_is_refused() -> None:
    with pytest.raises(ValueError, match="no sensory bench case 'pong'"):
        bench.bench_sensory(cases=["pong"])


def test_the_cartpole_case_measures_the_task_files_agent() -> None:
    """The bench copies ``tasks/sensory-cartpole.yaml``'s set-up by hand; this keeps them one."""
    from metaxm.spec import load_spec

    task = load_spec(Path(__file__).parents[2] / "tasks" / "sensory-cartpole.yaml")
    case = bench._spec("cartpole", "sensory")
    assert case.agent == task.agent
    assert case.world == task.world
    assert (case.ppo.num_steps, case.train.num_envs) == (task.ppo.num_steps, task.train.num_envs)


def test_the_gridnav_case_measures_the_task_files_agent() -> None:
    """The same for ``tasks/sensory-gridnav.yaml``: its agent, world, probes and PPO."""
    from metaxm.spec import load_spec

    task = load_spec(Path(__file__).parents[2] / "tasks" / "sensory-gridnav.yaml")
    case = bench._spec("gridnav", "sensory")
    assert case.agent == task.agent
    assert case.world == task.world
    assert case.rl2 == task.rl2
    assert case.ppo == task.ppo
    assert case.modalities.train == task.modalities.train
    assert case.train.num_envs == task.train.num_envs
