"""Reading a re-wired vector from the agent's own actions in a world with inner walls
(``metaxm.align.action_readers``): the channels that tell a wall beside the agent are named by
the moves they stop, on real GridNav renders (``walls: true``)."""

from __future__ import annotations

import pytest
import torch

from metaxm.align.action_readers import (
    action_readers,
    source_answers,
    unread_walls,
    wall_answers,
)
from metaxm.align.fewshot import default_source
from metaxm.align.pairs import render_pairs
from metaxm.align.selffit import Transitions, record_transitions
from metaxm.align.translate import make_translator, source_width
from metaxm.align.translation_context import translation_context
from metaxm.build import make_env
from metaxm.spec import load_spec

VARIANT = 5


@pytest.fixture(scope="module")
def walled():  # noqa: ANN201
    """The default spec with inner walls, and its source modality's translation context."""
    spec = load_spec("tasks/gridnav.yaml", ["world.walls=true"])
    return spec, translation_context(spec, "vector", seed=0)


def _walk(spec, episodes: int, seed: int) -> Transitions:  # noqa: ANN001
    """``episodes`` uniformly random episodes of ``vector:VARIANT`` in the walled world."""
    env = make_env(spec, "vector", VARIANT, num_envs=episodes, seed=seed)
    g = torch.Generator().manual_seed(seed)
    return record_transitions(env, "vector", lambda obs: torch.randint(4, (len(obs),), generator=g))


def _read(spec, context, data: Transitions):  # noqa: ANN001, ANN202
    """The vector translator read from ``data`` alone (no reward, no pair), its observation
    space and the source's width."""
    source = default_source(spec)
    space = make_env(spec, "vector", VARIANT, num_envs=1).observation_space
    width = source_width(source[0], make_env(spec, *source, num_envs=1).observation_space)
    translator = make_translator("vector", space, width, spec.align, seed=0)
    translator.prepare(context)
    assert translator.start_unpaired(data.obs, data.actions, data.first, data.second)
    return translator, space, width


def test_each_wall_feature_of_the_source_tells_the_move_it_stops(walled) -> None:  # noqa: ANN001
    """Over the source's drawn moves, the four wall features (and nothing else) are named, each
    by the action that walks into its side, with the value it takes where that move is stopped
    (+1, times the source's gain) and where it is not."""
    spec, context = walled
    _, walls = source_answers(*context.moves)
    decode = context.feature_map()  # (S, F): source channel -> features
    named = (~walls[0].isnan()).nonzero().flatten().tolist()
    assert len(named) == 4
    feature = {j: int(decode[j].abs().argmax()) for j in named}
    assert sorted(feature.values()) == [4, 5, 6, 7]  # wall_up, wall_down, wall_left, wall_right
    for j in named:
        assert int(walls[0, j]) == feature[j] - 4  # the moves' order: up, down, left, right
        stopped = float(walls[1, j]) * float(decode[j, feature[j]])
        assert stopped == pytest.approx(1.0, abs=1e-3)  # the feature reads +1: a wall there
        assert float(walls[2, j]) == pytest.approx(-float(walls[1, j]), abs=1e-3)


def test_a_walk_reads_every_wall_channel_without_reward_or_pair(walled) -> None:  # noqa: ANN001
    """Eight random episodes of a re-wired vector name each of its wall channels, and the
    translation gives every source wall channel exactly on fresh states (its gain and sign as
    the source shows them). The agent's channels are not taken for walls, though a wall
    channel too changes one way under each move along its axis."""
    spec, context = walled
    data = _walk(spec, 8, seed=3)
    walls = wall_answers(data.obs.double(), data.actions, data.first, data.second, 4)
    assert int((~walls[0].isnan()).sum()) == 4
    translator, space, width = _read(spec, context, data)
    source = default_source(spec)
    env = make_env(spec, "vector", VARIANT, num_envs=256, seed=11)
    env.reset()
    for _ in range(3):
        env.step(torch.randint(4, (256,), generator=torch.Generator().manual_seed(2)))
    scene = env.world.scene()
    views = [("vector", VARIANT), source]
    target, truth = render_pairs(scene, views, env.world.scene_info, torch.Generator()).obs
    with torch.no_grad():
        read = translator(target)
    _, source_walls = source_answers(*context.moves)
    told = ~source_walls[0].isnan()
    torch.testing.assert_close(read[:, told], truth[:, told], atol=1e-3, rtol=0)
    agent = (context.feature_map()[:, :2].abs() > 0.1).any(1)  # the agent's source channels
    torch.testing.assert_close(read[:, agent], truth[:, agent], atol=1e-3, rtol=0)
    loaded = make_translator("vector", space, width, spec.align, seed=1)
    loaded.load_state_dict(translator.state_dict())  # a saved policy keeps what rules out
    for name in ("moves", "still", "unread"):
        assert torch.equal(getattr(loaded.readings, name), getattr(translator.readings, name))
    assert translator.readings.moves.shape == (4, width)


def test_no_reading_puts_the_goal_behind_a_wall_it_reads(walled) -> None:  # noqa: ANN001
    """The goal is never behind a wall: a reading that reads a wall above the agent and its
    goal in the cell above is ruled out (``ReadingSet.behind_walls``, within an episode and
    over the walk), and not with the wall elsewhere or the goal elsewhere."""
    spec, context = walled
    readings = _read(spec, context, _walk(spec, 8, seed=3))[0].readings
    assert readings.wall_stops.shape == (3, 4)  # every wall channel, its action and value
    third = 1.0 / 3.0  # a cell, in features; the agent stands mid-grid, (3, 3)

    def states(goal_row: float, wall_up: float) -> torch.Tensor:
        # agent row, column, goal row, column, walls up, down, left, right
        features = torch.tensor([0.0, 0.0, goal_row, 0.0, wall_up, -1.0, -1.0, -1.0])
        return (features.double() @ context.source_map())[None, None]  # (1, 1, S)

    assert bool(readings.behind_walls(states(-third, 1.0)))  # the goal above, a wall there
    assert not bool(readings.behind_walls(states(-third, -1.0)))  # no wall above
    assert not bool(readings.behind_walls(states(third, 1.0)))  # the goal below


@pytest.mark.parametrize("seed", [0, 1, 4])
def test_a_wall_channel_is_not_read_as_the_agents(walled, seed: int) -> None:  # noqa: ANN001
    """In one episode a wall channel changes one way under each move along its axis, as an
    agent channel does, but not over every move that was not stopped: each of the agent's
    source channels keeps its one reader (on these walks the wall channels were read too,
    at gains near 0.1, before that was checked)."""
    spec, context = walled
    data = _walk(spec, 1, seed)
    answers, walls = source_answers(*context.moves)
    x = data.obs.double()
    options = action_readers(x, data.actions, data.first, data.second, answers, context.sources,
                             walls)  # fmt: skip
    agent = (context.feature_map()[:, :2].abs() > 0.1).any(1).nonzero().flatten().tolist()
    assert [len(options[j]) for j in agent] == [1, 1]


def test_without_inner_walls_no_channel_tells_a_wall(moves) -> None:  # noqa: ANN001
    """In a world without inner walls nothing is named a wall (the agent's channels, two-valued
    in a short walk at a grid's edge, change over every move that was not stopped), so the
    readers and what an unread channel takes are as before."""
    _, walls = source_answers(*moves)
    assert bool(walls.isnan().all())
    assert unread_walls([[]] * walls.shape[1], walls) is None


def test_readings_from_pairs_know_the_walls_too(walled) -> None:  # noqa: ANN001
    """``translate``'s readings, from pairs, get the source's walls and steps as ``selfread``'s
    do (no goal behind a wall a reading reads), and none in a world without inner walls."""
    spec, context = walled
    source = default_source(spec)
    env = make_env(spec, "vector", VARIANT, num_envs=64, seed=5)
    env.reset()
    views = [("vector", VARIANT), source]
    target, truth = render_pairs(env.world.scene(), views, env.world.scene_info,
                                 torch.Generator()).obs  # fmt: skip
    width = truth.shape[1]
    translator = make_translator("vector", env.observation_space, width, spec.align, seed=0)
    translator.prepare(context)
    translator.start(target, truth)
    assert bool(translator.readings.active)
    assert translator.readings.wall_stops.shape == (3, 4)
    assert translator.readings.moves.shape == (4, width)
    open_spec = load_spec("tasks/gridnav.yaml")
    open_context = translation_context(open_spec, "vector", seed=0)
    open_env = make_env(open_spec, "vector", VARIANT, num_envs=64, seed=5)
    open_env.reset()
    target, truth = render_pairs(open_env.world.scene(), views, open_env.world.scene_info,
                                 torch.Generator()).obs  # fmt: skip
    plain = make_translator("vector", open_env.observation_space, truth.shape[1], spec.align, 0)
    plain.prepare(open_context)
    plain.start(target, truth)
    assert bool(plain.readings.active) and plain.readings.wall_stops.shape == (3, 0)
