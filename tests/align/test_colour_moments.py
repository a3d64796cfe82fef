"""The pixels translator (``metaxm.align.colour_moments``): where each palette colour is, routed
linearly; real ``pixels`` renders (a 3-pixel tile, a rotation, an occluder) of GridNav states."""

from __future__ import annotations

import torch

from metaxm.align.colour_moments import ColourMomentTranslator
from metaxm.align.translate import fit_translator
from metaxm.align.translation_context import TranslationContext
from metaxm.config.align import AlignConfig
from metaxm.envs import GridNav, GridNavConfig
from metaxm.modalities import get_family

VARIANT = 1  # a 3-pixel tile, an occluder of 4 cells on 64% of frames


def test_two_goals_and_a_walk_translate_new_goals_exactly(walk, pairs) -> None:
    info = GridNav(GridNavConfig(size=7), 1).scene_info
    params = get_family("pixels").variant(VARIANT, info)
    assert int(params["tile"]) == 3 and int(params["occluder"].sum()) == 4
    g = torch.Generator().manual_seed(0)
    (a1, g1), (a2, g2) = walk((1, 5), 40, g), walk((5, 2), 40, g)
    agent, goal = torch.cat((a1, a2)), torch.cat((g1, g2))
    clash = (agent == goal).all(1)
    target, source = pairs(("pixels", VARIANT), agent[~clash], goal[~clash])
    translator = ColourMomentTranslator(get_family("pixels").observation_space(info), 8)
    fit_translator(translator, target, source, AlignConfig())
    assert not list(translator.parameters())  # all closed form
    # fresh agents and goals anywhere (goals the fit never saw), off each other
    agent, goal = (
        torch.randint(0, 7, (300, 2), generator=g),
        torch.randint(0, 7, (300, 2), generator=g),
    )
    keep = ~(agent == goal).all(1)
    target, source = pairs(("pixels", VARIANT), agent[keep], goal[keep], seed=1)
    with torch.no_grad():
        error = (translator(target)[:, :4] - source[:, :4]).abs().amax(1)  # the 4 features
    # exact wherever the occluder leaves the agent and the goal in view; it hides some of them
    assert (error < 1e-4).float().mean() > 0.8
    assert bool((translator(target)[:, 4:] == 0).all())  # the source's noise: not translated


def exact_without_and_with_candidates(agent, goal, g, pairs, candidates) -> list[float]:  # noqa: ANN001
    """Fit pixels variant 4 on the states (agent, goal) without and with the source's
    candidates; for each, the share of 300 fresh states (off each other) whose four features
    translate exactly."""
    info = GridNav(GridNavConfig(size=7), 1).scene_info
    space = get_family("pixels").observation_space(info)
    target, source = pairs(("pixels", 4), agent, goal)
    agent, goal = (
        torch.randint(0, 7, (300, 2), generator=g),
        torch.randint(0, 7, (300, 2), generator=g),
    )
    keep = ~(agent == goal).all(1)
    fresh, want = pairs(("pixels", 4), agent[keep], goal[keep], seed=1)
    exact = []
    for context in (None, TranslationContext(candidates)):
        translator = ColourMomentTranslator(space, 8)
        fit_translator(translator, target, source, AlignConfig(), context=context)
        with torch.no_grad():
            error = (translator(fresh)[:, :4] - want[:, :4]).abs().amax(1)
        exact.append(float((error < 1e-4).float().mean()))
    return exact


def test_goals_on_a_line_through_the_centre_are_read_at_the_agents_scale(
    walk, pairs, candidates
) -> None:
    """Two goals on one line through the grid's centre move the goal colour's two moments in
    proportion, and least squares cannot tell which is the row: new goals off the line are
    misread. With the source's candidates, each goal channel is read from the one moment that
    fits at the agent's scale (:func:`~metaxm.align.least_squares.single_readings`)."""
    g = torch.Generator().manual_seed(0)
    (a1, g1), (a2, g2) = walk((1, 2), 40, g), walk((5, 4), 40, g)  # (-2, -1) and (2, 1)
    agent, goal = torch.cat((a1, a2)), torch.cat((g1, g2))
    clash = (agent == goal).all(1)
    exact = exact_without_and_with_candidates(agent[~clash], goal[~clash], g, pairs, candidates)
    assert exact[0] < 0.5 < 0.8 < exact[1], exact


def test_one_goal_off_the_centre_lines_and_diagonals_is_read_from_one_episode(
    walk, pairs, candidates
) -> None:
    """k = 1: the goal colour never moves, so least squares cannot use it (it would act as an
    offset). Given the source's candidates, the goal's channels, constant over the pairs, are
    read from the one moment of the goal colour that fits them at the agent's scale."""
    g = torch.Generator().manual_seed(0)
    agent, goal = walk((1, 2), 60, g)  # (-2, -1) from the centre
    clash = (agent == goal).all(1)
    exact = exact_without_and_with_candidates(agent[~clash], goal[~clash], g, pairs, candidates)
    assert exact[0] < 0.2 < 0.8 < exact[1], exact


def test_the_palette_is_uniques_colours_and_counts_in_its_order(walk, pairs) -> None:
    """The colours are counted through one integer per colour; the result is exactly
    ``unique(dim=0, return_counts=True)``'s over RGB rows (the order decides which colour is
    the background)."""
    from metaxm.align.colour_moments import _palette

    g = torch.Generator().manual_seed(3)
    agent, goal = walk((2, 5), 30, g)
    for variant in (1, 4, 7):
        target, _ = pairs(("pixels", variant), agent, goal)
        pixels = target.flatten(2).transpose(1, 2).float().flatten(0, 1)
        want, got = pixels.unique(dim=0, return_counts=True), _palette(pixels)
        assert torch.equal(want[0], got[0]) and torch.equal(want[1], got[1])
        assert len(got[0]) >= 4  # background, goal, agent and at least one more
