"""Any gymnasium env as a world, from YAML (``world: {name: gym, env_id: ...}``): features,
success, seeded episodes, and CartPole, Acrobot and a MiniGrid level through PPO, MAML, RL^2
and the evaluator with no user code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from metaxm.envs import make_world
from metaxm.envs.gym_world import GymWorld, GymWorldConfig
from metaxm.errors import ConfigError
from metaxm.evaluate.loading import load_agents
from metaxm.evaluate.runner import run_evaluation
from metaxm.run.loop import train
from metaxm.spec import check_spec, spec_from_dict

torch.set_num_threads(1)

MINIGRID = "minigrid:MiniGrid-Empty-5x5-v0"
ENVS = ["CartPole-v1", "Acrobot-v1", pytest.param(MINIGRID, id="minigrid")]


def _world(env_id: str, n: int = 3, **kw: Any) -> GymWorld:
    if env_id.startswith("minigrid:"):
        pytest.importorskip("minigrid")
    return make_world(GymWorldConfig(env_id=env_id, **kw), n, seed=1)  # type: ignore[return-value]


@pytest.mark.parametrize(
    ("env_id", "dim"), [("CartPole-v1", 4), ("Acrobot-v1", 6), (MINIGRID, 7 * 7 * 3 + 4)]
)
def test_observations_become_features_in_minus_one_to_one(env_id: str, dim: int) -> None:
    """MiniGrid's Dict observation: the image (bounded Box) and a one-hot direction; the
    mission string is not a number and is left out."""
    world = _world(env_id)
    assert world.scene_info.feature_dim == dim
    for _ in range(20):
        actions = torch.randint(0, int(world.action_space.n), (world.num_envs,))
        _, terminated, _ = world.step(actions)
        f = world.scene().features
        assert f.shape == (3, dim) and f.dtype == torch.float32
        assert float(f.abs().max()) <= 1.0
        done = terminated | world.truncated()
        if bool(done.any()):
            world.reset(done.nonzero()[:, 0])


def test_episodes_are_the_env_reset_with_seeds_drawn_from_the_task() -> None:
    """Episode 0 of a task is ``gymnasium.make(env_id).reset(seed=task seed)``; the same task
    seeds give the same episodes."""
    a, b = _world("CartPole-v1"), _world("CartPole-v1")
    assert torch.equal(a.scene().features, b.scene().features)
    seed = int(a.task_params()["seed"][0])
    env = gym.make("CartPole-v1")
    obs, _ = env.reset(seed=seed)
    high = env.observation_space.high
    first = a.scene().features[0].numpy()
    assert np.allclose(first[[0, 2]], obs[[0, 2]] / high[[0, 2]], atol=1e-6)
    assert np.allclose(first[[1, 3]], np.tanh(obs[[1, 3]]), atol=1e-6)


def test_success_is_the_env_reward_threshold_or_a_positive_final_reward() -> None:
    world = _world("CartPole-v1", 2, max_steps=10)
    assert world.horizon == 10 and world.threshold == 475
    for t in range(10):  # alternate pushes: CartPole survives 10 steps, far from 475
        _, terminated, success = world.step(torch.tensor([t % 2, t % 2]))
    assert not bool(terminated.any()) and not bool(success.any())
    ok = _world("CartPole-v1", 2, max_steps=10, success="reward")
    for t in range(10):
        _, _, success = ok.step(torch.tensor([t % 2, t % 2]))
    assert bool(success.all())  # +1 on the last step
    with pytest.raises(ConfigError, match="world.env_id 'NoSuchEnv-v9': Environment `NoSuchEnv`"):
        check_spec(spec_from_dict({"world": {"name": "gym", "env_id": "NoSuchEnv-v9"}}))


def test_every_family_renders_the_features_and_one_that_cannot_is_refused_at_load(
    tmp_path: Path,
) -> None:
    """Pixels draw the features as bars; text names up to 99 features, so MiniGrid's 151 are
    refused when the spec loads."""
    from metaxm.spec import load_spec

    spec = tmp_path / "s.yaml"
    spec.write_text(
        "world: {name: gym, env_id: CartPole-v1}\nmodalities: {train: {pixels: 1, text: 1}}\n"
    )
    load_spec(spec)
    pytest.importorskip("minigrid")
    spec.write_text(
        f"world: {{name: gym, env_id: '{MINIGRID}'}}\nmodalities: {{train: {{text: 1}}}}\n"
    )
    with pytest.raises(ConfigError, match="modalities.train.text: cannot render the gym world: "
                       "text counts features up to 99; got 151"):  # fmt: skip
        load_spec(spec)


def _spec(env_id: str, algo: str, **extra: Any) -> Any:
    if env_id.startswith("minigrid:"):
        pytest.importorskip("minigrid")
    data: dict[str, Any] = {
        "seed": 0,
        "world": {"name": "gym", "env_id": env_id, "max_steps": 40},
        "modalities": {"train": {"vector": 1, "projected": 1}, "heldout_families": {"audio": 1}},
        "algo": algo,
        "agent": {"latent_dim": 8, "encoder_width": 16, "hidden": 16},
        "ppo": {"num_steps": 16, "update_epochs": 1, "num_minibatches": 1},
        "maml": {"meta_batch": 2, "support_episodes": 1, "query_episodes": 1, "outer_epochs": 1},
        "rl2": {"episodes_per_trial": 2},
        "train": {"total_steps": 256, "num_envs": 4, "checkpoint_interval": 1, "eval_episodes": 4},
        "evaluate": {"seeds": 1, "budgets": [0, 1], "eval_episodes": 2, "scratch_cap": 2},
        "log": {"mode": "disabled", "progress": False},
        **extra,
    }
    return spec_from_dict(data)


@pytest.mark.parametrize("algo", ["ppo", "maml", "rl2"])
@pytest.mark.parametrize("env_id", ENVS)
def test_every_trainer_runs_on_the_env_from_yaml_alone(
    env_id: str, algo: str, tmp_path: Path
) -> None:
    result = train(_spec(env_id, algo), tmp_path / "run")
    assert result.env_steps >= 256
    assert 0.0 <= result.evaluation["success"] <= 1.0
    assert "oracle_success" not in result.evaluation  # a gymnasium env has no oracle


@pytest.mark.parametrize("env_id", ENVS)
def test_evaluate_runs_on_a_held_out_family_and_resume_continues(
    env_id: str, tmp_path: Path
) -> None:
    """Resuming restarts the episodes in progress (the envs are Python objects, not tensors);
    the counters, weights and generators continue from the checkpoint."""
    from metaxm.evaluate.report import write_report
    from metaxm.run.checkpoint import checksum_path, list_checkpoints

    spec = _spec(env_id, "ppo")
    run = tmp_path / "run"
    full = train(spec, run)
    report = run_evaluation(load_agents(run), ["zeroshot", "finetune"], progress=False)
    assert report["source"]["oracle"] is None
    assert any(m["family"] == "audio" for m in report["modalities"].values())
    assert write_report(report, tmp_path / "report")["md"].is_file()
    *_, before, last = list_checkpoints(run)
    last.unlink()
    checksum_path(last).unlink()
    resumed = train(spec, run, resume=True)
    assert resumed.env_steps == full.env_steps and resumed.updates == full.updates
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == full.updates  # the log was cut back to the checkpoint, then continued


def test_the_horizon_is_the_registered_time_limit() -> None:
    # the world steps the bare env, whose own spec has no max_episode_steps: the registered
    # one (CartPole-v1: 500) must still be the horizon, not the 1000 of an env without one
    assert _world("CartPole-v1", 1).horizon == 500
    assert _world("CartPole-v1", 1, max_steps=7).horizon == 7


def test_an_episode_ends_where_the_env_truncates_it_itself() -> None:
    # MiniGrid registers no max_episode_steps (the horizon falls back to 1000) but truncates
    # its own episodes at its max_steps (Empty-5x5: 100); stepping on would take its goal
    # reward below 0
    world = _world(MINIGRID, 2)
    assert world.horizon == 1000
    world.set_tasks(world.sample_tasks(2, torch.Generator().manual_seed(0)))
    left = torch.zeros(2, dtype=torch.long)  # turning on the spot never reaches the goal
    ends = []
    while len(ends) <= world.envs[0].max_steps and not any(ends):
        _, terminated, _ = world.step(left)
        ends.append(bool((terminated | world.truncated()).all()))
    assert ends.index(True) + 1 == world.envs[0].max_steps
