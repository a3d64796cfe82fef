#!/usr/bin/env python
"""In-context adaptation of a trained RL^2 run: return and steps by episode in fresh trials.

Runs fresh trials of K episodes (hidden state carried) on every split and family the agent
reads (training variants, held-out variants), and tests each later episode's return against
the first's in the same trials (studies.in_context):

python scripts/rl2_trials.py runs/rl2-hidden --trials 1000 --out runs/rl2-hidden

With ``--blind`` the agent sees zeros instead of every observation: what it achieves without
reading the modality, the control for what it reads.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from metaxm.errors import ConfigError, MetaxmError
from metaxm.evaluate.loading import load_agent

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the studies package
from studies.in_context import (  # noqa: E402
    EVAL_SEED,
    in_context_study,
    in_context_table,
    summarize_study,
    write_study,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="an RL^2 run directory or checkpoint")
    parser.add_argument("--trials", type=int, default=1000, help="per split and family")
    parser.add_argument("--episodes", type=int, help="per trial (default: rl2.eval_episodes)")
    parser.add_argument("--seed", type=int, default=EVAL_SEED)
    parser.add_argument("--mode", action="store_true", help="act with the policy's mode")
    parser.add_argument("--out", help="write in_context.{json,md,png} here")
    parser.add_argument(
        "--rewire",
        choices=("between", "within"),
        help="re-draw each trial's variant from its split's pool between episodes, or within "
        "them at step --rewire-at (memory of the task vs reading the sensor)",
    )
    parser.add_argument("--rewire-at", type=int, default=3, help="the step of --rewire within")
    parser.add_argument(
        "--blind",
        action="store_true",
        help="the agent sees zeros instead of the observations: what it achieves without "
        "reading the modality (a control)",
    )
    args = parser.parse_args()
    try:
        if args.trials < 2:
            raise ConfigError(f"--trials must be >= 2, got {args.trials}")
        if args.episodes is not None and args.episodes < 1:
            raise ConfigError(f"--episodes must be >= 1, got {args.episodes}")
        agent, spec, algo, _ = load_agent(args.run)
        if algo != "rl2":
            raise ConfigError(f"{args.run}: an {algo} run; in-context trials need an rl2 run")
        torch.set_num_threads(spec.train.threads)
        if args.rewire_at < 1:
            raise ConfigError(f"--rewire-at must be >= 1, got {args.rewire_at}")
        results = in_context_study(
            agent, spec, args.trials, args.episodes, args.seed, args.mode, args.rewire,
            args.rewire_at, args.blind,
        )  # fmt: skip
    except MetaxmError as err:
        print(f"rl2_trials: error: {err}", file=sys.stderr)
        return 2 if isinstance(err, ConfigError) else 1
    summary = summarize_study(results)
    if args.out:
        write_study(summary, args.out)
    print(in_context_table(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
