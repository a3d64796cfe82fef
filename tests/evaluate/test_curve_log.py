"""A killed evaluation resumed from its ``curves.jsonl`` gives the report a whole one gives, and
a log of another evaluation (other settings, or a plugin's code edited since) is never taken
back (:mod:`metaxm.evaluate.curve_log`)."""

from __future__ import annotations

import importlib
import json
import logging
import sys
from pathlib import Path

import pytest

from metaxm.cli import main
from metaxm.evaluate.curve_log import differences
from metaxm.modalities.base import FAMILIES
from metaxm.run.loop import train
from metaxm.spec import spec_from_dict
from tests.test_pipeline import TINY
from tests.test_plugin_source import RENDER, write_plugin

SPEC = {**TINY, "seed": 3, "evaluate": {**TINY["evaluate"], "seeds": 3}}
"""The pipeline tests' tiny spec, with three seeds per curve."""


def _curves(folder: Path) -> dict:
    report = json.loads((folder / "report.json").read_text())
    return {
        (mid, name): {k: v for k, v in record.items() if k != "seconds"}
        for mid, m in report["modalities"].items()
        for name, record in m["strategies"].items()
    }


def _records(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "curves.jsonl").read_text().splitlines()[1:]]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("curve_log")
    train(spec_from_dict(SPEC), root / "ppo")
    assert main(["evaluate", str(root), "--out", str(root / "whole")]) == 0
    return root


def test_a_resumed_evaluation_measures_only_what_the_killed_one_left(run: Path, capsys) -> None:
    whole = run / "whole"
    killed = run / "killed"
    killed.mkdir()
    lines = (whole / "curves.jsonl").read_text().splitlines()
    assert len(lines) == 1 + 3 * 3  # the fingerprint, then strategies x seeds
    torn = lines[3][: len(lines[3]) // 2]  # the kill tore the third curve's line
    (killed / "curves.jsonl").write_text("\n".join([*lines[:3], torn]) + "\n")
    assert main(["evaluate", str(run), "--out", str(killed), "--resume"]) == 0
    assert f"resumed: 2 of 9 curves taken back ({killed})" in capsys.readouterr().out
    assert _curves(killed) == _curves(whole)
    kept, again = _records(killed)[:2], _records(killed)[2:]
    assert kept == _records(whole)[:2]  # taken back, their seconds too
    assert len(again) == 7 and all(r["seconds"] > 0 for r in again)  # measured anew


def test_a_log_of_another_evaluation_is_not_taken_back(run: Path, caplog) -> None:
    other = run / "other"
    assert main(["evaluate", str(run), "--out", str(other), "--seeds", "2"]) == 0
    before = _records(other)
    with caplog.at_level(logging.WARNING):
        assert main(["evaluate", str(run), "--out", str(other), "--resume"]) == 0
    assert "not resuming from" in caplog.text
    assert "its curves were measured with other jobs or budgets" in caplog.text
    assert len(before) == 3 * 2 and len(_records(other)) == 3 * 3
    assert _curves(other) == _curves(run / "whole")


def test_without_resume_the_log_starts_over(run: Path) -> None:
    again = run / "again"
    again.mkdir()
    (again / "curves.jsonl").write_text((run / "whole" / "curves.jsonl").read_text())
    assert main(["evaluate", str(run), "--out", str(again)]) == 0
    seconds = [[r["seconds"] for r in _records(f)] for f in (again, run / "whole")]
    assert seconds[0] != seconds[1]  # every curve measured anew
    assert _curves(again) == _curves(run / "whole")


def test_a_plugin_edited_since_the_log_was_written_is_measured_again(run: Path, caplog) -> None:
    """A registered plugin is in the fingerprint: taken back while its code is unchanged,
    measured anew once it is edited (its family need not be one the evaluation reads)."""
    code = run / "plugin_code"
    code.mkdir()
    write_plugin(code, "curvelog_plugin", "curvelogplug")
    sys.path.insert(0, str(code))
    try:
        importlib.import_module("curvelog_plugin")
        folder = run / "plugin"
        assert main(["evaluate", str(run), "--out", str(folder)]) == 0
        first = _records(folder)
        assert main(["evaluate", str(run), "--out", str(folder), "--resume"]) == 0
        assert _records(folder) == first  # the same code: every curve taken back
        (code / "curvelog_plugin" / "render.py").write_text(RENDER.format(tail=" * 2.0"))
        with caplog.at_level(logging.WARNING):
            assert main(["evaluate", str(run), "--out", str(folder), "--resume"]) == 0
        assert "measured with other plugin or env code (curvelog_plugin)" in caplog.text
        again = _records(folder)
        assert len(again) == len(first)
        assert all(a["seconds"] != b["seconds"] for a, b in zip(again, first, strict=True))
        assert _curves(folder) == _curves(run / "whole")
    finally:
        FAMILIES.pop("curvelogplug", None)
        for name in [m for m in sys.modules if m.split(".")[0] == "curvelog_plugin"]:
            del sys.modules[name]
        sys.path.remove(str(code))


def test_the_warning_names_what_differs() -> None:
    now = {"spec": "a", "jobs": "b", "checkpoints": "c", "source": "d", "plugins": {"p": "1"}}
    assert differences(now, now) == ""
    assert differences(None, now) == ""  # an older log kept no parts: nothing to name
    other = {**now, "spec": "x", "checkpoints": "y", "plugins": {"p": "2", "q": "3"}}
    assert differences(other, now) == (
        "settings (the spec), checkpoints, plugin or env code (p, q)"
    )
    assert differences({**now, "plugins": {}}, now) == "plugin or env code (p)"
