"""The token translator (``metaxm.align.token_values``): number words read from the agent's
places, the goal's places routed from two goals, fitted in closed form."""

from __future__ import annotations

import gymnasium as gym
import pytest
import torch

from metaxm.align.token_values import TokenValueTranslator, fit_values
from metaxm.align.translate import fit_translator
from metaxm.align.translation_context import TranslationContext
from metaxm.config.align import AlignConfig

N = 7  # grid side: numbers 1..7, said with words whose ids a cipher draws
VOCAB = 40


def sentences(states: torch.Tensor, cipher: torch.Tensor) -> torch.Tensor:
    """(B, 4) rows and columns of agent and goal, 1..N -> (B, 12) ids of
    "w0 <ar> w1 <ac> w2 w3 w4 <gr> w5 <gc> w6 <pad>" under ``cipher``."""
    b = states.shape[0]
    fixed = cipher[N + 1 : N + 8]  # seven template words
    row = torch.empty(b, 12, dtype=torch.long)
    row[:, [0, 2, 4, 5, 6, 8, 10]] = fixed
    row[:, [1, 3, 7, 9]] = cipher[states]  # number words
    row[:, 11] = 0
    return row


def source_of(states: torch.Tensor, gain: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """The source view: the centred features, permuted and scaled, beside 2 noise channels."""
    features = (states.float() - 4.0) / 3.0  # in [-1, 1], the centre reads 0
    noise = (torch.rand(states.shape[0], 2, generator=g) * 2 - 1) * 0.3
    return torch.cat((features[:, [2, 0, 3, 1]] * gain, noise), 1)


def walk(goal: tuple[int, int], steps: int, g: torch.Generator) -> torch.Tensor:
    """One episode: an agent walking from a random cell, a fixed goal: (steps, 4)."""
    pos = torch.randint(1, N + 1, (2,), generator=g)
    rows = []
    for _ in range(steps):
        rows.append(torch.cat((pos, torch.tensor(goal))))
        move = torch.tensor([[1, 0], [-1, 0], [0, 1], [0, -1]])[torch.randint(4, (), generator=g)]
        pos = (pos + move).clamp(1, N)
    return torch.stack(rows)


def test_two_goals_and_a_walk_translate_new_goals_exactly() -> None:
    g = torch.Generator().manual_seed(0)
    cipher = torch.randperm(VOCAB - 1, generator=g) + 1  # ids 1.., 0 is padding
    gain = torch.tensor([1.5, -0.7, 0.9, -1.8])
    states = torch.cat((walk((2, 6), 40, g), walk((6, 3), 40, g)))
    seen = set(states[:, :2].flatten().tolist())
    translator = TokenValueTranslator(gym.spaces.MultiDiscrete([VOCAB] * 12), 6)
    fit_translator(translator, sentences(states, cipher), source_of(states, gain, g), AlignConfig())
    # fresh states whose numbers the walk said: the agent's and the goal's features exact
    fresh = torch.randint(1, N + 1, (200, 4), generator=g)
    fresh = fresh[torch.tensor([set(r.tolist()) <= seen for r in fresh])]
    assert len(fresh) > 20
    want = source_of(fresh, gain, g)[:, :4]
    got = translator(sentences(fresh, cipher))[:, :4]
    assert torch.allclose(got, want, atol=1e-3)
    assert not list(translator.parameters())  # all closed form


def test_fixed_words_and_unseen_numbers_read_nothing() -> None:
    g = torch.Generator().manual_seed(1)
    cipher = torch.randperm(VOCAB - 1, generator=g) + 1
    states = walk((4, 4), 30, g)  # one episode; the goal sits at the centre
    ids = sentences(states, cipher)
    values, routing = fit_values(ids, source_of(states, torch.ones(4), g), VOCAB)
    assert routing.shape == (12, 6)
    assert values[ids[0, [0, 2, 4, 5, 6, 8, 10]]].eq(0).all()  # the template's words
    unseen = set(range(1, N + 1)) - set(states[:, :2].flatten().tolist())
    assert all(values[cipher[n]] == 0 for n in unseen)
    assert values[0] == 0  # padding


def every_state(gain: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """The source's observations of every state (agent and goal anywhere): its candidates."""
    cells = torch.cartesian_prod(torch.arange(1, N + 1), torch.arange(1, N + 1))
    return source_of(
        torch.cat((cells.repeat_interleave(N * N, 0), cells.repeat(N * N, 1)), 1), gain, g
    )


@pytest.mark.parametrize("missing", [1, 2])
def test_a_number_word_never_said_reads_the_one_value_left(missing: int) -> None:
    """A walk that never reaches the grid's last rows and columns: with one number left unsaid,
    its word (never seen in the pairs) reads the one value the source takes that no read word
    has; with two left, which is which cannot be told, and both read 0."""
    g = torch.Generator().manual_seed(2)
    cipher = torch.randperm(VOCAB - 1, generator=g) + 1
    gain = torch.tensor([1.5, -0.7, 0.9, -1.8])
    top = N - missing  # the walk and the goals stay in rows and columns 1..top
    states = torch.cat((walk((2, top), 60, g), walk((top, 1), 60, g))).clamp(max=top)
    translator = TokenValueTranslator(gym.spaces.MultiDiscrete([VOCAB] * 12), 6)
    context = TranslationContext(every_state(gain, g))
    fit_translator(translator, sentences(states, cipher), source_of(states, gain, g), AlignConfig(),
                   context=context)  # fmt: skip
    assert set(states[:, :2].flatten().tolist()) == set(range(1, top + 1))
    fresh = torch.tensor([[N, 1, 2, N]])  # the agent in the last row, the goal in the last column
    got = translator(sentences(fresh, cipher))[:, :4]
    if missing == 1:
        torch.testing.assert_close(got, source_of(fresh, gain, g)[:, :4], atol=1e-4, rtol=0)
    else:
        assert translator.values[cipher[N]] == 0 and translator.values[cipher[N - 1]] == 0


def test_goals_on_a_line_through_the_centre_are_read_at_the_agents_scale() -> None:
    """Goals (2, 3) and (6, 5) lie on one line through the centre (4, 4): least squares cannot
    tell the goal's row place from its column place; with the source's candidates each goal
    channel is read from the one place that fits at the scale the agent's places show (on a
    diagonal through the centre both would fit, and nothing is re-read)."""
    g = torch.Generator().manual_seed(4)
    cipher = torch.randperm(VOCAB - 1, generator=g) + 1
    gain = torch.tensor([1.5, -0.7, 0.9, -1.8])
    states = torch.cat((walk((2, 3), 60, g), walk((6, 5), 60, g)))
    fresh = torch.cat(
        (torch.randint(1, N + 1, (200, 2), generator=g), torch.tensor([[3, 3]] * 200)), 1
    )
    fresh = fresh[
        torch.tensor([set(r.tolist()) <= set(states[:, :2].flatten().tolist()) for r in fresh])
    ]
    exact = []
    for context in (None, TranslationContext(every_state(gain, g))):
        translator = TokenValueTranslator(gym.spaces.MultiDiscrete([VOCAB] * 12), 6)
        fit_translator(translator, sentences(states, cipher), source_of(states, gain, g),
                       AlignConfig(), context=context)  # fmt: skip
        error = (translator(sentences(fresh, cipher)) - source_of(fresh, gain, g))[:, :4].abs()
        exact.append(bool((error < 1e-4).all()))
    assert len(fresh) > 20 and exact == [False, True]


def test_rows_and_columns_said_with_different_words_are_put_on_one_scale() -> None:
    """A walk in rows 1-4 and columns 5-7 says no number as both a row and a column, so no
    word ties the column place's values to the row place's. With the source's candidates the
    column reading is rescaled by the ratio of the two channels' ranges, with the one sign that
    lands every value on one the row channel takes without giving a second word a value
    already taken: every channel of fresh states is then read exactly (without: the columns
    read nothing)."""
    g = torch.Generator().manual_seed(5)
    cipher = torch.randperm(VOCAB - 1, generator=g) + 1
    gain = torch.tensor([1.5, -0.7, 0.9, -1.8])
    low, high = torch.tensor([1, 5, 1, 5]), torch.tensor([4, 7, 4, 7])
    states = torch.cat((walk((2, 6), 60, g), walk((4, 5), 60, g))).clamp(low, high)
    fresh = torch.stack([torch.randint(int(a), int(b) + 1, (100,), generator=g)
                         for a, b in zip(low, high, strict=True)], 1)  # fmt: skip
    errors = []
    for context in (None, TranslationContext(every_state(gain, g))):
        translator = TokenValueTranslator(gym.spaces.MultiDiscrete([VOCAB] * 12), 6)
        fit_translator(translator, sentences(states, cipher), source_of(states, gain, g),
                       AlignConfig(), context=context)  # fmt: skip
        got = translator(sentences(fresh, cipher))[:, :4]
        errors.append(float((got - source_of(fresh, gain, g)[:, :4]).abs().max()))
    assert errors[0] > 0.1 and errors[1] < 1e-4
