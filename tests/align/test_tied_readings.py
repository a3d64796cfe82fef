"""Channels read the same way from different readings (``metaxm.align.tied_readings``): learned
from a family's training variants, used where one episode leaves a channel open; real
``pixels`` renders of GridNav 7x7 states, read by the colour-moment translator."""

from __future__ import annotations

import pytest
import torch

from metaxm.align.colour_moments import ColourMomentTranslator
from metaxm.align.tied_readings import learn_ties
from metaxm.align.translate import fit_translator
from metaxm.align.translation_context import TranslationContext
from metaxm.config.align import AlignConfig
from metaxm.envs import GridNav, GridNavConfig
from metaxm.modalities import get_family

TRAINING = range(10, 18)  # the family's "training variants" here; the test variant is 4
INFO = GridNav(GridNavConfig(size=7), 1).scene_info


@pytest.fixture(scope="module")
def family_pairs(pairs) -> list[tuple[torch.Tensor, torch.Tensor]]:  # noqa: ANN001
    """256 random states rendered in each training variant beside the source's ``vector:0``."""
    g = torch.Generator().manual_seed(5)
    agent, goal = (torch.randint(0, 7, (256, 2), generator=g) for _ in range(2))
    keep = ~(agent == goal).all(1)
    return [tuple(pairs(("pixels", v), agent[keep], goal[keep])) for v in TRAINING]


def test_the_goals_channels_are_tied_to_the_agents_at_the_sources_own_ratio(family_pairs) -> None:  # noqa: ANN001
    """Each of the source's four features is tied to the same axis of the other entity (the
    agent's row to the goal's row), at the ratio of ``vector:0``'s gains; its noise channels
    to nothing."""
    space = get_family("pixels").observation_space(INFO)
    routings = []
    for target, source in family_pairs:
        fitted = ColourMomentTranslator(space, 8)
        fitted.start(target, source)
        routings.append(fitted.routing)
    ties = learn_ties(routings, 2)
    params = get_family("vector").variant(0, INFO)
    perm, gain = params["perm"].tolist(), params["gain"]
    # features: agent row, agent column, goal row, goal column
    want = {k: perm.index((perm[k] + 2) % 4) for k in range(4)}
    assert {j: i for j, (i, _) in ties.items()} == want
    for j, (i, ratio) in ties.items():
        assert ratio == pytest.approx(float(gain[j] / gain[i]), rel=1e-4)
    assert learn_ties(routings[:1], 2).keys() >= ties.keys()  # one variant ties at least as many
    assert learn_ties([], 2) == {}


@pytest.mark.parametrize("goal", [(1, 1), (5, 1), (0, 3), (3, 6), (3, 3)])
def test_one_episode_reads_a_goal_on_a_diagonal_or_a_centre_line_through_the_tie(
    goal,
    walk,
    pairs,
    candidates,
    family_pairs,  # noqa: ANN001
) -> None:
    """k = 1 with the goal on a diagonal through the centre or on its row or column: which of
    the goal colour's moments is the row, and its sign, cannot be told from its values, and
    one moment at the agent's scale fits both channels or neither. The agent's weights, which
    the walk pins, read it: almost every fresh state exactly, where without the family's
    pairs the goal is misread."""
    space = get_family("pixels").observation_space(INFO)
    g = torch.Generator().manual_seed(0)
    agent, goals = walk(goal, 60, g)
    keep = ~(agent == goals).all(1)
    target, source = pairs(("pixels", 4), agent[keep], goals[keep])
    agent, goals = (torch.randint(0, 7, (300, 2), generator=g) for _ in range(2))
    keep = ~(agent == goals).all(1)
    fresh, want = pairs(("pixels", 4), agent[keep], goals[keep], seed=1)
    exact = []
    for context in (TranslationContext(candidates), TranslationContext(candidates, family_pairs)):
        translator = ColourMomentTranslator(space, 8)
        fit_translator(translator, target, source, AlignConfig(), context=context)
        with torch.no_grad():
            error = (translator(fresh)[:, :4] - want[:, :4]).abs().amax(1)
        exact.append(float((error < 1e-4).float().mean()))
    assert exact[0] < 0.5 < 0.8 < exact[1], exact
