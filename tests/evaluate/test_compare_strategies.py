"""`scripts/compare_strategies.py`: paired per-seed differences of two strategies' curves."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _report() -> dict:
    budgets = [0, 1, 2]
    better = [[0.1, 0.5, 0.6], [0.2, 0.6, 0.7], [0.1, 0.4, 0.5], [0.0, 0.5, 0.6]]
    flat = [[0.1] * 3, [0.2] * 3, [0.1] * 3, [0.0] * 3]
    return {
        "metric": "success",
        "modalities": {
            "vector:7": {
                "strategies": {
                    "selffit": {"budgets": budgets, "curves": {"success": better}},
                    "zeroshot": {"budgets": budgets, "curves": {"success": flat}},
                }
            },
            "audio:3": {  # the same curves: no difference, an interval at 0
                "strategies": {
                    "selffit": {"budgets": budgets, "curves": {"success": flat}},
                    "zeroshot": {"budgets": budgets, "curves": {"success": flat}},
                }
            },
        },
    }


def test_differences_are_paired_by_seed_and_intervals_decide_above(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    path.write_text(json.dumps(_report()))
    out = tmp_path / "cmp.json"
    cmd = [sys.executable, str(ROOT / "scripts/compare_strategies.py"), str(path)]
    done = subprocess.run([*cmd, "selffit", "zeroshot", "--json", str(out)],
                          capture_output=True, text=True, check=True)  # fmt: skip
    result = json.loads(out.read_text())
    vec = result["vector:7"]
    assert vec["k"] == [1, 2]
    # per seed k=1: 0.4, 0.4, 0.3, 0.5 -> IQM (middle two) 0.4; k=2: 0.5, 0.5, 0.4, 0.6 -> 0.5
    assert abs(vec["by_k"][0]["point"] - 0.4) < 1e-9 and abs(vec["by_k"][1]["point"] - 0.5) < 1e-9
    assert vec["mean"]["low"] > 0
    assert result["audio:3"]["mean"] == {"point": 0.0, "low": 0.0, "high": 0.0}
    rows = {line.split(" | ")[0]: line for line in done.stdout.splitlines() if "|" in line}
    assert rows["| vector:7"].endswith("| yes |") and rows["| audio:3"].endswith("| no |")
    missing = subprocess.run([*cmd, "selffit", "maml"], capture_output=True, text=True)
    assert missing.returncode == 2
    assert missing.stderr.strip().endswith("the report has no maml curve")
