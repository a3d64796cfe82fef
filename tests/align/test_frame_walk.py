"""Reading an ``audio`` variant from the agent's own moves (``metaxm.align.frame_walk``, the
audio translator's ``start_unpaired``): no reward, no pair; real ``audio`` renders of GridNav
7x7 random walks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from metaxm.align.frame_values import FrameValueTranslator, frame_pitch
from metaxm.align.frame_walk import walk_pitch
from metaxm.align.translate import make_translator
from metaxm.align.translation_context import TranslationContext
from metaxm.config.align import AlignConfig
from metaxm.envs import GridNav, GridNavConfig
from metaxm.modalities import get_family
from metaxm.nn.encoders import time_frames

WORLD = GridNav(GridNavConfig(size=7), 1)
SPACE = get_family("audio").observation_space(WORLD.scene_info)
CONFIG = AlignConfig()


@pytest.fixture(scope="module")
def context(candidates, features, moves) -> TranslationContext:  # noqa: ANN001
    """Every GridNav 7x7 state in the source ``vector:0`` with its features, the world's test
    and the source's answers to actions; audio has no training variant."""
    return TranslationContext(candidates, features=features, reached=WORLD.reached, moves=moves)


def test_the_variants_tested_rise_and_fall() -> None:
    """Variant 3 plays a higher value lower, 6 and 9 higher, with the narrowest partials (whose
    pitch strays most from the line): both signs of gain are tested."""
    family = get_family("audio")
    params = [family.variant(v, WORLD.scene_info) for v in (3, 6, 9)]
    assert [float(p["span"]) > 0 for p in params] == [False, True, True]
    assert max(float(p["width"]) for p in params[1:]) < 0.61


@pytest.mark.parametrize("variant", [3, 6, 9])
def test_one_walk_reads_the_agent_and_the_goal_exactly(
    pairs, context, episodes, seek, tasks, variant
) -> None:  # noqa: ANN001
    """After one random-walk episode, with no reward and no pair, the four features of 64 new
    states read exactly through the source (the gain from how the agent's frames answer the
    moves, the origin from the walls it met; the goal's frames by the same line), and a policy
    acting on the reading reaches every one of 39 new tasks."""
    translator = make_translator("audio", SPACE, 8, CONFIG)
    translator.prepare(context)
    assert translator.start_unpaired(*episodes(("audio", variant), 1, seed=variant))
    g = torch.Generator().manual_seed(variant)
    agent, goal = (torch.randint(0, 7, (64, 2), generator=g) for _ in range(2))
    target = pairs(("audio", variant), agent, goal, 5)[0]
    decode = context.feature_map()
    with torch.no_grad():
        read = translator(target).double() @ decode
    truth = torch.cat((agent, goal), 1).double() / 3.0 - 1.0
    torch.testing.assert_close(read, truth, atol=1e-3, rtol=0)
    assert np.mean([seek(translator, decode, ("audio", variant), s, t) for s, t in tasks]) == 1.0


def test_a_walk_that_meets_no_wall_reads_where_the_goal_lies_from_the_agent(pairs, context) -> None:  # noqa: ANN001
    """A walk in the grid's middle meets no wall, so the origin is only bounded (every frame
    inside its feature's range): the goal's offset from the agent still reads exactly on the
    walk's own states, and the gain reads the step of a cell."""
    cells = torch.tensor([[3, 2], [3, 3], [3, 4], [2, 4], [2, 3], [3, 3], [4, 3], [4, 2]])
    actions = torch.tensor([3, 3, 0, 2, 1, 1, 2, 2])  # right, right, up, left, down, ...
    goal = torch.tensor([[5, 5]]).expand(len(cells), 2)
    obs = pairs(("audio", 3), cells, goal, 1)[0]
    first, second = torch.arange(len(cells) - 1), torch.arange(1, len(cells))
    read = walk_pitch(frame_pitch(time_frames(obs)), actions, first, second, context)
    assert read is not None
    gain, origin, levels = read
    values = (frame_pitch(time_frames(obs)).double() - origin) / gain
    offset = values[:, 2:] - values[:, :2]
    torch.testing.assert_close(offset, (goal - cells).double() / 3.0, atol=0.1, rtol=0)
    assert levels.shape == (4, 7)


def test_a_walk_against_a_wall_is_not_read(pairs, context) -> None:  # noqa: ANN001
    """An agent that only pushed up against the top wall never moved: refused (False), and the
    translator reads 0."""
    cells = torch.tensor([[0, 3]]).expand(6, 2)
    obs = pairs(("audio", 3), cells, torch.tensor([[5, 5]]).expand(6, 2), 1)[0]
    translator = make_translator("audio", SPACE, 8, CONFIG)
    translator.prepare(context)
    assert not translator.start_unpaired(obs, torch.zeros(6, dtype=torch.long),
                                         torch.arange(5), torch.arange(1, 6))  # fmt: skip
    assert bool((translator(obs) == 0).all())


def test_a_saved_reading_loads_into_a_fresh_translator(pairs, context, episodes) -> None:  # noqa: ANN001
    """The reading's gain, origin and values travel in the state dict (its value table resizes
    on load), and a state dict saved before reward-free readings still loads, reading as it
    did."""
    translator = make_translator("audio", SPACE, 8, CONFIG)
    translator.prepare(context)
    assert translator.start_unpaired(*episodes(("audio", 8), 1, seed=8))
    fresh = FrameValueTranslator(SPACE, 8)
    fresh.load_state_dict(translator.state_dict())
    obs = pairs(("audio", 8), torch.tensor([[1, 2], [6, 0]]), torch.tensor([[4, 4], [0, 6]]), 2)[0]
    with torch.no_grad():
        torch.testing.assert_close(fresh(obs), translator(obs), atol=0, rtol=0)
    old = {k: v for k, v in FrameValueTranslator(SPACE, 8).state_dict().items()
           if not k.endswith(("gain", "levels"))}  # fmt: skip
    fresh.load_state_dict(old)
    assert fresh.levels.shape == (SPACE.shape[2], 0) and float(fresh.gain) == 1.0
