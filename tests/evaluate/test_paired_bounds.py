"""Seeds shared by two curves: the paired bootstrap of the jumpstart and of negative transfer,
and the bounds that censored seeds put on a paired difference of episodes to threshold."""

from __future__ import annotations

import numpy as np
import pytest

from metaxm.evaluate.metrics import (
    censored_bound,
    difference_interval,
    paired_episodes,
    transfer_metrics,
)
from metaxm.evaluate.report import _paired_lines

BUDGETS = [0, 1, 2, 4]


def test_a_paired_bootstrap_sees_a_shift_that_seeds_spread_hides() -> None:
    """Seeds differ a lot (their tasks), the strategy sits 0.05 below scratch on each: the
    independent bootstrap's interval straddles zero, the paired one excludes it."""
    seeds = np.linspace(0.1, 0.9, 8)
    a, b = seeds - 0.05, seeds
    apart = difference_interval(a, b, n_resamples=2000)
    paired = difference_interval(a, b, n_resamples=2000, paired=True)
    assert apart.low < 0 < apart.high
    assert paired.point == pytest.approx(-0.05)
    assert paired.low == pytest.approx(-0.05) and paired.high == pytest.approx(-0.05)
    noisy = b - 0.05 + np.random.default_rng(0).normal(0, 0.01, 8)
    interval = difference_interval(noisy, b, n_resamples=2000, paired=True)
    assert interval.low < interval.point < interval.high < 0
    with pytest.raises(ValueError, match="same seeds"):
        difference_interval(a, b[:5], paired=True)


def test_transfer_metrics_flag_negative_transfer_on_paired_seeds_only_when_told() -> None:
    rng = np.random.default_rng(3)
    seeds = rng.uniform(0.1, 0.9, (8, 1))
    scratch = np.tile(seeds, (1, 4)) + rng.normal(0, 0.005, (8, 4))
    strat = scratch - 0.04
    m_apart = transfer_metrics(BUDGETS, strat, BUDGETS, scratch, source=1.0)
    m_paired = transfer_metrics(BUDGETS, strat, BUDGETS, scratch, source=1.0, paired=True)
    assert not m_apart.negative_transfer and m_paired.negative_transfer
    assert m_paired.auc_minus_scratch.point == pytest.approx(m_apart.auc_minus_scratch.point)
    assert m_paired.jumpstart.high < 0 < m_apart.jumpstart.high


def test_censored_bound_of_each_case() -> None:
    assert censored_bound([1, 2], [2, 4]) == "exact"
    assert censored_bound([1, 2], [None, 4]) == "upper"  # the baseline needs more than counted
    assert censored_bound([None, 2], [2, 4]) == "lower"
    assert censored_bound([None, 2], [2, None]) == "none"
    assert censored_bound([None, 2], [None, 4]) == "none"  # a seed neither reached


def test_the_paired_line_marks_a_bound_and_says_who_never_reached_it() -> None:
    never = np.zeros((5, 4))
    fast = np.tile([0.0, 0.9, 1.0, 1.0], (5, 1))
    upper = paired_episodes(BUDGETS, fast, never, 0.8)  # 1 against more than 4 on each seed
    assert (upper["censored"], upper["baseline_censored"], upper["bound"]) == (0, 5, "upper")
    line = _paired_lines({"translate": {"vs_align": upper}, "align": {}})[1]
    assert "translate <= -3.0 [-3.0, -3.0] episodes" in line
    assert "align never reached it on 5 seeds)" in line
    lower = paired_episodes(BUDGETS, never[:1].repeat(5, 0), fast, 0.8)
    assert ">= +3.0" in _paired_lines({"priorfit": {"vs_align": lower}})[1]
    both = paired_episodes(BUDGETS, never, never, 0.8)
    text = _paired_lines({"priorfit": {"vs_align": both}})[1]
    assert "priorfit: neither reaches the threshold on any of 5 seeds" in text
    assert "+0.0" not in text
    mixed = paired_episodes(BUDGETS, np.vstack([never[:2], fast[:3]]), never, 0.8)
    assert mixed["bound"] == "none"
    text = _paired_lines({"priorfit": {"vs_align": mixed}})[1]
    assert "priorfit a difference bounded neither way, fewer on 3 and more on 0" in text


def test_a_report_written_before_the_bounds_reads_as_before() -> None:
    old = paired_episodes(
        BUDGETS, np.tile([0.0, 0.9, 1, 1], (5, 1)), np.tile([0, 0, 0.9, 1], (5, 1)), 0.8
    )
    for key in ("censored", "baseline_censored", "bound"):
        old.pop(key)
    assert (
        "translate -1.0 [-1.0, -1.0] episodes" in _paired_lines({"translate": {"vs_align": old}})[1]
    )


def test_reaching_at_the_cap_beats_never_reaching_in_the_counts_and_the_test() -> None:
    """Counted at the cap, reaching at the largest budget and never reaching tied: "fewer on 0
    and more on 0, p = 1" for a strategy better on every seed (a code review's find)."""
    at_cap = np.tile([0.0, 0.0, 0.0, 0.9], (5, 1))
    pair = paired_episodes(BUDGETS, at_cap, np.zeros((5, 4)), 0.8)
    assert pair["difference"]["point"] == 0.0 and pair["bound"] == "upper"  # at most 0
    assert (pair["fewer"], pair["more"]) == (5, 0) and pair["p_value"] == pytest.approx(2.0**-4)
