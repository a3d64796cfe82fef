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
