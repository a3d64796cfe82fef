#!/usr/bin/env python
"""Few-shot adaptation of a trained agent to one modality: the calls behind ``metaxm adapt``.

    python scripts/adapt_fewshot.py runs/main --modality audio:7 --strategy align \
        --budgets 0 1 2 4 8
"""

from __future__ import annotations

import argparse
import json
import sys

from metaxm.errors import CheckpointError, ConfigError, MetaxmError
from metaxm.evaluate.loading import load_agents
from metaxm.evaluate.strategies import STRATEGIES
from metaxm.modalities import parse_modality_id


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs", help="a run directory, checkpoint, or folder of ppo/maml/rl2 runs")
    parser.add_argument("--modality", required=True, help="FAMILY:VARIANT")
    parser.add_argument("--strategy", required=True, choices=sorted(STRATEGIES))
    parser.add_argument(
        "--budgets", type=int, nargs="+", default=[0, 1, 2, 4, 8],
        help="episodes of the modality at which the curve is measured (default: 0 1 2 4 8)",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="seeds it all (default: 0)")
    args = parser.parse_args()
    try:
        agents = load_agents(args.runs)  # first: its saved spec imports a plugin's families
        family, variant = parse_modality_id(args.modality)
        strategy = STRATEGIES[args.strategy]
        if not strategy.applicable(agents):
            raise ConfigError(f"{args.strategy} needs a trained {strategy.needs} agent")
        curve = strategy.curve(agents, family, variant, sorted(set(args.budgets)), args.seed)
    except (MetaxmError, ValueError) as err:
        print(f"adapt_fewshot: error: {err}", file=sys.stderr)
        return 2 if isinstance(err, (ConfigError, CheckpointError, ValueError)) else 1
    budgets = sorted(set(args.budgets))
    result = {"modality": args.modality, "strategy": args.strategy, "budgets": budgets, **curve}
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
