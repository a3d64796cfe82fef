"""The vector translator's reading search (``metaxm.align.reading_search``): every reading one
episode leaves open, the wrong ones ruled out by the values they land on and by the world."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from metaxm.align.reading_search import ReadingSearchTranslator, single_readers
from metaxm.align.translate import VectorTranslator, fit_translator, make_translator
from metaxm.align.translation_context import TranslationContext
from metaxm.config.align import AlignConfig
from metaxm.envs import GridNav, GridNavConfig

SPACE = gym.spaces.Box(-2, 2, (8,), np.float32)
CONFIG = AlignConfig(translate_iters=50, translate_lr=0.01, batch_size=64)
WORLD = GridNav(GridNavConfig(size=7), 1)


def _context(candidates, features, reached: bool = True) -> TranslationContext:
    """A context of every GridNav 7x7 state in the source ``vector:0``, with the states'
    features and the world's test of success (no training variants: a flat gain prior)."""
    if not reached:
        return TranslationContext(candidates)
    return TranslationContext(candidates, features=features, reached=WORLD.reached)


def _fit(walk, pairs, context, variant: int, goal: tuple[int, int], seed: int):
    """The vector translator fitted to one random-walk episode of ``vector:variant``."""
    agent, goals = walk(goal, 30, torch.Generator().manual_seed(seed))
    target, source = pairs(("vector", variant), agent, goals, seed)
    translator = make_translator("vector", SPACE, 8, CONFIG, seed=0)
    fit_translator(translator, target, source, CONFIG, seed=0, context=context)
    return translator


def test_each_source_channel_finds_its_one_reader_and_gain() -> None:
    """A re-wired vector: a moving channel has exactly its own reader and gain; a constant one
    every constant target channel; a channel no target channel reads (noise) none."""
    g = torch.Generator().manual_seed(0)
    agent = torch.rand(30, 2, generator=g) * 2 - 1
    goal = torch.tensor([[0.5, -1.0]]).expand(30, 2)
    noise = torch.rand(30, 1, generator=g)
    source = torch.cat((agent, goal, noise), 1).double()  # (30, 5)
    perm = torch.tensor([3, 0, 2, 1])  # target channel i shows source channel perm[i]
    gain = torch.tensor([-2.0, 0.5, 1.5, -0.7], dtype=torch.float64)
    target = torch.cat((source[:, perm] * gain, torch.rand(30, 1, generator=g).double()), 1)
    found = single_readers(target, source)
    assert [i for i, _ in found[0]] == [1] and found[0][0][1] == pytest.approx(1 / 0.5)
    assert [i for i, _ in found[1]] == [3] and found[1][0][1] == pytest.approx(-1 / 0.7)
    assert sorted(i for i, _ in found[2]) == [0, 2]  # goal channels: either constant one
    assert sorted(i for i, _ in found[3]) == [0, 2]
    assert found[4] == []  # the source's noise


def test_one_episode_keeps_the_swap_and_a_ratio_off_the_grid_is_ruled_out(
    walk, pairs, candidates, features
) -> None:
    """Goal (1, 4): the pairs cannot tell the goal's row channel from its column channel. Both
    readings are kept; on every new goal the true one reads the source exactly, and on some the
    swapped one, whose gains land between the grid's values there, is ruled out by them."""
    translator = _fit(walk, pairs, _context(candidates, features), 3, (1, 4), seed=1)
    assert isinstance(translator, ReadingSearchTranslator) and bool(translator.searching)
    assert translator.readings.reader.shape[0] == 2
    matches, costs = [], []
    for goal in torch.cartesian_prod(torch.arange(7), torch.arange(7)):
        agent = torch.tensor([[6, 6]]) if goal.tolist() == [0, 0] else torch.tensor([[0, 0]])
        target, source = pairs(("vector", 3), agent, goal[None], 2)
        with torch.no_grad():
            full, cost = translator.candidates(target)
        matches.append((full[0, :, :4] - source[0, :4].double()).abs().amax(1) < 1e-5)
        costs.append(cost[0])
    true = torch.stack(matches).all(0)  # (2,): the reading that reads every goal right
    assert int(true.sum()) == 1
    costs = torch.stack(costs)  # (49, 2)
    assert bool(costs[:, true].isfinite().all())
    assert 0 < int(costs[:, ~true].isinf().sum()) < 49


@pytest.mark.parametrize("goal", [(1, 5), (3, 5), (2, 2)])
def test_a_permuted_variant_is_recovered_from_one_episode(
    walk, pairs, candidates, features, seek, tasks, goal
) -> None:
    """The constructed case with a known answer: a held-out vector variant re-wires the
    training variant's features. After one episode (goal off the centre, on the centre line,
    on a diagonal) a policy that acts on the reading reaches >= 90% of new goals within the
    horizon; the least-squares map and MLP on the same pairs reach fewer."""
    translator = _fit(walk, pairs, _context(candidates, features), 5, goal, seed=2)
    plain = _fit(walk, pairs, _context(candidates, features, reached=False), 5, goal, seed=2)
    assert bool(translator.searching) and not bool(plain.searching)
    decode = translator.readings.decode
    found = np.mean([seek(translator, decode, ("vector", 5), s, t) for s, t in tasks])
    assert found >= 0.9
    assert np.mean([seek(plain, decode, ("vector", 5), s, t) for s, t in tasks]) < found


def test_the_search_rules_a_reading_out_where_the_episode_went_on(
    walk, pairs, candidates, features
) -> None:
    """Standing on the cell the first reading calls the goal, with the episode still on: that
    reading is ruled out for the rest of the episode, and :meth:`begin` forgets it."""
    context = _context(candidates, features)
    translator = _fit(walk, pairs, context, 3, (3, 3), seed=4)  # the centre: nothing read
    assert translator.readings.reader.shape[0] > 2
    goal = torch.tensor([[5, 1]])
    first = pairs(("vector", 3), torch.tensor([[0, 0]]), goal, 5)[0]
    with torch.no_grad():
        read = (translator(first).double() @ translator.readings.decode)[0]
    named = ((read[2:] + 1.0) * 3.0).round().long()
    assert not bool((named == goal[0]).all())  # the first reading is a wrong one here
    there = pairs(("vector", 3), named[None], goal, 5)[0]
    with torch.no_grad():
        after = (translator(there).double() @ translator.readings.decode)[0]
    assert not bool((((after[2:] + 1.0) * 3.0).round().long() == named).all())
    assert int(translator.readings.ruled_out.sum()) >= 1
    translator.begin()
    assert translator.readings.ruled_out is None


def test_without_the_worlds_test_it_is_the_least_squares_map_and_mlp(
    walk, pairs, candidates
) -> None:
    """A world that cannot tell success from features (or a continuous one): no search, the
    same translation as :class:`VectorTranslator`."""
    translator = _fit(walk, pairs, _context(candidates, None, reached=False), 3, (1, 5), seed=1)
    assert not bool(translator.searching)
    target, source = pairs(("vector", 3), *walk((1, 5), 30, torch.Generator().manual_seed(1)), 1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # make_translator's draw of the MLP's weights
        plain = VectorTranslator(SPACE, 8, CONFIG)
    fit_translator(plain, target, source, CONFIG, seed=0)
    with torch.no_grad():
        torch.testing.assert_close(translator(target), plain(target))


def test_a_saved_translator_loads_with_its_readings(walk, pairs, candidates, features) -> None:
    """The readings' tables change size with the fit; a fresh translator loads them, and with
    the world's test attached it searches as the one saved."""
    translator = _fit(walk, pairs, _context(candidates, features), 3, (1, 5), seed=1)
    loaded = make_translator("vector", SPACE, 8, CONFIG, seed=9)
    loaded.load_state_dict(translator.state_dict())
    loaded.attach(GridNav(GridNavConfig(size=7), 1))
    obs = pairs(("vector", 3), torch.tensor([[0, 0], [4, 4]]), torch.tensor([[6, 2], [1, 1]]), 6)
    with torch.no_grad():
        torch.testing.assert_close(loaded(obs[0]), translator(obs[0]))
    assert loaded.readings.reached is not None and bool(loaded.searching)


@pytest.mark.parametrize("variant", [3, 5])
def test_a_rewiring_is_read_from_observations_and_actions_alone(
    pairs, candidates, features, seek, tasks, moves, episodes, variant
) -> None:
    """No reward, no pair: how each channel answers each action names the agent's channels and
    their gains exactly; the goal's channels, which never move within an episode, keep the
    readings whose gains put every value they took on the source's values (the signs, the
    swap), less those whose goal the walk stood on. Searched within the episode, 8 episodes
    find >= 90% of 39 new tasks."""
    context = _context(candidates, features)
    context.moves = moves
    obs, actions, first, second = episodes(("vector", variant), 8, seed=variant)
    translator = make_translator("vector", SPACE, 8, CONFIG, seed=0)
    translator.prepare(context)
    assert translator.start_unpaired(obs, actions, first, second)
    readers = {int(c): set(translator.readings.reader[:, n].tolist()) for n, c in
               enumerate(translator.readings.channels)}  # fmt: skip
    single = [c for c, r in readers.items() if len(r) == 1]
    assert len(single) >= 2  # the agent's two at least, each from one channel
    assert 1 <= translator.readings.reader.shape[0] <= 16  # what one sign and swap each leave
    found = np.mean([seek(translator, translator.readings.decode, ("vector", variant), s, t)
                     for s, t in tasks])  # fmt: skip
    assert found >= 0.9


def test_without_the_sources_moves_nothing_is_read(candidates, features, episodes) -> None:
    """A context without the source's answers to actions: no reading, refused (False)."""
    translator = make_translator("vector", SPACE, 8, CONFIG, seed=0)
    translator.prepare(_context(candidates, features))
    assert not translator.start_unpaired(*episodes(("vector", 3), 2, seed=1))
    assert not bool(translator.searching)


def test_a_vector_translator_saved_before_the_readings_still_loads(walk, pairs) -> None:
    """A policy saved with the least-squares map and MLP alone (before readings were kept)
    loads into the vector family's translator, which then translates as it did."""
    target, source = pairs(("vector", 3), *walk((1, 5), 30, torch.Generator().manual_seed(1)), 1)
    old = VectorTranslator(SPACE, 8, CONFIG)
    fit_translator(old, target, source, CONFIG, seed=0)
    loaded = make_translator("vector", SPACE, 8, CONFIG, seed=4)
    loaded.load_state_dict(old.state_dict())
    assert not bool(loaded.searching)
    with torch.no_grad():
        torch.testing.assert_close(loaded(target), old(target))


def _walked(candidates, features, moves, episodes):  # noqa: ANN001, ANN202
    """The vector translator read from one random-walk episode of ``vector:3`` alone (no
    reward, no pair)."""
    context = _context(candidates, features)
    context.moves = moves
    translator = make_translator("vector", SPACE, 8, CONFIG, seed=0)
    translator.prepare(context)
    assert translator.start_unpaired(*episodes(("vector", 3), 1, seed=7))
    return translator


def test_a_goal_the_walk_stood_on_is_ruled_out(
    pairs, candidates, features, moves, episodes
) -> None:  # noqa: ANN001
    """A reading whose goal the agent stood on at an observation of the walk (the episode went
    on) is dropped; the reading that reads the truth is kept; where every reading would be
    dropped, none is."""
    translator = _walked(candidates, features, moves, episodes)
    readings = translator.readings
    before = readings.reader.shape[0]
    goal = torch.tensor([[5, 1]])
    x = pairs(("vector", 3), torch.tensor([[0, 0]]), goal, 5)[0].double() * translator.scale
    with torch.no_grad():
        full, _ = readings.candidates(x)
    named = (((full[0] @ readings.decode)[:, 2:] + 1.0) * 3.0).round().long()  # (R, 2)
    wrong = int((named != goal).any(1).nonzero()[0])
    truth = (named == goal).all(1)
    assert bool(truth.any())
    there = pairs(("vector", 3), named[wrong][None], goal, 6)[0].double() * translator.scale
    readings.rule_out_walked(there)
    assert 0 < readings.reader.shape[0] < before
    with torch.no_grad():
        full, _ = readings.candidates(x)
    left = (((full[0] @ readings.decode)[:, 2:] + 1.0) * 3.0).round().long()
    assert bool((left == goal).all(1).any())  # the truth is still read
    assert not bool((left == named[wrong]).all(1).any())
    kept = readings.reader.shape[0]
    readings.reached = lambda f: torch.ones(f.shape[:-1], dtype=torch.bool)  # every one stood on
    readings.rule_out_walked(x)
    assert readings.reader.shape[0] == kept


def test_the_search_tries_a_near_plausible_goal_first(
    pairs, candidates, features, moves, episodes, monkeypatch
) -> None:  # noqa: ANN001
    """The readings know which goal feature pairs with which agent feature (the goal's row the
    agent's row) and a cell's length; each cell between the agent and a reading's goal adds
    ``NEAREST`` to its cost, so from 20 starts the goal chosen is never farther, and at least
    once nearer, than the cheapest reading's by the prior alone. A saved search keeps them."""
    import metaxm.align.reading_set as reading_set

    translator = _walked(candidates, features, moves, episodes)
    readings = translator.readings
    assert readings.pairs.tolist() == [[2, 3], [0, 1]]
    assert float(readings.cell) == pytest.approx(1.0 / 3.0, abs=1e-4)  # levels to 1e-5
    g = torch.Generator().manual_seed(0)
    agent = torch.randint(0, 7, (20, 2), generator=g)
    x = pairs(("vector", 3), agent, torch.tensor([[6, 6]]).expand(20, 2), 5)[0]

    def distance(nearest: float) -> torch.Tensor:
        monkeypatch.setattr(reading_set, "NEAREST", nearest)
        translator.begin()
        with torch.no_grad():
            read = (translator(x).double() @ readings.decode).sub(-1.0).mul(3.0).round()
        return (read[:, 2:] - read[:, :2]).abs().sum(1)  # cells from the agent to its goal

    near, prior = distance(1.0), distance(0.0)
    assert bool((near <= prior).all()) and bool((near < prior).any())
    fresh = make_translator("vector", SPACE, 8, CONFIG, seed=1)
    fresh.load_state_dict(translator.state_dict())
    assert torch.equal(fresh.readings.pairs, readings.pairs)


def _wrong_goal(translator, pairs):  # noqa: ANN001, ANN202
    """For a task of ``vector:3`` with its goal at (5, 1): the goal, each reading's goal
    (R, 2), and a reading whose goal is wrong and off the grid's edge."""
    goal = torch.tensor([[5, 1]])
    x = pairs(("vector", 3), torch.tensor([[0, 0]]), goal, 5)[0].double() * translator.scale
    with torch.no_grad():
        full, _ = translator.readings.candidates(x)
    named = (((full[0] @ translator.readings.decode)[:, 2:] + 1.0) * 3.0).round().long()
    inner = ((named > 0) & (named < 6)).all(1) & (named != goal).any(1)
    return goal, named, int(inner.nonzero()[0])


def test_a_goal_a_stopped_move_leads_to_is_ruled_out(
    pairs, candidates, features, moves, episodes
) -> None:  # noqa: ANN001
    """A move that was stopped did not reach its cell, so no reading's goal lies there (in a
    world with inner walls: the goal is not behind a wall). From the walk it drops such a
    reading for good; within a measured episode (the action told) for the episode. The
    reading that reads the truth is kept both ways."""
    from metaxm.align.action_readers import source_answers
    from metaxm.envs.gridnav import MOVES

    translator = _walked(candidates, features, moves, episodes)
    readings = translator.readings
    goal, named, wrong = _wrong_goal(translator, pairs)
    steps = source_answers(*moves)[0].nan_to_num(0.0)  # (4, S) each action's source step
    # kept where the source's channels tell walls (start_unpaired); here set by hand: a move
    # is stopped where no value but the noise's moves
    noise = torch.zeros(SPACE.shape[0], dtype=torch.bool)
    noise[4:] = True  # vector:3's appended noise channels
    readings.moves = steps
    readings.still = torch.full(noise.shape, 1e-6, dtype=torch.float64).masked_fill(noise, 1e9)
    up = MOVES.index((-1, 0))
    below = (named[wrong] + torch.tensor([1, 0]))[None]  # the cell below that reading's goal
    obs = pairs(("vector", 3), below, goal, 6)[0]
    x = obs.double() * translator.scale
    # within an episode: stand below it, move up, stopped (the same observation again)
    translator.begin()
    with torch.no_grad():
        translator(obs)
        translator.observe(torch.tensor([up]), torch.tensor([False]))
        translator(obs)
    full, _ = readings.candidates(x)
    led = (((full[0] + steps[up]) @ readings.decode)[:, :2] + 1.0) * 3.0
    assert bool(readings.ruled_out[0, wrong])
    truth = (named == goal).all(1)
    assert not bool(readings.ruled_out[0, truth].any())
    assert (led[wrong].round().long() == named[wrong]).all()
    # from the walk: the reading is gone, the truth kept
    before = readings.reader.shape[0]
    readings.rule_out_stopped(x, steps[up][None])
    assert readings.reader.shape[0] < before
    with torch.no_grad():
        full, _ = readings.candidates(pairs(("vector", 3), torch.tensor([[0, 0]]), goal, 5)[0]
                                      .double() * translator.scale)  # fmt: skip
    left = (((full[0] @ readings.decode)[:, 2:] + 1.0) * 3.0).round().long()
    assert bool((left == goal).all(1).any())
    assert not bool((left == named[wrong]).all(1).any())


def _seek_told(translator, pairs, view, start, goal, horizon=30) -> bool:  # noqa: ANN001
    """As :func:`~tests.align.conftest.gridnav_seek`, the translator told each action taken
    (``observe``), as a measured episode tells it; where the agent reads itself on the goal
    it steps up."""
    from metaxm.envs.gridnav import MOVES

    pos, goal = torch.tensor(start), torch.tensor(goal)
    translator.begin()
    for _ in range(horizon):
        target = pairs(view, pos[None], goal[None], 7)[0]
        with torch.no_grad():
            read = (translator(target).double() @ translator.readings.decode)[0]
        cells = ((read + 1.0) * 3.0).round().long().clamp(0, 6)
        delta = cells[2:] - cells[:2]
        axis = 0 if delta[0] != 0 else 1
        step = [0, 0]
        step[axis] = int(delta[axis].sign())
        action = MOVES.index(tuple(step)) if any(step) else 0
        translator.observe(torch.tensor([action]), torch.tensor([False]))
        pos = (pos + torch.tensor(MOVES[action])).clamp(0, 6)
        if bool((pos == goal).all()):
            return True
    return False


def test_an_axis_the_walk_never_moved_along_is_read_within_the_episode(
    pairs, candidates, features, tasks, moves, episodes
) -> None:  # noqa: ANN001
    """Two walk episodes that only move up and down: no channel answers a move along the
    row, so the agent's column channel has no reader. It is held over each episode as a
    goal's channel is, so every held channel is offered for it too, and within the measured
    episode a reading whose state does not follow the actions is ruled out. All of 39 new
    tasks are found; without the rule-out (the readings offered alone), or before (the
    column read at 0), 10 (validation vector 100-103, k = 1: mean success 0.893 -> 0.924)."""
    context = _context(candidates, features)
    context.moves = moves

    def rows(g: torch.Generator):  # noqa: ANN202
        return lambda: int(torch.randint(0, 2, (), generator=g))

    translator = make_translator("vector", SPACE, 8, CONFIG, seed=0)
    translator.prepare(context)
    assert translator.start_unpaired(*episodes(("vector", 3), 2, seed=4, walk=rows))
    assert bool(translator.readings.follow_moves)
    found = np.mean([_seek_told(translator, pairs, ("vector", 3), s, t) for s, t in tasks])
    assert found >= 0.9
