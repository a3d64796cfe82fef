"""Reading a ``pixels`` variant from the agent's own moves (``metaxm.align.colour_walk``) and the
source's account of the features (``metaxm.align.walk_features``): no reward, no pair; real
``pixels`` renders of GridNav 7x7 random walks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from metaxm.align.translate import make_translator
from metaxm.align.translation_context import TranslationContext
from metaxm.align.walk_features import feature_steps, goal_pairing
from metaxm.config.align import AlignConfig
from metaxm.envs import GridNav, GridNavConfig
from metaxm.envs.gridnav import MOVES
from metaxm.modalities import get_family

WORLD = GridNav(GridNavConfig(size=7), 1)
SPACE = get_family("pixels").observation_space(WORLD.scene_info)
CONFIG = AlignConfig()


@pytest.fixture(scope="module")
def context(candidates, features, moves) -> TranslationContext:  # noqa: ANN001
    """Every GridNav 7x7 state in the source ``vector:0`` with its features, the world's test
    and the source's answers to actions; no training variant of ``pixels``."""
    return TranslationContext(candidates, features=features, reached=WORLD.reached, moves=moves)


def test_the_sources_account_of_the_actions_and_the_goal(context) -> None:  # noqa: ANN001
    """Each action moves the agent's row or column by one cell (a third of the features' unit)
    and nothing else; the goal's row is the agent's row's partner, its column the column's."""
    steps = feature_steps(context)
    want = torch.zeros(4, 4, dtype=torch.float64)
    want[:, :2] = torch.tensor(MOVES, dtype=torch.float64) / 3.0
    torch.testing.assert_close(steps, want, atol=1e-5, rtol=0)
    assert goal_pairing(context, [0, 1]) == {2: 0, 3: 1}


@pytest.mark.parametrize("variant", [4, 7, 12])
def test_one_walk_reads_the_agent_and_the_goal_exactly(
    pairs, context, episodes, seek, tasks, variant
) -> None:  # noqa: ANN001
    """After one random-walk episode, with no reward and no pair, every state's four features
    read exactly through the source (rotation, flip and tile size from how the agent's colour
    answers the actions; the goal's colour through the same map) wherever no occluder hides the
    agent or the goal, and a policy acting on the reading reaches >= 85% of 39 new tasks
    (variant 7 paints its occluder on 57% of the frames; the others reach 100%)."""
    translator = make_translator("pixels", SPACE, 8, CONFIG)
    translator.prepare(context)
    assert translator.start_unpaired(*episodes(("pixels", variant), 1, seed=variant))
    g = torch.Generator().manual_seed(variant)
    agent, goal = (torch.randint(0, 7, (64, 2), generator=g) for _ in range(2))
    apart = (agent != goal).any(1)
    target = pairs(("pixels", variant), agent[apart], goal[apart], 5)[0]
    decode = context.feature_map()
    with torch.no_grad():
        read = translator(target).double() @ decode
    truth = torch.cat((agent[apart], goal[apart]), 1).double() / 3.0 - 1.0
    whole = (read - truth).abs().amax(1) < 1e-3  # an occluder over the agent or goal: not
    assert float(whole.double().mean()) >= 0.6
    found = np.mean([seek(translator, decode, ("pixels", variant), s, t) for s, t in tasks])
    assert found >= 0.85


def test_a_walk_along_one_axis_is_not_read(pairs, context) -> None:  # noqa: ANN001
    """An agent that only went up and down shows nothing of how columns are drawn: refused
    (False), and the translator reads 0."""
    rows = torch.tensor([[r, 2] for r in (1, 2, 3, 4, 5)])
    goal = torch.tensor([[6, 6]]).expand(5, 2)
    obs = pairs(("pixels", 4), rows, goal, 1)[0]
    actions = torch.tensor([1, 1, 1, 1, 1])  # down, down, ...
    first, second = torch.arange(4), torch.arange(1, 5)
    translator = make_translator("pixels", SPACE, 8, CONFIG)
    translator.prepare(context)
    assert not translator.start_unpaired(obs, actions, first, second)
    assert bool((translator.routing == 0).all())
