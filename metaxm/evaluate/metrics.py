"""Transfer metrics of few-shot curves, and interquartile means with bootstrap intervals.

A *curve* is performance (success rate, return, ...) measured after k = 0, 1, 2, 4, ...
episodes of target-modality experience, one row per seed. From the curves of an adapting
strategy, of PPO from ``scratch`` and the source-modality performance we derive the transfer
metrics of Taylor & Stone (2009, "Transfer learning for reinforcement learning domains: a
survey", sec. 2.1), with the aggregation advice of Agarwal et al. (2021, "Deep RL at the edge of
the statistical precipice"): interquartile means (IQM) over seeds with stratified-bootstrap 95%
confidence intervals.

Definitions (``K`` is the largest budget of the adapting strategy):

* **jumpstart**: performance at k = 0 minus scratch's at k = 0.
* **auc**: area under the curve against ``log2(1 + k)`` over [0, K], divided by the width of
  that axis: the mean performance over a log-spaced budget schedule, in performance units (a
  log axis so that 1 episode matters as much as the step from 16 to 32).
* **transfer_ratio**: auc / scratch's auc over the same budgets (Taylor & Stone's "total reward"
  ratio); ``inf`` when scratch's area is 0 and the strategy's is not.
* **episodes_to_threshold**: the first measured budget whose performance reaches
  ``threshold`` (80% of source performance); *censored* (None) when no measured budget does.
  The report also gives the stricter **episodes to stay** (:func:`episodes_to_stay`): the
  first budget from which every later one reaches it.
* **speedup**: scratch's episodes-to-threshold / the strategy's, each at least 1 episode; a
  lower bound when scratch is censored (its cap is used), undefined when the strategy is.
* **asymptote**: performance at the largest budget.
* **negative transfer**: the strategy's auc is below scratch's, with the 95% bootstrap
  interval of the IQM difference excluding zero. Where the two curves share their seeds
  (``paired``, as in the evaluator), this interval and the jumpstart's resample seeds, not
  the two curves apart.
* **paired against a baseline** (:func:`paired_episodes`): seed by seed, the strategy's
  episodes to threshold minus the baseline's on the same seeds; its mean with a bootstrap
  interval and the Wilcoxon signed-rank test. Seeds pair two curves' target episodes, so this
  sees a difference that two independent intervals hide.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
TRIM = 0.25
"""The share the interquartile mean cuts from each end (``int(TRIM * n)`` values of n)."""


def iqm(values: np.ndarray, axis: int = -1) -> np.ndarray:
    """Interquartile mean: the mean of the middle 50% (``scipy.stats.trim_mean(x, TRIM)``)."""
    return stats.trim_mean(values, TRIM, axis=axis)


@dataclass(frozen=True)
class Interval:
    """A point estimate with its confidence interval."""

    point: float
    low: float
    high: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def iqm_interval(
    strata: Sequence[np.ndarray] | np.ndarray,
    n_resamples: int = 2000,
    seed: int = 0,
    confidence: float = CONFIDENCE,
) -> Interval:
    """IQM of all values with a stratified percentile-bootstrap interval.

    Args:
        strata: one array of per-seed values per stratum (e.g. per held-out modality), or a
            single array. Seeds are resampled within each stratum, never across.
        n_resamples: bootstrap resamples.
        seed: seeds the resampling.
        confidence: the interval's coverage.
    """
    groups = [np.asarray(strata, float)] if isinstance(strata, np.ndarray) else strata
    groups = [np.asarray(g, float).ravel() for g in groups if np.size(g)]
    if not groups:
        return Interval(float("nan"), float("nan"), float("nan"))
    point = float(iqm(np.concatenate(groups)))
    if all(g.size < 2 or np.all(g == g[0]) for g in groups):
        return Interval(point, point, point)  # nothing to resample

    def statistic(*samples: np.ndarray, axis: int = -1) -> np.ndarray:
        return iqm(np.concatenate(samples, axis=axis), axis=axis)

    res = stats.bootstrap(
        groups,
        statistic,
        n_resamples=n_resamples,
        confidence_level=confidence,
        method="percentile",
        vectorized=True,
        rng=np.random.default_rng(seed),
    )
    return Interval(point, float(res.confidence_interval.low), float(res.confidence_interval.high))


def difference_interval(
    a: np.ndarray, b: np.ndarray, n_resamples: int = 2000, seed: int = 0, paired: bool = False
) -> Interval:
    """IQM(a) - IQM(b) with a bootstrap interval: a and b resampled independently, or with
    ``paired`` (a[i] and b[i] measured on the same seed) the same seeds drawn for both, so
    that what the seeds share (their tasks, their episodes) cancels out."""
    a, b = np.asarray(a, float).ravel(), np.asarray(b, float).ravel()
    if paired and a.shape != b.shape:
        raise ValueError(f"paired values need the same seeds: {a.size} and {b.size}")
    point = float(iqm(a) - iqm(b))
    if paired:
        if a.size < 2 or np.all(a - b == a[0] - b[0]):
            return Interval(point, point, point)
    elif (a.size < 2 or np.all(a == a[0])) and (b.size < 2 or np.all(b == b[0])):
        return Interval(point, point, point)

    def statistic(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
        return iqm(x, axis=axis) - iqm(y, axis=axis)

    res = stats.bootstrap(
        (a, b),
        statistic,
        n_resamples=n_resamples,
        paired=paired,
        method="percentile",
        vectorized=True,
        rng=np.random.default_rng(seed),
    )
    return Interval(point, float(res.confidence_interval.low), float(res.confidence_interval.high))


def log_axis(budgets: Sequence[int]) -> np.ndarray:
    """The x-axis curves are integrated over: log2(1 + k)."""
    return np.log2(1.0 + np.asarray(budgets, float))


def area_under_curve(
    budgets: Sequence[int], values: np.ndarray, upto: int | None = None
) -> np.ndarray:
    """Normalised area under ``values`` (..., K) over log2(1 + k), restricted to k <= ``upto``."""
    budgets = np.asarray(budgets)
    keep = budgets <= (budgets.max() if upto is None else upto)
    x = log_axis(budgets[keep])
    y = np.asarray(values, float)[..., keep]
    if x.size == 1:
        return y[..., 0]
    return np.trapezoid(y, x, axis=-1) / (x[-1] - x[0])


def episodes_to_threshold(
    budgets: Sequence[int], values: np.ndarray, threshold: float
) -> list[int | None]:
    """Per row of ``values`` (seeds, K): the first budget reaching ``threshold``, else None."""
    out: list[int | None] = []
    for row in np.atleast_2d(np.asarray(values, float)):
        hit = np.nonzero(row >= threshold - 1e-12)[0]
        out.append(int(budgets[hit[0]]) if hit.size else None)
    return out


def episodes_to_stay(
    budgets: Sequence[int], values: np.ndarray, threshold: float
) -> list[int | None]:
    """Per row of ``values`` (seeds, K): the first budget from which every later measured
    budget reaches ``threshold`` (a curve that reaches it and falls back below counts from
    where it stays), else None (the last budget is below)."""
    out: list[int | None] = []
    for row in np.atleast_2d(np.asarray(values, float)):
        below = np.nonzero(~(row >= threshold - 1e-12))[0]  # NaN counts as below
        if below.size == 0:
            out.append(int(budgets[0]))
        else:
            out.append(None if below[-1] == len(row) - 1 else int(budgets[below[-1] + 1]))
    return out


@dataclass(frozen=True)
class TransferMetrics:
    """The transfer metrics of one strategy on one modality (see the module docstring).

    Each metric is an IQM over seeds with its interval; ``episodes_to_threshold`` is the IQM of
    per-seed values where censored seeds count as the cap, with ``censored`` seeds counted.
    """

    jumpstart: Interval
    auc: Interval
    transfer_ratio: float
    episodes_to_threshold: Interval
    censored: int
    seeds: int
    speedup: float | None
    speedup_is_lower_bound: bool
    asymptote: Interval
    negative_transfer: bool
    auc_minus_scratch: Interval

    def to_dict(self) -> dict:
        return asdict(self)


def _capped(hits: Sequence[int | None], cap: int) -> np.ndarray:
    """Per-seed episodes to threshold with censored seeds counted as the cap."""
    return np.array([cap if h is None else h for h in hits], float)


def episodes_to_level(
    budgets: Sequence[int], curves: np.ndarray, level: float, seed: int = 0, stay: bool = False
) -> dict:
    """Only the episodes-to-threshold part of :func:`transfer_metrics`, against an absolute
    ``level`` (e.g. a fraction of the oracle's): ``{episodes_to_threshold: {point, low,
    high}, censored, seeds}``, with the same IQM, cap and bootstrap; with ``stay``, the
    episodes from which the curve stays at the level (:func:`episodes_to_stay`)."""
    budgets = np.asarray(budgets)
    first = episodes_to_stay if stay else episodes_to_threshold
    hits = first(budgets, np.atleast_2d(curves).astype(float), level)
    interval = iqm_interval(_capped(hits, int(budgets.max())), seed=seed)
    return {
        "episodes_to_threshold": interval.to_dict(),
        "censored": sum(h is None for h in hits),
        "seeds": len(hits),
    }


def transfer_metrics(
    budgets: Sequence[int],
    curves: np.ndarray,
    scratch_budgets: Sequence[int],
    scratch_curves: np.ndarray,
    source: float,
    fraction: float = 0.8,
    seed: int = 0,
    paired: bool = False,
) -> TransferMetrics:
    """Transfer metrics of ``curves`` (seeds, K) against ``scratch_curves`` (seeds', K').

    Args:
        budgets: the K budgets (episodes) of ``curves``.
        curves: the strategy's performance after each budget, one row per seed.
        scratch_budgets: the budgets of ``scratch_curves``; they must include every budget of
            ``budgets`` (scratch is measured further, up to its cap).
        scratch_curves: PPO from scratch, one row per seed.
        source: the source-modality performance the threshold is a fraction of.
        fraction: the threshold is ``fraction * source``.
        seed: seeds the bootstrap.
        paired: row i of ``curves`` and of ``scratch_curves`` were measured on the same seed
            (the evaluator's jobs are): the jumpstart's and the AUC difference's bootstraps
            draw the same seeds for both.
    """
    budgets = np.asarray(budgets)
    sb = np.asarray(scratch_budgets)
    curves, scratch = (
        np.atleast_2d(curves).astype(float),
        np.atleast_2d(scratch_curves).astype(float),
    )
    missing = set(budgets.tolist()) - set(sb.tolist())
    if missing:
        raise ValueError(f"scratch was not measured at budgets {sorted(missing)}")
    common = np.isin(sb, budgets)
    k_max = int(budgets.max())
    auc = area_under_curve(budgets, curves)
    scratch_auc = area_under_curve(sb[common], scratch[:, common])
    threshold = fraction * source
    hits = episodes_to_threshold(budgets, curves, threshold)
    scratch_hits = episodes_to_threshold(sb, scratch, threshold)
    cap, scratch_cap = k_max, int(sb.max())
    hit_values = _capped(hits, cap)
    scratch_values = _capped(scratch_hits, scratch_cap)
    censored = sum(h is None for h in hits)
    speedup: float | None = None
    if censored <= len(hits) // 2:  # the IQM of the strategy's episodes is a real number
        speedup = float(max(iqm(scratch_values), 1.0) / max(iqm(hit_values), 1.0))
    diff = difference_interval(auc, scratch_auc, seed=seed, paired=paired)
    scratch_area = float(iqm(scratch_auc))
    ratio = float(iqm(auc)) / scratch_area if scratch_area > 0 else float("inf")
    return TransferMetrics(
        jumpstart=difference_interval(curves[:, 0], scratch[:, 0], seed=seed, paired=paired),
        auc=iqm_interval(auc, seed=seed),
        transfer_ratio=ratio,
        episodes_to_threshold=iqm_interval(hit_values, seed=seed),
        censored=censored,
        seeds=len(hits),
        speedup=speedup,
        speedup_is_lower_bound=any(h is None for h in scratch_hits),
        asymptote=iqm_interval(curves[:, -1], seed=seed),
        negative_transfer=bool(diff.high < 0),
        auc_minus_scratch=diff,
    )


def paired_episodes(
    budgets: Sequence[int],
    values: np.ndarray,
    baseline: np.ndarray,
    threshold: float,
    n_resamples: int = 2000,
    seed: int = 0,
) -> dict:
    """A strategy's episodes to ``threshold`` against a baseline's, seed by seed.

    Args:
        budgets: the budgets of both curves.
        values: the strategy's curves (seeds, K).
        baseline: the baseline's curves on the same seeds (seeds, K).
        threshold: the performance to reach.

    Returns:
        ``{difference: {point, low, high}, fewer, more, seeds, p_value, censored,
        baseline_censored, bound}``: the mean of the per-seed differences (the strategy's
        minus the baseline's; censored seeds count as the largest budget) with a
        percentile-bootstrap 95% interval, the seeds on which the strategy needs fewer and
        more episodes and the two-sided Wilcoxon signed-rank test's p-value (for these a seed
        that never reached counts past the largest budget, so reaching at it is fewer; seeds
        with no difference dropped; 1 where every seed ties), the censored seeds of each, and what
        censoring makes of the difference (:func:`censored_bound`).
    """
    cap = int(max(budgets))
    our_hits = episodes_to_threshold(budgets, values, threshold)
    their_hits = episodes_to_threshold(budgets, baseline, threshold)
    ours, theirs = _capped(our_hits, cap), _capped(their_hits, cap)
    if ours.shape != theirs.shape:
        raise ValueError(f"paired curves need the same seeds: {ours.size} and {theirs.size}")
    diff = ours - theirs
    # who needs fewer: a seed that never reached counts past the cap, so reaching at the cap
    # beats never reaching (the mean and its interval keep the cap, a bound)
    order = _capped(our_hits, cap + 1) - _capped(their_hits, cap + 1)
    point = float(diff.mean())
    low = high = point
    if diff.size >= 2 and np.any(diff != diff[0]):
        res = stats.bootstrap(
            (diff,), np.mean, n_resamples=n_resamples, confidence_level=CONFIDENCE,
            method="percentile", rng=np.random.default_rng(seed),
        )  # fmt: skip
        low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    p_value = 1.0
    if np.any(order != 0):
        p_value = float(stats.wilcoxon(order, zero_method="wilcox").pvalue)
    return {
        "difference": {"point": point, "low": low, "high": high},
        "fewer": int((order < 0).sum()),
        "more": int((order > 0).sum()),
        "seeds": int(diff.size),
        "p_value": p_value,
        "censored": sum(h is None for h in our_hits),
        "baseline_censored": sum(h is None for h in their_hits),
        "bound": censored_bound(our_hits, their_hits),
    }


def censored_bound(ours: Sequence[int | None], theirs: Sequence[int | None]) -> str:
    """What censored seeds (None: never reached) make of a paired difference counted at the
    cap: ``"exact"`` where none is censored; ``"upper"`` where only the baseline's are, so
    the true difference is at most the one counted (the baseline needs more than the cap);
    ``"lower"`` where only the strategy's are; ``"none"`` where both are, on one seed or
    across seeds, so it is bounded neither way."""
    mine = any(h is None for h in ours)
    base = any(h is None for h in theirs)
    return {(False, False): "exact", (False, True): "upper", (True, False): "lower"}.get(
        (mine, base), "none"
    )
