"""MAMLTrainer and the few-shot API: episodes and masks, the run loop's records, exact resume,
``adapt``, config errors, and a tiny meta-training run that learns to adapt."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.func import functional_call

from metaxm.envs import make_world
from metaxm.envs.task_env import TaskEnv
from metaxm.errors import ConfigError
from metaxm.meta.maml import adapt, adapted_agent, adapted_names, meta_loss
from metaxm.meta.maml_trainer import MAMLTrainer, evaluate_maml
from metaxm.meta.policy_gradient import collect_episodes
from metaxm.nn.agent import build_agent
from metaxm.run.loop import train
from metaxm.sampler import TaskSampler, batch_params
from metaxm.spec import Spec, spec_from_dict

torch.set_num_threads(1)

TIMING = ("collect_s", "outer_s", "iteration_s", "iteration_cpu_s")


def tiny_spec(**sections: Any) -> Spec:
    """GridNav 4x4 through two families, a tiny agent, 4 tasks x 2 episodes per meta-batch."""
    data: dict[str, Any] = {
        "seed": 0,
        "world": {"name": "gridnav", "size": 4, "horizon": 8},
        "modalities": {"train": {"vector": 2, "projected": 1}, "heldout_variants": {"vector": 1}},
        "algo": "maml",
        "agent": {"latent_dim": 8, "encoder_width": 8, "hidden": 8, "token_dim": 4},
        "maml": {"meta_batch": 4, "support_episodes": 2, "query_episodes": 2, "outer_epochs": 2},
        "train": {"total_steps": 200, "num_envs": 1, "checkpoint_interval": 1, "eval_episodes": 2},
        "log": {"mode": "disabled", "progress": False},
    }
    for key, value in sections.items():
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    return spec_from_dict(data)


def test_episodes_are_masked_after_the_first_episode_and_vmap_acts_like_the_agent() -> None:
    spec = tiny_spec()
    agent, cfg = build_agent(spec), spec.maml
    tasks = TaskSampler(spec).sample("train", 3, ["vector"])
    out = []
    for stacked in (False, True):
        world = make_world(spec.world, 3 * 4, seed=5)
        variants = [t.variant for t in tasks for _ in range(4)]
        env = TaskEnv(world, "vector", variants, tasks=batch_params(tasks, 4), seed=5)
        params = None
        if stacked:  # every task's copy of the initialisation, acted on under vmap
            own = agent.named_params("adapter", "vector")
            params = {k: v.detach().expand(3, *v.shape).clone() for k, v in own.items()}
        out.append(
            collect_episodes(agent, env, "vector", 3, params, torch.Generator().manual_seed(1), cfg)
        )
    plain, vmapped = out
    torch.testing.assert_close(vmapped.batch.logprobs, plain.batch.logprobs, rtol=0, atol=1e-6)
    assert torch.equal(vmapped.batch.actions, plain.batch.actions)
    mask = plain.batch.mask.unflatten(1, (-1, 4))  # (tasks, L, E)
    assert bool((mask[:, 1:] <= mask[:, :-1]).all()), "the mask is not a prefix of the steps"
    assert torch.equal(mask.sum(1).long(), plain.lengths)
    assert bool((plain.lengths >= 1).all()) and bool((plain.lengths <= spec.world.horizon).all())
    # advantages vanish on padding and are normalised over each task's real steps
    adv, m = plain.batch.advantages, plain.batch.mask
    assert bool((adv[m == 0] == 0).all())
    assert float(((adv * m).sum(1) / m.sum(1)).abs().max()) < 1e-5


def test_run_logs_pre_and_post_adaptation_per_family(tmp_path: Path) -> None:
    result = train(tiny_spec(), tmp_path / "run")
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    assert result.updates == len(records) >= 2
    for key in ("pre_return", "post_return", "pre_success", "post_success", "return"):
        assert all(key in r for r in records), key
    for family in ("vector", "projected"):
        assert all(f"post_success/{family}" in r and f"pre_return/{family}" in r for r in records)
    assert records[-1]["step"] == result.env_steps
    ev = json.loads((tmp_path / "run" / "eval.json").read_text())
    for key in ("train/pre_success", "train/post_success", "heldout_variants/post_return"):
        assert 0.0 <= ev[key] <= 1.0 or key.endswith("return")
    assert {"return", "sampled_return", "oracle_return", "episodes"} <= ev.keys()


def test_resume_continues_exactly() -> None:
    spec = tiny_spec(maml={"meta_sgd": True})
    straight = MAMLTrainer(spec)
    straight.update()
    expected = straight.update()
    first = MAMLTrainer(spec)
    first.update()
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    resumed = MAMLTrainer(spec)
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    got = resumed.update()
    assert {k: v for k, v in got.items() if k not in TIMING} == {
        k: v for k, v in expected.items() if k not in TIMING
    }
    for (name, a), (_, b) in zip(straight.named_parameters(), resumed.named_parameters()):
        assert torch.equal(a, b), name


def test_the_task_loop_takes_the_vmapped_meta_update(monkeypatch: pytest.MonkeyPatch) -> None:
    """``maml.vectorize: false`` runs the outer loss per task: the same update as ``vmap``."""
    import metaxm.meta.maml_trainer as trainer_module

    paths: list[bool] = []

    def recording(*args: Any) -> Any:
        paths.append(args[7])
        return meta_loss(*args)

    monkeypatch.setattr(trainer_module, "meta_loss", recording)
    runs = [MAMLTrainer(tiny_spec(maml={"meta_sgd": True, "vectorize": v})) for v in (True, False)]
    stats = []
    for run in runs:
        paths.clear()
        stats.append(run.update())
        assert set(paths) == {run.config.vectorize}
    assert stats[0]["loss"] != 0.0
    for key in stats[0].keys() - set(TIMING):
        assert stats[1][key] == pytest.approx(stats[0][key], rel=1e-5, abs=1e-7), key
    for (name, a), (_, b) in zip(runs[0].named_parameters(), runs[1].named_parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)


def test_adapt_returns_the_adapted_subset_and_leaves_the_agent_alone() -> None:
    spec = tiny_spec(maml={"adapt": "adapter+encoder", "inner_lr": 0.5})
    agent = MAMLTrainer(spec).agent
    before = {k: v.clone() for k, v in agent.state_dict().items()}
    task = TaskSampler(spec).sample("heldout_variants", 1, ["vector"])[0]
    args = (agent, "vector", task.variant, task.params)
    params = adapt(*args, episodes=3, steps=1, spec=spec, seed=4)
    assert list(params) == adapted_names(agent, "adapter+encoder", "vector")
    own = dict(agent.named_parameters())
    assert all(params[k].shape == own[k].shape for k in params)
    assert any(not torch.equal(params[k], own[k]) for k in params)
    again = adapt(*args, episodes=3, steps=1, spec=spec, seed=4)
    assert all(torch.equal(params[k], again[k]) for k in params)
    zero = adapt(*args, episodes=3, steps=0, spec=spec, seed=4)
    assert all(torch.equal(zero[k], own[k]) for k in zero)
    after = agent.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    obs = torch.zeros(2, *agent.observation_spaces["vector"].shape)
    pd, value = functional_call(agent, params, (obs, "vector"))
    assert pd.shape == (2, agent.head.pd_dim) and value.shape == (2,)
    torch.testing.assert_close(adapted_agent(agent, params)(obs, "vector")[0], pd)


def test_alignment_loss_joins_the_outer_loss() -> None:
    plain = MAMLTrainer(tiny_spec()).update()
    aligned = MAMLTrainer(tiny_spec(align={"weight": 0.5, "batch_size": 8})).update()
    assert "align_loss" in aligned and "align_loss" not in plain
    # the alignment batch has its own generators: the episodes before the meta-update agree
    assert aligned["pre_return"] == plain["pre_return"]


@pytest.mark.parametrize("baseline", ["latent", "value"])
def test_only_the_value_baseline_trains_the_value_head(baseline: str) -> None:
    trainer = MAMLTrainer(tiny_spec(maml={"baseline": baseline, "normalize": "batch"}))
    before = {k: v.clone() for k, v in trainer.agent.named_params("core").items()}
    metrics = trainer.update()
    after = trainer.agent.named_params("core")
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert any(k.startswith("core.pi.") for k in moved)
    assert any(k.startswith("core.v.") for k in moved) == (baseline == "value")
    assert ("value_loss" in metrics) == (baseline == "value")


def test_config_errors_name_the_key() -> None:
    with pytest.raises(ConfigError, match="meta_batch"):
        MAMLTrainer(tiny_spec(maml={"meta_batch": 1}))
    with pytest.raises(ConfigError, match="core"):
        MAMLTrainer(tiny_spec(agent={"core": "gru"}))
    with pytest.raises(ConfigError, match="inner_steps"):
        tiny_spec(maml={"inner_steps": -1})


def toy_spec() -> Spec:
    """PointNav with a hidden goal on a short horizon: only adaptation can find the goal."""
    return spec_from_dict(
        {
            "seed": 1,
            "world": {"name": "pointnav", "goal_visible": False, "horizon": 8, "max_action": 0.2},
            "modalities": {"train": {"vector": 1}},
            "algo": "maml",
            "agent": {"latent_dim": 16, "encoder_width": 16, "hidden": 16, "init_log_std": 0.0},
            "maml": {
                "meta_batch": 8,
                "support_episodes": 8,
                "query_episodes": 8,
                "adapt": "all",
                "inner_lr": 0.5,
                "outer_lr": 0.01,
                "outer_epochs": 3,
                "baseline": "time",
            },  # fmt: skip
            "log": {"mode": "disabled", "progress": False},
        }
    )


def test_meta_training_raises_post_adaptation_over_pre_adaptation_return() -> None:
    spec = toy_spec()
    trainer = MAMLTrainer(spec)
    before = evaluate_maml(trainer.agent, spec, trainer.sampler, 64, seed=7)
    for _ in range(6):
        trainer.update()
    after = evaluate_maml(trainer.agent, spec, trainer.sampler, 64, seed=7)
    # pre and post play the very same query episodes, so the gain is a paired difference
    gain_before = before["train/post_return"] - before["train/pre_return"]
    gain_after = after["train/post_return"] - after["train/pre_return"]
    assert gain_after > 0.8, (gain_before, gain_after)
    assert gain_after > gain_before + 0.25, (gain_before, gain_after)
