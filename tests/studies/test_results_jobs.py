"""``make results`` (``scripts/results.py`` and ``studies.results``): the job list, the page a
job writes, and its refusals."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

import studies.results.page as page
from studies.results import JOBS
from studies.results.goal_reading import ring_lines


def test_every_job_is_documented_in_the_script(load_script):
    doc = load_script("results").__doc__
    bullets = re.findall(r"^\* ((?:``[a-z0-9-]+``(?:, )?)+):", doc, flags=re.M)
    documented = {name for bullet in bullets for name in re.findall(r"``([a-z0-9-]+)``", bullet)}
    assert documented == set(JOBS)


def test_reusing_resumes_a_run_that_is_there_and_nothing_else(tmp_path):
    train = ["metaxm", "train", "spec.yaml", "--out", str(tmp_path / "run")]
    assert page.reusing(train) == train
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.yaml").write_text("seed: 0\n")
    assert page.reusing(train) == [*train, "--resume"]
    assert page.reusing([*train, "--resume"]) == [*train, "--resume"]
    evaluate = ["metaxm", "evaluate", str(tmp_path / "run"), "--out", str(tmp_path / "run")]
    assert page.reusing(evaluate) == evaluate


def test_study_page_names_commands_commit_headline_and_output_tail(tmp_path, monkeypatch):
    ran = []

    def captured(argv):
        ran.append(argv)
        return "".join(f"line {i}\n" for i in range(50)), 2.0

    (tmp_path / "docs").mkdir()
    monkeypatch.setattr(page, "ROOT", tmp_path)
    monkeypatch.setattr(page, "captured", captured)
    monkeypatch.setitem(page.STAMP, "commit", "abc1234")
    written = page.study_page(
        "demo", "A demo", [["python", "scripts/a.py"], ["metaxm", "bench", "envs"]], lambda: "HEAD"
    )
    assert written == tmp_path / "docs" / "results" / "demo.md"
    text = written.read_text()
    assert text.startswith("# A demo\n")
    assert "`python scripts/a.py && metaxm bench envs`" in text
    assert "commit abc1234, 4 s wall-clock" in text
    assert "\nHEAD\n" in text
    assert "line 10\n" in text and "line 9\n" not in text  # the last 40 lines of the last output
    assert ran == [
        [sys.executable, "scripts/a.py"],
        [sys.executable, "-m", "metaxm", "bench", "envs"],
    ]


def test_jobs_that_need_the_main_job_refuse_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(page, "RUNS", tmp_path)
    with pytest.raises(SystemExit, match=r"^selfread: run the main job first \(--only main\)"):
        page.need_main("selfread", "it reads with its agent")
    job = tmp_path / "study"
    with pytest.raises(SystemExit, match="run the main job first"):
        page.beside_main(job, "study", "it is compared with its agents")
    assert not job.exists()


def test_goal_gain_lines_read_the_scripts_json(tmp_path: Path) -> None:
    row = {
        "by_episode": [0.5, 0.75],
        "by_ring": {"0": [1.0, 4], "2": [0.25, 8]},
        "ring_by_episode": {"0": [1.0, 1.0], "2": [0.0, 0.5]},
        "failed_cells": 12.5,
    }
    perfect = {**row, "failed_cells": None}
    (tmp_path / "a.json").write_text(json.dumps({"vector": row, "projected": perfect}))
    lines = ring_lines([("goal gain 2", tmp_path / "a.json")])
    assert lines[0] == (
        "- vector, goal gain 2: 0.50-0.75 over the trial; by the goal's ring (0 the centre, 3 the "
        "border) 0: 1.00, 2: 0.25; ring 2 over the trial 0.00 / 0.50; a failed episode stood on "
        "12.5 distinct cells"
    )
    assert lines[1].startswith("- projected, goal gain 2:")
    assert lines[1].endswith("no episode failed")


def test_family_out_cells_read_the_reports_curves() -> None:
    from studies.results.family_out import curve
    from studies.results.rl2_stage import family_mean

    def entry(family: str, curves: list[list[float]]) -> dict:
        iqm = [sum(c[j] for c in curves) / len(curves) for j in range(len(curves[0]))]
        return {
            "family": family,
            "strategies": {
                "maml": {"curves": {"success": curves}, "iqm": {"success": {"point": iqm}}}
            },
        }

    report = {"modalities": {
        "vector:7": entry("vector", [[0.0, 1.0]]),
        "vector:100": entry("vector", [[0.5, 0.5], [0.25, 1.0]]),
        "projected:100": entry("projected", [[1.0, 1.0]]),
    }}  # fmt: skip
    assert curve(report, "vector:7", "maml") == "0.00 / 1.00"
    assert curve(report, "vector:7", "selffit") == "not measured"
    assert family_mean(report, "vector", "maml", skip="vector:7") == "0.38 / 0.75"
    assert family_mean(report, "vector", "maml") == "0.25 / 0.83"
    assert family_mean(report, "text", "maml") == "not measured"
