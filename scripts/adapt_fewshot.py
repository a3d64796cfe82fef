#!/usr/bin/env python
"""Few-shot adaptation of a trained agent to one modality: the calls behind ``metaxm adapt``.

    python scripts/adapt_fewshot.py runs/main --modality audio:7 --strategy align \
        --budgets 0 1 2 4 8
"""

from __future__ import annotations

import argparse
import json
import sys

from metaxm.errors import ConfigError, MetaxmError
from metaxm.evaluate.loading import load_agents
from metaxm.evaluate.strategies import STRATEGIES
from metaxm.modalities import parse_modality_id


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", help="a run directory, checkpoint, or folder of ppo/maml/rl2 runs")
    parser.add_argument("--modality", required=True, help="FAMILY:VARIANT")
    parser.add_argument("--strategy", required=True, choices=sorted(STRATEGIES))
    parser.add_argument("--budgets", type=int, nargs="+", default=[0, 1, 2, 4, 8])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    try:
        family, variant = parse_modality_id(args.modality)
        agents = load_agents(args.runs)
        strategy = STRATEGIES[args.strategy]
        if not strategy.applicable(agents):
            raise ConfigError(f"{args.strategy} needs a trained {strategy.needs} agent")
        curve = strategy.curve(agents, family, variant, sorted(set(args.budgets)), args.seed)
    except (MetaxmError, ValueError) as err:
        print(f"adapt_fewshot: error: {err}", file=sys.stderr)
        return 2 if isinstance(err, (ConfigError, ValueError)) else 1
    print(json.dumps({"modality": args.modality, "strategy": args.strategy, **curve}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
