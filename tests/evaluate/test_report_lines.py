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


def test_the_first_cycle_keeps_solid_lines_in_the_cycles_order() -> None:
    """Reports with no more strategies than colours look as before: solid, in cycle order."""
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    style = line_styles(["zeroshot", "maml", "scratch"])
    assert [s["color"] for s in style.values()] == cycle[:3]
    assert {s["ls"] for s in style.values()} == {"-"}


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
