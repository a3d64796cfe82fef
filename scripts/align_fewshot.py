#!/usr/bin/env python
"""The few-shot alignment study on a pretraining run (studies.align_fewshot).

Aligns each held-out family's variants with K paired steps (several K allowed) and reports
retrieval and probe R^2 into RUNDIR/fewshot.json and RUNDIR/fewshot_pca.png:

python scripts/align_fewshot.py tasks/gridnav.yaml runs/align-gridnav --budgets 16 64 256
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the studies package

from metaxm.spec import load_spec  # noqa: E402
from studies.align_fewshot import format_study, run_study  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec", help="the task spec the run was pretrained with")
    parser.add_argument("rundir", help="the pretraining run (metaxm pretrain --out RUNDIR)")
    parser.add_argument("--budgets", nargs="+", type=int, default=[16, 64, 256], metavar="K")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="K=V")
    args = parser.parse_args(argv)
    spec = load_spec(args.spec, args.overrides)
    study = run_study(spec, Path(args.rundir), [0, *args.budgets])
    print(format_study(study))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
