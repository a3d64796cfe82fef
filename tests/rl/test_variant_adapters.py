"""Per-variant adapters (``agent.adapters: variant``): routing by row, and PPO training them."""

from __future__ import annotations

import pytest
import torch
from torch.func import functional_call

from metaxm.nn.agent import build_agent
from metaxm.rl.rollout import EpisodeStats, collect
from metaxm.rl.trainer import PPOTrainer
from metaxm.sampler import TaskSampler

VARIANT = {"agent": {"adapters": "variant"}, "modalities": {"train": {"vector": 3}}}


def test_rows_use_their_variant_adapter_and_other_rows_the_family_adapter(make_spec) -> None:
    spec = make_spec(**VARIANT)
    agent = build_agent(spec)
    seeds = TaskSampler(spec).splits["train"]["vector"]
    va = agent.variant_adapters
    assert va is not None and va.seeds("vector") == seeds
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # make the three copies and the family adapter all differ
        for p in [*va.parameters(), *agent.adapters.parameters()]:
            p.add_(0.3 * torch.randn(p.shape, generator=g))
    obs = torch.randn(12, *agent.observation_spaces["vector"].shape, generator=g)
    unknown = max(seeds) + 1  # a variant outside the pool, e.g. a held-out one
    variants = torch.tensor([*seeds, unknown] * 3)
    with torch.no_grad():
        pd, value = agent(obs, "vector", variants=variants)
        for v in [*seeds, unknown]:
            rows = variants == v
            own = va.params("vector", v) if v != unknown else {}
            pd_v, value_v = functional_call(agent, own, (obs[rows], "vector"), strict=False)
            assert torch.allclose(pd[rows], pd_v, atol=1e-6)
            assert torch.allclose(value[rows], value_v, atol=1e-6)
        # the three variants really differ, so the routing above is not vacuous
        assert not torch.allclose(pd[variants == seeds[0]], pd[variants == seeds[1]])
        # without variants every row goes through the family adapter
        assert torch.allclose(
            agent(obs, "vector")[0], functional_call(agent, {}, (obs, "vector"))[0]
        )


def test_rollout_records_the_variant_of_every_step(make_spec) -> None:
    trainer = PPOTrainer(make_spec(**VARIANT))
    env = trainer.envs["vector"]
    rollout, _ = collect(
        trainer.agent, env, "vector", trainer.obs["vector"], 8, trainer.action_generators["vector"],
        EpisodeStats.zeros(),
    )  # fmt: skip
    assert rollout.variants.shape == rollout.rewards.shape
    # the trainer spreads the pool over its environments, each keeping its variant
    seeds = TaskSampler(trainer.spec).splits["train"]["vector"]
    expected = torch.tensor([seeds[i % len(seeds)] for i in range(env.num_envs)])
    assert torch.equal(rollout.variants, expected.expand(8, -1))


# an instruction world (the goal named in a sentence, FiLM-conditioned agent) goes through the
# same per-variant routing
INSTRUCTED = {
    "world": {"name": "gridnav_lang", "size": 4, "objects": 2, "horizon": 8},
    "agent": {"adapters": "variant", "instruction": "learned", "instruction_dim": 8},
}


@pytest.mark.parametrize("extra", [{}, INSTRUCTED], ids=["gridnav", "gridnav_lang"])
def test_ppo_trains_each_variant_adapter_and_keeps_the_family_adapter_at_their_mean(
    make_spec, extra: dict
) -> None:
    trainer = PPOTrainer(make_spec(**{**VARIANT, **extra}))
    va = trainer.agent.variant_adapters
    before = {k: v.detach().clone() for k, v in va.named_parameters()}
    trainer.update()
    stack = va.stacks["vector"]
    for name, value in stack.items():
        moved = (value.detach() - before[f"stacks.vector.{name}"]).flatten(1).norm(dim=1)
        assert bool((moved > 0).all()), f"{name}: some variant's adapter did not train"
        family = getattr(trainer.agent.adapters["vector"], name)
        assert torch.allclose(family, value.mean(0), atol=1e-7)


def test_variant_ids_follow_new_variants_and_never_change_a_returned_tensor(make_spec) -> None:
    env = PPOTrainer(make_spec(**VARIANT)).envs["vector"]
    before = env.variant_ids()
    kept = before.clone()
    env.set_env_tasks(torch.tensor([0, 2]), variants=[7, 9])
    after = env.variant_ids()
    assert after.tolist() == env.variants and after[[0, 2]].tolist() == [7, 9]
    assert torch.equal(before, kept)  # a rollout's recorded variants stay as they were
    env.set_tasks(variants=5)
    assert env.variant_ids().tolist() == [5] * env.num_envs
