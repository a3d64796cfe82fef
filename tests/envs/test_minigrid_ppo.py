"""PPO learns BabyAI GoToObj from MiniGrid's RGB view (slow tier)."""

from __future__ import annotations

import pytest
import torch

from metaxm.rl.evaluate import fresh_env, run_episodes
from metaxm.rl.trainer import PPOTrainer
from metaxm.spec import spec_from_dict

pytest.importorskip("minigrid", reason="needs the minigrid extra: pip install metaxm[minigrid]")


@pytest.mark.slow
def test_ppo_learns_goto_obj_from_rgb_above_a_random_policy() -> None:
    spec = spec_from_dict(
        {
            "seed": 0,
            "world": {"name": "minigrid", "env_id": "BabyAI-GoToObjS6-v1"},
            "modalities": {"train": {"minigrid_rgb": 2}},
            "ppo": {"lr": 0.001, "num_steps": 64, "update_epochs": 4, "num_minibatches": 4},
            "train": {"total_steps": 40_000, "num_envs": 32},
            "log": {"mode": "disabled", "progress": False},
        }
    )
    trainer = PPOTrainer(spec)
    while trainer.env_steps < spec.train.total_steps:
        trainer.update()
    learned = trainer.evaluate(256)
    # a uniformly random policy on the same fresh episodes
    generator = torch.Generator().manual_seed(0)
    variants = trainer.sampler.splits["train"]["minigrid_rgb"]
    env = fresh_env(spec, "minigrid_rgb", [variants[i % 2] for i in range(256)], seed=123)
    random = run_episodes(
        env, lambda e, obs: torch.randint(0, 3, (e.num_envs,), generator=generator)
    )
    random_return = float(random["return"].mean())
    # random: about 0.3 (half the episodes bump into the object); the oracle: about 0.9
    assert learned["sampled_return"] > random_return + 0.15
    assert learned["sampled_success"] > float(random["success"].float().mean()) + 0.2
