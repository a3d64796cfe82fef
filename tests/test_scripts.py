"""The scripts the README names for people who prefer scripts (``scripts/meta_train.py``,
``scripts/evaluate.py``, ``scripts/adapt_fewshot.py``), run as a user runs them: a tiny run
trained, evaluated and adapted, and a bad path's one-line error with the CLI's status 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from tests.test_pipeline import TINY

ROOT = Path(__file__).resolve().parents[1]


def _script(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(ROOT / "scripts" / f"{name}.py"), *args]
    return subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_the_scripts_train_evaluate_and_adapt(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(TINY))
    run = tmp_path / "run"
    done = _script("meta_train", str(spec), "--algo", "ppo", "--out", str(run))
    assert done.returncode == 0, done.stderr
    assert f"{run}: 128 env steps" in done.stdout and "last log record: step=128" in done.stdout

    out = tmp_path / "report"
    done = _script(
        "evaluate", str(run), "--strategy", "zeroshot", "--seeds", "1", "--out", str(out)
    )
    assert done.returncode == 0, done.stderr
    assert json.loads((out / "report.json").read_text())["strategies"] == ["zeroshot", "scratch"]

    validation = tmp_path / "validation"
    done = _script("evaluate", str(run), "--strategy", "zeroshot", "--seeds", "1",
                   "--modality", "vector:100", "--out", str(validation))  # fmt: skip
    assert done.returncode == 0, done.stderr
    measured = json.loads((validation / "report.json").read_text())["modalities"]
    assert list(measured) == ["vector:100"] and (validation / "curves.jsonl").is_file()

    held = next(iter(json.loads((out / "report.json").read_text())["modalities"]))
    done = _script("adapt_fewshot", str(run), "--modality", held, "--strategy", "zeroshot",
                   "--budgets", "0", "1")  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["budgets"] == [0, 1] and len(result["success"]) == 2

    done = _script("adapt_fewshot", str(tmp_path / "none"), "--modality", held, "--strategy",
                   "zeroshot")  # fmt: skip
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "no such checkpoint" in done.stderr
