"""Translators (``metaxm.align.translate``): chosen by observation space, fitted to known maps,
refusing what they cannot translate in one line."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from metaxm.align.colour_moments import ColourMomentTranslator
from metaxm.align.frame_values import FrameValueTranslator
from metaxm.align.sensor_posterior import SensorPosteriorTranslator
from metaxm.align.token_values import TokenValueTranslator
from metaxm.align.translate import (
    FrameTranslator,
    KeypointTranslator,
    UnsquashTranslator,
    VectorTranslator,
    fit_translator,
    make_translator,
    register_translator,
    source_width,
)
from metaxm.align.translation_context import TranslationContext
from metaxm.config.align import AlignConfig
from metaxm.errors import ConfigError

CONFIG = AlignConfig(translate_iters=400, translate_lr=0.01, batch_size=128)


@pytest.mark.parametrize(
    ("family", "space", "cls"),
    [
        ("vector", gym.spaces.Box(-2, 2, (12,), np.float32), VectorTranslator),
        ("audio", gym.spaces.Box(0, 1, (1, 16, 6), np.float32), FrameValueTranslator),
        ("pixels", gym.spaces.Box(0, 255, (3, 16, 16), np.uint8), ColourMomentTranslator),
        ("mine", gym.spaces.Box(0, 255, (3, 8, 8), np.uint8), KeypointTranslator),
        ("text", gym.spaces.MultiDiscrete([20] * 7), TokenValueTranslator),
        ("projected", gym.spaces.Box(-1, 1, (12,), np.float32), SensorPosteriorTranslator),
    ],
)
def test_each_space_gets_its_translator_and_the_source_width(family, space, cls) -> None:
    translator = make_translator(family, space, 9, CONFIG, seed=1)
    assert isinstance(translator, cls)
    obs = torch.as_tensor(np.stack([space.sample() for _ in range(5)]))
    assert translator(obs).shape == (5, 9)
    again = make_translator(family, space, 9, CONFIG, seed=1)  # the seed draws the weights
    assert all(torch.equal(a, b) for a, b in zip(translator.parameters(), again.parameters()))


def test_the_learned_frame_reader_is_there_for_a_family_to_register() -> None:
    space = gym.spaces.Box(0, 1, (1, 16, 6), np.float32)
    obs = torch.as_tensor(np.stack([space.sample() for _ in range(5)]))
    assert FrameTranslator(space, 9, CONFIG)(obs).shape == (5, 9)
    assert list(FrameTranslator(space, 9, CONFIG).parameters())  # fitted by Adam


def test_what_cannot_be_translated_is_refused_in_one_line() -> None:
    with pytest.raises(ConfigError, match="no translator reads family 'd'.*register_translator"):
        make_translator("d", gym.spaces.Discrete(3), 4, CONFIG)
    with pytest.raises(ConfigError, match="translate needs a vector source modality"):
        source_width("pixels", gym.spaces.Box(0, 255, (3, 8, 8), np.uint8))
    assert source_width("vector", gym.spaces.Box(-2, 2, (12,), np.float32)) == 12
    with pytest.raises(ValueError, match="already registered"):
        register_translator("audio", FrameTranslator)


def test_a_vector_rewiring_is_learned_to_new_states() -> None:
    """A re-wired sensor (permuted, re-signed, re-scaled) fitted on 200 states translates
    states it never saw."""
    g = torch.Generator().manual_seed(0)
    perm = torch.randperm(6, generator=g)
    gain = torch.tensor([1.5, -0.5, 2.0, -1.0, 0.7, 1.2])
    states = torch.rand(400, 6, generator=g) * 2 - 1
    target, source = states[:, perm] * gain, states
    translator = make_translator("vector", gym.spaces.Box(-2, 2, (6,)), 6, CONFIG, seed=0)
    losses = fit_translator(translator, target[:200], source[:200], CONFIG, seed=0)
    assert losses[-1] < 1e-4
    with torch.no_grad():
        err = (translator(target[200:]) - source[200:]).pow(2).mean()
    assert err < 0.01


def test_the_mlp_fits_what_the_linear_map_leaves() -> None:
    """A squashed, offset re-wiring (as ``projected`` draws): Adam's steps on the MLP bring the
    error on new states well below the least-squares map's alone."""
    g = torch.Generator().manual_seed(2)
    weight, bias = torch.randn(4, 8, generator=g) * 1.5, torch.rand(8, generator=g) - 0.5
    states = torch.rand(600, 4, generator=g) * 2 - 1
    target = torch.tanh(states @ weight + bias)
    errors = []
    for iters in (0, 400):
        translator = make_translator("mine", gym.spaces.Box(-1, 1, (8,)), 4, CONFIG, seed=0)
        config = AlignConfig(translate_iters=iters, translate_lr=0.01, batch_size=128)
        fit_translator(translator, target[:300], states[:300], config, seed=0)
        with torch.no_grad():
            errors.append(float((translator(target[300:]) - states[300:]).pow(2).mean()))
    assert errors[1] < 0.5 * errors[0]


def test_squashed_sensors_are_unsquashed_and_read_exactly() -> None:
    """The same squashed, offset re-wiring, any states: ``atanh`` and a map without intercept
    (:class:`UnsquashTranslator`, which a family of continuous states can register) read new
    states exactly, in closed form (the offset is one more direction the map sends to 0)."""
    g = torch.Generator().manual_seed(2)
    weight, bias = torch.randn(4, 8, generator=g) * 1.5, torch.rand(8, generator=g) - 0.5
    states = torch.rand(600, 4, generator=g) * 2 - 1
    target = torch.tanh(states @ weight + bias)
    translator = UnsquashTranslator(gym.spaces.Box(-1, 1, (8,)), 4)
    fit_translator(translator, target[:300], states[:300], CONFIG, seed=0)
    assert not list(translator.parameters())
    with torch.no_grad():
        torch.testing.assert_close(translator(target[300:]), states[300:], atol=1e-3, rtol=0)


def test_a_channel_constant_in_the_pairs_is_read_as_a_scale_not_an_offset() -> None:
    """The goal's channel is constant within an episode: the least-squares map without an
    intercept reads it as a scale, so a goal the pairs never showed is translated right."""
    g = torch.Generator().manual_seed(1)
    agent = torch.rand(30, 2, generator=g) * 2 - 1  # moves within the episode
    goal = torch.full((30, 1), 0.5)  # one goal
    states = torch.cat((agent, goal), 1)
    gain = torch.tensor([-1.5, 0.7, 2.0])
    translator = make_translator("vector", gym.spaces.Box(-2, 2, (3,)), 3, CONFIG, seed=0)
    fit_translator(translator, states[:, [2, 0, 1]] * gain, states, AlignConfig(translate_iters=0))
    new = torch.tensor([[0.2, -0.4, -0.9], [1.0, 1.0, 0.1]])  # goals never shown
    with torch.no_grad():
        torch.testing.assert_close(translator(new[:, [2, 0, 1]] * gain), new)


def test_keypoints_read_a_colour_everywhere_after_seeing_it_in_a_few_places() -> None:
    """Images of two coloured cells: the 'agent' anywhere, the 'goal' in only 4 places during
    the fit. The fitted translator places the goal where it never saw it."""
    g = torch.Generator().manual_seed(0)
    n, side = 400, 8

    def images(agent: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        img = torch.full((len(agent), 3, side, side), 40, dtype=torch.uint8)
        rows = torch.arange(len(agent))
        img[rows, :, agent[:, 0], agent[:, 1]] = torch.tensor([250, 30, 30], dtype=torch.uint8)
        img[rows, :, goal[:, 0], goal[:, 1]] = torch.tensor([30, 30, 250], dtype=torch.uint8)
        return img

    def coords(cells: torch.Tensor) -> torch.Tensor:
        return cells.float() / (side - 1) * 2 - 1

    agent = torch.randint(0, side, (n, 2), generator=g)
    seen = torch.tensor([[1, 1], [1, 6], [6, 2], [5, 5]])
    goal = seen[torch.randint(0, 4, (n,), generator=g)]
    clash = (agent == goal).all(1)
    agent[clash] = (agent[clash] + 3) % side
    space = gym.spaces.Box(0, 255, (3, side, side), np.uint8)
    translator = make_translator("mine", space, 4, CONFIG, seed=0)  # an image family's default
    source = torch.cat((coords(agent), coords(goal)), 1)
    fit_translator(translator, images(agent, goal), source, CONFIG, seed=0)

    new_goal = torch.tensor([[3, 3], [0, 4], [7, 7], [4, 0]])
    new_agent = torch.tensor([[0, 0], [6, 6], [2, 5], [7, 1]])
    with torch.no_grad():
        got = translator(images(new_agent, new_goal))
    # within half a cell of every coordinate, agent and goal
    assert (got - torch.cat((coords(new_agent), coords(new_goal)), 1)).abs().max() < 1 / (side - 1)


@pytest.mark.parametrize(
    ("family", "space"),
    [
        ("projected", gym.spaces.Box(-1, 1, (8,), np.float32)),
        ("audio", gym.spaces.Box(0, 1, (1, 16, 6), np.float32)),
        ("pixels", gym.spaces.Box(0, 255, (3, 16, 16), np.uint8)),
        ("text", gym.spaces.MultiDiscrete([20] * 7)),
    ],
)
def test_a_closed_form_fit_of_one_state_or_of_one_state_repeated_stays_finite(family, space):
    """k = 1 of an agent that never moves: nothing varies, and the translation must still be a
    number (0 where nothing could be read), not NaN."""
    obs = torch.as_tensor(np.stack([space.sample()]))
    context = TranslationContext(torch.randn(50, 5))  # the source's candidates
    for rows in (1, 12):
        target, source = obs.expand(rows, *obs.shape[1:]), torch.ones(rows, 5)
        translator = make_translator(family, space, 5, CONFIG, seed=0)
        fit_translator(translator, target, source, CONFIG, seed=0, context=context)
        with torch.no_grad():
            out = translator(torch.as_tensor(np.stack([space.sample() for _ in range(3)])))
        assert out.shape == (3, 5) and bool(out.isfinite().all())
