"""``make results`` jobs for the README's headline runs: the main job's transfer report, MAML
on PointNav and on sines, the cross-modal alignment, PPO from scratch and the instruction
encoders."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from studies.results.page import METAXM, ROOT, RUNS, header, rel, reusing, run, study_page


def main_job() -> Path:
    out = RUNS / "main"
    command = ["metaxm", "main", "tasks/gridnav.yaml", "--out", str(out.relative_to(ROOT))]
    seconds = run(METAXM + command[1:])
    report = (out / "report" / "report.md").read_text()
    body = report.split("\n", 1)[1].lstrip("\n")  # drop the report's own title
    page = ROOT / "docs" / "main-report.md"
    page.write_text(header("Transfer report", " ".join(command), seconds) + body)
    return page


def maml_pointnav() -> Path:
    out = RUNS / "maml-pointnav"
    command = ["metaxm", "train", "tasks/maml-pointnav.yaml", "--out", str(out.relative_to(ROOT))]
    seconds = run(METAXM + reusing(command)[1:])
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    last = rows[-10:]
    pre = sum(r["pre_return"] for r in last) / len(last)
    post = sum(r["post_return"] for r in last) / len(last)
    page = ROOT / "docs" / "results" / "maml-pointnav.md"
    page.parent.mkdir(exist_ok=True)
    page.write_text(
        header("MAML on PointNav", " ".join(command), seconds)
        + "| meta-iterations | env steps | pre-adaptation return | post-adaptation return |\n"
        + "|---|---|---|---|\n"
        + f"| last 10 of {len(rows)} (training log) | {rows[-1]['step']:,} | {pre:.1f} | "
        + f"**{post:.1f}** |\n\npytorch-maml-rl's MAML-TRPO reaches about -16 post-adaptation "
        + "after ~50 iterations (its README's figure); `docs/maml.md` has the set-up.\n"
    )
    return page


def sine() -> Path:
    sys.path.insert(0, str(ROOT / "examples"))
    from sine_maml import main as sine_main

    start = time.perf_counter()
    result = sine_main(iterations=2000, seed=0, progress=False)
    seconds = time.perf_counter() - start
    steps = (0, 1, 10)
    lines = ["| query MSE after steps | " + " | ".join(map(str, steps)) + " |", "|---|---|---|---|"]
    for name, values in result.items():
        lines.append(f"| {name} | " + " | ".join(f"{v:.3f}" for v in values) + " |")
    page = ROOT / "docs" / "results" / "sine-maml.md"
    page.parent.mkdir(exist_ok=True)
    command = "python examples/sine_maml.py --iterations 2000"
    page.write_text(header("MAML sine regression", command, seconds) + "\n".join(lines) + "\n")
    return page


def alignment() -> Path:
    out = RUNS / "align-gridnav"

    def headline() -> str:
        ev = json.loads((out / "representation.json").read_text())
        return (
            f"retrieval top-1, worst pair of training families: **{ev['top1_min']:.3f}**; "
            f"linear probe R^2, worst family: **{ev['probe_r2_min']:.3f}**."
        )

    command = ["metaxm", "pretrain", "tasks/gridnav.yaml", "--out", rel(out)]
    return study_page("alignment", "Cross-modal alignment", [command], headline)


def ppo_baseline() -> Path:
    families = ("vector", "pixels", "text")
    commands = [
        ["metaxm", "train", "tasks/ppo-gridnav.yaml", "--set", f"modalities.train={{{f}: 1}}",
         "--out", rel(RUNS / f"ppo-gridnav-{f}")]
        for f in families
    ]  # fmt: skip

    def headline() -> str:
        cells = []
        for f in families:
            ev = json.loads((RUNS / f"ppo-gridnav-{f}" / "eval.json").read_text())
            cells.append(f"{f} {ev['success']:.2f}")
        return "PPO from scratch, success of the deterministic policy: " + ", ".join(cells) + "."

    return study_page("ppo-baseline", "PPO from scratch", commands, headline)


def language() -> Path:
    out = RUNS / "lang-paraphrases"
    command = ["python", "scripts/lang_paraphrases.py", "tasks/lang-ppo.yaml", "--seeds", "0",
               "1", "2", "3", "4", "--out", rel(out)]  # fmt: skip

    def headline() -> str:
        rows = json.loads((out / "paraphrases.json").read_text())
        cells = []
        for encoder in dict.fromkeys(r["encoder"] for r in rows):
            mine = [r for r in rows if r["encoder"] == encoder]
            train = sum(r["train"]["success"] for r in mine) / len(mine)
            held = sum(r["heldout"]["success"] for r in mine) / len(mine)
            cells.append(f"{encoder} {train:.3f} -> **{held:.3f}**")
        return (
            "success on the training paraphrases -> on held-out ones, mean of "
            f"{len(rows) // max(len(cells), 1)} seeds: " + ", ".join(cells) + "."
        )

    return study_page("language", "Instruction encoders on held-out paraphrases", [command],
                      headline)  # fmt: skip
