"""``make results`` jobs for the benchmarks: ``metaxm bench maml``, ``envs`` and ``sensory``."""

from __future__ import annotations

import json
from pathlib import Path

from studies.results.page import RUNS, rel, study_page


def bench_maml() -> Path:
    out = RUNS / "bench-maml.json"
    RUNS.mkdir(parents=True, exist_ok=True)

    def headline() -> str:
        d = json.loads(out.read_text())
        cases = ", ".join(
            f"{c['case']} {c['speedup_vs_higher']:.1f}x ({c['path']})" for c in d["cases"]
        )
        return (
            "metaxm's meta-gradient (the path each case's spec runs) vs `higher`: primary case "
            f"**{d['speedup_vs_higher']:.1f}x**; {cases}; largest gradient difference "
            f"{d['max_abs_grad_diff']:.1e} (the primary case's path vs `higher`)."
        )

    command = ["metaxm", "bench", "maml", "--json", rel(out)]
    return study_page("bench-maml", "MAML meta-gradient speed", [command], headline)


def bench_envs() -> Path:
    out = RUNS / "bench-envs.json"
    RUNS.mkdir(parents=True, exist_ok=True)

    def headline() -> str:
        rows = json.loads(out.read_text())
        top = max(r["batch"] for r in rows)
        ratios = [r["ratio"] for r in rows if r["batch"] == top]
        return (
            f"batched worlds vs gymnasium's `SyncVectorEnv` at {top:,} environments, every world x "
            f"family: **{min(ratios):,.0f}x to {max(ratios):,.0f}x** the steps/s."
        )

    command = ["metaxm", "bench", "envs", "--quick", "--json", rel(out)]
    return study_page("bench-envs", "Batched worlds speed", [command], headline, shown_lines=None)


def bench_sensory() -> Path:
    out = RUNS / "bench-sensory.json"
    RUNS.mkdir(parents=True, exist_ok=True)

    def headline() -> str:
        rows = json.loads(out.read_text())["cases"]
        cells = [f"{r['case']} **{r['cost_cpu']:.2f}x**" for r in rows]
        return (
            "what the sensory encoder costs in RL^2 training, MLP-encoder steps/s over "
            "sensory-encoder steps/s in CPU time (target <= 3x): " + ", ".join(cells) + "."
        )

    command = ["metaxm", "bench", "sensory", "--json", rel(out)]
    return study_page("bench-sensory", "Sensory encoder speed", [command], headline)
