"""PPO learns to follow instructions on GridNavLang (slow tier), and what learning means here."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from metaxm.rl.evaluate import evaluate_agent
from metaxm.rl.trainer import PPOTrainer
from metaxm.spec import Spec

LANG_WORLD = {"name": "gridnav_lang", "size": 4, "objects": 2, "horizon": 12, "step_cost": 0.02}


@pytest.mark.slow
def test_ppo_learns_to_go_where_the_instruction_says(make_spec: Callable[..., Spec]) -> None:
    """Two objects: a policy that ignored the instruction could still succeed by visiting both,
    so learning is judged by the return too, which pays for every extra step: the deterministic
    policy must reach 90% of the oracle's return on fresh episodes."""
    torch.set_num_threads(1)
    spec = make_spec(
        world=LANG_WORLD,
        agent={"instruction": "learned", "instruction_dim": 16},
        train={"total_steps": 40_000, "num_envs": 32},
        ppo={"lr": 0.002, "num_steps": 32, "update_epochs": 4, "num_minibatches": 4},
    )
    trainer = PPOTrainer(spec)
    variants = {"vector": trainer.sampler.splits["train"]["vector"]}
    before = evaluate_agent(trainer.agent, spec, variants, 256, seed=999)
    for _ in range(trainer.num_updates):
        trainer.update()
    after = evaluate_agent(trainer.agent, spec, variants, 256, seed=999)
    assert after["success"] >= 0.95
    assert after["return"] >= 0.9 * after["oracle_return"]
    assert after["return"] > before["return"] + 0.3
