"""The few-shot alignment study: how well k paired steps align a held-out modality.

For every held-out modality of a spec (by default the ``heldout_families`` split: families the
agent never trained on) and every budget k, :func:`fewshot_study` fits the modality's adapter
and encoder with :func:`~metaxm.align.fewshot.few_shot_align` against a known training modality,
then scores the fitted latent with :func:`~metaxm.align.report.representation_report` against
every training family on fresh random states: retrieval in both directions (chance beside it)
and the linear probe's R^2 on held-out states. ``k = 0`` is the unfitted baseline. Results are
averaged over the held-out variants and seeds; per-fit rows are kept too.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from metaxm.align.fewshot import default_source, few_shot_align
from metaxm.align.report import representation_report
from metaxm.align.variants import VariantAdapters
from metaxm.nn.agent import Agent
from metaxm.sampler import TaskSampler

if TYPE_CHECKING:
    from metaxm.sampler import Split
    from metaxm.spec import Spec


def fewshot_study(
    agent: Agent,
    spec: Spec,
    budgets: Sequence[int],
    adapters: VariantAdapters | None = None,
    split: Split = "heldout_families",
    seeds: Sequence[int] = (0,),
    n_states: int = 256,
) -> dict[str, Any]:
    """Fit every modality of ``split`` with each budget and score the result.

    Args:
        agent: the (pretrained) agent; families it lacks are added.
        spec: the task spec.
        budgets: the k's (paired steps); 0 scores the unfitted modality.
        adapters: pretraining's per-variant adapters; the training families (and the source)
            are then encoded with their variants' own adapters.
        split: where the target modalities come from.
        seeds: fit and evaluation seeds; every (variant, seed) is one fit.
        n_states: test states of each report.

    Returns:
        ``{"source": "family:variant", "budgets": [...], "mean": {k: {metric: mean}},
        "rows": [per-fit records]}``; the metrics are ``top1_to_train`` / ``top1_from_train``
        (mean top-1 from the target to each training family and back), their ``top5_`` twins,
        ``top1_min`` (the worst direction and family), ``chance_top1``, ``chance_top5``,
        ``probe_r2`` (the target's probe) and ``episodes`` (of target experience used).
    """
    sampler = TaskSampler(spec)
    train_pool = sampler.splits["train"]
    source = default_source(spec)
    source_params = None if adapters is None else adapters.params(*source)
    rows: list[dict[str, Any]] = []
    for family, variant in sampler.modalities(split):
        for seed in seeds:
            for k in budgets:
                fit = few_shot_align(
                    agent, spec, (family, variant), steps=k, source=source, seed=seed,
                    source_params=source_params,
                )  # fmt: skip
                rep = representation_report(
                    agent, spec.world, {**train_pool, family: [variant]}, n_states,
                    seed=1000 + seed, params=fit.params, adapters=adapters, cluster=False,
                )  # fmt: skip
                rows.append(_row(rep, family, variant, seed, k, fit.episodes, list(train_pool)))
    mean = {
        k: {
            m: float(np.mean([r[m] for r in rows if r["k"] == k]))
            for m in rows[0]
            if m not in ("modality", "seed", "k")
        }
        for k in budgets
    }
    return {"source": f"{source[0]}:{source[1]}", "budgets": list(budgets), "mean": mean,
            "rows": rows}  # fmt: skip


def _row(
    rep: dict[str, float],
    family: str,
    variant: int,
    seed: int,
    k: int,
    episodes: int,
    train: list[str],
) -> dict[str, Any]:
    to = [rep[f"top1/{family}->{f}"] for f in train]
    back = [rep[f"top1/{f}->{family}"] for f in train]
    return {
        "modality": f"{family}:{variant}",
        "seed": seed,
        "k": k,
        "episodes": float(episodes),
        "top1_to_train": float(np.mean(to)),
        "top1_from_train": float(np.mean(back)),
        "top5_to_train": float(np.mean([rep[f"top5/{family}->{f}"] for f in train])),
        "top5_from_train": float(np.mean([rep[f"top5/{f}->{family}"] for f in train])),
        "top1_min": float(min(to + back)),
        "chance_top1": rep["chance_top1"],
        "chance_top5": rep["chance_top5"],
        "probe_r2": rep[f"probe_r2/{family}"],
    }


def format_study(study: dict[str, Any]) -> str:
    """A plain-text table of :func:`fewshot_study`'s means, chance levels beside."""
    mean = study["mean"]
    first = mean[study["budgets"][0]]
    lines = [
        f"few-shot alignment against {study['source']} "
        f"(chance: top-1 {first['chance_top1']:.3f}, top-5 {first['chance_top5']:.3f}; "
        f"means over {len(study['rows']) // len(study['budgets'])} fits)",
        f"  {'k':>5}{'episodes':>10}{'top1 ->':>9}{'top1 <-':>9}{'top5 ->':>9}{'top5 <-':>9}"
        f"{'top1 min':>10}{'probe R^2':>11}",
    ]
    for k in study["budgets"]:
        m = mean[k]
        lines.append(
            f"  {k:>5}{m['episodes']:>10.1f}{m['top1_to_train']:>9.3f}{m['top1_from_train']:>9.3f}"
            f"{m['top5_to_train']:>9.3f}{m['top5_from_train']:>9.3f}{m['top1_min']:>10.3f}"
            f"{m['probe_r2']:>11.3f}"
        )
    lines.append("  (->: from the new modality to the training families; <-: back)")
    return "\n".join(lines)


def run_study(spec: Spec, rundir: Path, budgets: list[int]) -> dict[str, Any]:
    """The study on a pretraining run: ``RUNDIR/fewshot.json`` and ``RUNDIR/fewshot_pca.png``
    (the training modalities and the first held-out family's variant, fitted with the largest
    budget); returns the study."""
    import json

    from metaxm.align.fewshot import default_source, few_shot_align
    from metaxm.align.plot import plot_latent_pca
    from metaxm.align.pretrain import load_pretrained, load_variant_adapters
    from metaxm.nn.agent import build_agent
    from metaxm.sampler import TaskSampler

    agent = build_agent(spec).to(spec.device)
    load_pretrained(agent, rundir)
    adapters = load_variant_adapters(agent, rundir)
    study = fewshot_study(agent, spec, budgets, adapters)
    (rundir / "fewshot.json").write_text(json.dumps(study, indent=2) + "\n")
    # the figure: the training modalities and the first held-out one, fitted with the largest k
    target = TaskSampler(spec).modalities("heldout_families")[0]
    source = default_source(spec)
    source_params = None if adapters is None else adapters.params(*source)
    fit = few_shot_align(
        agent, spec, target, steps=budgets[-1], source=source, source_params=source_params
    )
    shown = [(f, seeds[0]) for f, seeds in TaskSampler(spec).splits["train"].items()]
    params = [None if adapters is None else adapters.params(f, v) for f, v in shown]
    plot_latent_pca(
        agent, spec.world, [*shown, target], rundir / "fewshot_pca.png",
        params=[*params, fit.params],
        title=f"latent PCA: {target[0]}:{target[1]} aligned from {budgets[-1]} paired steps",
    )  # fmt: skip
    return study
