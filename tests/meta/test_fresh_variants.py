"""``variants: fresh`` for the meta-learners: every MAML task and every RL^2 trial is shown
through a variant no split holds, drawn anew, as a held-out variant is new; and a TaskEnv that
meets ever new variants keeps a bounded number of them built."""

from __future__ import annotations

import pytest
import torch

from metaxm.build import make_env
from metaxm.envs import task_env
from metaxm.meta.maml_trainer import MAMLTrainer
from metaxm.meta.rl2 import RL2Trainer
from metaxm.meta.trials import TrialTasks
from metaxm.sampler import FRESH_SEED_BASE, TaskSampler
from metaxm.spec import spec_from_dict

torch.set_num_threads(1)

BASE = {
    "seed": 0,
    "world": {"name": "gridnav", "size": 4, "horizon": 8},
    "modalities": {"train": {"vector": 2, "projected": 1}, "heldout_variants": {"vector": 1}},
    "agent": {"latent_dim": 8, "encoder_width": 8, "hidden": 8},
    "train": {"total_steps": 200, "num_envs": 4, "checkpoint_interval": 1, "eval_episodes": 2},
    "log": {"mode": "disabled", "progress": False},
}


def every_split(sampler: TaskSampler) -> set[int]:
    return {v for split in sampler.splits.values() for seeds in split.values() for v in seeds}


def test_fresh_tasks_are_outside_every_split_new_each_time_and_seeded() -> None:
    sampler = TaskSampler(spec_from_dict(BASE))
    draw = [
        t.variant
        for t in sampler.sample("train", 64, generator=torch.Generator().manual_seed(1), fresh=True)
    ]
    again = [
        t.variant
        for t in sampler.sample("train", 64, generator=torch.Generator().manual_seed(1), fresh=True)
    ]
    assert draw == again
    assert min(draw) >= FRESH_SEED_BASE and not set(draw) & every_split(sampler)
    assert len(set(draw)) == 64
    plain = {t.variant for t in sampler.sample("train", 64)}
    assert plain <= every_split(sampler)


def test_fresh_trials_draw_a_new_variant_per_trial() -> None:
    env = make_env(spec_from_dict(BASE), "vector", 1, seed=0)
    fresh = TrialTasks(env.world, [], torch.Generator().manual_seed(0), fresh=True)
    _, seeds = fresh.draw(32)
    assert min(seeds) >= FRESH_SEED_BASE and len(set(seeds)) == 32
    split = TrialTasks(env.world, [5, 6], torch.Generator().manual_seed(0))
    assert set(split.draw(32)[1]) <= {5, 6}
    with pytest.raises(ValueError, match="at least one variant"):
        TrialTasks(env.world, [], torch.Generator())


def test_maml_meta_trains_on_fresh_variants() -> None:
    spec = spec_from_dict(
        {
            **BASE,
            "algo": "maml",
            "maml": {
                "meta_batch": 4,
                "support_episodes": 2,
                "query_episodes": 2,
                "variants": "fresh",
            },
            "train": {**BASE["train"], "num_envs": 1},
        }
    )
    trainer = MAMLTrainer(spec)
    trainer.update()
    splits = every_split(trainer.sampler)
    for env in [*trainer.support_envs.values(), *trainer.query_envs.values()]:
        assert min(env.variants) >= FRESH_SEED_BASE and not set(env.variants) & splits


def test_rl2_trials_run_on_fresh_variants() -> None:
    spec = spec_from_dict({**BASE, "algo": "rl2", "rl2": {"variants": "fresh"}})
    trainer = RL2Trainer(spec)
    trainer.update()
    splits = every_split(trainer.sampler)
    for env in trainer.envs.values():
        assert min(env.variants) >= FRESH_SEED_BASE and not set(env.variants) & splits


def test_a_task_env_keeps_a_bounded_number_of_variants_built(monkeypatch) -> None:
    monkeypatch.setattr(task_env, "MAX_CACHED_VARIANTS", 3)
    env = make_env(spec_from_dict(BASE), "vector", [0, 0], seed=0)
    env.reset()
    for seed in range(1, 9):
        env.set_env_variants(torch.tensor([seed % 2]), [seed])
        assert len(env._variant_cache) <= 3
    # a forgotten variant is built again the same: what is seen does not depend on the cache
    env.set_env_variants(torch.tensor([0, 1]), [1, 1])
    twin = make_env(spec_from_dict(BASE), "vector", [1, 1], seed=0)
    assert all(torch.equal(env.params[k][0], twin.params[k][0]) for k in env.params)


@pytest.mark.parametrize("episode_tasks", ["task", "new"])
def test_maml_episode_tasks_keep_the_variant_and_draw_goals_per_episode_or_per_task(
    episode_tasks: str,
) -> None:
    spec = spec_from_dict(
        {
            **BASE,
            "world": {**BASE["world"], "size": 7},
            "algo": "maml",
            "maml": {
                "meta_batch": 2,
                "support_episodes": 8,
                "query_episodes": 8,
                "episode_tasks": episode_tasks,
            },
            "train": {**BASE["train"], "num_envs": 1},
        }
    )
    trainer = MAMLTrainer(spec)
    trainer.update()
    for env in [*trainer.support_envs.values(), *trainer.query_envs.values()]:
        goals = env.world.task_params()["goal"].view(-1, 8, 2)  # (tasks, episodes, 2)
        variants = torch.tensor(env.variants).view(-1, 8)
        assert (variants == variants[:, :1]).all()  # every episode keeps its task's variant
        distinct = [len({tuple(g) for g in task.tolist()}) for task in goals]
        if episode_tasks == "task":
            assert distinct == [1] * len(distinct)
        else:  # 8 draws from 48 cells: a repeat or two, never one goal for all
            assert min(distinct) > 1
    support, query = trainer.support_envs["vector"], trainer.query_envs["vector"]
    same = torch.equal(support.world.task_params()["goal"], query.world.task_params()["goal"])
    assert same == (episode_tasks == "task")
