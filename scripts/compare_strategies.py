#!/usr/bin/env python
"""Two strategies of one evaluation report side by side: their paired difference per modality.

    python scripts/compare_strategies.py runs/selffit-eval/report/report.json selffit zeroshot

For every held-out modality both were measured on (a strategy that does not read a family is
not: the report's ``unread``) and every budget k >= 1, the per-seed difference A - B of the
report's metric (the two curves of a seed share its measurement seeds, so they are paired),
its interquartile mean over seeds and a 95% percentile-bootstrap interval
(:func:`metaxm.evaluate.metrics.iqm_interval`); and the same for the mean over the budgets
k >= 1. "above" means the whole interval is above 0. Prints a markdown table; ``--json FILE``
also saves the numbers.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from metaxm.evaluate.metrics import iqm_interval


def compare(report: dict, a: str, b: str) -> dict[str, dict]:
    """``{modality: {"k": [...], "by_k": [Interval dict], "mean": Interval dict}}``."""
    metric = report["metric"]
    out = {}
    for name, entry in report["modalities"].items():
        strategies = entry["strategies"]
        missing = [s for s in (a, b) if s not in strategies]
        if missing and name in report.get("unread", {}):
            continue  # a family one of them does not read: not compared there
        if missing:
            raise ValueError(f"{name}: the report has no {' or '.join(missing)} curve")
        budgets = strategies[a]["budgets"]
        if strategies[b]["budgets"] != budgets:
            raise ValueError(f"{name}: {a} and {b} were measured at different budgets")
        diff = np.asarray(strategies[a]["curves"][metric], float) - np.asarray(
            strategies[b]["curves"][metric], float
        )  # (seeds, budgets)
        later = [i for i, k in enumerate(budgets) if k >= 1]
        out[name] = {
            "k": [budgets[i] for i in later],
            "by_k": [iqm_interval(diff[:, i], seed=i).to_dict() for i in later],
            "mean": iqm_interval(diff[:, later].mean(1)).to_dict(),
        }
    return out


def table(result: dict[str, dict], a: str, b: str) -> str:
    ks = next(iter(result.values()))["k"]
    head = f"| modality | {' | '.join(f'k={k}' for k in ks)} | mean over k >= 1 | {a} above {b} |"
    lines = [head, "|" + "---|" * (len(ks) + 3)]

    def cell(iv: dict) -> str:
        return f"{iv['point']:+.2f} [{iv['low']:+.2f}, {iv['high']:+.2f}]"

    for name, r in result.items():
        above = "yes" if r["mean"]["low"] > 0 else "no"
        lines.append(
            f"| {name} | {' | '.join(cell(iv) for iv in r['by_k'])} | {cell(r['mean'])} | {above} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", help="an evaluation's report.json")
    parser.add_argument("a", help="the strategy measured")
    parser.add_argument("b", help="the strategy it is measured against")
    parser.add_argument("--json", help="also save the numbers to this file")
    args = parser.parse_args()
    try:
        report = json.loads(Path(args.report).read_text())
        result = compare(report, args.a, args.b)
    except (OSError, ValueError, KeyError) as err:
        print(f"compare_strategies: error: {err}", file=sys.stderr)
        return 2
    print(f"{args.a} - {args.b}, {report['metric']}: IQM over seeds [95% bootstrap interval]\n")
    print(table(result, args.a, args.b))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
