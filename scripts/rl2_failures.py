#!/usr/bin/env python
"""Where an RL^2 agent fails on new tasks: success by the goal's distance and by variant
(``docs/transfer-studies.md`` section 42).

Plays ``--trials`` trials of ``--episodes`` episodes, a new task in every episode (as the
evaluator's ``rl2-newtask`` does), on each of ``--variants`` variants of each ``--family``,
and reports:

- success by the episode's index in the trial (the few-shot curve);
- success by the world's shortest number of steps from the episode's start to its goal: an
  agent that reads the goal and is only slow fails more often the farther the goal is, one
  that misreads it fails about as often at every distance;
- how long the failed episodes ran (the horizon: it never reached the goal; shorter: the world
  ended it otherwise);
- the spread of success over variants, and for ``projected`` its Spearman correlation with
  each variant's sensor bank (live sensors, gain, bias, noise).

::

    python scripts/rl2_failures.py runs/results/rl2-memory-every-family/rl2 \\
        --family vector --family projected --variants 100-123
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict

import torch
from scipy import stats
from tqdm import tqdm

from metaxm.envs import make_world
from metaxm.errors import ConfigError, MetaxmError
from metaxm.evaluate.loading import load_agent
from metaxm.meta.trials import TrialResult, run_trial
from metaxm.modalities import get_family

SEED = 7


def variant_range(text: str) -> list[int]:
    """``"100-123"`` -> [100, ..., 123]; ``"5"`` -> [5]."""
    low, _, high = text.partition("-")
    try:
        first, last = int(low), int(high or low)
    except ValueError:
        raise ConfigError(f"--variants must be N or N-M, got {text!r}") from None
    if first < 0 or last < first:
        raise ConfigError(f"--variants must be N or N-M with 0 <= N <= M, got {text!r}")
    return list(range(first, last + 1))


def sensor_bank(params: dict[str, torch.Tensor]) -> dict[str, float]:
    """A ``projected`` variant's live sensors, mean row gain, mean |bias| and noise."""
    alive = params["weight"].abs().sum(1) > 0
    return {
        "live sensors": float(alive.sum()),
        "gain": float(params["weight"][alive].norm(dim=1).mean()),
        "|bias|": float(params["bias"][alive].abs().mean()),
        "noise": float(params["noise"].max()),
    }


def summarize(results: dict[int, TrialResult], horizon: int) -> dict:
    """The module docstring's numbers from one family's trials, keyed by variant."""
    by_distance: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for r in results.values():
        for o, s in zip(r.optimal.flatten().tolist(), r.success.flatten().tolist()):
            by_distance[o][0] += int(s)
            by_distance[o][1] += 1
    success = torch.stack([r.success.double() for r in results.values()])  # (V, B, K)
    failed = torch.cat([r.length[~r.success.bool()].double() for r in results.values()])
    return {
        "by_episode": success.mean((0, 1)).tolist(),
        "by_distance": {o: (a / n, n) for o, (a, n) in sorted(by_distance.items())},
        "failed_length": float(failed.mean()) if len(failed) else float("nan"),
        "failed_at_horizon": float((failed >= horizon).double().mean()) if len(failed) else 0.0,
        "by_variant": dict(zip(results, success.mean((1, 2)).tolist())),
    }


def report(family: str, summary: dict, variants: dict[int, dict[str, float]] | None) -> str:
    """The printed lines for one family."""
    per_variant = summary["by_variant"]
    lines = [
        f"{family}: success by episode of the trial "
        + " / ".join(f"{x:.2f}" for x in summary["by_episode"]),
        "  by shortest path (steps: success, episodes): "
        + ", ".join(f"{o}: {p:.2f} ({n})" for o, (p, n) in summary["by_distance"].items()),
        f"  failed episodes: {summary['failed_length']:.1f} steps on average, "
        f"{summary['failed_at_horizon']:.0%} of them cut at the horizon",
        f"  by variant: {min(per_variant.values()):.2f} to {max(per_variant.values()):.2f} "
        f"over {len(per_variant)} variants",
    ]
    if variants:
        success = [per_variant[v] for v in variants]
        for key in next(iter(variants.values())):
            rho, p = stats.spearmanr([variants[v][key] for v in variants], success)
            lines.append(f"  Spearman with {key}: {rho:+.2f} (p = {p:.3f})")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="an RL^2 run directory or checkpoint")
    parser.add_argument("--family", action="append", help="(repeatable; default: vector)")
    parser.add_argument("--variants", default="100-123", help="N or N-M (default: 100-123)")
    parser.add_argument("--trials", type=int, default=64, help="per variant (default: 64)")
    parser.add_argument("--episodes", type=int, default=6, help="per trial (default: 6)")
    parser.add_argument("--mode", action="store_true", help="act with the policy's mode")
    parser.add_argument("--json", help="also write every family's summary here")
    args = parser.parse_args()
    try:
        if args.trials < 1 or args.episodes < 1:
            raise ConfigError("--trials and --episodes must be >= 1")
        variants = variant_range(args.variants)
        agent, spec, algo, _ = load_agent(args.run)
        if algo != "rl2":
            raise ConfigError(f"{args.run}: an {algo} run; this needs an rl2 run")
        families = args.family or ["vector"]
        for family in families:
            if family not in agent.families:
                raise ConfigError(f"the agent has no encoder for {family!r}")
        torch.set_num_threads(spec.train.threads)
        summaries = {}
        for family in families:
            results = {
                v: run_trial(
                    agent,
                    spec.world,
                    family,
                    v,
                    episodes=args.episodes,
                    num_trials=args.trials,
                    seed=SEED,
                    deterministic=args.mode,
                    new_tasks=True,
                )  # fmt: skip
                for v in tqdm(variants, desc=family)
            }
            bank = None
            if family == "projected":
                fam, info = get_family(family), make_world(spec.world, 1).scene_info
                bank = {v: sensor_bank(fam.variant(v, info)) for v in variants}
            summaries[family] = summarize(results, spec.world.horizon)
            print(report(family, summaries[family], bank))
        if args.json:
            with open(args.json, "w") as f:
                json.dump(summaries, f, indent=2)
    except MetaxmError as err:
        print(f"rl2_failures: error: {err}", file=sys.stderr)
        return 2 if isinstance(err, ConfigError) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
