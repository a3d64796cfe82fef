"""Dynamics of the built-in worlds, checked against hand-worked cases and independent code."""

from __future__ import annotations

from collections import deque

import pytest
import torch

from metaxm.envs import GridNav, GridNavConfig, PointNav, PointNavConfig
from metaxm.envs.gridnav import _INF, _distances
from metaxm.envs.task_env import TaskEnv

UP, DOWN, LEFT, RIGHT = 0, 1, 2, 3


def bfs(walls: torch.Tensor, goal: tuple[int, int]) -> torch.Tensor:
    n = walls.shape[0]
    dist = torch.full((n, n), _INF, dtype=torch.long)
    dist[goal] = 0
    queue = deque([goal])
    while queue:
        r, c = queue.popleft()
        for dr, dc in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            rr, cc = r + dr, c + dc
            if 0 <= rr < n and 0 <= cc < n and not walls[rr, cc] and dist[rr, cc] == _INF:
                dist[rr, cc] = dist[r, c] + 1
                queue.append((rr, cc))
    return dist


def test_distances_match_bfs_on_random_layouts() -> None:
    g = torch.Generator().manual_seed(0)
    walls = torch.rand(16, 6, 6, generator=g) < 0.3
    goal = torch.randint(0, 6, (16, 2), generator=g)
    walls[torch.arange(16), goal[:, 0], goal[:, 1]] = False
    dist = _distances(walls, goal)
    for i in range(16):
        expected = bfs(walls[i], (int(goal[i, 0]), int(goal[i, 1])))
        expected[walls[i]] = _INF
        assert torch.equal(dist[i], expected)


def make_grid(walls: bool = False, **kw) -> GridNav:
    return GridNav(GridNavConfig(size=5, walls=walls, **kw), num_envs=1, seed=0)


def place(world: GridNav, pos: tuple[int, int], goal: tuple[int, int], walls=None) -> None:
    w = torch.zeros(1, 5, 5, dtype=torch.bool) if walls is None else walls[None]
    world.set_tasks({"goal": torch.tensor([goal]), "walls": w})
    world.reset()
    world.pos[:] = torch.tensor(pos)


def test_gridnav_moves_walls_and_edges() -> None:
    walls = torch.zeros(5, 5, dtype=torch.bool)
    walls[2, 3] = True
    world = make_grid(walls=True)
    place(world, (2, 2), (0, 0), walls)
    world.step(torch.tensor([RIGHT]))  # into the wall: stays
    assert world.pos.tolist() == [[2, 2]]
    world.step(torch.tensor([UP]))
    assert world.pos.tolist() == [[1, 2]]
    place(world, (0, 4), (4, 4), walls)
    world.step(torch.tensor([UP]))  # off the grid: stays
    world.step(torch.tensor([RIGHT]))
    assert world.pos.tolist() == [[0, 4]]


def test_gridnav_rewards_and_termination() -> None:
    world = make_grid(step_cost=0.05)
    place(world, (0, 0), (0, 2))
    r1, term1, succ1 = world.step(torch.tensor([RIGHT]))
    r2, term2, succ2 = world.step(torch.tensor([RIGHT]))
    assert r1.item() == pytest.approx(-0.05) and not term1.item()
    assert r2.item() == 1.0 and term2.item() and succ2.item()


def test_gridnav_shaping_pays_the_distance_each_step_closes() -> None:
    walls = torch.zeros(5, 5, dtype=torch.bool)
    walls[2, 3] = True
    world = make_grid(walls=True, step_cost=0.05, shaping=0.5)
    place(world, (2, 2), (2, 4), walls)  # the wall at (2, 3) lies between: 4 steps round it
    rewards = [world.step(torch.tensor([a]))[0].item() for a in (RIGHT, LEFT, UP, RIGHT, RIGHT)]
    # into the wall (4 -> 4), away (4 -> 5), round it (5 -> 4 -> 3 -> 2)
    assert rewards == pytest.approx([-0.05, -0.55, 0.45, 0.45, 0.45])
    place(world, (1, 4), (2, 4), walls)  # onto the goal: its reward and one step closed
    assert world.step(torch.tensor([DOWN]))[0].item() == pytest.approx(1.5)
    plain = make_grid(walls=True, step_cost=0.05)
    place(plain, (2, 2), (2, 4), walls)
    assert plain.step(torch.tensor([LEFT]))[0].item() == pytest.approx(-0.05)


def test_gridnav_oracle_reaches_goal_in_optimal_steps() -> None:
    world = GridNav(GridNavConfig(size=7, walls=True, horizon=200), num_envs=64, seed=1)
    budget = world.optimal_steps().clone()
    assert (budget > 0).all() and (budget < _INF).all()
    done = torch.zeros(64, dtype=torch.bool)
    taken = torch.zeros(64, dtype=torch.long)
    for _ in range(int(budget.max())):
        _, term, _ = world.step(world.oracle_action())
        taken += (~done).long()
        done |= term
    assert done.all()
    assert torch.equal(taken, budget)


def test_gridnav_layouts_connected_and_starts_free() -> None:
    world = GridNav(GridNavConfig(size=7, walls=True, wall_fraction=0.4), num_envs=256, seed=2)
    assert world.walls.any()
    assert ((world.dist < _INF) | world.walls).all()
    ids = torch.arange(256)
    assert not world.walls[ids, world.pos[:, 0], world.pos[:, 1]].any()
    assert not (world.pos == world.goal).all(1).any()


def test_gridnav_features_hide_goal_when_asked() -> None:
    seen = GridNav(GridNavConfig(size=7), num_envs=4, seed=0)
    hidden = GridNav(GridNavConfig(size=7, goal_visible=False), num_envs=4, seed=0)
    assert seen.scene().features.shape == (4, 4)
    assert hidden.scene().features.shape == (4, 2)
    assert hidden.scene().layout.goal is None
    f = seen.scene().features
    assert f.min() >= -1 and f.max() <= 1
    assert torch.allclose(f[:, :2], seen.pos.float() / 3 - 1)


def test_pointnav_dynamics() -> None:
    world = PointNav(PointNavConfig(), num_envs=2, seed=0)
    world.set_tasks({"goal": torch.tensor([[0.3, -0.2], [0.05, 0.0]])})
    world.reset()
    reward, term, _ = world.step(torch.tensor([[1.0, -1.0], [0.05, 0.0]]))  # first is clipped
    assert torch.allclose(world.pos, torch.tensor([[0.1, -0.1], [0.05, 0.0]]))
    assert reward[0].item() == pytest.approx(-((0.2**2 + 0.1**2) ** 0.5), abs=1e-6)
    assert term.tolist() == [False, True]


def test_pointnav_arena_and_oracle_return() -> None:
    world = PointNav(PointNavConfig(), num_envs=1, seed=0)
    for _ in range(30):
        world.step(torch.tensor([[0.1, 0.1]]))
    assert world.pos.tolist() == [[1.0, 1.0]]
    # the oracle on goal (0.3, 0.4): 0.5 away, covered in 4 steps of at most 0.1 per coordinate
    world.set_tasks({"goal": torch.tensor([[0.3, 0.4]])})
    world.reset()
    total, steps = 0.0, 0
    while True:
        r, term, _ = world.step(world.oracle_action())
        total, steps = total + r.item(), steps + 1
        if term.item():
            break
    assert steps == 4
    expected = -sum(
        ((0.3 - min(0.1 * k, 0.3)) ** 2 + (0.4 - 0.1 * k) ** 2) ** 0.5 for k in (1, 2, 3, 4)
    )
    assert total == pytest.approx(expected, abs=1e-5)


def test_task_env_autoreset_and_episode_stats() -> None:
    world = GridNav(GridNavConfig(size=5, horizon=3, step_cost=0.1), num_envs=2, seed=0)
    env = TaskEnv(world, "vector", variants=0, final_obs=True)
    env.reset()
    world.set_tasks(
        {"goal": torch.tensor([[0, 1], [4, 4]]), "walls": torch.zeros(2, 5, 5, dtype=torch.bool)}
    )
    world.pos[:] = torch.tensor([[0, 0], [0, 0]])
    obs, reward, term, trunc, info = env.step(torch.tensor([RIGHT, LEFT]))
    assert term.tolist() == [True, False]
    assert info["episode_return"][0].item() == 1.0 and info["episode_length"][0].item() == 1
    assert "final_obs" in info and not torch.equal(info["final_obs"][0], obs[0])
    assert world.t.tolist() == [0, 1]  # env 0 already restarted
    for _ in range(2):
        obs, reward, term, trunc, info = env.step(torch.tensor([LEFT, LEFT]))
    assert trunc[1].item() and not term[1].item()
    assert info["episode_length"][1].item() == 3
    assert info["episode_return"][1].item() == pytest.approx(-0.3)


def test_task_env_per_env_variants_match_single_variant_envs() -> None:
    world = GridNav(GridNavConfig(size=7), num_envs=3, seed=5)
    mixed = TaskEnv(world, "vector", variants=[1, 2, 3]).reset()
    for i, v in enumerate([1, 2, 3]):
        alone = TaskEnv(world, "vector", variants=v)
        obs = alone.observe()
        d = world.scene_info.feature_dim
        assert torch.equal(obs[i, :d], mixed[i, :d])  # noise channels come after the features


def test_open_grid_shortcut_matches_bfs() -> None:
    """An open grid takes the Manhattan-distance path in ``_distances``; BFS must agree."""
    for n in (2, 5, 8):
        goal = torch.randint(0, n, (7, 2), generator=torch.Generator().manual_seed(n))
        walls = torch.zeros(7, n, n, dtype=torch.bool)
        dist = _distances(walls, goal)
        assert dist.dtype == torch.long
        for i in range(7):
            assert torch.equal(dist[i], bfs(walls[i], tuple(goal[i].tolist())))
