"""``curves.png``'s lines (``metaxm.evaluate.report.line_styles``): every strategy its own."""

from __future__ import annotations

import matplotlib.pyplot as plt

from metaxm.evaluate.report import LINE_STYLES, line_styles


def test_no_two_strategies_share_a_line() -> None:
    """The main job plots 11 strategies against a cycle of 10 colours: the 11th (``scratch``)
    once took the 1st's (``zeroshot``) line. Up to colours x styles, every line differs."""
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    names = [f"s{i}" for i in range(len(cycle) * len(LINE_STYLES))]
    style = line_styles(names)
    assert len({(s["color"], s["ls"]) for s in style.values()}) == len(names)


def test_the_colour_cycle_goes_to_the_strategies_and_scratch_is_black_and_dashed() -> None:
    """The reference, ``scratch``, once shared the first strategy's colour (dashed): it is
    now drawn off the cycle, so the others take the cycle's colours in order, solid."""
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    style = line_styles(["zeroshot", "maml", "scratch", "align"])
    assert [style[n]["color"] for n in ("zeroshot", "maml", "align")] == cycle[:3]
    assert {style[n]["ls"] for n in ("zeroshot", "maml", "align")} == {"-"}
    assert (style["scratch"]["color"], style["scratch"]["ls"]) == ("k", "--")
    assert len({s["marker"] for s in style.values()}) == 4  # overlapping curves both show


def test_curves_png_draws_each_strategy_in_its_own_line(tmp_path, monkeypatch) -> None:
    """``plot_curves`` itself uses the styles: with 11 strategies on one panel, the 1st and the
    11th lines differ, in the panel and in the legend."""
    from metaxm.evaluate import report as report_mod

    names = [f"s{i}" for i in range(11)]
    band = {"point": [0.1, 0.5], "low": [0.0, 0.4], "high": [0.2, 0.6]}
    strategies = {n: {"budgets": [0, 1], "iqm": {"success": band}} for n in names}
    report = {
        "metric": "success",
        "threshold": 0.8,
        "scratch_budgets": [0, 1],
        "modalities": {"vector:1": {"split": "heldout_variants", "source": 1.0,
                                    "strategies": strategies}},
    }  # fmt: skip
    figures = []
    monkeypatch.setattr(report_mod.Figure, "savefig", lambda fig, *a, **k: figures.append(fig))
    report_mod.plot_curves(report, tmp_path / "curves.png")
    (fig,) = figures
    lines = {ln.get_label(): ln for ln in fig.axes[0].get_lines() if ln.get_label() in names}
    legend = {t.get_text(): h for t, h in zip(fig.legends[0].texts, fig.legends[0].legend_handles)}
    for drawn in (lines, legend):
        first, last = ((h.get_color(), h.get_linestyle()) for h in (drawn["s0"], drawn["s10"]))
        assert first != last


def test_curves_png_adds_an_aggregate_panel_and_names_the_threshold(tmp_path, monkeypatch):
    """With two modalities, a third panel draws the summary (the aggregate the headline
    reads) with the headline's level, leaving out a strategy not measured on every
    modality; the legend names the dotted threshold line."""
    from metaxm.evaluate import report as report_mod

    band = {"point": [0.1, 0.9], "low": [0.0, 0.8], "high": [0.2, 1.0]}
    rec = {"budgets": [0, 1], "iqm": {"success": band}}
    by_budget = [{"point": 0.1, "low": 0.0, "high": 0.2}, {"point": 0.7, "low": 0.6, "high": 0.8}]
    report = {
        "metric": "success", "threshold": 0.8, "scratch_budgets": [0, 1],
        "headline": {"level": 0.64},
        "modalities": {
            "vector:1": {"split": "heldout_variants", "source": 1.0,
                         "strategies": {"align": rec, "rl2": rec, "scratch": rec}},
            "text:2": {"split": "heldout_variants", "source": 0.5,
                       "strategies": {"align": rec, "scratch": rec}},
        },
        "summary": {
            "align": {"budgets": [0, 1], "by_budget": by_budget},
            "rl2": {"budgets": [0, 1], "by_budget": by_budget, "missing": ["text:2"]},
            "scratch": {"budgets": [0, 1], "by_budget": by_budget},
        },
    }  # fmt: skip
    figures = []
    monkeypatch.setattr(report_mod.Figure, "savefig", lambda fig, *a, **k: figures.append(fig))
    report_mod.plot_curves(report, tmp_path / "curves.png")
    (fig,) = figures
    aggregate = fig.axes[2]
    assert aggregate.get_title().startswith("aggregate")
    drawn = {ln.get_label(): ln for ln in aggregate.get_lines()}
    assert "align" in drawn and "scratch" in drawn and "rl2" not in drawn
    assert list(drawn["align"].get_ydata()) == [0.1, 0.7]
    levels = [ln.get_ydata()[0] for ln in aggregate.get_lines() if ln.get_linestyle() == ":"]
    assert levels == [0.64]
    assert "threshold (80% of source)" in [t.get_text() for t in fig.legends[0].texts]
