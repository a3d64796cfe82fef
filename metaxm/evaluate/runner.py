"""The evaluation: every held-out modality x strategy x seed, then the transfer metrics.

:func:`run_evaluation` measures the few-shot curves (the expensive part, with a progress bar),
the source-modality performance, and derives :class:`~metaxm.evaluate.metrics.TransferMetrics`
per (modality, strategy) and aggregated over modalities. The result is plain data (the
``report.json`` schema documented in :mod:`metaxm.evaluate.report`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from metaxm.errors import ConfigError
from metaxm.evaluate.episodes import METRICS, measure
from metaxm.evaluate.metrics import iqm_interval, transfer_metrics
from metaxm.evaluate.strategies import STRATEGIES, Agents, scratch_budgets
from metaxm.rl.trainer import derive_seed
from metaxm.sampler import TaskSampler

log = logging.getLogger(__name__)


def heldout_modalities(agents: Agents) -> list[tuple[str, str, int]]:
    """``(split, family, variant)`` of every held-out modality of the spec."""
    sampler = TaskSampler(agents.spec)
    return [
        (split, f, v)
        for split in ("heldout_variants", "heldout_families")
        for f, v in sampler.modalities(split)
    ]


def source_performance(agents: Agents, seed: int) -> dict[str, Any]:
    """The pre-trained agent on its own training modalities: the level transfer aims for.

    Uses the ``ppo`` agent when there is one, else ``maml``'s initialisation, else none (then
    the threshold cannot be set and is reported as missing).
    """
    kind = next((k for k in ("ppo", "maml") if k in agents.by_kind), None)
    spec = agents.spec
    if kind is None:
        return {"agent": None}
    agent = agents.by_kind[kind]
    sampler = TaskSampler(spec)
    per: dict[str, dict[str, float]] = {}
    for i, (family, variant) in enumerate(sampler.modalities("train")):
        per[f"{family}:{variant}"] = measure(
            agent, spec, family, variant, spec.evaluate.eval_episodes, seed + i
        )
    mean = {k: float(np.mean([r[k] for r in per.values()])) for k in METRICS}
    return {"agent": kind, **mean, "per_modality": per}


def run_evaluation(
    agents: Agents,
    strategies: Sequence[str] | None = None,
    seeds: int | None = None,
    modalities: Sequence[tuple[str, str, int]] | None = None,
    progress: bool = True,
    on_curve: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Measure every few-shot curve and derive the transfer metrics.

    Args:
        agents: the trained agents and the spec.
        strategies: names from :data:`STRATEGIES` (default: ``evaluate.strategies``); those
            whose agent is missing are skipped and listed in the result.
        seeds: seeds per curve (default ``evaluate.seeds``).
        modalities: ``(split, family, variant)`` to evaluate (default: all held-out ones).
        progress: show a progress bar.
        on_curve: called with each finished curve record (for incremental saving).

    Returns:
        the report data (see :mod:`metaxm.evaluate.report` for the schema).
    """
    spec = agents.spec
    cfg = spec.evaluate
    names = list(strategies or cfg.strategies)
    unknown = [n for n in names if n not in STRATEGIES]
    if unknown:
        raise ConfigError(f"unknown strategy {unknown[0]!r}; choose from {', '.join(STRATEGIES)}")
    if "scratch" not in names:
        names.append("scratch")  # every transfer metric is relative to it
    skipped = [n for n in names if not STRATEGIES[n].applicable(agents)]
    names = [n for n in names if n not in skipped]
    n_seeds = seeds or cfg.seeds
    held = list(modalities or heldout_modalities(agents))
    budgets = list(cfg.budgets)
    sbudgets = scratch_budgets(budgets, cfg.scratch_cap)
    root = derive_seed(spec.seed, "evaluate") % (2**31)
    started = time.perf_counter()
    source = source_performance(agents, root)
    jobs = [(m, s, k) for m in held for s in names for k in range(n_seeds)]
    curves: dict[str, dict[str, list[dict[str, list[float]]]]] = {}
    bar = tqdm(jobs, desc="evaluate", disable=not progress, dynamic_ncols=True)
    for (_split, family, variant), name, k in bar:
        mid = f"{family}:{variant}"
        bar.set_postfix_str(f"{mid} {name} seed {k}")
        seed = (root + 7919 * k + 104729 * variant) % (2**31)
        b = sbudgets if name == "scratch" else budgets
        curve = STRATEGIES[name].curve(agents, family, variant, b, seed)
        curves.setdefault(mid, {}).setdefault(name, []).append(curve)
        if on_curve is not None:
            on_curve({"modality": mid, "strategy": name, "seed": k, "curve": curve})
    bar.close()
    report = _derive(agents, held, names, curves, budgets, sbudgets, source)
    report["skipped_strategies"] = skipped
    report["seconds"] = time.perf_counter() - started
    report["seeds"] = n_seeds
    return report


def _derive(
    agents: Agents,
    held: list[tuple[str, str, int]],
    names: list[str],
    curves: dict[str, dict[str, list[dict[str, list[float]]]]],
    budgets: list[int],
    sbudgets: list[int],
    source: dict[str, Any],
) -> dict[str, Any]:
    cfg = agents.spec.evaluate
    metric = cfg.metric
    src = source.get(metric)
    modalities: dict[str, Any] = {}
    for split, family, variant in held:
        mid = f"{family}:{variant}"
        scratch = np.array([c[metric] for c in curves[mid]["scratch"]])
        entry: dict[str, Any] = {"split": split, "family": family, "variant": variant}
        strategies: dict[str, Any] = {}
        for name in names:
            runs = curves[mid][name]
            b = sbudgets if name == "scratch" else budgets
            values = np.array([c[metric] for c in runs])
            record: dict[str, Any] = {
                "budgets": b,
                "curves": {m: [c[m] for c in runs] for m in runs[0]},
                "iqm": {m: _iqm_curve(np.array([c[m] for c in runs])) for m in METRICS},
            }
            if src is not None:
                tm = transfer_metrics(
                    b, values, sbudgets, scratch, float(src), cfg.threshold,
                    seed=variant,
                )  # fmt: skip
                record["metrics"] = tm.to_dict()
            strategies[name] = record
        entry["strategies"] = strategies
        modalities[mid] = entry
    return {
        "metric": metric,
        "threshold": cfg.threshold,
        "budgets": budgets,
        "scratch_budgets": sbudgets,
        "source": source,
        "strategies": names,
        "modalities": modalities,
        "summary": summarize(modalities, names, metric),
    }


def _iqm_curve(values: np.ndarray) -> dict[str, list[float]]:
    """Per budget: IQM over seeds and its bootstrap interval."""
    cis = [iqm_interval(values[:, j], n_resamples=1000, seed=j) for j in range(values.shape[1])]
    return {
        "point": [c.point for c in cis],
        "low": [c.low for c in cis],
        "high": [c.high for c in cis],
    }


def summarize(modalities: dict[str, Any], names: list[str], metric: str) -> dict[str, Any]:
    """Per strategy, over held-out modalities (strata): IQM of ``metric`` at each of its
    budgets with a stratified-bootstrap interval, and per modality the episodes to threshold
    (None where most seeds are censored)."""
    out: dict[str, Any] = {}
    for name in names:
        per_budget = []
        own = next(iter(modalities.values()))["strategies"][name]["budgets"]
        for j, k in enumerate(own):
            strata = []
            for entry in modalities.values():
                rec = entry["strategies"][name]
                col = rec["budgets"].index(k)
                strata.append(np.array([c[col] for c in rec["curves"][metric]]))
            per_budget.append(iqm_interval(strata, n_resamples=1000, seed=j).to_dict())
        reached = {}
        for entry_id, entry in modalities.items():
            m = entry["strategies"][name].get("metrics")
            if m is not None:
                reached[entry_id] = (
                    None
                    if m["censored"] * 2 > m["seeds"]
                    else (m["episodes_to_threshold"]["point"])
                )
        out[name] = {"budgets": own, "by_budget": per_budget, "episodes_to_threshold": reached}
    return out
