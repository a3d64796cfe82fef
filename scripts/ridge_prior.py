#!/usr/bin/env python
"""A meta-learned paired fit solved in closed form: a linear map from a new variant's
observation to the source modality's, the MAP estimate under a Gaussian prior whose mean and
per-entry precisions are meta-learned over fresh variants of the family (the inner problem of
iMAML, Rajeswaran et al. 2019, solved exactly as in R2-D2, Bertinetto et al. 2019). Measured on
validation variants against the same map under the prior it starts from (not meta-learned) and
under no prior (least squares), the hand-set ``align`` fit and ``translate``, on the same
agents and the same k.

For a target variant, k episodes' paired steps give X (N, D), the target's observations
(flattened, scaled as the encoders scale them), and Y (N, S), the source's. Per source channel
j, with prior mean m_j and precisions p_j (D each)::

    w_j = argmin |X w - y_j|^2 + sum_i p_ij (w_i - m_ij)^2
        = m_j + P_j^-1 X' (X P_j^-1 X' + I)^-1 (y_j - X m_j)      (N x N: D may be large)

The agent reads X w through the source's encoder and adapter, as ``translate``'s policy does.
Meta-training: per update, ``--batch`` fresh variants (seeds no split holds), a support of k
episodes (k drawn from 1 and 2) and 4 query episodes each, the squared error of the source
latents the query's translation gives (``--outer latent``; or of the translation itself,
``--outer obs``), one Adam step on (m, log p) through the exact solve.

python scripts/ridge_prior.py runs/results/main/ppo --out runs/ridge-prior   # about 3 minutes
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from metaxm.align.fewshot import collect_paired_steps, default_source, source_params
from metaxm.align.losses import encode
from metaxm.align.priorfit import MapPrior, features, map_solve, prior_solve
from metaxm.build import make_env
from metaxm.errors import ConfigError, MetaxmError
from metaxm.learners import Align, PriorFit, Translate
from metaxm.sampler import fresh_variant_seed

FAMILIES = ("vector", "projected", "pixels")
VALIDATION = (100, 101, 102, 103)
"""Variant seeds outside every split (``docs/transfer-studies.md``)."""


class OwnUnitsPrior(MapPrior):
    """The prior in the features' own units (section 21's study): :func:`map_solve`."""

    def solve(self, family: str, x: Tensor, y: Tensor) -> Tensor:
        return map_solve(x, y, self.mean[family], self.log_prec[family])


def _learner(run: str, units: str) -> PriorFit:
    """The ``priorfit`` learner on the run's agent, its priors filled in per family later."""
    base = Translate.from_run(run)
    prior = MapPrior({}, {}) if units == "rms" else OwnUnitsPrior({}, {})
    return PriorFit(base.agent, base.spec, prior)


def _set(learner: PriorFit, family: str, mean: Tensor, log_prec: Tensor) -> None:
    learner.prior.mean[family] = mean.detach()
    learner.prior.log_prec[family] = log_prec.detach()


def meta_train(
    learner: Translate, family: str, updates: int, batch: int, seed: int, outer: str,
    log_prec: float, lr: float, solve: Callable[..., Tensor] = prior_solve,
) -> dict:  # fmt: skip
    """Meta-learn ``family``'s prior (module docstring); returns its mean and log precisions
    (``prior``) and its training curve. (``algo: priorfit``, :mod:`metaxm.align.priorfit_trainer`,
    is the same with every family in one loop, its outer gradient clipped, and ``projected``
    read unsquashed since section 38; this study reads every observation as it is.)"""
    agent, spec = learner.agent, learner.spec
    agent.requires_grad_(False)  # only the prior learns
    source = default_source(spec)
    params = source_params(agent, source)
    space = agent.observation_spaces[family]
    g = torch.Generator().manual_seed(seed)
    probe = collect_paired_steps(agent, spec, (family, fresh_variant_seed(g)), episodes=1)
    d, s = probe.batch.obs[0].flatten(1).shape[1], probe.batch.obs[1].flatten(1).shape[1]
    mean = torch.zeros(d, s, requires_grad=True)
    log_precs = torch.full((d, s), log_prec, requires_grad=True)
    optimizer = torch.optim.Adam([mean, log_precs], lr=lr)
    curve = []
    for _ in range(updates):
        losses = []
        for _ in range(batch):
            variant = fresh_variant_seed(g)
            k = int(torch.randint(1, 3, (), generator=g))
            s0 = int(torch.randint(0, 2**31 - 2, (), generator=g))
            support, query = (
                collect_paired_steps(
                    agent, spec, (family, variant), source=source, seed=s0 + i, episodes=n
                ).batch
                for i, n in ((0, k), (1, 4))
            )
            x, y = features(support.obs[0], space), support.obs[1].float().flatten(1)
            xq, yq = features(query.obs[0], space), query.obs[1].float().flatten(1)
            weight = solve(x, y, mean, log_precs)
            if outer == "latent":  # what the policy reads: the source's latent of each
                z = encode(agent, xq @ weight, source[0], params)
                losses.append((z - encode(agent, yq, source[0], params)).pow(2).mean())
            else:
                losses.append((xq @ weight - yq).pow(2).mean())
        loss = torch.stack(losses).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        curve.append(float(loss.detach()))
    return {"prior": (mean, log_precs), "curve": curve}


def success(learner: Any, family: str, variant: int, k: int, seed: int, episodes: int) -> float:
    """The adapted policy's success (its mode) on ``episodes`` fresh episodes, after ``k``
    episodes of one fresh environment each (tasks from ``seed + 21``, as the evaluator)."""
    spec = learner.spec
    walk = make_env(spec, family, variant, num_envs=k, seed=seed + 21)
    policy = learner.adapt(walk, episodes=k, seed=seed + 22)
    test = make_env(spec, family, variant, num_envs=episodes, seed=seed + 1000)
    return policy.evaluate(test)["success"]


def _tail(curve: list[float], n: int = 10) -> float:
    """The mean of the last ``n`` entries (all of them when there are fewer)."""
    last = curve[-n:]
    return sum(last) / len(last) if last else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", help="the source agent's run (the main job's ppo stage)")
    parser.add_argument("--updates", type=int, default=200, help="meta-updates per family")
    parser.add_argument("--batch", type=int, default=4, help="variants per meta-update")
    parser.add_argument("--budgets", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--episodes", type=int, default=64, help="evaluation episodes")
    parser.add_argument("--families", nargs="+", default=list(FAMILIES))
    parser.add_argument(
        "--outer",
        choices=("latent", "obs"),
        default="latent",
        help="the outer loss: the source latent's or the observation's error",
    )
    parser.add_argument(
        "--init-log-prec",
        type=float,
        default=-3.0,
        help="the prior's starting log precision (-9: least squares)",
    )
    parser.add_argument("--lr", type=float, default=0.03, help="outer Adam rate")
    parser.add_argument(
        "--units",
        choices=("rms", "own"),
        default="rms",
        help="the prior on each feature in units of its RMS over the pairs (algo: priorfit's), "
        "or in the features' own units (section 21's study)",
    )
    parser.add_argument("--variants", type=int, nargs="+", default=list(VALIDATION))
    parser.add_argument("--out", type=Path, help="write ridge-prior.{json,md} here")
    args = parser.parse_args(argv)
    if min(args.budgets) < 1 or args.batch < 1 or args.episodes < 1 or args.updates < 0:
        parser.error("--budgets, --batch and --episodes must be >= 1, --updates >= 0")
    torch.set_num_threads(1)
    try:
        return study(args)
    except MetaxmError as err:
        print(f"ridge_prior.py: {err}", file=sys.stderr)
        return 2


def study(args: argparse.Namespace) -> int:
    """Meta-train each family's prior, measure every fit, print and write the table."""
    learned = _learner(args.run, args.units)
    unknown = [f for f in args.families if f not in learned.spec.modalities.train]
    if unknown:
        raise ConfigError(
            f"{', '.join(unknown)}: not a training family of {args.run}; a prior is meta-learned "
            f"on fresh variants of one ({', '.join(learned.spec.modalities.train)})"
        )
    start, plain = _learner(args.run, args.units), _learner(args.run, args.units)
    rows: dict[str, dict[str, list[float]]] = {}
    fits: dict[str, Any] = {}
    for family in args.families:
        t0 = time.perf_counter()
        fits[family] = meta_train(
            learned,
            family,
            args.updates,
            args.batch,
            7,
            args.outer,
            args.init_log_prec,
            args.lr,
            prior_solve if args.units == "rms" else map_solve,
        )
        fits[family]["seconds"] = time.perf_counter() - t0
        mean, log_prec = fits[family]["prior"]
        _set(learned, family, mean, log_prec)
        zero = torch.zeros_like(mean)
        _set(start, family, zero, torch.full_like(mean, args.init_log_prec))
        _set(plain, family, zero, torch.full_like(mean, -9.0))  # least squares, a whisker of ridge
    others = {"align": Align.from_run(args.run), "translate": Translate.from_run(args.run)}
    learners = {
        "learned prior": learned, "the prior's start (not meta-learned)": start,
        "least squares": plain, **others,
    }  # fmt: skip
    for family in args.families:
        for name, learner in learners.items():
            key = f"{family}|{name}"
            rows[key] = {}
            for k in args.budgets:
                values = [
                    success(learner, family, v, k, s, args.episodes)
                    for v in args.variants
                    for s in args.seeds
                ]
                rows[key][str(k)] = values
            print(key, {k: round(sum(v) / len(v), 2) for k, v in rows[key].items()}, flush=True)
    lines = [
        "| family | fit | " + " | ".join(f"k = {k}" for k in args.budgets) + " |",
        "|---|---|" + "---|" * len(args.budgets),
    ]
    for key, by_k in rows.items():
        family, name = key.split("|")
        cells = [f"{sum(v) / len(v):.2f}" for v in by_k.values()]
        lines.append(f"| {family} | {name} | " + " | ".join(cells) + " |")
    summary = "; ".join(
        f"{f}: query loss {_tail(fits[f]['curve'][:1]):.3f} -> {_tail(fits[f]['curve']):.3f} "
        f"({fits[f]['seconds']:.0f} s)"
        for f in args.families
    )
    text = (
        f"meta-training, {args.updates} updates of {args.batch} variants per family: {summary}\n\n"
        f"prior in units: {args.units}; outer loss: {args.outer}, prior's starting log "
        f"precision {args.init_log_prec}, outer "
        f"rate {args.lr}; success on variants {args.variants}, seeds {args.seeds}, "
        f"{args.episodes} episodes each (mean):\n\n" + "\n".join(lines)
    )
    print(text)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        data = {
            "rows": rows,
            "curves": {f: fits[f]["curve"] for f in args.families},
            "seconds": {f: fits[f]["seconds"] for f in args.families},
        }
        (args.out / "ridge-prior.json").write_text(json.dumps(data, indent=2) + "\n")
        (args.out / "ridge-prior.md").write_text(
            "# A meta-learned ridge prior for the paired fit\n\n"
            f"_`python scripts/ridge_prior.py {args.run} --out {args.out}`_\n\n{text}\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
