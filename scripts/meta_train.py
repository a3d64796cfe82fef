#!/usr/bin/env python
"""Meta-train on a task spec: the library calls behind ``metaxm train``.

python scripts/meta_train.py tasks/gridnav.yaml --algo maml --out runs/maml
"""

from __future__ import annotations

import argparse
import sys

from metaxm.errors import ConfigError, MetaxmError
from metaxm.run.loop import train
from metaxm.spec import load_spec


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec", help="task spec YAML")
    parser.add_argument("--algo", choices=["ppo", "maml", "rl2"], help="override the spec's algo")
    parser.add_argument("--out", required=True, help="the run directory")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out")
    args = parser.parse_args()
    overrides = args.set + ([f"algo={args.algo}"] if args.algo else [])
    try:
        result = train(load_spec(args.spec, overrides), args.out, resume=args.resume)
    except MetaxmError as err:
        print(f"meta_train: error: {err}", file=sys.stderr)
        return 2 if isinstance(err, ConfigError) else 1
    print(f"{result.rundir}: {result.env_steps:,} env steps at {result.sps:,.0f} steps/s")
    print(f"last log record: {result.last}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
