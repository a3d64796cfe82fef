"""``report.md``'s words around its tables: what "episodes to threshold" means in each place,
and what one seed per curve leaves of the intervals."""

from __future__ import annotations

from metaxm.evaluate.report import markdown


def _report(seeds: int) -> dict:
    return {
        "metric": "success", "threshold": 0.8, "seeds": seeds, "budgets": [0, 1],
        "scratch_budgets": [0, 1, 2], "source": {}, "headline": {"text": "Best strategy: x"},
        "modalities": {}, "summary": {},
    }  # fmt: skip


def test_the_report_defines_both_episodes_to_threshold() -> None:
    md = markdown(_report(5))
    assert "in a modality's table, the IQM over seeds of each seed's first budget" in md
    assert "In the headline and the aggregate table: the first budget at which the IQM" in md
    assert "One seed per curve" not in md


def test_one_seed_per_curve_says_its_intervals_have_no_width() -> None:
    assert "One seed per curve: the intervals below have zero width" in markdown(_report(1))
