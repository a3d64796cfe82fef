"""Actor on ModalityObservation plays exactly as the batched episode runners on the gym world."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from metaxm.build import make_env
from metaxm.envs.play import play
from metaxm.envs.seeded import episode_seed
from metaxm.envs.wrappers import ModalityObservation
from metaxm.evaluate.actor import Actor
from metaxm.meta.rl2 import build_rl2_agent
from metaxm.meta.trial_eval import Rewire, run_trials
from metaxm.modalities.vector import VectorFamily
from metaxm.nn.agent import build_agent
from metaxm.spec import spec_from_dict

SPEC = spec_from_dict(
    {
        "seed": 0,
        "world": {"name": "gym", "env_id": "CartPole-v1"},
        "modalities": {"train": {"vector": 2}},
        "algo": "rl2",
        "agent": {
            "encoder": "sensory",
            "sensory_window": 4,
            "sensory_lags": 2,
            "sensory_sign": "invariant",
            "pool_queries": 4,
            "latent_dim": 8,
            "encoder_width": 16,
            "hidden": 16,
        },  # fmt: skip
        "log": {"mode": "disabled", "progress": False},
    }
)


class Silent(VectorFamily):
    """The vector family with its extra channels at 0: both paths then render the same
    numbers (their noise generators differ)."""

    def variant_params(self, generator, info):  # type: ignore[no-untyped-def]
        params = super().variant_params(generator, info)
        params["noise"] = torch.zeros(())
        return params


def wrapper_trial(actor: Actor, variant: int, seeds: list[int], switch: tuple[int, int] | None):
    """One trial of len(seeds) episodes through the wrapper; switch = (at, new variant)."""
    env = ModalityObservation(gym.make("CartPole-v1"), Silent(), variant)
    actor.new_trial()
    return [actor.episode(env, seed, switch) for seed in seeds]


@pytest.mark.parametrize("switch", [None, (4, 77)], ids=["same-wiring", "rewired-mid-episode"])
def test_actor_on_the_wrapper_plays_as_run_trials_on_the_world(switch) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    agent = build_rl2_agent(SPEC)
    agent.eval()
    actor = Actor(agent, "vector")
    for variant in (5, 1_000_003):
        env = make_env(SPEC, Silent(), [variant], seed=11)
        rewire = None if switch is None else Rewire("within", (switch[1],), at=switch[0])
        res = run_trials(agent, env, "vector", 2, deterministic=True, rewire=rewire)
        task_seed = int(env.world.task_seed[0])
        seeds = [episode_seed(task_seed, j) for j in range(2)]
        expected = res.returns[0].tolist()
        assert wrapper_trial(actor, variant, seeds, switch) == pytest.approx(expected, abs=0)
        assert min(expected) > 5  # real episodes, not an immediate fall


def test_a_feed_forward_agent_plays_as_on_the_world() -> None:
    spec = spec_from_dict(
        {
            "world": {"name": "gym", "env_id": "CartPole-v1"},
            "modalities": {"train": {"vector": 2}},
            "agent": {"latent_dim": 8, "hidden": 16},
            "log": {"mode": "disabled", "progress": False},
        }
    )
    torch.manual_seed(1)
    agent = build_agent(spec)
    env = make_env(spec, Silent(), [9], seed=4)
    played = play(env, lambda obs: agent.head.mode(agent(obs, "vector")[0]))
    seed = episode_seed(int(env.world.task_seed[0]), 0)
    actor = Actor(agent, "vector")
    assert wrapper_trial(actor, 9, [seed], None) == [float(played.returns[0, 0])]


def test_actor_refuses_a_family_the_agent_cannot_read() -> None:
    agent = build_rl2_agent(SPEC)
    with pytest.raises(ValueError, match="cannot read 'pixels'; it reads vector"):
        Actor(agent, "pixels")


def test_set_variant_rewires_the_current_state() -> None:
    env = ModalityObservation(gym.make("CartPole-v1"), Silent(), 3)
    assert env.set_variant(4) is None  # nothing observed yet
    first, _ = env.reset(seed=0)  # through variant 4
    again = env.set_variant(4)  # the same wiring: the same observation of the same state
    np.testing.assert_array_equal(first, again)
    moved = env.set_variant(3)
    params = env.modality.params
    feats = env.features(np.asarray(env.unwrapped.state, dtype=np.float32))[0]
    np.testing.assert_allclose(moved[:4], (feats[params["perm"]] * params["gain"]).numpy())
    assert not np.allclose(moved, first)
