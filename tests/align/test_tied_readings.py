"""Channels read the same way from different readings (``metaxm.align.tied_readings``): learned
from a family's training variants, used where one episode leaves a channel open; real
``pixels`` and ``text`` renders of GridNav 7x7 states, read by the colour-moment and the
token-value translators."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from metaxm.align.colour_moments import ColourMomentTranslator
from metaxm.align.tied_readings import learn_ties
from metaxm.align.token_values import TokenValueTranslator, fit_values, place_keys
from metaxm.align.translate import fit_translator
from metaxm.align.translation_context import TranslationContext
from metaxm.config.align import AlignConfig
from metaxm.envs import GridNav, GridNavConfig
from metaxm.modalities import get_family

TRAINING = range(10, 18)  # the family's "training variants" here; the test variant is 4
INFO = GridNav(GridNavConfig(size=7), 1).scene_info
TRANSLATORS = {"pixels": ColourMomentTranslator, "text": TokenValueTranslator}
Pairs = list[tuple[torch.Tensor, torch.Tensor]]


@pytest.fixture(scope="module")
def family_pairs(pairs) -> Callable[[str], Pairs]:  # noqa: ANN001
    """family -> 256 random states rendered in each of its training variants beside the
    source's ``vector:0``."""
    g = torch.Generator().manual_seed(5)
    agent, goal = (torch.randint(0, 7, (256, 2), generator=g) for _ in range(2))
    keep = ~(agent == goal).all(1)
    rendered: dict[str, Pairs] = {}

    def get(family: str) -> Pairs:
        if family not in rendered:
            rendered[family] = [
                tuple(pairs((family, v), agent[keep], goal[keep])) for v in TRAINING
            ]
        return rendered[family]

    return get


def learned(family: str, family_pairs: Pairs) -> dict[int, tuple[int, float]]:
    """The ties the family's translator learns from its training variants' pairs."""
    if family == "text":
        ids = [t.long().flatten(1) for t, _ in family_pairs]
        routings = [fit_values(i, s, int(i.max()) + 1)[1] for i, (_, s) in zip(ids, family_pairs)]
        return learn_ties(routings, 1, [place_keys(i) for i in ids])
    routings = []
    for target, source in family_pairs:
        fitted = ColourMomentTranslator(get_family("pixels").observation_space(INFO), 8)
        fitted.start(target, source)
        routings.append(fitted.routing)
    return learn_ties(routings, 2)


@pytest.mark.parametrize("family", ["pixels", "text"])
def test_the_goals_channels_are_tied_to_the_agents_at_the_sources_own_ratio(
    family: str, family_pairs
) -> None:  # noqa: ANN001
    """Each of the source's four features is tied to the same axis of the other entity (the
    agent's row to the goal's row: in an image the same weights on another colour, in a
    sentence the same weight on the number after the same word), at the ratio of
    ``vector:0``'s gains; its noise channels to nothing."""
    ties = learned(family, family_pairs(family))
    params = get_family("vector").variant(0, INFO)
    perm, gain = params["perm"].tolist(), params["gain"]
    # features: agent row, agent column, goal row, goal column
    want = {k: perm.index((perm[k] + 2) % 4) for k in range(4)}
    assert {j: i for j, (i, _) in ties.items()} == want
    for j, (i, ratio) in ties.items():
        assert ratio == pytest.approx(float(gain[j] / gain[i]), rel=1e-4)
    assert learn_ties([], 2) == {}


def test_a_tie_must_hold_in_every_variant_and_on_places_after_the_same_word(family_pairs) -> None:  # noqa: ANN001
    """Keys that differ between the agent's places and the goal's (as if the template said
    "row" before one and "line" before the other) leave no tie."""
    ids = [t.long().flatten(1) for t, _ in family_pairs("text")]
    pairs = family_pairs("text")
    routings = [fit_values(i, s, int(i.max()) + 1)[1] for i, (_, s) in zip(ids, pairs)]
    keys = [place_keys(i) for i in ids]
    assert len(learn_ties(routings, 1, keys)) == 4
    places = torch.arange(len(keys[0]))
    assert learn_ties(routings, 1, [places] * len(keys)) == {}  # every place its own key
    assert learn_ties(routings, 1, [torch.full_like(k, -1) for k in keys]) == {}


@pytest.mark.parametrize("family", ["pixels", "text"])
@pytest.mark.parametrize("goal", [(1, 1), (5, 1), (0, 3), (3, 6), (3, 3)])
def test_one_episode_reads_a_goal_on_a_diagonal_or_a_centre_line_through_the_tie(
    family: str,
    goal: tuple[int, int],
    walk,
    pairs,
    candidates,
    family_pairs,  # noqa: ANN001
) -> None:
    """k = 1 with the goal on a diagonal through the centre or on its row or column: which of
    the goal's readings is the row, and its sign, cannot be told from their values, and one
    reading at the agent's scale fits both channels or neither. The agent's weights, which
    the walk pins, read it from the goal colour or the goal's place after the same word:
    almost every fresh state exactly, where without the family's pairs the goal is misread."""
    space = get_family(family).observation_space(INFO)
    g = torch.Generator().manual_seed(0)
    agent, goals = walk(goal, 60, g)
    keep = ~(agent == goals).all(1)
    target, source = pairs((family, 4), agent[keep], goals[keep])
    agent, goals = (torch.randint(0, 7, (300, 2), generator=g) for _ in range(2))
    keep = ~(agent == goals).all(1)
    fresh, want = pairs((family, 4), agent[keep], goals[keep], seed=1)
    exact = []
    contexts = [
        TranslationContext(candidates),
        TranslationContext(candidates, family_pairs(family)),
    ]
    for context in contexts:
        translator = TRANSLATORS[family](space, 8)
        fit_translator(translator, target, source, AlignConfig(), context=context)
        with torch.no_grad():
            error = (translator(fresh)[:, :4] - want[:, :4]).abs().amax(1)
        exact.append(float((error < 1e-4).float().mean()))
    assert exact[0] < 0.5 < 0.8 < exact[1], exact


def test_a_number_word_said_only_at_the_goal_is_valued_through_the_tie(
    pairs, candidates, family_pairs
) -> None:  # noqa: ANN001
    """One episode whose agent never reaches row or column 6 or 7 (counted from one), with the
    goal at row 7, column 7: "seven" is said only at the goal's places and "six" nowhere, so
    no reading values either. The tie values "seven" (the goal's channel over the agent's
    weight), and "six" is then the one value left: fresh states anywhere read exactly."""
    space = get_family("text").observation_space(INFO)
    agent = torch.cartesian_prod(torch.arange(5), torch.arange(5))  # rows and columns 1-5
    goal = torch.tensor([6, 6]).expand(len(agent), 2)
    target, source = pairs(("text", 4), agent, goal)
    g = torch.Generator().manual_seed(0)
    agent, goal = (torch.randint(0, 7, (300, 2), generator=g) for _ in range(2))
    keep = ~(agent == goal).all(1)
    fresh, want = pairs(("text", 4), agent[keep], goal[keep], seed=1)
    exact = []
    for context in (
        TranslationContext(candidates),
        TranslationContext(candidates, family_pairs("text")),
    ):
        translator = TokenValueTranslator(space, 8)
        fit_translator(translator, target, source, AlignConfig(), context=context)
        with torch.no_grad():
            error = (translator(fresh)[:, :4] - want[:, :4]).abs().amax(1)
        exact.append(float((error < 1e-4).float().mean()))
    assert exact[0] < 0.5 and exact[1] == 1.0, exact
