#!/usr/bin/env python
"""A sensory-encoder RL^2 run on CartPole-v1, unpermuted vs re-wired, zero-shot.

Plays N episodes (one per trial: the recurrent state starts empty) of the same N start states
in four conditions, and compares mean returns (95% bootstrap intervals):

* ``unpermuted``: the state features in their own order, signs and scales, the four extra
  channels' noise as in ``rewired`` (drawn from the same seed), so the two differ only in
  the wiring; ``unpermuted, extra channels silent``: the same with the noise at 0, the bare
  state (an amplitude of exactly 0 is at the edge of what training draws);
* ``shuffled``: the unpermuted values in a random order drawn per episode (Tang & Ha's test);
* ``rewired``: a fresh ``vector`` variant per episode (order, signs, scales, noise), drawn from
  seeds outside the run's training split;
* ``rewired mid-episode``: as ``rewired``, and at step ``--switch-at`` the variant changes to
  another fresh one, mid-episode.

Those run on the batched gym world the agent trained on. The same agent then plays a plain
``gymnasium.make("CartPole-v1")`` through the ``ModalityObservation`` wrapper, one step at a
time (:class:`metaxm.evaluate.actor.Actor`), from the same start states: ``unpermuted``,
``rewired`` (``set_variant`` to a fresh variant before every episode) and ``rewired
mid-episode``, each marked ``(ModalityObservation)``; their shares are of the wrapper's own
``unpermuted``. (The two paths draw the extra channels' noise from different generators, so
their returns are close, not equal; with the noise off they are equal,
``tests/evaluate/test_actor.py``.)

python scripts/sensory_cartpole.py runs/sensory-cartpole --episodes 100 --out docs/results
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from scipy import stats
from tqdm import tqdm

from metaxm.build import make_env
from metaxm.envs.seeded import episode_seed
from metaxm.envs.wrappers import ModalityObservation
from metaxm.errors import ConfigError, MetaxmError
from metaxm.evaluate.actor import Actor
from metaxm.evaluate.loading import load_agent
from metaxm.meta.trial_eval import Rewire, run_trials
from metaxm.modalities.vector import VectorFamily
from metaxm.sampler import VARIANT_POOL

FRESH = 1_000_000
"""Variant seeds from here on are outside every split: the sampler draws its splits from
seeds 0 to ``VARIANT_POOL - 1``."""


class Unpermuted(VectorFamily):
    """The features in their own order, signs and scales; the extra channels' noise amplitude
    as the ``rewired`` variant of the same seed draws it (so the two differ only in the
    wiring), or silent with ``silent=True``."""

    def __init__(self, silent: bool = False) -> None:
        self.silent = silent

    def variant_params(self, generator, info):  # type: ignore[no-untyped-def]
        params = super().variant_params(generator, info)
        d = info.feature_dim
        params.update(perm=torch.arange(d), gain=torch.ones(d))
        if self.silent:
            params["noise"] = torch.zeros(())
        return params


class Shuffled(VectorFamily):
    """Only the order of the features differs from ``unpermuted`` (Tang & Ha's shuffle)."""

    def variant_params(self, generator, info):  # type: ignore[no-untyped-def]
        params = super().variant_params(generator, info)
        params["gain"] = torch.ones(info.feature_dim)
        return params


def wrapper_returns(
    actor: Actor,
    world: Any,
    family: Any,
    variants: list[int],
    seeds: list[int],
    switch: list[int] | None,
    at: int,
    name: str,
) -> np.ndarray:
    """Episode i of the gym world's env (``world``: its id, kwargs, horizon and scale) through
    ``ModalityObservation`` with ``variants[i]``, reset with ``seeds[i]``, re-wired to
    ``switch[i]`` after step ``at``; one trial per episode, as ``run_trials``."""
    plain = gym.make(world.env_id, max_episode_steps=world.max_steps, **world.env_kwargs)
    env = ModalityObservation(plain, family, variants[0], seed=seeds[0], obs_scale=world.obs_scale)
    out = []
    for i in tqdm(range(len(seeds)), desc=name, leave=False):
        env.set_variant(variants[i])
        actor.new_trial()
        out.append(actor.episode(env, seeds[i], None if switch is None else (at, switch[i])))
    return np.asarray(out)


def _interval(x: np.ndarray) -> list[float]:
    if np.all(x == x[0]):  # every resample gives the same mean
        return [float(x[0]), float(x[0])]
    res = stats.bootstrap((x,), np.mean, n_resamples=2000, random_state=0)
    return [float(res.confidence_interval.low), float(res.confidence_interval.high)]


def _ratio_interval(x: np.ndarray, base: np.ndarray) -> list[float]:
    """95% interval of mean(x) / mean(base), episodes resampled in pairs (same start state)."""
    if np.array_equal(x, base):  # every resample gives exactly 1
        return [1.0, 1.0]

    def ratio(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
        return a.mean(axis) / b.mean(axis)

    res = stats.bootstrap(
        (x, base), ratio, paired=True, vectorized=True, n_resamples=2000, random_state=0
    )
    return [float(res.confidence_interval.low), float(res.confidence_interval.high)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="an RL^2 run (agent.encoder: sensory) on CartPole-v1")
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=12345, help="start states and variants")
    parser.add_argument("--switch-at", type=int, default=100, help="the mid-episode re-wiring")
    parser.add_argument("--sample", action="store_true", help="sample actions (default: mode)")
    parser.add_argument("--out", help="write sensory_cartpole.{json,md} here")
    args = parser.parse_args()
    try:
        if args.episodes < 2:
            raise ConfigError(f"--episodes must be >= 2, got {args.episodes}")
        agent, spec, algo, _ = load_agent(args.run)
        if algo != "rl2" or not agent.sensory("vector"):
            raise ConfigError(f"{args.run}: needs an rl2 run whose vector family is sensory")
        torch.set_num_threads(spec.train.threads)
        n = args.episodes
        if args.seed < 0:
            raise ConfigError(f"--seed must be >= 0, got {args.seed}")
        fresh = [FRESH + args.seed + i for i in range(2 * n)]  # never a training variant
        assert FRESH >= VARIANT_POOL
        conditions = {
            "unpermuted": (Unpermuted(), fresh[:n], None),
            "unpermuted, extra channels silent": (Unpermuted(silent=True), fresh[:n], None),
            "shuffled": (Shuffled(), fresh[:n], None),
            "rewired": ("vector", fresh[:n], None),
            "rewired mid-episode": (
                "vector",
                fresh[:n],
                Rewire("within", tuple(fresh[n:]), at=args.switch_at, seed=args.seed),
            ),
        }
        returns = {}
        for name, (family, variants, rewire) in conditions.items():
            env = make_env(spec, family, variants, seed=args.seed)  # the same N start states
            res = run_trials(
                agent, env, "vector", 1, deterministic=not args.sample,
                generator=torch.Generator().manual_seed(args.seed), rewire=rewire,
            )  # fmt: skip
            returns[name] = res.returns[:, 0].double().cpu().numpy()
            print(f"{name:>34}: mean return {returns[name].mean():7.1f}", flush=True)
        seeds = [episode_seed(s, 0) for s in env.world.task_seed.tolist()]
        actor = Actor(agent, "vector", not args.sample, torch.Generator().manual_seed(args.seed))
        switch = np.random.default_rng(args.seed).choice(fresh[n:], n).tolist()
        for name, family, sw in [
            ("unpermuted", Unpermuted(), None),
            ("rewired", "vector", None),
            ("rewired mid-episode", "vector", switch),
        ]:
            name = f"{name} (ModalityObservation)"
            returns[name] = wrapper_returns(
                actor, spec.world, family, fresh[:n], seeds, sw, args.switch_at, name
            )
            print(f"{name:>34}: mean return {returns[name].mean():7.1f}", flush=True)
    except MetaxmError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    def baseline(name: str) -> np.ndarray:
        return returns[
            "unpermuted (ModalityObservation)" if "ModalityObservation" in name else "unpermuted"
        ]

    summary = {
        "run": args.run,
        "episodes": n,
        "deterministic": not args.sample,
        "switch_at": args.switch_at,
        "conditions": {
            k: {
                "mean_return": float(v.mean()),
                "ci95": _interval(v),
                "ratio_to_unpermuted": float(v.mean() / baseline(k).mean()),
                "ratio_ci95": _ratio_interval(v, baseline(k)),
            }
            for k, v in returns.items()
        },
    }
    lines = [
        f"CartPole-v1, {n} episodes per condition (the same start states), "
        f"{'sampled actions' if args.sample else 'the policy mode'}; run `{args.run}`.",
        "",
        "| observation | mean return [95% CI] | of unpermuted [95% CI, paired] |",
        "|---|---|---|",
    ]
    for k, v in summary["conditions"].items():
        lo, hi = v["ci95"]
        ratio = v["ratio_to_unpermuted"]
        share = "–"
        if ratio is not None:
            rlo, rhi = v["ratio_ci95"]
            share = f"{100 * ratio:.1f}% [{100 * rlo:.1f}, {100 * rhi:.1f}]"
        lines.append(f"| {k} | {v['mean_return']:.1f} [{lo:.1f}, {hi:.1f}] | {share} |")
    print("\n".join(lines))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "sensory_cartpole.json").write_text(json.dumps(summary, indent=2) + "\n")
        (out / "sensory_cartpole.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
