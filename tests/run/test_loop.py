"""The run loop with a scripted trainer: log windows, the NaN guard, run-directory rules."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor

from metaxm.errors import ConfigError, DivergenceError
from metaxm.run import loop
from metaxm.run.checkpoint import list_checkpoints, load_checkpoint
from metaxm.run.loop import MetricWindow, Trainer
from metaxm.spec import Spec, spec_from_dict


class ScriptedTrainer:
    """100 env steps and 2 episodes per update; a NaN in ``bad_metric`` or ``bad_param`` at
    update ``fail_at``."""

    def __init__(self, fail_at: int = 0, bad: str = "metric") -> None:
        self.env_steps = 0
        self.episodes = 0
        self.updates = 0
        self.fail_at = fail_at
        self.bad = bad
        self.weight = torch.nn.Parameter(torch.zeros(3))

    def update(self) -> dict[str, float]:
        self.updates += 1
        self.env_steps += 100
        self.episodes += 2
        loss = 1.0 / self.updates
        if self.updates == self.fail_at and self.bad == "metric":
            loss = float("nan")
        if self.updates == self.fail_at and self.bad == "param":
            with torch.no_grad():
                self.weight[1] = float("inf")
        return {"episodes": 2.0, "return": float(self.updates), "success": 0.5, "loss": loss}

    def state_dict(self) -> dict[str, Any]:
        return {"weight": self.weight.detach().clone(), "counters": [self.env_steps, self.updates]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.weight.data.copy_(state["weight"])
        self.env_steps, self.updates = state["counters"]

    def named_parameters(self) -> Iterator[tuple[str, Tensor]]:
        yield "weight", self.weight


def _spec(**train: Any) -> Spec:
    cfg = {"total_steps": 1000, "checkpoint_interval": 2, "log_interval": 1, "keep_checkpoints": 0}
    return spec_from_dict(
        {"train": {**cfg, **train}, "log": {"mode": "disabled", "progress": False}}
    )


def _use(monkeypatch: pytest.MonkeyPatch, trainer: ScriptedTrainer) -> None:
    monkeypatch.setattr(loop, "make_trainer", lambda spec: trainer)


def test_scripted_trainer_satisfies_the_protocol() -> None:
    assert isinstance(ScriptedTrainer(), Trainer)


def test_metric_window_weights_episode_stats_by_episodes() -> None:
    w = MetricWindow()
    w.add({"episodes": 1.0, "return": 10.0, "loss": 1.0, "episodes/a": 1.0, "return/a": 10.0})
    w.add({"episodes": 3.0, "return": 2.0, "loss": 3.0, "episodes/a": 0.0})
    w.add({"episodes": 0.0, "loss": 5.0})
    assert w.flush() == {"return": 4.0, "loss": 3.0, "return/a": 10.0}
    assert w.flush() == {}


def test_log_window_and_checkpoints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _use(monkeypatch, ScriptedTrainer())
    result = loop.train(_spec(log_interval=2, checkpoint_interval=4), tmp_path / "run")
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["update"] for r in lines] == [2, 4, 6, 8, 10]
    assert lines[0] == {"step": 200, "update": 2, "episodes": 4, "return": 1.5, "success": 0.5,
                        "loss": 0.75}  # fmt: skip
    assert [p.name for p in list_checkpoints(tmp_path / "run")] == [
        "ckpt-00000004.pt", "ckpt-00000008.pt", "ckpt-00000010.pt",
    ]  # fmt: skip
    assert result.env_steps == 1000 and result.updates == 10
    assert (tmp_path / "run" / "curve.png").stat().st_size > 1000


@pytest.mark.parametrize("bad", ["metric", "param"])
def test_nan_guard_names_step_and_quantity_and_keeps_good_checkpoints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bad: str
) -> None:
    _use(monkeypatch, ScriptedTrainer(fail_at=5, bad=bad))
    quantity = "loss is nan" if bad == "metric" else "parameter weight holds NaN or inf"
    with pytest.raises(DivergenceError, match=rf"update 5 \(env step 500\): {quantity}"):
        loop.train(_spec(), tmp_path / "run")
    ckpts = list_checkpoints(tmp_path / "run")
    assert [p.name for p in ckpts] == ["ckpt-00000002.pt", "ckpt-00000004.pt"]
    state = load_checkpoint(ckpts[-1])
    assert torch.isfinite(state["trainer"]["weight"]).all()
    assert state["loop"]["update"] == 4
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 4


def test_rundir_rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _use(monkeypatch, ScriptedTrainer())
    loop.train(_spec(total_steps=200), tmp_path / "run")
    with pytest.raises(
        ConfigError, match=r"already holds a run; pass --resume \(resume=True from Python\)"
    ):
        loop.train(_spec(total_steps=200), tmp_path / "run")
    with pytest.raises(ConfigError, match=r"first difference at train\.total_steps"):
        loop.train(_spec(total_steps=400), tmp_path / "run", resume=True)
    with pytest.raises(ConfigError, match="holds no run"):
        loop.train(_spec(), tmp_path / "empty", resume=True)


def test_resuming_a_finished_run_trains_nothing_and_keeps_its_throughput(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _use(monkeypatch, ScriptedTrainer())
    first = loop.train(_spec(total_steps=200), tmp_path / "run")
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert first.trained and summary["sps"] > 0
    _use(monkeypatch, ScriptedTrainer())
    again = loop.train(_spec(total_steps=200), tmp_path / "run", resume=True)
    assert not again.trained and again.env_steps == 200 and again.updates == first.updates
    assert (again.sps, again.cpu_sps) == (summary["sps"], summary["cpu_sps"])
    assert json.loads((tmp_path / "run" / "summary.json").read_text()) == summary
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 2


def test_a_resume_keeps_the_records_around_an_edited_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An unreadable line inside ``metrics.jsonl`` (an edit: a kill tears only the last line)
    is dropped with a warning; the records after it used to be dropped silently with it."""
    from metaxm.run.logger import _truncate_jsonl

    path = tmp_path / "metrics.jsonl"
    records = [json.dumps({"update": u, "step": 8 * u}) for u in range(1, 6)]
    path.write_text("\n".join([*records[:2], "{garbage", *records[2:], '{"update": 6, "st']) + "\n")
    with caplog.at_level("WARNING"):
        _truncate_jsonl(path, 4)
    assert path.read_text().splitlines() == records[:4]
    assert [r.getMessage().split(": ", 1)[1] for r in caplog.records] == [
        "line 3 is not a record; dropped, the rest kept"
    ]  # the torn last line goes without a word


def test_plotting_leaves_the_callers_matplotlib_backend_alone(tmp_path: Path) -> None:
    """The run, MAML, alignment and report plots called ``matplotlib.use("Agg")``, so in a
    notebook ``plt.show()`` showed nothing after ``metaxm.train``: they draw on Figure objects
    now, never through pyplot."""
    import subprocess
    import sys

    (tmp_path / "metrics.jsonl").write_text(
        "".join(json.dumps({"step": 8 * u, "update": u, "return": 0.1 * u}) + "\n" for u in (1, 2))
    )
    probe = (
        "import matplotlib; matplotlib.use('svg')\n"
        "from metaxm.run.curve import plot_learning_curve\n"
        "import metaxm.evaluate.report, metaxm.align.plot, metaxm.meta.maml_trainer\n"
        f"assert plot_learning_curve({str(tmp_path)!r}).is_file()\n"
        "print(matplotlib.get_backend())"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "svg"
