#!/usr/bin/env python
"""#15's constructed case: a vector variant that is a pure permutation of a known one, fitted
from one episode of paired renders, where the right answer is known.

The world is CartPole-v1, where every state feature moves at every step, so one episode's pairs
pin a re-wiring down (on GridNav the goal's channels are constant within an episode and one
episode cannot tell them apart: ``docs/transfer-studies.md`` sections 8 and 10). The target
view is the source view's own render with its state channels permuted (a fresh permutation per
trial, never the identity; the family's noise channels stay last, as in every ``vector``
variant), so the right answer reads every query state exactly as the source does: the
source's encoder on the channels put back in order.

The source agent is a fresh (untrained) agent with per-variant adapters on two ``vector``
training variants: a fit is judged by its latents, which any encoder defines. The meta-learned
paired fit (``algo: metafit``, :mod:`metaxm.align.metafit`) is meta-trained for ``--updates``
meta-updates on fresh ``vector`` variants (one support episode, 4 query episodes each). Then,
per trial, from one support episode of the permuted view, each fit's error on 8 query episodes
is the mean squared distance of its latents to the source's, over the source latents' mean
square (0: read exactly; about 1 or more: not read):

* ``no fit``: the agent's own encoder and adapter, and the meta-learned start, no step;
* ``metafit``: the start and ``align.meta_steps`` steps at the learned rates;
* ``the same steps, not meta-learned``: the same steps from the agent's own weights at
  ``align.meta_inner_lr``, where meta-training starts;
* ``align``: the hand-set fit, ``align.fit_iters`` Adam steps over the encoder and adapter;
* ``align from a meta-learned start``: the same fit from a start meta-learned first-order
  (FOMAML, ``--align-updates`` meta-updates: :func:`align_start`);
* ``priorfit``: the linear map from the target's channels to the source's, solved in closed
  form under a Gaussian prior meta-learned on fresh ``vector`` variants (``algo: priorfit``,
  :mod:`metaxm.align.priorfit`; ``--prior-updates`` meta-updates at ``PRIOR_LR``), read by the
  source's encoder; ``priorfit's start``: the same under the prior it starts from;
* ``least squares``: the linear map from the target's channels to the source's, in closed
  form (``translate``'s map, :func:`metaxm.align.least_squares.ridge`), read by the source;
* ``right answer``: the source reading the channels put back in order (0 by construction).

With ``--noise own`` the target's noise channels are not the source's: they are the source's
noise values of other steps of the same episodes (a row permutation: the same amplitude, drawn
independently of the source's at each step), as a real variant draws its own noise. Then no fit
can read the source's noise, the state channels stay a pure permutation, and ``right answer,
the noise not read`` (the channels put back in order, the source's noise predicted as 0) is
the best any fit can do.

python scripts/permutation_case.py --out runs/permutation-case     # about 2 minutes
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

from metaxm.align.fewshot import collect_paired_steps, fit_adapter
from metaxm.align.least_squares import ridge
from metaxm.align.losses import encode
from metaxm.align.metafit import MetaFit, pair_loss
from metaxm.align.metafit_trainer import MetaFitTrainer
from metaxm.align.priorfit import LinearTranslator, MapPrior
from metaxm.align.priorfit_trainer import PriorFitTrainer
from metaxm.modalities.vector import NOISE_CHANNELS
from metaxm.sampler import TaskSampler, fresh_variant_seed
from metaxm.spec import Spec, replace, spec_from_dict

ROWS = (
    "no fit (the agent's weights)", "no fit (learned start)", "metafit",
    "the same steps, not meta-learned", "align", "align from a meta-learned start",
    "priorfit", "priorfit's start, not meta-learned", "least squares", "right answer",
    "right answer, the noise not read",
)  # fmt: skip
MAP_ROWS = ("priorfit", "priorfit's start, not meta-learned", "least squares")
"""The fits that translate into the source's observation, whose state channels are scored too."""
PRIOR_LR = 0.03
"""``align.meta_lr`` of the prior's meta-training (as ``tasks/gridnav.yaml``'s priorfit stage)."""


def case_spec(seed: int = 0) -> Spec:
    """CartPole through two ``vector`` training variants, a small agent with per-variant
    adapters, and the meta-learned fit's settings."""
    return spec_from_dict({
        "seed": seed,
        "world": {"name": "gym", "env_id": "CartPole-v1"},
        "modalities": {"train": {"vector": 2}, "heldout_variants": {}},
        "agent": {"latent_dim": 16, "encoder_width": 32, "hidden": 32, "adapters": "variant"},
        "train": {"init_from": "(none: a fresh agent)", "num_envs": 4},
        "algo": "metafit",
        "log": {"mode": "disabled", "progress": False},
        "align": {  # align's fit as tasks/gridnav.yaml's (fit_mse weighs in metafit's loss too)
            "fit_iters": 100, "fit_lr": 0.01, "fit_prior": 3.0, "fit_mse": 10.0,
            "meta_steps": 5, "meta_inner_lr": 0.03, "meta_lr": 3e-3, "meta_batch": 4,
            "meta_episodes": [1], "meta_query_episodes": 4, "explore": 1.0,
        },
    })  # fmt: skip


def _permutation(features: int, g: torch.Generator) -> torch.Tensor:
    """A permutation of the first ``features`` channels other than the identity, the family's
    noise channels left last (a ``vector`` variant's layout)."""
    order = torch.arange(features)
    while torch.equal(order, torch.arange(features)):
        order = torch.randperm(features, generator=g)
    return torch.cat((order, torch.arange(features, features + NOISE_CHANNELS)))


def _permuted(
    batch: Any, perm: torch.Tensor, noise: str = "shared", g: torch.Generator | None = None
) -> Any:
    """The batch with view 0 := view 1's render, channels permuted (a pure permutation); with
    ``noise="own"``, its noise channels taken from other rows of view 1 (drawn with ``g``)."""
    target = batch.obs[1][:, perm]
    if noise == "own":
        rows = torch.randperm(target.shape[0], generator=g)
        target = torch.cat((target[:, :-NOISE_CHANNELS], batch.obs[1][rows, -NOISE_CHANNELS:]), 1)
    return dataclasses.replace(batch, obs=(target, batch.obs[1]))


def align_start(trainer: MetaFitTrainer, updates: int, seed: int) -> dict[str, torch.Tensor]:
    """A start for ``align``'s hand-set fit, meta-learned first-order (FOMAML): per update,
    ``align.meta_batch`` fresh variants, each fitted from the start on one episode, and one
    Adam step on the start along the query loss's gradient at the fitted parameters."""
    agent, spec, src = trainer.agent, trainer.spec, trainer.source_params
    start = {
        k: v.detach().clone() for k, v in agent.named_params("adapter+encoder", "vector").items()
    }
    optimizer = torch.optim.Adam(start.values(), lr=spec.align.meta_lr)
    g = torch.Generator().manual_seed(seed + 7)
    for _ in range(updates):
        grads = {k: torch.zeros_like(v) for k, v in start.items()}
        for _ in range(spec.align.meta_batch):
            variant, s = fresh_variant_seed(g), int(torch.randint(0, 2**31 - 2, (), generator=g))
            support, query = (
                collect_paired_steps(agent, spec, ("vector", variant), source=trainer.source,
                                     seed=s + i, episodes=n).batch
                for i, n in ((0, 1), (1, spec.align.meta_query_episodes))
            )  # fmt: skip
            fitted = fit_adapter(agent, support, spec.align, "adapter+encoder", s, src, start)
            params = {k: v.requires_grad_(True) for k, v in fitted.params.items()}
            with torch.no_grad():
                z_q = encode(agent, query.obs[1], "vector", src)
            loss = pair_loss(agent, "vector", params, query, z_q, spec.align)
            for k, grad in zip(params, torch.autograd.grad(loss, list(params.values()))):
                grads[k] += grad / spec.align.meta_batch
        for k, v in start.items():
            v.grad = grads[k]
        optimizer.step()
    return start


def prior_fit(trainer: MetaFitTrainer, updates: int) -> tuple[PriorFitTrainer, float, float]:
    """The prior meta-learned for ``updates`` meta-updates on the same (fresh) agent, and its
    query loss at the first and last update."""
    spec = trainer.spec
    spec = replace(spec, algo="priorfit", align=dataclasses.replace(spec.align, meta_lr=PRIOR_LR))
    prior = PriorFitTrainer(spec)
    prior.agent.load_state_dict(trainer.agent.state_dict())
    losses = [prior.update()["query_loss/vector"] for _ in range(updates)]
    return prior, losses[0], losses[-1]


def measure(
    updates: int, trials: int, seed: int = 0, align_updates: int = 100, prior_updates: int = 200,
    noise: str = "shared",
) -> dict[str, Any]:  # fmt: skip
    """Meta-train for ``updates`` meta-updates (``prior_updates`` for the prior), then fit
    ``trials`` permutations from one episode each; each fit's relative query error per trial
    (see the module docstring)."""
    spec = case_spec(seed)
    trainer = MetaFitTrainer(spec)
    t0 = time.perf_counter()
    first = last = None
    for _ in range(updates):
        metrics = trainer.update()
        first = metrics if first is None else first
        last = metrics
    seconds = time.perf_counter() - t0
    assert trainer.metafit is not None
    agent, source = trainer.agent, trainer.source
    src = trainer.source_params
    unlearned = MetaFit(*trainer._fresh_start(), spec.align)
    t1 = time.perf_counter()
    learned_start = align_start(trainer, align_updates, seed)
    align_seconds = time.perf_counter() - t1
    t2 = time.perf_counter()
    prior, prior_first, prior_last = prior_fit(trainer, prior_updates)
    prior_seconds = time.perf_counter() - t2
    learned_prior = prior.metafit
    assert isinstance(learned_prior, MapPrior)
    unlearned_prior = prior._fresh()
    space = agent.observation_spaces["vector"]
    g = torch.Generator().manual_seed(seed + 5)
    rows = torch.Generator().manual_seed(seed + 9)  # the own noise's rows: the same permutations
    errors: dict[str, list[float]] = {r: [] for r in ROWS}
    state_errors: dict[str, list[float]] = {r: [] for r in MAP_ROWS}
    support_steps = []
    for t in range(trials):
        support, query = (
            collect_paired_steps(agent, spec, source, source=source, seed=s, episodes=n).batch
            for s, n in ((1000 + 2 * t, 1), (1001 + 2 * t, 8))
        )
        perm = _permutation(support.obs[1].shape[1] - NOISE_CHANNELS, g)
        support, query = (_permuted(b, perm, noise, rows) for b in (support, query))
        support_steps.append(support.batch_size)
        fits = {
            "no fit (the agent's weights)": unlearned.init["vector"],
            "no fit (learned start)": trainer.metafit.init["vector"],
            "metafit": trainer.metafit.fit(agent, support, src),
            "the same steps, not meta-learned": unlearned.fit(agent, support, src),
            "align": fit_adapter(agent, support, spec.align, "adapter+encoder", t, src).params,
            "align from a meta-learned start": fit_adapter(
                agent, support, spec.align, "adapter+encoder", t, src, learned_start
            ).params,
        }
        with torch.no_grad():
            z_q = encode(agent, query.obs[1], "vector", src)
            scale = float(z_q.pow(2).mean())
            for name, params in fits.items():
                z = encode(agent, query.obs[0], "vector", params)
                errors[name].append(float((z - z_q).pow(2).mean()) / scale)
            for name, table in (
                ("priorfit", learned_prior),
                ("priorfit's start, not meta-learned", unlearned_prior),
            ):
                weight = table.solve("vector", *_map_data(support, space))
                translated = LinearTranslator(weight, space)(query.obs[0])
                z = encode(agent, translated, "vector", src)
                errors[name].append(float((z - z_q).pow(2).mean()) / scale)
                state_errors[name].append(_state_error(translated, query.obs[1]))
            routing = ridge(support.obs[0].double(), support.obs[1].double()).float()
            z = encode(agent, query.obs[0] @ routing, "vector", src)
            errors["least squares"].append(float((z - z_q).pow(2).mean()) / scale)
            state_errors["least squares"].append(_state_error(query.obs[0] @ routing, query.obs[1]))
            z = encode(agent, query.obs[0][:, torch.argsort(perm)], "vector", src)
            errors["right answer"].append(float((z - z_q).pow(2).mean()) / scale)
            unnoised = query.obs[0][:, torch.argsort(perm)].clone()
            unnoised[:, -NOISE_CHANNELS:] = 0.0
            z = encode(agent, unnoised, "vector", src)
            errors["right answer, the noise not read"].append(
                float((z - z_q).pow(2).mean()) / scale
            )
    assert first is not None and last is not None
    return {
        "updates": updates, "trials": trials, "seed": seed, "meta_train_seconds": seconds,
        "align_start_seconds": align_seconds, "align_updates": align_updates,
        "prior_updates": prior_updates, "prior_seconds": prior_seconds, "noise": noise,
        "prior_query_loss_first": prior_first, "prior_query_loss_last": prior_last,
        "query_loss_first": first["query_loss/vector"],
        "query_loss_last": last["query_loss/vector"],
        "support_steps": support_steps,
        "train_variants": TaskSampler(spec).splits["train"]["vector"],
        "errors": errors,
        "state_errors": state_errors,
    }  # fmt: skip


def _map_data(pairs: Any, space: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """A linear map's inputs and outputs from ``pairs``: the target's features, the source's."""
    from metaxm.align.priorfit import features

    return features(pairs.obs[0], space), pairs.obs[1].float().flatten(1)


def _state_error(translated: torch.Tensor, source: torch.Tensor) -> float:
    """The translation's mean squared error on the source's state channels over their mean
    square (as the latents' error is measured): the permutation read (0), whatever the noise
    channels (which the case's target shares with the source, and no real variant does)."""
    state = slice(0, source.shape[1] - NOISE_CHANNELS)
    err = (translated[:, state] - source[:, state]).pow(2).mean()
    return float(err / source[:, state].pow(2).mean().clamp_min(1e-12))


def table(result: dict[str, Any]) -> str:
    lines = [
        "| fit, from one episode | relative query error, mean | min | max |",
        "|---|---|---|---|",
    ]
    for name, values in result["errors"].items():
        mean = sum(values) / len(values)
        lines.append(f"| {name} | {mean:.3f} | {min(values):.3f} | {max(values):.3f} |")
    lines += [
        "",
        "The fits that translate, on the source's state channels alone (the translation's mean "
        "squared error over their mean square):",
        "",
        "| fit, from one episode | relative state-channel error, mean | min | max |",
        "|---|---|---|---|",
    ]
    for name, values in result["state_errors"].items():
        mean = sum(values) / len(values)
        lines.append(f"| {name} | {mean:.4f} | {min(values):.4f} | {max(values):.4f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--updates", type=int, default=200, help="meta-updates of metafit")
    parser.add_argument(
        "--align-updates", type=int, default=100, help="first-order meta-updates of align's start"
    )
    parser.add_argument(
        "--prior-updates", type=int, default=200, help="meta-updates of priorfit's prior"
    )
    parser.add_argument("--trials", type=int, default=8, help="permutations fitted")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--noise",
        choices=("shared", "own"),
        default="shared",
        help="the target's noise channels: the source's own (shared), or drawn apart (own)",
    )
    parser.add_argument("--out", type=Path, help="write permutation-case.{json,md} here")
    args = parser.parse_args(argv)
    if min(args.updates, args.trials, args.prior_updates) < 1 or args.align_updates < 0:
        parser.error("--updates, --prior-updates and --trials must be >= 1, --align-updates >= 0")
    torch.set_num_threads(1)
    result = measure(
        args.updates, args.trials, args.seed, args.align_updates, args.prior_updates, args.noise
    )
    steps = result["support_steps"]
    text = (
        f"{result['updates']} meta-updates ({result['meta_train_seconds']:.0f} s; query loss "
        f"{result['query_loss_first']:.2f} -> {result['query_loss_last']:.2f}); align's start: "
        f"{result['align_updates']} first-order meta-updates "
        f"({result['align_start_seconds']:.0f} s); the prior: {result['prior_updates']} "
        f"meta-updates ({result['prior_seconds']:.0f} s; query loss "
        f"{result['prior_query_loss_first']:.3f} -> {result['prior_query_loss_last']:.3f}); "
        f"{result['trials']} permutations ({result['noise']} noise), one "
        f"support episode each ({min(steps)}-{max(steps)} steps)\n\n" + table(result)
    )
    print(text)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "permutation-case.json").write_text(json.dumps(result, indent=2) + "\n")
        noise = "" if args.noise == "shared" else " --noise own"
        command = f"python scripts/permutation_case.py{noise} --out {args.out}"
        (args.out / "permutation-case.md").write_text(
            f"# A pure permutation from one episode (#15's constructed case)\n\n"
            f"_`{command}`; the set-up: the script's docstring and "
            f"`docs/transfer-studies.md` section 20._\n\n{text}\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
