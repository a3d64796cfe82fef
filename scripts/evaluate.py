#!/usr/bin/env python
"""The transfer report of trained runs: the library calls behind ``metaxm evaluate``.

python scripts/evaluate.py runs/main --seeds 5 --out runs/main/report
python scripts/evaluate.py runs/main --modality vector:100 --out runs/main/validation
python scripts/evaluate.py runs/main --add-family audio --out runs/main/audio --resume
"""

from __future__ import annotations

import argparse
import sys

from metaxm.errors import CheckpointError, ConfigError, MetaxmError
from metaxm.evaluate.loading import add_family, load_agents
from metaxm.evaluate.report import write_report
from metaxm.evaluate.runner import run_evaluation, validation_modalities
from metaxm.spec import load_spec


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs", help="a run directory, or a folder of ppo/maml/rl2 runs")
    parser.add_argument("--spec", help="evaluate under this spec (default: the runs' own)")
    parser.add_argument("--seeds", type=int, help="seeds per curve (default: evaluate.seeds)")
    parser.add_argument(
        "--strategy", action="append", dest="strategies", metavar="NAME",
        help="a strategy to measure, repeatable (default: evaluate.strategies)",
    )  # fmt: skip
    parser.add_argument(
        "--modality", action="append", dest="modalities", metavar="FAMILY:VARIANT",
        help="a validation variant outside every split instead of the held-out ones (repeatable)",
    )  # fmt: skip
    parser.add_argument(
        "--add-family", action="append", dest="families", metavar="FAMILY", default=[],
        help="a family the agents were trained without, measured as a held-out one (repeatable)",
    )  # fmt: skip
    parser.add_argument("--resume", action="store_true", help="keep --out's measured curves")
    parser.add_argument("--out", required=True, help="report folder")
    args = parser.parse_args()
    try:
        agents = load_agents(args.runs, load_spec(args.spec) if args.spec else None)
        for family in args.families:
            add_family(agents, family, seed=agents.spec.seed)  # a fresh encoder in every agent
        chosen = validation_modalities(agents, args.modalities) if args.modalities else None
        report = run_evaluation(
            agents, args.strategies, seeds=args.seeds, modalities=chosen,
            report_dir=args.out, resume=args.resume,  # every curve saved as it is measured
        )  # fmt: skip
    except MetaxmError as err:
        print(f"evaluate: error: {err}", file=sys.stderr)
        return 2 if isinstance(err, (ConfigError, CheckpointError)) else 1  # the CLI's statuses
    paths = write_report(report, args.out)
    print(report["headline"]["text"])
    print(f"report: {paths['md']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
