"""The text translator's word search (``metaxm.align.word_search``): a sentence's number words
read as the scene's features from one short episode, and the words it never said searched
within an episode; real ``text`` renders of GridNav 7x7 states."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from metaxm.align.token_values import TokenValueTranslator
from metaxm.align.translate import fit_translator, make_translator
from metaxm.align.translation_context import TranslationContext
from metaxm.align.word_search import one_to_one, word_ties
from metaxm.config.align import AlignConfig
from metaxm.envs import GridNav, GridNavConfig
from metaxm.modalities import get_family

INFO = GridNav(GridNavConfig(size=7), 1).scene_info
SPACE = get_family("text").observation_space(INFO)
CONFIG = AlignConfig()
VARIANT = 4  # the test variant; the family's "training variants" are 10-17
# a three-step walk: rows 0 and 1, columns 2 and 3 said; the goal (1, 2) in those words too
WALK = torch.tensor([[0, 2], [0, 3], [1, 3]])
GOAL = (1, 2)


@pytest.fixture(scope="module")
def context(pairs, candidates, features) -> TranslationContext:  # noqa: ANN001
    """Every GridNav 7x7 state in the source ``vector:0``, their features, and 256 random
    states in the family's training variants 10-17."""
    g = torch.Generator().manual_seed(5)
    agent, goal = (torch.randint(0, 7, (256, 2), generator=g) for _ in range(2))
    keep = ~(agent == goal).all(1)
    family = [tuple(pairs(("text", v), agent[keep], goal[keep])) for v in range(10, 18)]
    return TranslationContext(candidates, family, features=features)


def _fit(pairs, context: TranslationContext | None) -> TokenValueTranslator:  # noqa: ANN001
    target, source = pairs(("text", VARIANT), WALK, torch.tensor(GOAL).expand(3, 2))
    translator = make_translator("text", SPACE, 8, CONFIG)
    fit_translator(translator, target, source, CONFIG, seed=0, context=context)
    return translator


def test_the_goals_features_are_said_after_the_agents_words(context) -> None:  # noqa: ANN001
    """Learned from the training variants: the goal's row is said after the word the agent's
    row is, the goal's column after the agent's column's."""
    ties = word_ties(context.family_pairs, context.feature_map(), [
        torch.arange(7, dtype=torch.float64) / 3.0 - 1.0] * 4)  # fmt: skip
    assert ties == {0: [2], 1: [3], 2: [0], 3: [1]}


def test_one_to_one() -> None:
    assert one_to_one(torch.tensor([5, 5, 7]), torch.tensor([0.1, 0.1, 0.2]))
    assert not one_to_one(torch.tensor([5, 6, 7]), torch.tensor([0.1, 0.1, 0.2]))
    assert not one_to_one(torch.tensor([5, 5, 7]), torch.tensor([0.1, 0.2, 0.2]))


def test_a_three_step_walk_reads_every_word_it_said(pairs, context) -> None:  # noqa: ANN001
    """After three steps every state said in the walk's words (rows 0-1, columns 2-3 for the
    agent and the goal alike) is translated exactly, and the values of the three words never
    said (4, 5 and 6) are the ones left free."""
    translator = _fit(pairs, context)
    assert bool(translator.words.active)
    cells = torch.tensor([[r, c] for r in (0, 1) for c in (2, 3)])
    agent, goal = cells.repeat_interleave(4, 0), cells.repeat(4, 1)
    apart = (agent != goal).any(1)
    target, source = pairs(("text", VARIANT), agent[apart], goal[apart], 3)
    with torch.no_grad():
        read = translator(target)
    torch.testing.assert_close(read[:, :4], source[:, :4], atol=1e-5, rtol=0)
    free = ((translator.words.free + 1.0) * 3.0).round().long().tolist()
    assert free == [4, 5, 6]


def test_a_goal_in_words_never_said_is_searched_and_found(pairs, context, seek, tasks) -> None:  # noqa: ANN001
    """Goals anywhere: a policy that acts on the reading reaches >= 90% of them within the
    horizon; on the same pairs without the states' features (no search: the least-squares
    reading of :mod:`~metaxm.align.token_values`) it reaches fewer."""
    translator = _fit(pairs, context)
    plain = _fit(pairs, TranslationContext(context.sources, context.family_pairs))
    assert not bool(plain.words.active)
    decode = context.feature_map()
    found = np.mean([seek(translator, decode, ("text", VARIANT), s, t) for s, t in tasks])
    assert found >= 0.9
    assert np.mean([seek(plain, decode, ("text", VARIANT), s, t) for s, t in tasks]) < found


def test_an_unsaid_word_is_read_by_following_the_agent(pairs, context) -> None:  # noqa: ANN001
    """The goal (5, 2) is said with a row word no step said: it is first read as one of the
    free rows 4-6. Walking down column 2 from row 3 (said) onto row 4 (unsaid), the agent is
    read one row on, and the goal's word, which now cannot be worth 4, is read as row 5;
    :meth:`begin` forgets the states chosen before."""
    translator = _fit(pairs, context)
    decode = context.feature_map()
    goal = torch.tensor([[5, 2]])

    def read(agent: list[int]) -> list[int]:
        target = pairs(("text", VARIANT), torch.tensor([agent]), goal, 4)[0]
        with torch.no_grad():
            feats = translator(target).double() @ decode
        return ((feats[0] + 1.0) * 3.0).round().long().tolist()

    assert read([1, 2])[2] in (4, 5, 6) and read([1, 2])[:2] == [1, 2]
    read([2, 2]), read([3, 2])
    assert read([4, 2]) == [4, 2, 5, 2]
    assert translator.words.last is not None
    translator.begin()
    assert translator.words.last is None


def test_a_saved_translator_loads_with_its_words(pairs, context) -> None:  # noqa: ANN001
    """The word tables load into a fresh translator, which translates as the one saved; a
    translator saved before the word search loads inactive."""
    translator = _fit(pairs, context)
    loaded = make_translator("text", SPACE, 8, CONFIG, seed=9)
    loaded.load_state_dict(translator.state_dict())
    obs = pairs(("text", VARIANT), torch.tensor([[0, 0], [4, 4]]), torch.tensor([[6, 2], [1, 1]]))
    with torch.no_grad():
        torch.testing.assert_close(loaded(obs[0]), translator(obs[0]))
    old = {k: v for k, v in translator.state_dict().items() if not k.startswith("words.")}
    before = make_translator("text", SPACE, 8, CONFIG, seed=9)
    before.load_state_dict(old)
    assert not bool(before.words.active)


def test_a_walk_reads_the_words_from_the_actions_alone(
    context, moves, episodes, seek, tasks
) -> None:  # noqa: ANN001
    """No reward, no pair: which place says the agent's row and which its column is read from
    the actions that change them, the words' values from the steps (pinned where a wall stopped
    a move); after four random-walk episodes a policy acting on the reading reaches >= 90% of
    39 new tasks. Without the source's answers to actions nothing is read."""
    from metaxm.envs import GridNav, GridNavConfig

    reached = GridNav(GridNavConfig(size=7), 1).reached
    walked = TranslationContext(
        context.sources, context.family_pairs, features=context.features, reached=reached,
        moves=moves,
    )  # fmt: skip
    translator = make_translator("text", SPACE, 8, CONFIG)
    translator.prepare(walked)
    assert translator.start_unpaired(*episodes(("text", VARIANT), 4, seed=3))
    assert bool(translator.words.active)
    decode = context.feature_map()
    found = np.mean([seek(translator, decode, ("text", VARIANT), s, t) for s, t in tasks])
    assert found >= 0.9
    blind = make_translator("text", SPACE, 8, CONFIG)
    blind.prepare(context)  # no moves, no world test
    assert not blind.start_unpaired(*episodes(("text", VARIANT), 4, seed=3))
    assert not bool(blind.words.active)


def test_a_chain_no_wall_pinned_is_placed_in_the_middle_of_the_values() -> None:
    """A walk that met no wall knows its words' values relative to one another only: they are
    placed on the features' values as near the middle as they go, off values already taken,
    and not at all where they do not fit."""
    from metaxm.align.word_walk import _centred

    every = torch.linspace(-1.0, 1.0, 7, dtype=torch.float64)
    third = 1.0 / 3.0
    chain = {7: 0.0, 9: third, 4: 2 * third}  # three words a step apart
    assert _centred(chain, every, set()) == pytest.approx({7: -third, 9: 0.0, 4: third})
    # the middle taken: the nearest shift that fits, the lower of two as near
    off = _centred(chain, every, {0.0})
    assert off == pytest.approx({7: -1.0, 9: -2 * third, 4: -third})
    assert _centred({w: w * third for w in range(8)}, every, set()) == {}  # 8 values: no fit
