"""Transfer metrics on constructed curves whose answers are known by hand."""

from __future__ import annotations

import numpy as np
import pytest

from metaxm.evaluate.metrics import (
    area_under_curve,
    difference_interval,
    episodes_to_level,
    episodes_to_stay,
    episodes_to_threshold,
    iqm,
    iqm_interval,
    paired_episodes,
    transfer_metrics,
)

BUDGETS = [0, 1, 3, 7]  # log2(1 + k) = 0, 1, 2, 3: a unit-spaced axis


def test_iqm_drops_the_outer_quartiles() -> None:
    assert iqm(np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 100.0])) == pytest.approx(3.5)


def test_auc_of_known_curves() -> None:
    assert area_under_curve(BUDGETS, np.array([1.0, 1.0, 1.0, 1.0])) == pytest.approx(1.0)
    # a straight ramp 0 -> 3 over a unit-spaced axis of width 3: mean height 1.5
    assert area_under_curve(BUDGETS, np.array([0.0, 1.0, 2.0, 3.0])) == pytest.approx(1.5)
    # a step at the last interval: trapezoid area 0.5 over width 3
    assert area_under_curve(BUDGETS, np.array([0.0, 0.0, 0.0, 1.0])) == pytest.approx(0.5 / 3)
    # restricted to k <= 3: the first two intervals only
    assert area_under_curve(BUDGETS, np.array([0.0, 1.0, 2.0, 9.0]), upto=3) == pytest.approx(1.0)


def test_time_to_threshold_and_censoring() -> None:
    curves = np.array([[0.1, 0.5, 0.85, 0.9], [0.9, 0.9, 0.9, 0.9], [0.0, 0.1, 0.2, 0.3]])
    assert episodes_to_threshold(BUDGETS, curves, 0.8) == [3, 0, None]


def test_episodes_to_stay_count_from_where_the_curve_no_longer_falls_below() -> None:
    curves = np.array([
        [0.9, 0.5, 0.85, 0.9],  # reaches it at once, falls back, stays from k = 3
        [0.9, 0.9, 0.9, 0.9],
        [0.0, 0.9, 0.9, 0.3],  # falls below at the last budget: never stays
    ])  # fmt: skip
    assert episodes_to_threshold(BUDGETS, curves, 0.8) == [0, 0, 1]
    assert episodes_to_stay(BUDGETS, curves, 0.8) == [3, 0, None]
    assert episodes_to_stay(BUDGETS, np.array([[0.9, 0.9, np.nan, 0.9]]), 0.8) == [7]
    level = episodes_to_level(BUDGETS, curves, 0.8, stay=True)
    assert level["censored"] == 1 and level["seeds"] == 3


def test_bootstrap_interval_covers_a_known_mean() -> None:
    rng = np.random.default_rng(0)
    covered = 0
    for trial in range(40):
        sample = rng.normal(2.0, 1.0, size=30)
        ci = iqm_interval(sample, n_resamples=500, seed=trial)
        assert ci.low <= ci.point <= ci.high
        covered += ci.low <= 2.0 <= ci.high
    assert covered >= 34  # a 95% interval of a symmetric distribution's IQM


def test_stratified_bootstrap_never_mixes_strata() -> None:
    # two strata with constant values: any within-stratum resample gives the same IQM
    ci = iqm_interval([np.zeros(5), np.ones(5)], n_resamples=200)
    assert ci.point == ci.low == ci.high == pytest.approx(0.5)


def test_difference_interval_sign() -> None:
    rng = np.random.default_rng(1)
    diff = difference_interval(rng.normal(0, 0.1, 20), rng.normal(1, 0.1, 20), n_resamples=500)
    assert diff.high < 0 and diff.point == pytest.approx(-1.0, abs=0.1)


def test_transfer_metrics_end_to_end() -> None:
    # strategy: 0.9 from 1 episode on; scratch: reaches 0.8 only at 31 episodes (budget cap 63)
    strat = np.tile([0.2, 0.9, 0.9, 0.9], (5, 1))
    sb = [0, 1, 3, 7, 15, 31, 63]
    scratch = np.tile([0.0, 0.0, 0.0, 0.1, 0.5, 0.85, 0.9], (5, 1))
    m = transfer_metrics(BUDGETS, strat, sb, scratch, source=1.0)
    assert m.jumpstart.point == pytest.approx(0.2)
    assert m.episodes_to_threshold.point == 1 and m.censored == 0
    assert m.speedup == pytest.approx(31.0) and not m.speedup_is_lower_bound
    assert m.asymptote.point == pytest.approx(0.9)
    scratch_auc = area_under_curve(BUDGETS, np.array([0.0, 0.0, 0.0, 0.1]))
    assert m.transfer_ratio == pytest.approx(area_under_curve(BUDGETS, strat[0]) / scratch_auc)
    assert not m.negative_transfer


def test_transfer_metrics_flags_negative_transfer_and_censoring() -> None:
    rng = np.random.default_rng(2)
    strat = np.clip(rng.normal(0.05, 0.01, (5, 4)), 0, 1)
    scratch = np.clip(rng.normal(0.5, 0.01, (5, 5)), 0, 1)
    m = transfer_metrics(BUDGETS, strat, [0, 1, 3, 7, 15], scratch, source=1.0)
    assert m.negative_transfer
    assert m.censored == 5 and m.speedup is None
    assert m.speedup_is_lower_bound  # scratch never reaches 0.8 either


def test_scratch_must_cover_the_budgets() -> None:
    with pytest.raises(ValueError, match=r"scratch was not measured at budgets \[7\]"):
        transfer_metrics(BUDGETS, np.zeros((2, 4)), [0, 1, 3], np.zeros((2, 3)), source=1.0)


def _summary_report(strategy_curve: list[float], scratch_curve: list[float], source: float):
    budgets = [0, 1, 2, 4, 8]
    sb = budgets + [16, 32, 64, 128]
    return {
        "metric": "success",
        "threshold": 0.8,
        "budgets": budgets,
        "scratch_budgets": sb,
        "source": {"success": source},
        "summary": {
            "align": {"budgets": budgets, "by_budget": [_ci(v) for v in strategy_curve]},
            "scratch": {"budgets": sb, "by_budget": [_ci(v) for v in scratch_curve]},
        },
    }


def _ci(v: float) -> dict[str, float]:
    return {"point": v, "low": v - 0.05, "high": v + 0.05}


def test_headline_met_missed_and_unmeasurable() -> None:
    from metaxm.evaluate.report import headline

    scratch = [0.1, 0.1, 0.1, 0.1, 0.1, 0.2, 0.4, 0.6, 0.85]
    met = headline(_summary_report([0.1, 0.3, 0.5, 0.85, 0.9], scratch, source=1.0))
    assert met["target_met"] and met["best"] == "align" and met["best_episodes"] == 4
    assert met["scratch_episodes"] == 128
    slow = headline(_summary_report([0.1, 0.2, 0.3, 0.4, 0.5], scratch, source=1.0))
    assert not slow["target_met"] and slow["best"] is None
    # a source agent at 0.1 gives a threshold of 0.08, which a fresh agent already beats
    weak = headline(_summary_report([0.1, 0.1, 0.1, 0.1, 0.1], scratch, source=0.1))
    assert not weak["target_met"] and weak["text"].startswith("Not measurable")
    # 0.8 x 0.14 = 0.112 is above a fresh agent's 0.1 but inside its interval (up to 0.15)
    noisy = headline(_summary_report([0.1, 0.2, 0.3, 0.4, 0.5], scratch, source=0.14))
    assert not noisy["target_met"] and noisy["text"].startswith("Not measurable")


def test_paired_episodes_against_a_hand_count_and_scipy() -> None:
    from scipy import stats

    budgets = [0, 1, 2, 4]
    # per seed, episodes to 0.8: ours 1, 2, 4 (censored), 1; theirs 2, 4, 4, 1
    ours = np.array([[0.0, 0.9, 1, 1], [0, 0.5, 0.8, 1], [0, 0, 0, 0.7], [0, 0.85, 1, 1]])
    theirs = np.array([[0, 0.1, 0.9, 1], [0, 0.1, 0.2, 0.9], [0, 0, 0, 0.8], [0, 0.8, 1, 1]])
    pair = paired_episodes(budgets, ours, theirs, 0.8)
    diff = np.array([1 - 2, 2 - 4, 4 - 4, 1 - 1], float)  # censored counts as the cap, 4
    assert pair["difference"]["point"] == pytest.approx(diff.mean())
    assert pair["difference"]["low"] <= diff.mean() <= pair["difference"]["high"]
    assert pair["difference"]["low"] >= diff.min() and pair["difference"]["high"] <= diff.max()
    # who needs fewer: the third seed's never (counted past the cap, 5) against 4 is more
    assert (pair["fewer"], pair["more"], pair["seeds"]) == (2, 1, 4)
    expected = stats.wilcoxon([1, 2, 5, 1], [2, 4, 4, 1], zero_method="wilcox").pvalue
    assert pair["p_value"] == pytest.approx(expected)
    tie = paired_episodes(budgets, ours, ours, 0.8)  # every seed ties: no test to make
    assert tie["difference"] == {"point": 0.0, "low": 0.0, "high": 0.0} and tie["p_value"] == 1.0
    with pytest.raises(ValueError, match="same seeds"):
        paired_episodes(budgets, ours, theirs[:3], 0.8)


def test_the_paired_line_says_when_the_seeds_cannot_give_a_smaller_p() -> None:
    from metaxm.evaluate.report import _paired_lines

    budgets = [0, 1, 2, 4]
    slow = np.tile([0.0, 0.0, 0.0, 0.9], (5, 1))
    fast = np.tile([0.0, 0.9, 1.0, 1.0], (5, 1))
    pair = paired_episodes(budgets, fast, slow, 0.8)  # 1 episode against 4 on every seed
    assert pair["p_value"] == pytest.approx(2.0**-4)  # two-sided, 5 untied seeds: 2 / 2^5
    line = _paired_lines({"translate": {"vs_align": pair}, "align": {}})[1]
    assert line.startswith("Episodes to threshold against align's on the same seeds")
    assert "translate -3.0 [-3.0, -3.0] episodes, fewer on 5 and more on 0 of 5 seeds" in line
    assert "(Wilcoxon p = 0.062, the least 5 untied seeds allow)" in line
    # one seed the other way: no longer the least p the seeds allow
    mixed = paired_episodes(
        budgets, np.vstack([fast[:4], slow[:1]]), np.vstack([slow[:4], fast[:1]]), 0.8
    )
    assert (
        mixed["more"] == 1 and "allow" not in _paired_lines({"translate": {"vs_align": mixed}})[1]
    )


def test_the_report_says_how_often_a_strategy_read_nothing() -> None:
    """A strategy whose curves count where it read nothing (``read``) gets a line with the
    count over its adaptations with k >= 1 (k = 0 reads nothing by design); none where every
    one read, or where the curves do not count."""
    from metaxm.evaluate.report import _read_nothing_lines

    some = {"budgets": [0, 1, 2], "curves": {"read": [[0.0, 1.0, 0.0], [0.0, 1.0, 1.0]]}}
    (line,) = [x for x in _read_nothing_lines({"selfread": some}) if x]
    assert line.startswith("selfread read nothing from its k episodes in 1 of 4 adaptations")
    every = {"budgets": [0, 1, 2], "curves": {"read": [[0.0, 1.0, 1.0]]}}
    unread = {"budgets": [0, 1], "curves": {}}
    assert _read_nothing_lines({"selfread": every, "align": unread}) == []
