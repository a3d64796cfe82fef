#!/usr/bin/env python
"""Where an RL^2 agent fails on new tasks: success by the goal's distance and by variant
(``docs/transfer-studies.md`` section 42).

Plays ``--trials`` trials of ``--episodes`` episodes, a new task in every episode (as the
evaluator's ``rl2-newtask`` does), on each of ``--variants`` variants of each ``--family``,
and reports:

- success by the episode's index in the trial (the few-shot curve);
- success by the world's shortest number of steps from the episode's start to its goal. An
  agent that reads the goal right reaches one a step away in nearly every episode (the
  world's oracle: always), so the share it misses there is a floor that no slowness explains;
  what it loses beyond that floor as the goal gets farther is the rest;
- the spread of success over variants, and for ``projected`` its Spearman correlation with
  each variant's sensor bank (live sensors, gain, mean |bias|, noise).

The world must give shortest paths (``World.optimal_steps``, as GridNav does). ::

    python scripts/rl2_failures.py runs/results/rl2-memory-every-family/rl2 \\
        --family vector --family projected --variants 100-123 --json failures.json
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass

import torch
from scipy import stats
from tqdm import tqdm

from metaxm.envs import make_world
from metaxm.errors import ConfigError, MetaxmError
from metaxm.evaluate.loading import load_agent
from metaxm.meta.trial_eval import TrialResult, run_trial
from metaxm.modalities import get_family

SEED = 7


def variant_range(text: str) -> list[int]:
    """``"100-123"`` -> [100, ..., 123]; ``"5"`` -> [5]."""
    low, dash, high = text.partition("-")
    try:
        first, last = int(low), int(high if dash else low)
    except ValueError:
        raise ConfigError(f"--variants must be N or N-M, got {text!r}") from None
    if last < first:
        raise ConfigError(f"--variants must be N or N-M with N <= M, got {text!r}")
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


@dataclass(frozen=True)
class Failures:
    """One family's numbers (see the module docstring).

    Attributes:
        by_episode: success by the episode's index in the trial.
        by_distance: ``{shortest path: (success, episodes)}``.
        by_variant: ``{variant: success}``.
        spearman: ``{sensor-bank statistic: (rho, p)}`` of success by variant (``projected``
            only; else empty).
    """

    by_episode: list[float]
    by_distance: dict[int, tuple[float, int]]
    by_variant: dict[int, float]
    spearman: dict[str, tuple[float, float]]


def summarize(
    results: dict[int, TrialResult], banks: dict[int, dict[str, float]] | None = None
) -> Failures:
    """The module docstring's numbers from one family's trials, keyed by variant; ``banks``:
    each variant's sensor-bank statistics, to correlate with its success."""
    every = TrialResult.concat(list(results.values()))
    if bool((every.optimal < 0).any()):
        raise ConfigError("the world gives no shortest path to the goal (optimal_steps)")
    steps, success = every.optimal.flatten(), every.success.flatten().double()
    by_distance = {
        d: (float(success[steps == d].mean()), int((steps == d).sum()))
        for d in steps.unique().tolist()
    }
    by_variant = {v: float(r.success.double().mean()) for v, r in results.items()}
    spearman = {}
    for key in next(iter(banks.values())) if banks else ():
        rho, p = stats.spearmanr([banks[v][key] for v in results], list(by_variant.values()))
        spearman[key] = (float(rho), float(p))
    return Failures(
        by_episode=every.curve()["success"],
        by_distance=by_distance,
        by_variant=by_variant,
        spearman=spearman,
    )


def report(family: str, f: Failures) -> str:
    """The printed lines for one family."""
    lines = [
        f"{family}: success by episode of the trial "
        + " / ".join(f"{x:.2f}" for x in f.by_episode),
        "  by shortest path (steps: success, episodes): "
        + ", ".join(f"{o}: {p:.2f} ({n})" for o, (p, n) in f.by_distance.items()),
        f"  by variant: {min(f.by_variant.values()):.2f} to {max(f.by_variant.values()):.2f} "
        f"over {len(f.by_variant)} variants",
    ]
    lines += [
        f"  Spearman with {k}: {rho:+.2f} (p = {p:.3f})" for k, (rho, p) in f.spearman.items()
    ]
    return "\n".join(lines)


def main() -> int:
    """Parse the arguments, play the trials, print (and with ``--json`` write) the numbers."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="an RL^2 run directory or checkpoint")
    parser.add_argument("--family", action="append", help="(repeatable; default: vector)")
    parser.add_argument("--variants", default="100-123", help="N or N-M (default: 100-123)")
    parser.add_argument("--trials", type=int, default=64, help="per variant (default: 64)")
    parser.add_argument("--episodes", type=int, default=6, help="per trial (default: 6)")
    parser.add_argument("--mode", action="store_true", help="act with the policy's mode")
    parser.add_argument("--json", help="also write every family's numbers here")
    args = parser.parse_args()
    try:
        if args.trials < 1 or args.episodes < 1:
            raise ConfigError(
                f"--trials and --episodes must be >= 1, got {args.trials} and {args.episodes}"
            )
        variants = variant_range(args.variants)
        agent, spec, algo, _ = load_agent(args.run)
        if algo != "rl2":
            raise ConfigError(f"{args.run}: its algo is {algo!r}; this needs an rl2 run")
        families = args.family or ["vector"]
        for family in families:
            if family not in agent.families:
                raise ConfigError(f"the agent has no encoder for {family!r}")
        torch.set_num_threads(spec.train.threads)
        found = {}
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
            banks = None
            if family == "projected":
                fam, info = get_family(family), make_world(spec.world, 1).scene_info
                banks = {v: sensor_bank(fam.variant(v, info)) for v in variants}
            found[family] = summarize(results, banks)
            print(report(family, found[family]))
        if args.json:
            try:
                with open(args.json, "w") as f:
                    json.dump({k: asdict(v) for k, v in found.items()}, f, indent=2)
            except OSError as err:
                raise ConfigError(f"cannot write --json {args.json}: {err.strerror}") from None
    except MetaxmError as err:
        print(f"rl2_failures: error: {err}", file=sys.stderr)
        return 2 if isinstance(err, ConfigError) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
