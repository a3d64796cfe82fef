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
- on worlds whose scenes have a layout (GridNav): success by the goal's ring, its Chebyshev
  distance from the grid's centre in cells (0 the centre, 3 the border of a 7 x 7 grid),
  over the trial and by the episode's index in it, and the distinct cells the failed episodes
  stood on (an agent that walks to one wrong reading and waits covers few; one that searches,
  many);
- the spread of success over variants, and for ``projected`` its Spearman correlation with
  each variant's sensor bank (live sensors, gain, mean |bias|, noise).

``--gain NAME=G`` (the ``vector`` family; repeatable) plays every variant with the channels
that show the world feature NAME (e.g. ``goal_row``) at gain +G or -G, their sign kept: the
variant's own scale on those channels replaced by one the agent did not have to read, a
counterfactual that asks how much of the failures that scale causes and whether the agent reads
it at all (``docs/transfer-studies.md`` section 45).

The world must give shortest paths (``World.optimal_steps``, as GridNav does). ::

    python scripts/rl2_failures.py runs/results/rl2-memory-every-family/rl2 \\
        --family vector --family projected --variants 100-123 --json failures.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict, dataclass

import torch
from scipy import stats
from tqdm import tqdm

from metaxm.build import make_env
from metaxm.envs import make_world
from metaxm.envs.task_env import TaskEnv
from metaxm.errors import ConfigError, MetaxmError
from metaxm.evaluate.loading import load_agent
from metaxm.meta.trial_eval import TrialResult, run_trials
from metaxm.modalities import get_family
from metaxm.nn.agent import Agent
from metaxm.spec import Spec

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


def set_gains(env: TaskEnv, gains: dict[str, float]) -> None:
    """Set the gain of ``env``'s channels that show the named world features to +-G (sign
    kept), in every environment; ``vector`` variants only (a permutation and a gain)."""
    if not gains:
        return
    if set(env.params) != {"perm", "gain", "noise"}:
        raise ConfigError(f"--gain needs the vector family, not {env.family.name!r}")
    names = env.world.scene_info.feature_names
    unknown = sorted(set(gains) - set(names))
    if unknown:
        raise ConfigError(f"--gain: the world has no feature {unknown[0]!r} (it has {names})")
    perm, gain = env.params["perm"], env.params["gain"].clone()
    for name, g in gains.items():
        chosen = perm == names.index(name)  # (B, D): the channel showing it
        gain[chosen] = gain[chosen].sign() * g
    env.params["gain"] = gain


def gain_setting(text: str) -> tuple[str, float]:
    """``"goal_row=2"`` -> ("goal_row", 2.0); the gain must be positive and finite."""
    name, eq, value = text.partition("=")
    try:
        g = float(value)
    except ValueError:
        g = float("nan")
    if not (eq and name and 0 < g < math.inf):
        raise ConfigError(f"--gain must be NAME=G with a finite G > 0, got {text!r}")
    return name, g


def ring(cells: torch.Tensor, size: int) -> torch.Tensor:
    """A layout cell's Chebyshev distance from the grid's centre, in whole cells."""
    row, col = cells // size, cells % size
    return torch.maximum((2 * row - size + 1).abs(), (2 * col - size + 1).abs()) // 2


@dataclass(frozen=True)
class Failures:
    """One family's numbers (see the module docstring).

    Attributes:
        by_episode: success by the episode's index in the trial.
        by_distance: ``{shortest path: (success, episodes)}``.
        by_variant: ``{variant: success}``.
        spearman: ``{sensor-bank statistic: (rho, p)}`` of success by variant (``projected``
            only; else empty).
        by_ring: ``{goal's ring: (success, episodes)}``; empty without a layout.
        ring_by_episode: ``{goal's ring: success by the episode's index in the trial}``.
        failed_cells: the mean distinct cells a failed episode stood on (None without a layout
            or a failure).
    """

    by_episode: list[float]
    by_distance: dict[int, tuple[float, int]]
    by_variant: dict[int, float]
    spearman: dict[str, tuple[float, float]]
    by_ring: dict[int, tuple[float, int]]
    ring_by_episode: dict[int, list[float]]
    failed_cells: float | None


def summarize(
    results: dict[int, TrialResult],
    banks: dict[int, dict[str, float]] | None = None,
    size: int | None = None,
) -> Failures:
    """The module docstring's numbers from one family's trials, keyed by variant; ``banks``:
    each variant's sensor-bank statistics, to correlate with its success; ``size``: the
    layout's side, where the trials recorded their goal cells (``run_trials(layout=True)``)."""
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
    by_ring, ring_by_episode, failed_cells = {}, {}, None
    if size is not None and every.goal_cell is not None and every.cells is not None:
        shown = every.goal_cell >= 0  # -1: the layout hides the goal; it has no ring
        rings, ok = ring(every.goal_cell.clamp(min=0), size), every.success.double()
        for r in rings[shown].unique().tolist():
            at = (rings == r) & shown
            by_ring[r] = (float(ok[at].mean()), int(at.sum()))
            per_episode = [ok[:, k][at[:, k]] for k in range(ok.shape[1])]
            ring_by_episode[r] = [
                float(x.mean()) if x.numel() else float("nan") for x in per_episode
            ]
        failed = ~every.success.bool()
        if bool(failed.any()):
            failed_cells = float(every.cells[failed].double().mean())
    return Failures(
        by_episode=every.curve()["success"],
        by_distance=by_distance,
        by_variant=by_variant,
        spearman=spearman,
        by_ring=by_ring,
        ring_by_episode=ring_by_episode,
        failed_cells=failed_cells,
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
    lines += (
        [
            "  by the goal's ring (0: the centre; success, episodes): "
            + ", ".join(f"{r}: {p:.2f} ({n})" for r, (p, n) in f.by_ring.items())
        ]
        if f.by_ring
        else []
    )
    lines += [
        f"    ring {r} by episode of the trial: " + " / ".join(f"{x:.2f}" for x in xs)
        for r, xs in f.ring_by_episode.items()
    ]
    if f.failed_cells is not None:
        lines.append(f"  a failed episode stood on {f.failed_cells:.1f} distinct cells on average")
    lines += [
        f"  Spearman with {k}: {rho:+.2f} (p = {p:.3f})" for k, (rho, p) in f.spearman.items()
    ]
    return "\n".join(lines)


def play(
    agent: Agent, spec: Spec, family: str, variant: int, args: argparse.Namespace
) -> TrialResult:
    """``--trials`` trials of one variant, a new task in every episode (as ``run_trial`` with
    ``new_tasks``), the goal cells and coverage recorded where the world has a layout."""
    device = next(agent.parameters()).device
    env = make_env(
        spec.world, family, variant, num_envs=args.trials, seed=SEED, device=device,
        resample_tasks=True,
    )  # fmt: skip
    set_gains(env, args.gains)
    layout = env.world.scene_info.layout_size is not None
    gen = torch.Generator(device).manual_seed(SEED + 1)
    return run_trials(agent, env, family, args.episodes, args.mode, gen, layout=layout)


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
    parser.add_argument(
        "--gain",
        action="append",
        default=[],
        metavar="NAME=G",
        help="vector: the channel showing world feature NAME at gain +-G (repeatable)",
    )
    args = parser.parse_args()
    try:
        if args.trials < 1 or args.episodes < 1:
            raise ConfigError(
                f"--trials and --episodes must be >= 1, got {args.trials} and {args.episodes}"
            )
        variants = variant_range(args.variants)
        args.gains = dict(gain_setting(g) for g in args.gain)
        agent, spec, algo, _ = load_agent(args.run)
        if algo != "rl2":
            raise ConfigError(f"{args.run}: its algo is {algo!r}; this needs an rl2 run")
        families = args.family or ["vector"]
        for family in families:
            if family not in agent.families:
                raise ConfigError(f"the agent has no encoder for {family!r}")
            if args.gains and family != "vector":
                raise ConfigError(f"--gain needs the vector family, not {family!r}")
        torch.set_num_threads(spec.train.threads)
        info = make_world(spec.world, 1).scene_info
        found = {}
        for family in families:
            results = {v: play(agent, spec, family, v, args) for v in tqdm(variants, desc=family)}
            banks = None
            if family == "projected":
                fam = get_family(family)
                banks = {v: sensor_bank(fam.variant(v, info)) for v in variants}
            found[family] = summarize(results, banks, info.layout_size)
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
