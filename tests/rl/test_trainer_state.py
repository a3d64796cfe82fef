"""What every trainer's checkpoint shares: counters, and the checks that refuse a mismatch."""

from __future__ import annotations

import pytest
import torch

from metaxm.build import make_trainer
from metaxm.errors import ConfigError


@pytest.mark.parametrize("algo", ["ppo", "rl2", "maml"])
def test_counters_round_trip_through_a_checkpoint(make_spec, algo: str) -> None:
    trainer = make_trainer(make_spec(algo=algo))
    trainer.env_steps, trainer.episodes, trainer.updates = 123, 45, 6
    state = trainer.state_dict()
    assert state["counters"] == {"env_steps": 123, "episodes": 45, "updates": 6}
    fresh = make_trainer(make_spec(algo=algo))
    fresh.load_state_dict(state)
    assert (fresh.env_steps, fresh.episodes, fresh.updates) == (123, 45, 6)


@pytest.mark.parametrize("algo", ["ppo", "rl2", "maml"])
def test_a_checkpoint_of_other_families_is_refused(make_spec, algo: str) -> None:
    state = make_trainer(make_spec(algo=algo)).state_dict()
    families = {"train": {"vector": 1, "projected": 1}}
    other = make_trainer(make_spec(algo=algo, modalities=families, maml={"meta_batch": 2}))
    before = {k: v.clone() for k, v in other.agent.state_dict().items()}
    with pytest.raises(ConfigError, match=r"checkpoint trains families \['vector'\], the spec"):
        other.load_state_dict(state)
    # refused before anything was loaded: the trainer is as it was
    assert all(torch.equal(v, before[k]) for k, v in other.agent.state_dict().items())
    assert other.env_steps == 0


@pytest.mark.parametrize("algo", ["ppo", "rl2", "maml"])
def test_a_checkpoint_with_one_action_generator_is_refused(make_spec, algo: str) -> None:
    trainer = make_trainer(make_spec(algo=algo))
    state = trainer.state_dict()
    state["generators"]["actions"] = torch.Generator().get_state()  # the old layout
    state["counters"]["env_steps"] = 99
    fresh = make_trainer(make_spec(algo=algo))
    with pytest.raises(ConfigError, match="predates per-family action generators"):
        fresh.load_state_dict(state)
    assert fresh.env_steps == 0  # refused before the counters were restored


def test_a_task_env_can_be_saved_before_its_first_reset() -> None:
    from metaxm.envs import make_world
    from metaxm.envs.task_env import TaskEnv
    from metaxm.rl.trainer import env_state, load_env_state
    from metaxm.spec import spec_from_dict

    world = spec_from_dict({"world": {"name": "gridnav", "size": 4}}).world
    env = TaskEnv(make_world(world, 3, seed=1), "vector", seed=2)  # never reset
    state = env_state(env)
    assert torch.equal(state["episode_return"], torch.zeros(3))
    assert torch.equal(state["episode_length"], torch.zeros(3, dtype=torch.long))
    other = TaskEnv(make_world(world, 3, seed=5), "vector", seed=6)
    other.reset()
    other.step(torch.zeros(3, dtype=torch.long))
    load_env_state(other, state)
    assert torch.equal(other.episode_length, torch.zeros(3, dtype=torch.long))
    assert torch.equal(other.world.goal, env.world.goal)


def test_a_frozen_latent_trains_only_the_core(make_spec, tmp_path) -> None:
    """train.freeze: latent keeps every encoder and adapter weight; the core still learns."""
    from metaxm.meta.maml_trainer import MAMLTrainer
    from metaxm.meta.rl2 import RL2Trainer
    from metaxm.nn.agent import build_agent
    from metaxm.rl.trainer import PPOTrainer
    from metaxm.run.checkpoint import checkpoint_path, save_checkpoint

    start = {"freeze": "latent", "init_from": str(tmp_path)}
    spec = make_spec(train=start, agent={"adapters": "variant"})
    save_checkpoint(
        checkpoint_path(tmp_path, 1), {"trainer": {"agent": build_agent(spec).state_dict()}}
    )
    trainer = PPOTrainer(spec)
    before = {n: p.detach().clone() for n, p in trainer.agent.named_parameters()}
    held = {id(p) for g in trainer.optimizer.param_groups for p in g["params"]}
    for _ in range(2):
        trainer.update()
    for name, p in trainer.agent.named_parameters():
        below = name.startswith(("encoders.", "adapters.", "variant_adapters."))
        assert (id(p) in held) != below, name
        assert torch.equal(p, before[name]) == below, name
    with pytest.raises(ConfigError, match="train.freeze: latent keeps the encoders"):
        PPOTrainer(make_spec(train=start, align={"weight": 0.1}))
    for trainer_class in (PPOTrainer, RL2Trainer):  # nothing to keep: random encoders
        algo = {PPOTrainer: "ppo", RL2Trainer: "rl2"}[trainer_class]
        core = {"core": "gru"} if algo == "rl2" else {}
        with pytest.raises(ConfigError, match="would keep randomly initialised encoders"):
            trainer_class(make_spec(algo=algo, train={"freeze": "latent"}, agent=core))
    with pytest.raises(ConfigError, match="train.freeze: MAML meta-learns the adapter"):
        MAMLTrainer(make_spec(algo="maml", train=start))
