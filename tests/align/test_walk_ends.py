"""What a reward-free walk's edges and ends tell ``selfread`` on a re-wired vector
(``metaxm.align.action_readers``, :meth:`ReadingSearchTranslator.keep_ended`): a move stopped at
the grid's edge says nothing of the channel it would have stepped, a channel that moved by
different amounts under a move is noise, and an episode that ended before its horizon ended on
the goal."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from metaxm.align.action_readers import action_readers, source_answers
from metaxm.align.translate import make_translator
from metaxm.align.translation_context import TranslationContext
from metaxm.config.align import AlignConfig
from metaxm.envs import GridNav, GridNavConfig
from tests.align.conftest import gridnav_played

SPACE = gym.spaces.Box(-2, 2, (8,), np.float32)
CONFIG = AlignConfig(translate_iters=50, translate_lr=0.01, batch_size=64)
WORLD = GridNav(GridNavConfig(size=7), 1)
UP, DOWN, LEFT, RIGHT = range(4)


def _true_readers(pairs, view):  # noqa: ANN001, ANN202
    """(S,) the target channel that reads each of the source's four feature channels."""
    g = torch.Generator().manual_seed(0)
    agent, goal = (torch.randint(0, 7, (64, 2), generator=g) for _ in range(2))
    target, source = (o.double() for o in pairs(view, agent, goal, 0))
    corr = torch.corrcoef(torch.cat((target, source), 1).T)[:8, 8:].abs().nan_to_num(0.0)
    return corr.argmax(0)


def test_a_move_stopped_at_the_edge_and_noise_under_a_taken_move(pairs, moves) -> None:  # noqa: ANN001
    """From the top row, a move up is stopped and steps no channel; three moves down are taken.
    The agent's row channel has exactly its own reader (before, the stopped move read as 'this
    channel does not answer up', and the row had none), and no noise channel is taken for it,
    although each changed under the one move up: under the moves down it changed by different
    amounts (before, a noise channel was a reader of the row too)."""
    view = ("vector", 3)
    obs, _, actions, first, second, _ = gridnav_played(
        pairs, view, (0, 3), (6, 0), [UP, DOWN, DOWN, DOWN]
    )
    answers, _ = source_answers(*moves)
    options = action_readers(obs, actions, first, second, answers, moves[0])
    row = int((answers[UP].nan_to_num(0.0) != 0).nonzero()[0])
    assert [i for i, _ in options[row]] == [int(_true_readers(pairs, view)[row])]


def _read(candidates, features, moves, obs, actions, first, second):  # noqa: ANN001, ANN202
    """The vector translator read from a walk alone (no reward, no pair)."""
    context = TranslationContext(candidates, features=features, reached=WORLD.reached)
    context.moves = moves
    translator = make_translator("vector", SPACE, 8, CONFIG, seed=0)
    translator.prepare(context)
    assert translator.start_unpaired(obs.float(), actions, first, second)
    return translator


def test_an_episode_that_ended_early_keeps_the_readings_whose_goal_it_ended_on(
    pairs, candidates, features, moves, seek, tasks
) -> None:  # noqa: ANN001
    """One walk episode that ends on the goal at (3, 5): the goal's row reads 0 there, so its
    channel's gain is open and each value the source takes is a reading of it. Keeping the
    readings that put the agent on the goal after the last move (the episode ended there)
    leaves 7 of 77, every one of them reading the goal there, and they find all 39 new tasks
    (without it, 34). Those readings of the goal's row are judged at 0 on the walk, as the
    walk read it: judged at the values they name for a new episode instead, 1 reading was
    left, not the goal's, and 7 of 39 tasks were found."""
    view = ("vector", 3)
    actions = [LEFT, DOWN, RIGHT, RIGHT, DOWN, UP, RIGHT, RIGHT, DOWN, RIGHT]
    obs, _, acted, first, second, ended = gridnav_played(pairs, view, (1, 2), (3, 5), actions)
    assert bool(ended[-1]) and int(ended.sum()) == 1
    translator = _read(candidates, features, moves, obs, acted, first, second)
    before = translator.readings.reader.shape[0]
    translator.keep_ended(obs.float(), acted, ended)
    readings = translator.readings
    assert 0 < readings.reader.shape[0] < before
    with torch.no_grad():
        full, _ = readings.candidates(obs[ended] * translator.scale, walked=True)
    goal = (((full[0] @ readings.decode)[:, 2:] + 1.0) * 3.0).round().long()  # (R, 2)
    assert bool((goal == torch.tensor([3, 5])).all())  # every reading left ended the walk there
    found = np.mean([seek(translator, readings.decode, view, s, t) for s, t in tasks])
    assert found >= 0.9


@pytest.mark.parametrize("rule", ["stopped", "walled"])
def test_the_walks_stopped_and_walled_moves_read_its_goal_as_the_walk_did(
    pairs, candidates, features, moves, rule
) -> None:  # noqa: ANN001
    """The walk of the test above, whose goal's row reads 0 (its gain open: a reading per
    value the source takes). A move from the cell above the goal, down, stopped (or a wall read
    below the agent, as inner walls give it) says the goal is not below: judged on the walk's
    own observation, every reading dropped is one that reads the goal there as the walk read
    it, at 0 (before, judged at the value each names for a new episode, only the reading whose
    value was 0 was dropped), and every reading left reads it elsewhere."""
    view = ("vector", 3)
    actions = [LEFT, DOWN, RIGHT, RIGHT, DOWN, UP, RIGHT, RIGHT, DOWN, RIGHT]
    obs, _, acted, first, second, _ = gridnav_played(pairs, view, (1, 2), (3, 5), actions)
    translator = _read(candidates, features, moves, obs, acted, first, second)
    readings = translator.readings
    x = pairs(view, torch.tensor([[2, 5]]), torch.tensor([[3, 5]]), 40)[0].double()
    x = x * translator.scale
    steps = source_answers(*moves)[0].nan_to_num(0.0)  # (4, S) each action's source step

    def below_goal(walked: bool) -> torch.Tensor:
        with torch.no_grad():
            full, _ = readings.candidates(x, walked=walked)
        led = ((full[0] + steps[DOWN]) @ readings.decode).float()
        return readings.reached(led[None])[0]  # (R,)

    as_walked, as_new = below_goal(True), below_goal(False)
    assert int(as_new.sum()) < int(as_walked.sum()) < readings.reader.shape[0]
    before = readings.reader.shape[0]
    if rule == "stopped":
        readings.rule_out_stopped(x, steps[DOWN][None])
    else:
        row = int((steps[DOWN] != 0).nonzero()[0])  # the agent's row, which a move down steps
        with torch.no_grad():
            level = float(readings.candidates(x, walked=True)[0][0, 0, row])
        readings.moves = steps
        readings.wall_stops = torch.tensor([[row], [DOWN], [level]], dtype=torch.float64)
        readings.rule_out_walled(x)
    assert readings.reader.shape[0] == before - int(as_walked.sum())
    assert not bool(below_goal(True).any())
