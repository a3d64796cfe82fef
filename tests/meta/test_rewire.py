"""Re-wiring a sensor during RL^2 trials (``Rewire``): between episodes and within them, the
task and the world's state kept, only the variant the observations go through changed."""

from __future__ import annotations

import pytest
import torch

from metaxm.build import make_env
from metaxm.meta.rl2 import build_rl2_agent
from metaxm.meta.trials import Rewire, run_trial, run_trials
from metaxm.spec import spec_from_dict

SPEC = spec_from_dict(
    {
        "world": {"name": "gridnav", "size": 4, "horizon": 8},
        "modalities": {"train": {"vector": 2}},
        "agent": {"latent_dim": 8, "encoder_width": 8, "hidden": 8},
    }
)


def test_set_env_variants_changes_what_is_seen_not_the_state() -> None:
    env = make_env(SPEC, "vector", [11, 11, 11], seed=0)
    env.reset()
    env.step(torch.zeros(3, dtype=torch.long))
    features = env.world.scene().features.clone()
    length = env.episode_length.clone()
    before = env.observe()
    env.set_env_variants(torch.tensor([1]), [12])
    after = env.observe()
    assert env.variants == [11, 12, 11]
    assert torch.equal(env.world.scene().features, features)  # no reset, no move
    assert torch.equal(env.episode_length, length)
    assert not torch.allclose(after[1], before[1])  # another permutation, signs and scales


@pytest.mark.parametrize("when", ["between", "within"])
def test_every_trial_is_rewired_and_keeps_its_task(when: str) -> None:
    agent = build_rl2_agent(SPEC)
    env = make_env(SPEC, "vector", 0, num_envs=16, seed=3)
    goals = {k: v.clone() for k, v in env.world.task_params().items()}
    rewire = Rewire(when, (999,), at=1)
    result = run_trials(agent, env, "vector", 3, generator=torch.Generator().manual_seed(0),
                        rewire=rewire)  # fmt: skip
    assert env.variants == [999] * 16  # each trial met the new wiring
    for key, value in env.world.task_params().items():
        assert torch.equal(value, goals[key])  # the task is kept
    assert result.returns.shape == (16, 3)


def test_between_keeps_the_first_episode_and_changes_the_rest() -> None:
    """Rewiring between episodes cannot touch episode 1: it equals the unrewired trial's."""
    agent = build_rl2_agent(SPEC)
    kwargs = {"episodes": 3, "num_trials": 32, "seed": 5}
    plain = run_trial(agent, SPEC.world, "vector", 0, **kwargs)
    rewired = run_trial(agent, SPEC.world, "vector", 0, rewire=Rewire("between", (999,)),
                        **kwargs)  # fmt: skip
    assert torch.equal(plain.returns[:, 0], rewired.returns[:, 0])
    assert torch.equal(plain.length[:, 0], rewired.length[:, 0])
    assert not torch.equal(plain.returns[:, 1:], rewired.returns[:, 1:])


def test_rewire_refuses_an_empty_pool_and_a_step_before_the_first() -> None:
    with pytest.raises(ValueError, match="pool of variants"):
        Rewire("between", ())
    with pytest.raises(ValueError, match="at must be >= 1"):
        Rewire("within", (1,), at=0)
