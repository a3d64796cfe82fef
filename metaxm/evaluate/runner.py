"""The evaluation: every held-out modality x strategy x seed, then the transfer metrics.

:func:`run_evaluation` measures the few-shot curves (the expensive part, with a progress bar),
the source-modality performance, and derives :class:`~metaxm.evaluate.metrics.TransferMetrics`
per (modality, strategy) and aggregated over modalities. The result is plain data (the
``report.json`` schema documented in :mod:`metaxm.evaluate.report`).
"""

from __future__ import annotations

import logging
import multiprocessing
import numbers
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from tqdm.auto import tqdm

from metaxm.envs import has_oracle
from metaxm.errors import ConfigError
from metaxm.evaluate.episodes import METRICS, Curve, measure
from metaxm.evaluate.metrics import (
    episodes_to_level,
    iqm_interval,
    paired_episodes,
    transfer_metrics,
)
from metaxm.evaluate.strategies import STRATEGIES, Agents, scratch_budgets
from metaxm.modalities import parse_modality_id
from metaxm.plugins import load_in_child
from metaxm.rl.trainer import derive_seed
from metaxm.run.children import die_with_parent, ignore_interrupts, interrupt_blocked, stop_pool
from metaxm.sampler import TaskSampler

if TYPE_CHECKING:
    from metaxm.spec import Spec

log = logging.getLogger(__name__)

Job = tuple[str, str, int, int]  # (modality id, strategy, seed index, seed)


def heldout_modalities(agents: Agents) -> list[tuple[str, str, int]]:
    """``(split, family, variant)`` of every held-out modality of the spec."""
    sampler = TaskSampler(agents.spec)
    return [
        (split, f, v)
        for split in ("heldout_variants", "heldout_families")
        for f, v in sampler.modalities(split)
    ]


def validation_modalities(agents: Agents, ids: Sequence[str]) -> list[tuple[str, str, int]]:
    """``("validation", family, variant)`` of each ``FAMILY:VARIANT`` of ``ids``: modalities
    to tune on, outside every split of the spec (``metaxm evaluate --modality``).

    Raises:
        ConfigError: an id that does not parse or names no family, or a variant a split of the
            spec holds (its training or held-out variants are not validation variants).
    """
    from metaxm.evaluate.loading import trained_variants

    trained = trained_variants(agents)
    splits = TaskSampler(agents.spec).splits
    taken = {
        (f, v): split for split, by in splits.items() for f, seeds in by.items() for v in seeds
    }
    out = []
    for text in ids:
        try:
            family, variant = parse_modality_id(text)
        except ValueError as err:
            raise ConfigError(f"--modality {text}: {err}") from None
        if (family, variant) in taken:
            split = {"train": "training", "heldout_variants": "held-out"}.get(
                taken[family, variant], "held-out family's"
            )
            raise ConfigError(
                f"--modality {text}: a {split} variant of the spec; validation variants lie "
                "outside every split (e.g. seeds 100-131, as docs/transfer-studies.md uses)"
            )
        if (family, variant) in trained:  # a folder of runs whose kinds trained other splits
            raise ConfigError(
                f"--modality {text}: a variant the {trained[family, variant]} agent trained on; "
                "validation variants lie outside every split"
            )
        out.append(("validation", family, variant))
    return list(dict.fromkeys(out))


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
    families: dict[str, list[dict[str, float]]] = {}
    for mid, r in per.items():
        families.setdefault(mid.partition(":")[0], []).append(r)
    per_family = {
        f: {k: float(np.mean([r[k] for r in rs])) for k in METRICS} for f, rs in families.items()
    }
    oracle = oracle_performance(spec, seed) if has_oracle(spec.world) else None
    return {"agent": kind, **mean, "per_modality": per, "per_family": per_family, "oracle": oracle}


def oracle_performance(spec: Spec, seed: int) -> dict[str, float]:
    """The world's oracle (it acts on the true state, so one number serves every modality) on
    ``evaluate.eval_episodes`` fresh episodes: the level an oracle-relative threshold is a
    fraction of, which, unlike the source agent's, does not fall when the source agent is weak.
    """
    from metaxm.rl.evaluate import fresh_env, oracle_act, run_episodes

    family, seeds = next(iter(TaskSampler(spec).splits["train"].items()))
    n = spec.evaluate.eval_episodes
    out = run_episodes(fresh_env(spec, family, [seeds[0]] * n, seed), oracle_act)
    return {
        "return": float(out["return"].double().mean()),
        "success": float(out["success"].double().mean()),
        "steps": float(out["length"].double().mean()),
    }


def source_level(source: dict[str, Any], family: str, metric: str) -> float | None:
    """The source performance a held-out modality is measured against: the agent on the
    training variants of the same family (a held-out variant), or on every training modality
    (a held-out family)."""
    own = source.get("per_family", {}).get(family)
    return own[metric] if own is not None else source.get(metric)


def check_readable(agents: Agents, held: Sequence[str]) -> None:
    """Refuse, in one line, a spec whose families the trained agents have no encoder for (a
    held-out family is read through an encoder built, untrained, with the agent)."""
    readers = set(next(iter(agents.by_kind.values())).families)
    spec = agents.spec
    needed = [*spec.modalities.train, *held]
    missing = [f for f in dict.fromkeys(needed) if f not in readers]
    if missing:
        raise ConfigError(
            f"the agents have no encoder for {', '.join(map(repr, missing))} (they read "
            f"{', '.join(sorted(readers))}): evaluate under the spec they were trained with, "
            "or give them one with --add-family FAMILY"
        )


def unmeasurable_reason(src: float | None, threshold: float, fresh: float, metric: str) -> str:
    """Why a threshold of ``threshold`` x ``src`` measures nothing when a fresh agent reaches
    ``fresh``: a weak source agent, or a fresh agent already at the threshold."""
    if src is None:
        return "no source agent to set a threshold"
    level = threshold * src
    if src <= fresh:
        return (
            f"the source agent is no better than a fresh one here (source {metric} {src:.3f}, "
            f"a fresh agent up to {fresh:.3f})"
        )
    return (
        f"a fresh agent already reaches the threshold ({fresh:.3f} >= {threshold:.0%} of source "
        f"{metric} {src:.3f} = {level:.3f}), though the source agent is better"
    )


@dataclass
class Plan:
    """What an evaluation measures (:func:`plan_evaluation`).

    Attributes:
        names: the strategies measured (``scratch`` always among them).
        skipped: the strategies asked for whose agent is missing.
        seeds: seeds per curve.
        held: ``(split, family, variant)`` of every modality measured.
        unread: per modality id, the strategies that do not read it and why.
        budgets: the few-shot budgets (``scratch``'s: ``scratch_budgets``).
        scratch_budgets: ``scratch``'s budgets.
        root: the evaluation's seed, from which every job's is derived.
        jobs: one per (modality, strategy, seed), each seeded on its own.
    """

    names: list[str]
    skipped: list[str]
    seeds: int
    held: list[tuple[str, str, int]]
    unread: dict[str, dict[str, str]]
    budgets: list[int]
    scratch_budgets: list[int]
    root: int
    jobs: list[Job]


def plan_evaluation(
    agents: Agents,
    strategies: Sequence[str] | None = None,
    seeds: int | None = None,
    modalities: Sequence[tuple[str, str, int]] | None = None,
) -> Plan:
    """The jobs :func:`run_evaluation` measures, checked before any is (arguments as there).

    Raises:
        ConfigError: an unknown strategy, no held-out modality, a family the agents cannot
            read, or an ``align`` fit setting that cannot work.
    """
    spec = agents.spec
    cfg = spec.evaluate
    _check_arguments(strategies, seeds, modalities)
    names = list(strategies or cfg.strategies)
    unknown = [n for n in names if n not in STRATEGIES]
    if unknown:
        raise ConfigError(f"unknown strategy {unknown[0]!r}; choose from {', '.join(STRATEGIES)}")
    if "scratch" not in names:
        names.append("scratch")  # every transfer metric is relative to it
    skipped = [n for n in names if not STRATEGIES[n].applicable(agents)]
    names = [n for n in names if n not in skipped]
    if strategies:  # asked for by name: said here, not only in the report
        asked = [n for n in dict.fromkeys(strategies) if n != "scratch"]
        if asked and all(n in skipped for n in asked):  # a report of scratch alone
            why = "; ".join(f"{n}: {STRATEGIES[n].unavailable(agents)}" for n in asked)
            raise ConfigError(f"no strategy asked for can run on these agents ({why})")
        for name in skipped:
            log.warning("evaluate: %s is skipped: %s", name, STRATEGIES[name].unavailable(agents))
    n_seeds = seeds or cfg.seeds
    held = list(modalities or heldout_modalities(agents))
    if not held:
        raise ConfigError(
            "the spec holds no held-out modality (modalities.heldout_variants and "
            "heldout_families are empty); name some in the spec, or pass --spec with them"
        )
    check_readable(agents, [f for _, f, _ in held])
    # a strategy that reads some families only is not measured on the others (said before
    # any curve is measured, and in the report)
    unread: dict[str, dict[str, str]] = {}
    for name in names:
        for _, family, variant in held:
            why = STRATEGIES[name].cannot_read(agents, family)
            if why is not None:
                unread.setdefault(f"{family}:{variant}", {})[name] = why
    for mid, by_name in unread.items():
        for name, why in by_name.items():
            log.warning("evaluate: %s is not measured on %s: %s", name, mid, why)
    if "align" in names:  # refuse a fit setting that cannot work before any curve is measured
        from metaxm.align.fewshot import fit_subset

        for _, family, _ in held:
            fit_subset(spec, family)
    budgets = list(cfg.budgets)
    root = derive_seed(spec.seed, "evaluate") % (2**31)
    jobs = [
        (mid, name, k, (root + 7919 * k + 104729 * v) % (2**31))
        for (_, f, v) in held
        for mid in [f"{f}:{v}"]
        for name in names
        if name not in unread.get(mid, {})
        for k in range(n_seeds)
    ]
    return Plan(names, skipped, n_seeds, held, unread, budgets,
                scratch_budgets(budgets, cfg.scratch_cap), root, jobs)  # fmt: skip


def _check_arguments(strategies: object, seeds: object, modalities: object) -> None:
    """One line for an argument of the wrong kind, before it is taken apart (a string of
    strategies would be read as its letters)."""
    if isinstance(strategies, str):
        raise ConfigError(
            f"strategies: a list of names, not the string {strategies!r}: pass [{strategies!r}]"
        )
    whole = isinstance(seeds, numbers.Integral) and not isinstance(seeds, bool)
    if seeds is not None and not (whole and seeds >= 1):
        raise ConfigError(f"seeds: a whole number >= 1, not {seeds!r}")
    if modalities is None:
        return
    if isinstance(modalities, str):
        raise ConfigError(f"modalities: a list of (split, family, variant), not {modalities!r}")
    for item in modalities:
        if not (
            isinstance(item, tuple | list)
            and len(item) == 3
            and isinstance(item[0], str)
            and isinstance(item[1], str)
            and isinstance(item[2], numbers.Integral)
            and not isinstance(item[2], bool)
        ):
            raise ConfigError(
                f"modalities: each one a (split, family, variant) such as "
                f"('validation', 'vector', 100), not {item!r} (validation_modalities(agents, "
                "['vector:100']) builds them from FAMILY:VARIANT)"
            )


def run_evaluation(
    agents: Agents,
    strategies: Sequence[str] | None = None,
    seeds: int | None = None,
    modalities: Sequence[tuple[str, str, int]] | None = None,
    progress: bool | None = None,
    on_curve: Callable[[dict[str, Any]], None] | None = None,
    workers: int | None = None,
    measured: Mapping[Job, tuple[Curve, float]] | None = None,
    report_dir: str | Path | None = None,
    resume: bool = False,
) -> dict[str, Any]:
    """Measure every few-shot curve and derive the transfer metrics.

    Args:
        agents: the trained agents and the spec.
        strategies: names from :data:`STRATEGIES` (default: ``evaluate.strategies``); those
            whose agent is missing are skipped and listed in the result.
        seeds: seeds per curve (default ``evaluate.seeds``).
        modalities: ``(split, family, variant)`` to evaluate (default: all held-out ones).
        progress: show a progress bar (default ``log.progress``).
        on_curve: called with each finished curve record (for incremental saving).
        workers: processes measuring curves in parallel (default ``evaluate.workers``).
        measured: jobs of the plan already measured (curve and seconds), not measured again:
            the main job measures some beside its last stages (:mod:`metaxm.run.early_eval`).
        report_dir: where every finished curve is saved at once (``curves.jsonl``,
            :mod:`metaxm.evaluate.curve_log`); None saves nothing.
        resume: take back the curves ``report_dir``'s log holds for this very evaluation.

    Returns:
        the report data (see :mod:`metaxm.evaluate.report` for the schema).
    """
    spec = agents.spec
    cfg = spec.evaluate
    plan = plan_evaluation(agents, strategies, seeds, modalities)
    names, n_seeds, held, unread = plan.names, plan.seeds, plan.held, plan.unread
    budgets, sbudgets, skipped = plan.budgets, plan.scratch_budgets, plan.skipped
    started = time.perf_counter()
    source = source_performance(agents, plan.root)
    measured = dict(measured or {})
    saved = None
    if report_dir is not None:
        from metaxm.evaluate.curve_log import CurveLog, fingerprint

        saved = CurveLog(report_dir, fingerprint(agents, plan), resume)
        measured = {**saved.measured, **measured}
    measured = {job: measured[job] for job in plan.jobs if job in measured}
    jobs = [job for job in plan.jobs if job not in measured]
    n_workers = min(workers or cfg.workers, len(jobs)) or 1
    curves: dict[str, dict[str, dict[int, Curve]]] = {}
    times: dict[str, dict[str, dict[int, float]]] = {}
    show = spec.log.progress if progress is None else progress
    bar = tqdm(total=len(plan.jobs), desc="evaluate", disable=not show, dynamic_ncols=True)
    done = ((job, *measured[job]) for job in measured)
    for job, curve, seconds in chain(done, _run_jobs(agents, jobs, budgets, sbudgets, n_workers)):
        mid, name, k, job_seed = job
        curves.setdefault(mid, {}).setdefault(name, {})[k] = curve
        times.setdefault(mid, {}).setdefault(name, {})[k] = seconds
        bar.set_postfix_str(f"{mid} {name} seed {k}")
        bar.update()
        record = {"modality": mid, "strategy": name, "seed": k, "job_seed": job_seed,
                  "curve": curve, "seconds": seconds}  # fmt: skip
        if saved is not None and job not in saved.measured:
            saved(record)
        if on_curve is not None:
            on_curve(record)
    bar.close()
    ordered = {
        mid: {name: [runs[k] for k in range(n_seeds)] for name, runs in by_name.items()}
        for mid, by_name in curves.items()
    }
    report = _derive(agents, held, names, ordered, budgets, sbudgets, source)
    report["unread"] = unread
    report["skipped_strategies"] = skipped
    report["skipped_because"] = {n: STRATEGIES[n].unavailable(agents) for n in skipped}
    report["data"] = {name: list(STRATEGIES[name].data_of(agents)) for name in names}
    report["in_episode"] = {n: STRATEGIES[n].in_episode for n in names if STRATEGIES[n].in_episode}
    report["meta_learned"] = {n: STRATEGIES[n].meta_learned for n in names}
    report["controls"] = {n: STRATEGIES[n].control for n in names if STRATEGIES[n].control}
    report["same_task"] = [n for n in names if STRATEGIES[n].same_task]
    report["seconds"] = time.perf_counter() - started
    for mid, by_name in times.items():
        for name, per_seed in by_name.items():
            record = report["modalities"][mid]["strategies"][name]
            record["seconds"] = [per_seed[k] for k in range(n_seeds)]
    report["seconds_by_strategy"] = {
        name: float(sum(sum(by.get(name, {}).values()) for by in times.values())) for name in names
    }
    report["seeds"] = n_seeds
    report["workers"] = n_workers
    report["curves_measured"] = len(jobs)  # by this call; the rest were taken back
    report["curves_taken_back"] = len(plan.jobs) - len(jobs)  # (a resumed log, early curves)
    return report


_WORKER_AGENTS: Agents | None = None


def worker_pool(agents: Agents, workers: int) -> ProcessPoolExecutor:
    """The pool that measures curves: ``workers`` spawned processes, each holding ``agents``
    and running one torch thread. A worker dies with this process, SIGKILL included (see
    :func:`~metaxm.run.children.die_with_parent`), so submit to the pool from the thread that
    shuts it down: a worker is started by the submitting thread, and dies with it."""
    context = multiprocessing.get_context("spawn")  # no fork of a process with torch threads
    return ProcessPoolExecutor(workers, context, initializer=_init_worker, initargs=(agents,))


def _init_worker(agents: Agents) -> None:
    global _WORKER_AGENTS
    ignore_interrupts()  # a Ctrl-C is the parent's: it stops the pool (stop_pool)
    die_with_parent()  # else a SIGKILLed evaluation leaves its workers waiting forever
    torch.set_num_threads(1)
    load_in_child(agents.spec.imports)  # a plugin's families and worlds, as the parent has
    _WORKER_AGENTS = agents


def _one(
    job: Job, budgets: list[int], sbudgets: list[int], agents: Agents | None = None
) -> tuple[Curve, float]:
    """The job's curve and the wall-clock seconds it took (kept apart from the curve, which is
    reproducible)."""
    mid, name, _, seed = job
    family, variant = parse_modality_id(mid)
    agents = agents if agents is not None else _WORKER_AGENTS
    b = sbudgets if name == "scratch" else budgets
    started = time.perf_counter()
    curve = STRATEGIES[name].curve(agents, family, variant, b, seed)
    return curve, time.perf_counter() - started


def _run_jobs(
    agents: Agents, jobs: list[Job], budgets: list[int], sbudgets: list[int], workers: int
) -> Iterator[tuple[Job, Curve, float]]:
    """Each job's curve and seconds, in completion order. Every job is seeded on its own, so
    the curves do not depend on the number of workers or the order they finish in."""
    if workers <= 1:
        for job in jobs:
            yield job, *_one(job, budgets, sbudgets, agents)
        return
    pool = worker_pool(agents, workers)
    try:
        with interrupt_blocked():  # the submits start the workers: no Ctrl-C while they import
            futures = {pool.submit(_one, job, budgets, sbudgets): job for job in jobs}
        for future in as_completed(futures):
            yield futures[future], *future.result()
    except BaseException:  # Ctrl-C, SIGTERM, a job that failed, a caller that stopped reading
        stop_pool(pool)  # now, not after every job left (the workers ignore Ctrl-C)
        raise
    pool.shutdown()


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
    oracle = (source.get("oracle") or {}).get(metric)
    modalities: dict[str, Any] = {}
    for split, family, variant in held:
        mid = f"{family}:{variant}"
        src = source_level(source, family, metric)
        scratch = np.array([c[metric] for c in curves[mid]["scratch"]])
        entry: dict[str, Any] = {
            "split": split, "family": family, "variant": variant, "source": src,
        }  # fmt: skip
        strategies: dict[str, Any] = {}
        for name in names:
            if name not in curves[mid]:  # a family it does not read
                continue
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
                    seed=variant, paired=True,  # seed k's jobs share their seed
                )  # fmt: skip
                record["metrics"] = tm.to_dict()
                level = cfg.threshold * float(src)
                record["stay_metrics"] = episodes_to_level(b, values, level, variant, stay=True)
            if oracle is not None:  # the same threshold as a fraction of the oracle's level
                level = cfg.threshold * oracle
                record["oracle_metrics"] = episodes_to_level(b, values, level, seed=variant)
            strategies[name] = record
        entry["strategies"] = strategies
        if src is not None:
            _pair_with(BASELINE, strategies, cfg.threshold * src, metric, variant)
        # a threshold within what a fresh agent reaches (the upper end of the 95% interval of
        # scratch before any experience) measures nothing: either the source agent is no
        # better than a fresh one, or a fresh one is already within the threshold of it
        fresh = strategies["scratch"]["iqm"][metric]["high"][0]
        entry["measurable"] = src is not None and cfg.threshold * src > fresh
        entry["fresh"] = fresh
        if not entry["measurable"]:
            entry["unmeasurable"] = unmeasurable_reason(src, cfg.threshold, fresh, metric)
        modalities[mid] = entry
    return {
        "metric": metric,
        "threshold": cfg.threshold,
        "target_episodes": cfg.target_episodes,
        "target_speedup": cfg.target_speedup,
        "budgets": budgets,
        "scratch_budgets": sbudgets,
        "source": source,
        "strategies": names,
        "modalities": modalities,
        "summary": summarize(modalities, names, metric),
    }


BASELINE = "align"
"""The hand-set strategy every strategy consuming the same data is paired with, seed by seed:
how many fewer episodes a fit needs than ``align``'s Adam steps, on the same agents and k."""


def _pair_with(
    baseline: str, strategies: dict[str, Any], level: float, metric: str, seed: int
) -> None:
    """Give each strategy that consumes ``baseline``'s data its episodes to ``level`` paired
    with the baseline's on the same seeds (``vs_<baseline>``; :func:`paired_episodes`). Such
    strategies fit the same k episodes where the seeds match (``translate``, ``metafit`` and
    ``priorfit`` take ``align``'s episodes and pairs)."""
    if baseline not in strategies:
        return
    base = strategies[baseline]
    data = STRATEGIES[baseline].data
    for name, record in strategies.items():
        if name == baseline or STRATEGIES[name].data != data:
            continue
        if record["budgets"] != base["budgets"]:
            continue
        record[f"vs_{baseline}"] = paired_episodes(
            record["budgets"], np.array(record["curves"][metric]),
            np.array(base["curves"][metric]), level, seed=seed,
        )  # fmt: skip


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
    (None where most seeds are censored). A strategy that does not read every modality is
    summarised over those it reads, the others listed under ``missing``."""
    out: dict[str, Any] = {}
    for name in names:
        per_budget = []
        read = [e for e in modalities.values() if name in e["strategies"]]
        if not read:
            continue
        own = read[0]["strategies"][name]["budgets"]
        for j, k in enumerate(own):
            strata = []
            for entry in read:
                rec = entry["strategies"][name]
                col = rec["budgets"].index(k)
                strata.append(np.array([c[col] for c in rec["curves"][metric]]))
            per_budget.append(iqm_interval(strata, n_resamples=1000, seed=j).to_dict())
        reached = {}
        for entry_id, entry in modalities.items():
            if name not in entry["strategies"]:
                continue
            m = entry["strategies"][name].get("metrics")
            if m is not None:
                reached[entry_id] = (
                    None
                    if m["censored"] * 2 > m["seeds"]
                    else (m["episodes_to_threshold"]["point"])
                )
        out[name] = {"budgets": own, "by_budget": per_budget, "episodes_to_threshold": reached}
        if len(read) < len(modalities):  # over the modalities it reads only
            out[name]["missing"] = [m for m, e in modalities.items() if name not in e["strategies"]]
    return out
