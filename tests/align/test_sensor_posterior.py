"""The projected translator (``metaxm.align.sensor_posterior``): a Bayesian linear model of the
unsquashed sensors, decoded to the most probable of the source's observations; real
``projected`` renders of GridNav 7x7 states, the source ``vector:0``."""

from __future__ import annotations

import gymnasium as gym
import pytest
import torch

from metaxm.align.sensor_posterior import (
    SensorPosteriorTranslator,
    bias_scale,
    signal_channels,
    unsquash,
)
from metaxm.align.translate import UnsquashTranslator, fit_translator
from metaxm.align.translation_context import TranslationContext
from metaxm.config.align import AlignConfig
from metaxm.modalities.projected import MAX_BIAS, OUT_DIM

SPACE = gym.spaces.Box(-1.0, 1.0, (OUT_DIM,))
TRAINING = range(1, 9)  # the "training variants" the offset's scale is learned from


@pytest.fixture(scope="module")
def context(pairs, candidates) -> TranslationContext:  # noqa: ANN001
    g = torch.Generator().manual_seed(5)
    drawn = torch.randint(0, 7, (256, 2), generator=g), torch.randint(0, 7, (256, 2), generator=g)
    family = [tuple(pairs(("projected", v), *drawn)) for v in TRAINING]
    return TranslationContext(candidates, family)  # type: ignore[arg-type]


def exact_share(translator, variant: int, pairs, g: torch.Generator) -> float:  # noqa: ANN001
    """The share of fresh states (an agent anywhere but on the goal, a goal anywhere) whose four
    features all translate to within half a grid cell of the source's."""
    agent, goal = (
        torch.randint(0, 7, (300, 2), generator=g),
        torch.randint(0, 7, (300, 2), generator=g),
    )
    apart = (agent != goal).any(1)  # GridNav's states: an episode ends on the goal
    agent, goal = agent[apart], goal[apart]
    target, source = pairs(("projected", variant), agent, goal, seed=1)
    with torch.no_grad():
        got = translator(target)
    cell = source[:, :4].abs().amax(0) / 3  # a channel's value at the grid's edge is 3 cells
    return float(((got[:, :4] - source[:, :4]).abs() < cell / 2).all(1).float().mean())


def two_goals(variant: int, walk, pairs, g: torch.Generator) -> list[torch.Tensor]:  # noqa: ANN001
    (a1, g1), (a2, g2) = walk((1, 5), 30, g), walk((5, 4), 30, g)
    return pairs(("projected", variant), torch.cat((a1, a2)), torch.cat((g1, g2)))


def test_two_goals_read_new_goals_off_their_line(context, walk, pairs) -> None:
    """Two episodes pin the goal's map along the line through their goals only; least squares
    reads every new goal on that line, the posterior reads most of them where they are
    (variants 41-46, outside the training variants the offset's scale is learned from)."""
    posterior, least_squares = [], []
    for variant in range(41, 47):
        g = torch.Generator().manual_seed(variant)
        target, source = two_goals(variant, walk, pairs, g)
        translator = SensorPosteriorTranslator(SPACE, 8)
        fit_translator(translator, target, source, AlignConfig(), context=context)
        assert not list(translator.parameters())  # all closed form
        posterior.append(exact_share(translator, variant, pairs, torch.Generator().manual_seed(0)))
        unsquashed = UnsquashTranslator(SPACE, 8)
        fit_translator(unsquashed, target, source, AlignConfig())
        least_squares.append(
            exact_share(unsquashed, variant, pairs, torch.Generator().manual_seed(0))
        )
    mean = sum(posterior) / len(posterior)
    assert mean >= 0.6, posterior
    assert mean >= sum(least_squares) / len(least_squares) + 0.2, (posterior, least_squares)


@pytest.mark.parametrize("variant", [50, 211])  # 211: noise 0.0003, the pairs nearly on a plane
def test_enough_goals_translate_every_state_exactly(variant: int, context, walk, pairs) -> None:
    g = torch.Generator().manual_seed(0)
    goals = [(0, 0), (6, 1), (2, 6), (5, 4)]
    episodes = [walk(goal, 30, g) for goal in goals]
    agent, goal = (torch.cat([e[i] for e in episodes]) for i in (0, 1))
    target, source = pairs(("projected", variant), agent, goal)
    translator = SensorPosteriorTranslator(SPACE, 8)
    fit_translator(translator, target, source, AlignConfig(), context=context)
    assert exact_share(translator, variant, pairs, g) == 1.0
    with torch.no_grad():
        assert bool((translator(target)[:, 4:] == 0).all())  # noise channels: not translated


def test_the_offsets_scale_is_learned_from_the_training_variants(context) -> None:
    """The family draws offsets uniformly in [-MAX_BIAS, MAX_BIAS]: a root mean square of
    MAX_BIAS / sqrt(3)."""
    learned = bias_scale(context.family_pairs, context.sources)
    assert learned == pytest.approx(MAX_BIAS / 3**0.5, rel=0.15)


def test_a_noise_channel_is_not_read_as_signal_from_few_pairs(walk, pairs) -> None:
    """60 pairs and 32 sensors: least squares on every sensor explains half of a pure-noise
    channel by chance; the principal directions above the noise floor do not."""
    g = torch.Generator().manual_seed(3)
    target, source = two_goals(7, walk, pairs, g)
    z = unsquash(target)
    keep = signal_channels(z[:, z.std(0) > 1e-6], source.double())
    assert keep.tolist() == [True] * 4 + [False] * 4  # vector:0 is 4 features, 4 noise channels


def test_a_saved_fit_loads_into_a_fresh_translator(context, walk, pairs) -> None:
    g = torch.Generator().manual_seed(1)
    target, source = two_goals(42, walk, pairs, g)
    translator = SensorPosteriorTranslator(SPACE, 8)
    fit_translator(translator, target, source, AlignConfig(), context=context)
    again = SensorPosteriorTranslator(SPACE, 8)
    again.load_state_dict(translator.state_dict())  # the candidates' number is the fit's
    with torch.no_grad():
        assert torch.equal(again(target), translator(target))
    # a fit saved before the goal search (no group, no success) loads, and does not search
    older = {k: v for k, v in translator.state_dict().items() if k not in ("group", "success")}
    old = SensorPosteriorTranslator(SPACE, 8)
    old.load_state_dict(older)
    assert len(old.group) == 0
    with torch.no_grad():
        assert torch.equal(old(target), translator(target))


def test_a_fit_without_candidates_says_so() -> None:
    obs = torch.zeros(4, OUT_DIM)
    with pytest.raises(RuntimeError, match="prepare must give it candidates"):
        SensorPosteriorTranslator(SPACE, 8).start(obs, torch.zeros(4, 8))


def test_continuous_states_are_read_by_least_squares() -> None:
    """A world of continuous states (every drawn state new) has no set of possible observations
    to decode to: the translator reads ``atanh`` and least squares, exact on fresh states."""
    g = torch.Generator().manual_seed(2)
    weight, bias = torch.randn(4, 8, generator=g) * 1.5, torch.rand(8, generator=g) - 0.5
    states = torch.rand(600, 4, generator=g) * 2 - 1
    translator = SensorPosteriorTranslator(gym.spaces.Box(-1.0, 1.0, (8,)), 4)
    context = TranslationContext(torch.rand(1000, 4, generator=g) * 2 - 1)
    target = torch.tanh(states @ weight + bias)
    fit_translator(translator, target[:300], states[:300], AlignConfig(), context=context)
    assert not bool(translator.discrete)
    with torch.no_grad():
        torch.testing.assert_close(translator(target[300:]), states[300:], atol=1e-3, rtol=0)


@pytest.mark.parametrize("variant", [41, 42, 43])
def test_one_episode_searches_the_goals_it_leaves_open(
    variant, context, walk, pairs, features, seek, tasks
) -> None:
    """After one episode (goal (1, 5)) the posterior spreads over goals. With the world's test
    of success, a goal part whose success state is read while the episode goes on is ruled
    out: a policy walking to the goal it reads reaches at least 0.2 more of 39 new tasks
    within the horizon than the same fit without the test (measured: +0.31 to +0.41)."""
    from metaxm.align.least_squares import ridge
    from metaxm.envs import GridNav, GridNavConfig

    agent, goal = walk((1, 5), 30, torch.Generator().manual_seed(variant))
    target, source = pairs(("projected", variant), agent, goal)
    with_test = TranslationContext(context.sources, context.family_pairs, features=features,
                                   reached=GridNav(GridNavConfig(size=7), 1).reached)  # fmt: skip
    shares = []
    for ctx in (context, with_test):
        translator = SensorPosteriorTranslator(SPACE, source.shape[1])
        fit_translator(translator, target, source, AlignConfig(), context=ctx)
        assert (len(translator.group) > 0) == (ctx is with_test)
        decode = ridge(context.sources.double(), features.double())
        found = [seek(translator, decode, ("projected", variant), s, t) for s, t in tasks]
        shares.append(sum(found) / len(found))
    assert shares[1] >= shares[0] + 0.2


def test_a_channel_the_drawn_states_never_vary_keeps_its_scale() -> None:
    """A world that starts every episode in one state (examples/linenav) gave the drawn states
    a constant source channel; its spread was clamped to 1e-9, the regressors blew up and the
    evidence fit's Cholesky failed (a traceback from metaxm adapt --strategy translate)."""
    import torch

    from metaxm.align.sensor_posterior import _standard, evidence_fit

    y = torch.tensor([[0.0, 1.0], [0.0, 3.0], [0.0, 5.0]], dtype=torch.float64)
    mean, sd = _standard(y)
    assert mean.tolist() == [0.0, 3.0] and sd.tolist() == [1.0, 2.0]
    walk = torch.tensor([[1.0, 1.0], [2.0, 3.0], [3.0, 5.0], [4.0, 2.0]], dtype=torch.float64)
    x = torch.cat(((walk - mean) / sd, torch.ones(4, 1, dtype=torch.float64)), 1)
    w, b, noise = evidence_fit(x, 2.0 * x[:, :1] + 0.1)  # finite, where it raised before
    assert all(map(torch.isfinite, map(torch.tensor, (w, b, noise))))
