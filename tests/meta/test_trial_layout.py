"""``run_trials(layout=True)``: each episode's goal cell and the cells it stood on, checked
against a log kept by the world's own ``step``."""

from __future__ import annotations

import pytest
import torch

from metaxm.build import make_env
from metaxm.meta.rl2 import build_rl2_agent
from metaxm.meta.trial_eval import TrialResult, run_trials
from metaxm.spec import spec_from_dict

SPEC = spec_from_dict(
    {
        "world": {"name": "gridnav", "size": 4, "horizon": 6},
        "modalities": {"train": {"vector": 2}},
        "agent": {"latent_dim": 8, "encoder_width": 8, "hidden": 8},
    }
)
EPISODES = 4


def logged_trials(num_envs: int = 12) -> tuple[TrialResult, list[list[tuple[int, int]]]]:
    """A trial per environment (new tasks every episode), with every step's cell before it
    moved, its goal and whether the step ended the episode, as the world saw them."""
    env = make_env(SPEC, "vector", 0, num_envs=num_envs, seed=5, resample_tasks=True)
    world, log = env.world, []
    step = world.step

    def logged(actions: torch.Tensor):
        n = world.size
        cell, goal = world.pos[:, 0] * n + world.pos[:, 1], world.goal[:, 0] * n + world.goal[:, 1]
        out = step(actions)
        log.append((cell.clone(), goal.clone(), out[1] | world.truncated()))
        return out

    world.step = logged
    agent = build_rl2_agent(SPEC)
    gen = torch.Generator().manual_seed(0)
    return run_trials(agent, env, "vector", EPISODES, generator=gen, layout=True), log


def test_goal_cells_and_coverage_match_the_worlds_own_steps() -> None:
    result, log = logged_trials()
    assert result.goal_cell is not None and result.cells is not None
    for b in range(result.cells.shape[0]):
        episodes, cells, goal = [], set(), None
        for cell, goal_now, done in log:
            if len(episodes) == EPISODES:
                break
            goal = int(goal_now[b]) if goal is None else goal
            cells.add(int(cell[b]))
            if done[b]:
                episodes.append((goal, len(cells)))
                cells, goal = set(), None
        assert [int(g) for g in result.goal_cell[b]] == [g for g, _ in episodes]
        assert [int(c) for c in result.cells[b]] == [c for _, c in episodes]
    assert len(set(result.goal_cell.flatten().tolist())) > 4  # new goals, not one per trial
    failed = ~result.success
    assert bool((result.cells[failed] > 1).all()) and int(result.cells.max()) <= 6


def test_layout_is_kept_by_concat_only_where_every_result_has_it() -> None:
    result, _ = logged_trials(3)
    both = TrialResult.concat([result, result])
    assert both.goal_cell is not None and both.goal_cell.shape == (6, EPISODES)
    plain = TrialResult(result.returns, result.success, result.length, result.optimal)
    assert TrialResult.concat([result, plain]).cells is None


def test_a_world_without_a_layout_is_refused() -> None:
    spec = spec_from_dict(
        {
            "world": {"name": "gym", "env_id": "CartPole-v1", "max_steps": 5},
            "modalities": {"train": {"vector": 1}},
            "agent": {"latent_dim": 8, "encoder_width": 8, "hidden": 8},
        }
    )
    env = make_env(spec, "vector", 0, num_envs=2, seed=0)
    with pytest.raises(ValueError, match=r"run_trials\(layout=True\) needs a world"):
        run_trials(build_rl2_agent(spec), env, "vector", 1, layout=True)
