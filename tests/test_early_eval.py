"""The main job's evaluation begun beside its last stages gives the report it gives alone."""

from __future__ import annotations

import json
from multiprocessing.connection import wait
from pathlib import Path

import pytest
import yaml

from metaxm.cli import main
from tests.test_pipeline import SIDE_BY_SIDE

STRATEGIES = ["zeroshot", "maml", "rl2", "finetune"]
SPEC = {
    **SIDE_BY_SIDE,
    "evaluate": {**SIDE_BY_SIDE["evaluate"], "strategies": STRATEGIES},
    "main": {**SIDE_BY_SIDE["main"], "evaluate": True},
}


def _curves(report: dict) -> dict:
    """Every curve of a report, without the wall-clock seconds."""
    return {
        (mid, name): {k: v for k, v in record.items() if k != "seconds"}
        for mid, m in report["modalities"].items()
        for name, record in m["strategies"].items()
    }


@pytest.fixture(scope="module")
def jobs(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """The main job on one worker and on two (where the evaluation may begin beside rl2)."""
    root = tmp_path_factory.mktemp("early")
    outs = {}
    for workers in (1, 2):
        spec = root / f"spec{workers}.yaml"
        spec.write_text(
            yaml.safe_dump({**SPEC, "main": {**SPEC["main"], "workers": workers}}, sort_keys=False)
        )
        outs[workers] = root / f"out{workers}"
        assert main(["main", str(spec), "--out", str(outs[workers])]) == 0
    return outs


def test_two_workers_report_what_one_reports(jobs: dict[int, Path]) -> None:
    one, two = (json.loads((o / "report" / "report.json").read_text()) for o in jobs.values())
    assert _curves(one) == _curves(two) and len(_curves(one)) == 5  # scratch too


def test_curves_measured_early_are_the_evaluation_s_own(jobs: dict[int, Path]) -> None:
    """Measured from the finished ppo and maml runs in a spawned process, every curve of theirs
    is the one the evaluation measures itself, and the evaluation measures only the rest."""
    from metaxm.evaluate.loading import load_agents
    from metaxm.evaluate.runner import run_evaluation
    from metaxm.run.early_eval import EarlyEvaluation
    from metaxm.spec import load_spec

    out = jobs[2]
    spec = load_spec(out.parent / "spec2.yaml")
    early = EarlyEvaluation(spec, out)
    assert early.start({"ppo", "maml"}).startswith("evaluate: measuring the curves of ppo, maml")
    while early.running:
        wait([early.conn], timeout=60)
        early.receive()
    measured = early.stop()
    assert {name for _, name, _, _ in measured} == {"zeroshot", "maml", "finetune", "scratch"}
    fresh: list[tuple] = []
    report = run_evaluation(
        load_agents(out, spec), measured=measured, workers=1,
        on_curve=lambda r: fresh.append((r["strategy"], r["seconds"])),
    )  # fmt: skip
    alone = json.loads((jobs[1] / "report" / "report.json").read_text())
    assert _curves(report) == _curves(alone)
    assert {name for name, seconds in fresh if seconds not in [s for c, s in measured.values()]} \
        == {"rl2"}  # fmt: skip


def test_an_early_evaluation_stops_after_the_job_in_hand(jobs: dict[int, Path]) -> None:
    from metaxm.run.early_eval import EarlyEvaluation
    from metaxm.spec import load_spec

    out = jobs[2]
    early = EarlyEvaluation(load_spec(out.parent / "spec2.yaml"), out)
    assert early.start(set()) is None  # no finished run to measure with
    early.start({"ppo"})
    measured = early.stop()  # at once: at most the job in hand
    assert len(measured) <= 1 and not early.process.is_alive()
    assert {name for _, name, _, _ in measured} <= {"zeroshot", "finetune", "scratch"}


def test_a_main_job_killed_in_its_evaluation_keeps_the_curves_it_saved(jobs) -> None:
    """Rerun after a kill before the report (report.json missing), the job takes back the
    curves its log holds and measures the rest; after a finished one it measures them all."""
    out = jobs[1]
    folder = out / "report"
    whole = json.loads((folder / "report.json").read_text())
    lines = (folder / "curves.jsonl").read_text().splitlines()
    (folder / "curves.jsonl").write_text("\n".join(lines[:4]) + "\n")  # 3 curves saved
    (folder / "report.json").unlink()
    spec = str(out.parent / "spec1.yaml")
    assert main(["main", spec, "--out", str(out)]) == 0
    again = (folder / "curves.jsonl").read_text().splitlines()
    assert again[:4] == lines[:4] and len(again) == len(lines)
    assert _curves(json.loads((folder / "report.json").read_text())) == _curves(whole)
    assert main(["main", spec, "--out", str(out)]) == 0  # a finished evaluation: all anew
    fresh = (folder / "curves.jsonl").read_text().splitlines()
    assert fresh[0] == lines[0] and fresh[1:4] != lines[1:4]
