"""Tracking the agent's cell through an episode (``metaxm.align.sensor_track``): the world's
moves per agent part, the forward step, and the one-episode search of real ``projected``
renders of GridNav 7x7 with the actions told."""

from __future__ import annotations

import gymnasium as gym
import pytest
import torch

from metaxm.align.sensor_posterior import SensorPosteriorTranslator
from metaxm.align.sensor_track import MARGIN, forward_step, wall_walk
from metaxm.align.translate import fit_translator
from metaxm.align.translation_context import TranslationContext
from metaxm.config.align import AlignConfig
from metaxm.envs import GridNav, GridNavConfig
from metaxm.envs.gridnav import MOVES
from metaxm.modalities.projected import OUT_DIM

SPACE = gym.spaces.Box(-1.0, 1.0, (OUT_DIM,))


@pytest.fixture(scope="module")
def tracked(candidates, features, moves) -> TranslationContext:  # noqa: ANN001
    """A context with the world's test and moves (no training variants)."""
    reached = GridNav(GridNavConfig(size=7), 1).reached
    return TranslationContext(candidates, features=features, reached=reached, moves=moves)


def fitted(variant: int, context, walk, pairs) -> SensorPosteriorTranslator:  # noqa: ANN001
    agent, goal = walk((1, 5), 30, torch.Generator().manual_seed(variant))
    target, source = pairs(("projected", variant), agent, goal)
    translator = SensorPosteriorTranslator(SPACE, source.shape[1])
    fit_translator(translator, target, source, AlignConfig(), context=context)
    return translator


def test_every_agent_part_moves_where_the_world_takes_it(tracked, walk, pairs) -> None:
    translator = fitted(41, tracked, walk, pairs)
    parts = translator.moves.shape[1]
    assert translator.moves.shape == (len(MOVES), 49) and parts * 49 == len(translator.group)
    decode = tracked.feature_map().float()
    cells = ((translator.candidates[::49].double().float() @ decode)[:, :2] + 1) * 3
    cells = cells.round().long()  # (A, 2) each agent part's cell
    for u, step in enumerate(MOVES):
        expected = (cells + torch.tensor(step)).clamp(0, 6)  # the grid's edge keeps it
        assert torch.equal(cells[translator.moves[u]], expected)


def test_a_move_carries_the_belief_and_a_wall_stops_it() -> None:
    """Three agent parts in a row, one goal part; action 0 moves right (the last stays)."""
    moves = torch.tensor([[1, 2, 2]])
    flat = torch.zeros(2, 3)
    start = forward_step(None, torch.tensor([[0.0, -50.0, -50.0], [-50.0, -50.0, 0.0]]), moves,
                         None, None)  # fmt: skip
    after = forward_step(start, flat, moves, torch.tensor([0, 0]), None)
    assert after[:, :, 0].argmax(1).tolist() == [1, 2]
    # the sensors favour part 0 after the move, but no part moves into part 0: it is ruled
    # out, and the belief is on part 1, where the agent's part 0 went
    stayed = forward_step(start, torch.tensor([[0.0, -1.0, -50.0], flat[1].tolist()]), moves,
                          torch.tensor([0, 0]), None)  # fmt: skip
    assert stayed[0, 0, 0] == float("-inf") and stayed[0, 1, 0] == 0
    restarted = forward_step(start, flat, moves, torch.tensor([0, 0]), torch.tensor([True, False]))
    assert restarted[0, :, 0].tolist() == [0.0, 0.0, 0.0]
    assert not bool(after.isnan().any()) and not bool(stayed.isnan().any())


def seek(translator, decode, pairs, variant: int, task, tell: bool) -> bool:  # noqa: ANN001
    """One GridNav 7x7 episode of a source policy that walks (row first, then column) to the
    goal it reads (``gridnav_seek`` in ``conftest.py``, a move on every step), the translator
    told each action where ``tell``; True where it reaches the goal within 30 steps."""
    pos, goal = (torch.tensor(c) for c in task)
    translator.begin()
    for _ in range(30):
        target = pairs(("projected", variant), pos[None], goal[None], 7)[0]
        with torch.no_grad():
            read = (translator(target).double() @ decode)[0]
        cells = ((read + 1.0) * 3.0).round().long().clamp(0, 6)
        delta = cells[2:] - cells[:2]
        axis = 0 if delta[0] != 0 else 1
        step = [0, 0]
        step[axis] = int(delta[axis].sign()) or 1
        action = MOVES.index(tuple(step))
        pos = (pos + torch.tensor(MOVES[action])).clamp(0, 6)
        done = bool((pos == goal).all())
        if tell:
            translator.observe(torch.tensor([action]), torch.tensor([done]))
        if done:
            return True
    return False


def test_told_the_actions_one_episode_reads_more_tasks(tracked, walk, pairs, tasks) -> None:
    """After one episode (goal (1, 5)), the same fit reaches more of 39 new tasks within the
    horizon when told the actions (variants 41-44; measured +0.15 to +0.23, mean +0.18; the
    fit not told them does not walk)."""
    decode = tracked.feature_map()
    gains = []
    for variant in (41, 42, 43, 44):
        translator = fitted(variant, tracked, walk, pairs)
        found = [[seek(translator, decode, pairs, variant, t, tell) for t in tasks]
                 for tell in (False, True)]  # fmt: skip
        gains.append((sum(found[1]) - sum(found[0])) / len(tasks))
    assert min(gains) >= 0 and sum(gains) / len(gains) >= 0.1


def test_a_caller_that_does_not_tell_the_actions_gets_no_walk(tracked, walk, pairs) -> None:
    """Untracked, the wall walk would only cost steps: from the first step that comes without
    the last one's action, the translator reads as a fit without the walk does; told the
    actions, it walks (the agent shown one cell from a corner, not where it stands)."""
    translator = fitted(43, tracked, walk, pairs)
    plain = SensorPosteriorTranslator(SPACE, translator.candidates.shape[1])
    plain.load_state_dict(translator.state_dict())
    plain.agent_cells = plain.goal_cells = plain.agent_cells[:0, :0]  # no walk
    agent, goal = torch.tensor([[3, 3]] * 4), torch.tensor([[6, 0]] * 4)
    target = pairs(("projected", 43), agent, goal, 7)[0]  # four steps standing still
    for told in (False, True):
        translator.begin()
        plain.begin()
        shown = []
        for t in range(4):
            with torch.no_grad():
                shown.append((translator(target[t : t + 1]), plain(target[t : t + 1])))
            if told:
                translator.observe(torch.tensor([0]), torch.tensor([False]))
        same = [bool(torch.equal(a, b)) for a, b in shown[1:]]
        assert same == [not told] * 3
    translator.begin()
    translator(target[:1])
    translator.observe(torch.tensor([0]), torch.tensor([False]))
    assert not translator.untold  # told again, it tracks and walks again


def test_a_saved_fit_keeps_its_moves_and_walk_and_an_older_one_loads_without(
    tracked, walk, pairs
) -> None:
    translator = fitted(42, tracked, walk, pairs)
    again = SensorPosteriorTranslator(SPACE, translator.candidates.shape[1])
    again.load_state_dict(translator.state_dict())
    assert torch.equal(again.moves, translator.moves)
    assert translator.agent_cells.shape == (49, 2) and translator.goal_cells.shape == (49, 2)
    assert torch.equal(again.agent_cells, translator.agent_cells)
    added = ("moves", "agent_cells", "goal_cells", "cell")
    older = {k: v for k, v in translator.state_dict().items() if k not in added}
    old = SensorPosteriorTranslator(SPACE, translator.candidates.shape[1])
    old.load_state_dict(older)
    assert old.moves.numel() == 0 and old.agent_cells.numel() == 0  # as a fit saved before


def test_after_two_episodes_the_goals_channels_are_those_no_move_changes(
    tracked, walk, pairs, tasks
) -> None:
    """Two episodes (goals (1, 5), (5, 4)) hold no channel constant; the world's moves say
    which are the goal's, so the search and the tracking run after two episodes too, and reach
    more of 39 new tasks than the same fit without the moves, which reads each step alone
    (variants 41-44; measured +0.00, +0.05, +0.26, +0.38)."""
    from metaxm.align.sensor_track import static_channels

    static = static_channels(tracked.moves)  # vector:1: 4 features permuted, 4 noise channels
    goal = tracked.feature_map()[:, 2:].abs().sum(1) > 1e-6  # the channels that read the goal
    assert torch.equal(static, goal)
    plain = TranslationContext(tracked.sources, features=tracked.features, reached=tracked.reached)
    decode = tracked.feature_map()
    gains = []
    for variant in (41, 42, 43, 44):
        g = torch.Generator().manual_seed(variant)
        (a1, g1), (a2, g2) = walk((1, 5), 30, g), walk((5, 4), 30, g)
        target, source = pairs(("projected", variant), torch.cat((a1, a2)), torch.cat((g1, g2)))
        shares = []
        for ctx, tell in ((plain, False), (tracked, True)):
            translator = SensorPosteriorTranslator(SPACE, source.shape[1])
            fit_translator(translator, target, source, AlignConfig(), context=ctx)
            assert (len(translator.group) > 0) == (ctx is tracked)
            found = [seek(translator, decode, pairs, variant, t, tell) for t in tasks]
            shares.append(sum(found) / len(tasks))
        gains.append(shares[1] - shares[0])
    assert min(gains) >= 0 and sum(gains) / len(gains) >= 0.1


def test_the_wall_walk_heads_for_the_nearest_corner_then_stops() -> None:
    """A 7 x 7 grid in cell units: read at (1, 5), the nearest corner is (0, 6); the walk shows
    the goal there and the agent one cell below it (the policy steps up) for 1 + MARGIN steps,
    then one cell left of it (the policy steps right) for 1 + MARGIN more, then ends."""
    cells = torch.cartesian_prod(torch.arange(7), torch.arange(7)).double()  # (49, 2)
    read = torch.tensor([[1.0, 5.0]])
    shown = [int(wall_walk(read, cells, cells, 1.0, torch.tensor([t]))) for t in range(9)]
    up, right = 1 * 7 + 6, 0 * 7 + 5  # agent parts (1, 6) and (0, 5)
    goal = 0 * 7 + 6
    walk = [up * 49 + goal] * (1 + MARGIN) + [right * 49 + goal] * (1 + MARGIN)
    assert shown == walk + [-1] * (9 - len(walk))
