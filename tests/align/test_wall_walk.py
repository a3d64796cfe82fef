"""The walk ``selfread`` plays where its reader needs walls met (``metaxm.align.wall_walk``):
to a wall, along the other axis to a wall, a sweep of the grid, then at random; on GridNav
7x7."""

from __future__ import annotations

import pytest
import torch

from metaxm.align.translate import TRANSLATORS
from metaxm.align.translation_context import TranslationContext
from metaxm.align.wall_walk import WallWalk
from metaxm.envs import GridNav, GridNavConfig
from metaxm.envs.gridnav import MOVES

WORLD = GridNav(GridNavConfig(size=7), 1)


@pytest.fixture(scope="module")
def context(candidates, features, moves) -> TranslationContext:  # noqa: ANN001
    """Every GridNav 7x7 state in the source ``vector:0``, its features, test and moves."""
    return TranslationContext(candidates, features=features, reached=WORLD.reached, moves=moves)


def test_seven_moves_one_way_seven_along_the_other_axis_a_sweep_then_at_random(context) -> None:  # noqa: ANN001
    """Each of 64 walks repeats one action 7 times (the 7 cells of its feature), then an action
    that moves the other feature 7 times; then 6 moves undoing the first, one undoing the
    second, 6 of the first, and so on: 7 passes of the grid; after that the actions are drawn
    anew every step."""
    walk = WallWalk(context, 64, torch.Generator().manual_seed(0))
    obs = torch.zeros(64, 1)
    acts = torch.stack([walk.act(obs) for _ in range(70)])  # (70, 64)
    assert bool((acts[:7] == acts[0]).all()) and bool((acts[7:14] == acts[7]).all())
    assert bool((acts[0] // 2 != acts[7] // 2).all())  # GridNav: 0, 1 move rows; 2, 3 columns
    assert len(acts[0].unique()) == 4 and len(acts[7].unique()) == 4
    undo_first, undo_second = acts[0] ^ 1, acts[7] ^ 1  # GridNav: 0 and 1, 2 and 3 undo
    assert bool((acts[14:20] == undo_first).all()) and bool((acts[20] == undo_second).all())
    assert bool((acts[21:27] == acts[0]).all()) and bool((acts[27] == undo_second).all())
    assert not bool((acts[62:] == acts[62]).all())  # at random after the plan


def test_the_sweep_stands_on_every_cell_from_any_start(context) -> None:  # noqa: ANN001
    """From every one of the 49 cells, each walk's 62 planned moves (no goal ends them) stand
    on all 49 cells."""
    walk = WallWalk(context, 49, torch.Generator().manual_seed(2))
    pos = torch.cartesian_prod(torch.arange(7), torch.arange(7))  # (49, 2)
    seen = torch.zeros(49, 7, 7, dtype=torch.bool)
    rows = torch.arange(49)
    for _ in range(62):
        pos = (pos + torch.tensor(MOVES)[walk.act(pos)]).clamp(0, 6)
        seen[rows, pos[:, 0], pos[:, 1]] = True
    assert bool(seen.all())


def test_every_walk_meets_a_wall_along_both_axes_from_any_start(context) -> None:  # noqa: ANN001
    """From every one of the 49 cells, each walk's first 14 moves include a move a wall stopped
    along the rows and one along the columns (the far edge too: 7 moves cross 6 cells)."""
    walk = WallWalk(context, 49, torch.Generator().manual_seed(1))
    pos = torch.cartesian_prod(torch.arange(7), torch.arange(7))  # (49, 2)
    stopped = torch.zeros(49, 2, dtype=torch.bool)
    for _ in range(14):
        action = walk.act(pos)
        step = torch.tensor(MOVES)[action]
        after = (pos + step).clamp(0, 6)
        stopped |= (after == pos) & (step != 0)
        pos = after
    assert bool(stopped.all())


def test_only_the_sensor_reader_walks_to_the_walls() -> None:
    """The projected reader places an episode only where a wall stopped a move, so it asks for
    the wall walk; the other families' readers do not (a uniformly random walk shows them more
    distinct states)."""
    asks = {family: getattr(builder, "wall_walk", False) for family, builder in TRANSLATORS.items()}
    assert asks == {"audio": False, "pixels": False, "projected": True, "text": False,
                    "vector": False}  # fmt: skip
