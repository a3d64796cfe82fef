"""RL^2's state probe (``rl2.state_probe``): the true states recorded, the loss, the agent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from metaxm.config.rl2 import RL2Config
from metaxm.envs import make_world
from metaxm.envs.task_env import TaskEnv
from metaxm.errors import ConfigError
from metaxm.evaluate.loading import load_agent
from metaxm.meta.rl2 import RL2Trainer, TrialBatch, build_rl2_agent, rl2_loss
from metaxm.meta.trials import (
    TrialState,
    TrialStats,
    TrialTasks,
    collect_trials,
    replay_hidden,
    start_trials,
)
from metaxm.modalities import get_family
from metaxm.run.loop import train
from metaxm.spec import Spec, check_spec, spec_from_dict


def grid_spec(probe: float, **sections: Any) -> Spec:
    data: dict[str, Any] = {
        "seed": 0,
        "world": {"name": "gridnav", "size": 4, "horizon": 6},
        "modalities": {"train": {"vector": 3}, "heldout_variants": {"vector": 1}},
        "algo": "rl2",
        "rl2": {"episodes_per_trial": 2, "state_probe": probe},
        "agent": {"latent_dim": 8, "encoder_width": 16, "hidden": 16},
        "ppo": {"num_steps": 12, "update_epochs": 1, "num_minibatches": 2},
        "train": {"total_steps": 384, "num_envs": 8, "checkpoint_interval": 2, "eval_episodes": 8},
        "log": {"mode": "disabled", "progress": False},
    }
    for key, value in sections.items():
        data[key] = {**data[key], **value}
    return spec_from_dict(data)


def test_each_recorded_state_is_the_scene_its_observation_was_rendered_from() -> None:
    spec = grid_spec(1.0)
    agent = build_rl2_agent(spec)
    world = make_world(spec.world, 6, seed=1)
    env = TaskEnv(world, "vector", seed=2)
    tasks = TrialTasks(world, [100], torch.Generator().manual_seed(3))  # one wiring throughout
    state = start_trials(agent, env, tasks)
    rollout, _ = collect_trials(
        agent, env, "vector", state, 40, 2, tasks, torch.Generator().manual_seed(4),
        TrialStats(2), record_state=True,
    )  # fmt: skip
    assert rollout.state is not None and rollout.state.shape == (40, 6, 4)
    assert rollout.reset[1:].any()  # new trials (new goals) start inside the rollout
    params = get_family("vector").variant(100, world.scene_info)
    wired = rollout.state[..., params["perm"]] * params["gain"]  # the vector render, no noise
    torch.testing.assert_close(rollout.obs[..., :4], wired.clamp(-2, 2))
    plain, _ = collect_trials(
        agent, env, "vector", state, 4, 2, tasks, torch.Generator().manual_seed(4), TrialStats(2)
    )
    assert plain.state is None and plain.columns(torch.tensor([0, 2])).state is None


def test_the_loss_adds_the_weighted_squared_error_and_trains_the_probe() -> None:
    trainer = RL2Trainer(grid_spec(0.5))
    agent = trainer.agent
    env = trainer.envs["vector"]
    rollout, _ = collect_trials(
        agent, env, "vector", trainer.states["vector"], 12, 2, trainer.tasks["vector"],
        torch.Generator().manual_seed(0), TrialStats(2), record_state=True,
    )  # fmt: skip
    batch = TrialBatch(rollout, torch.randn(12, 8), torch.randn(12, 8))
    without, _ = rl2_loss(agent, "vector", batch, trainer.ppo)
    with_probe, stats = rl2_loss(agent, "vector", batch, trainer.ppo, state_probe=0.5)
    assert rollout.state is not None
    h = replay_hidden(agent, "vector", rollout)
    error = (agent.state_probe(h) - rollout.state).square().sum(-1).mean()
    torch.testing.assert_close(with_probe - without, 0.5 * error)
    torch.testing.assert_close(stats["state_probe_loss"], error.detach())
    with_probe.backward()
    assert agent.state_probe.weight.grad is not None and agent.state_probe.weight.grad.abs().sum()
    assert agent.core.hh.weight.grad is not None  # the core learns to hold the state


def test_lagged_targets_are_earlier_states_of_the_same_trial() -> None:
    """``state_probe_lags``: the probe also guesses the state L steps back, scored only where
    that step is in the same trial (no reset between) and in the chunk."""
    trainer = RL2Trainer(grid_spec(0.5, rl2={"state_probe_lags": [1, 3]}))
    agent = trainer.agent
    assert agent.state_probe.out_features == 3 * 4
    rollout, _ = collect_trials(
        agent, trainer.envs["vector"], "vector", trainer.states["vector"], 12, 2,
        trainer.tasks["vector"], torch.Generator().manual_seed(0), TrialStats(2),
        record_state=True,
    )  # fmt: skip
    assert rollout.state is not None and rollout.reset[1:].any()
    batch = TrialBatch(rollout, torch.randn(12, 8), torch.randn(12, 8))
    _, stats = rl2_loss(agent, "vector", batch, trainer.ppo, state_probe=0.5, lags=(1, 3))
    guess = agent.state_probe(replay_hidden(agent, "vector", rollout)).detach()
    expected = (guess[..., :4] - rollout.state).square().sum(-1).mean()
    for i, lag in ((1, 1), (2, 3)):
        errors = []
        for t in range(lag, 12):
            for b in range(8):
                if not rollout.reset[t - lag + 1 : t + 1, b].any():  # the same trial
                    err = guess[t, b, 4 * i : 4 * i + 4] - rollout.state[t - lag, b]
                    errors.append(err.square().sum())
        expected = expected + torch.stack(errors).mean()
    torch.testing.assert_close(stats["state_probe_loss"], expected)


def test_visited_maps_hold_the_cells_of_the_trial_so_far() -> None:
    """``state_probe_visited``: step t's map is every cell the trial stood on up to t, emptied
    when a trial starts, carried across rollout chunks, and the loss adds the probe's BCE."""
    trainer = RL2Trainer(grid_spec(0.5, rl2={"state_probe_visited": True}))
    agent, env = trainer.agent, trainer.envs["vector"]
    assert agent.visited_probe.out_features == 16  # the 4x4 layout
    state, chunks = trainer.states["vector"], []
    for seed in (0, 1):  # two chunks: the maps carry over
        rollout, state = collect_trials(
            agent, env, "vector", state, 12, 2, trainer.tasks["vector"],
            torch.Generator().manual_seed(seed), TrialStats(2), record_state=True,
            record_visited=True,
        )  # fmt: skip
        chunks.append(rollout)
    assert state.visited is not None and state.visited.shape == (8, 16)
    states = torch.cat([c.state for c in chunks if c.state is not None])  # (24, 8, 4)
    visited = torch.cat([c.visited for c in chunks if c.visited is not None])
    reset = torch.cat([c.reset for c in chunks])
    assert reset[0].all() and reset[1:].any()  # fresh trials at the start, more inside
    carried = ~reset[12]  # trials begun in chunk 1 that go on in chunk 2
    assert carried.any()
    cells = ((states[..., :2] + 1) * 1.5).round().long()  # [-1, 1] -> 0..3
    cell = cells[..., 0] * 4 + cells[..., 1]
    for b in range(8):
        starts = [0, *[t for t in range(1, 24) if reset[t, b]]]
        for t in range(24):
            start = max(s for s in starts if s <= t)
            seen = torch.zeros(16, dtype=torch.bool)
            seen[cell[start : t + 1, b]] = True
            assert torch.equal(visited[t, b], seen), (t, b)
    batch = TrialBatch(chunks[1], torch.randn(12, 8), torch.randn(12, 8))
    loss, stats = rl2_loss(agent, "vector", batch, trainer.ppo, state_probe=0.5)
    logits = agent.visited_probe(replay_hidden(agent, "vector", chunks[1]))
    bce = torch.nn.functional.binary_cross_entropy_with_logits(
        logits, chunks[1].visited.float(), reduction="none"
    )
    torch.testing.assert_close(stats["visited_probe_loss"], bce.mean().detach())
    loss.backward()
    assert agent.visited_probe.weight.grad is not None
    restored = TrialState.from_state_dict(state.state_dict(), "cpu")
    assert restored.visited is not None and torch.equal(restored.visited, state.visited)


def test_the_visited_probe_needs_a_layout() -> None:
    spec = spec_from_dict(
        {
            "world": {"name": "gym", "env_id": "CartPole-v1"},
            "modalities": {"train": {"vector": 2}},
            "algo": "rl2",
            "rl2": {"state_probe": 1.0, "state_probe_visited": True},
        }
    )
    with pytest.raises(ValueError, match="state_probe_visited needs a world whose scenes have"):
        build_rl2_agent(spec)
    with pytest.raises(ConfigError, match="state_probe_visited needs a world whose scenes have"):
        check_spec(spec)  # as the spec loads: `metaxm train --check` refuses it


def test_lags_without_the_probe_are_refused() -> None:
    with pytest.raises(ValueError, match="state_probe_lags needs the probe"):
        RL2Config(state_probe_lags=(2,))


def test_without_the_probe_the_agent_is_built_as_before() -> None:
    plain, probed = build_rl2_agent(grid_spec(0.0)), build_rl2_agent(grid_spec(2.0))
    assert not hasattr(plain, "state_probe")
    assert probed.state_probe.out_features == 4  # GridNav's agent and goal coordinates
    ours = probed.state_dict()
    extra = {k for k in ours if k.startswith("state_probe.")}
    assert extra == {"state_probe.weight", "state_probe.bias"}
    for key, value in plain.state_dict().items():
        assert torch.equal(value, ours[key]), key


def test_a_trained_run_with_the_probe_loads_for_evaluation(tmp_path: Path) -> None:
    spec = grid_spec(1.0)
    train(spec, tmp_path / "run")
    agent, loaded, algo, _ = load_agent(tmp_path / "run")
    assert algo == "rl2" and loaded.rl2.state_probe == 1.0
    assert agent.state_probe.in_features == agent.core.hidden_dim
