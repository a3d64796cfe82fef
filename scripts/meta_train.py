#!/usr/bin/env python
"""Meta-train on a task spec: the library calls behind ``metaxm train``.

python scripts/meta_train.py tasks/gridnav.yaml --algo maml --out runs/maml
"""

from __future__ import annotations

import argparse
import sys

from metaxm.build import TRAINERS
from metaxm.errors import CheckpointError, ConfigError, MetaxmError
from metaxm.run.loop import train
from metaxm.spec import load_spec


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("spec", help="task spec YAML")
    parser.add_argument("--algo", choices=list(TRAINERS), help="override the spec's algo")
    parser.add_argument("--out", required=True, help="the run directory")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="override a spec value, repeatable (e.g. train.total_steps=100000)",
    )  # fmt: skip
    parser.add_argument("--resume", action="store_true", help="continue the run in --out")
    args = parser.parse_args()
    overrides = args.set + ([f"algo={args.algo}"] if args.algo else [])
    try:
        result = train(load_spec(args.spec, overrides), args.out, resume=args.resume)
    except MetaxmError as err:
        print(f"meta_train: error: {err}", file=sys.stderr)
        return 2 if isinstance(err, (ConfigError, CheckpointError)) else 1  # the CLI's statuses
    print(f"{result.rundir}: {result.env_steps:,} env steps at {result.sps:,.0f} steps/s")
    shown = {k: v for k, v in result.last.items() if not isinstance(v, (dict, list))}
    print(
        "last log record: "
        + ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in shown.items()
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
