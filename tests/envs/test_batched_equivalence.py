"""A batch of B environments steps exactly as B separate single-environment worlds do.

Randomness differs by generator (a batch draws its starts from one stream), so the singles get
the batch's task parameters and start states copied in; from there on, dynamics are
deterministic and must agree step for step.
"""

from __future__ import annotations

import torch

from metaxm.envs import GridNav, GridNavConfig, PointNav, PointNavConfig, World
from metaxm.envs.task_env import TaskEnv
from metaxm.modalities.vector import NOISE_CHANNELS

B, STEPS = 6, 40


def _singles(batch: World, make: type[World], config: object) -> list[World]:
    params = batch.task_params()
    singles = []
    for i in range(batch.num_envs):
        w = make(config, 1, seed=100 + i)
        w.set_tasks({k: v[i : i + 1] for k, v in params.items()})
        w.reset()
        w.pos = batch.pos[i : i + 1].clone()
        singles.append(w)
    return singles


def _assert_same(batch: World, singles: list[World], actions: torch.Tensor) -> None:
    for t in range(actions.shape[0]):
        reward, terminated, success = batch.step(actions[t])
        scene = batch.scene()
        for i, w in enumerate(singles):
            r1, te1, s1 = w.step(actions[t, i : i + 1])
            assert torch.equal(r1, reward[i : i + 1]), (t, i)
            assert torch.equal(te1, terminated[i : i + 1]) and torch.equal(s1, success[i : i + 1])
            assert torch.equal(w.truncated(), batch.truncated()[i : i + 1])
            assert torch.equal(w.pos, batch.pos[i : i + 1])
            one = w.scene()
            assert torch.equal(one.features, scene.features[i : i + 1])
            assert torch.equal(one.layout.agent, scene.layout.agent[i : i + 1])
            if scene.layout.goal is not None:
                assert torch.equal(one.layout.goal, scene.layout.goal[i : i + 1])
            if scene.layout.walls is not None:
                assert torch.equal(one.layout.walls, scene.layout.walls[i : i + 1])
            assert torch.equal(w.oracle_action(), batch.oracle_action()[i : i + 1])


def test_gridnav_with_walls_batch_equals_singles() -> None:
    config = GridNavConfig(size=6, walls=True, wall_fraction=0.3, horizon=STEPS)
    batch = GridNav(config, B, seed=0)
    assert batch.walls.any()
    singles = _singles(batch, GridNav, config)
    actions = torch.randint(0, 4, (STEPS, B), generator=torch.Generator().manual_seed(1))
    _assert_same(batch, singles, actions)


def test_open_gridnav_batch_equals_singles() -> None:
    config = GridNavConfig(size=5, goal_visible=False, horizon=STEPS)
    batch = GridNav(config, B, seed=2)
    singles = _singles(batch, GridNav, config)
    actions = torch.randint(0, 4, (STEPS, B), generator=torch.Generator().manual_seed(3))
    _assert_same(batch, singles, actions)


def test_pointnav_batch_equals_singles() -> None:
    config = PointNavConfig(horizon=STEPS, success_radius=0.05)
    batch = PointNav(config, B, seed=4)
    singles = _singles(batch, PointNav, config)
    g = torch.Generator().manual_seed(5)
    actions = (torch.rand(STEPS, B, 2, generator=g) * 2.0 - 1.0) * 0.15  # some beyond the clip
    _assert_same(batch, singles, actions)


def test_task_env_batch_equals_single_task_envs_through_autoresets() -> None:
    """PointNav episodes start at the origin, so auto-resets keep the two in lockstep too."""
    config = PointNavConfig(horizon=5, success_radius=0.08)
    batch = TaskEnv(PointNav(config, B, seed=0), "vector", variants=list(range(B)))
    params = batch.world.task_params()
    singles = [
        TaskEnv(
            PointNav(config, 1, seed=9),
            "vector",
            variants=i,
            tasks={"goal": params["goal"][i : i + 1]},
        )
        for i in range(B)
    ]
    d = batch.world.scene_info.feature_dim  # the vector family's noise channels follow these
    obs = batch.reset()
    for i, env in enumerate(singles):
        assert torch.equal(env.reset()[:, :d], obs[i : i + 1, :d])
    g = torch.Generator().manual_seed(6)
    dones = 0
    for _ in range(12):
        actions = (torch.rand(B, 2, generator=g) * 2.0 - 1.0) * 0.1
        obs, reward, terminated, truncated, info = batch.step(actions)
        dones += int((terminated | truncated).sum())
        for i, env in enumerate(singles):
            o1, r1, te1, tr1, i1 = env.step(actions[i : i + 1])
            assert torch.equal(o1[:, :d], obs[i : i + 1, :d])
            assert torch.equal(r1, reward[i : i + 1])
            assert torch.equal(te1, terminated[i : i + 1]) and torch.equal(
                tr1, truncated[i : i + 1]
            )
            for key in ("success", "episode_return", "episode_length"):
                assert torch.equal(i1[key], info[key][i : i + 1]), key
    assert dones > B  # several episodes ended and restarted on the way
    assert obs.shape == (B, d + NOISE_CHANNELS)


def test_gridnav_wall_features_read_the_four_neighbours() -> None:
    """Hand-worked: wall_up, wall_down, wall_left, wall_right; the border counts as a wall."""
    config = GridNavConfig(size=4, walls=True)
    world = GridNav(config, 2, seed=0)
    walls = torch.zeros(2, 4, 4, dtype=torch.bool)
    walls[0, 0, 1] = walls[0, 1, 2] = True  # env 0 at (1, 1): wall above and to the right
    walls[1, 3, 2] = True  # env 1 at (3, 3): wall to the left, border below and to the right
    world.set_tasks({"goal": torch.tensor([[3, 3], [0, 0]]), "walls": walls})
    world.pos = torch.tensor([[1, 1], [3, 3]])
    features = world.scene().features
    assert world.scene_info.feature_names[4:] == ("wall_up", "wall_down", "wall_left", "wall_right")
    assert features[0, 4:].tolist() == [1.0, -1.0, -1.0, 1.0]
    assert features[1, 4:].tolist() == [-1.0, 1.0, 1.0, 1.0]
    # agent and goal rows/cols scaled from [0, 3] to [-1, 1]
    assert torch.allclose(features[0, :4], torch.tensor([-1 / 3, -1 / 3, 1.0, 1.0]))
    # a move into a wall or off the grid stays put; a free move goes
    world.step(torch.tensor([0, 3]))  # env 0 up (wall), env 1 right (border)
    assert world.pos.tolist() == [[1, 1], [3, 3]]
    world.step(torch.tensor([1, 0]))  # env 0 down (free), env 1 up (free)
    assert world.pos.tolist() == [[2, 1], [2, 3]]


def test_pointnav_layout_cells() -> None:
    world = PointNav(PointNavConfig(layout_size=4), 3, seed=0)
    world.set_tasks({"goal": torch.tensor([[-1.0, -1.0], [0.99, 0.99], [0.1, -0.3]])})
    world.pos = torch.tensor([[1.0, 1.0], [-0.6, 0.6], [0.0, 0.0]])
    layout = world.scene().layout
    # x -> column, y -> row counted down from the top; [-1, 1] cut into 4 bins
    assert layout.goal.tolist() == [[3, 0], [0, 3], [2, 2]]
    assert layout.agent.tolist() == [[0, 3], [0, 0], [1, 2]]
