"""metaxm pretrain: the run directory, exact resume, retrieval that rises, weights that load."""

from __future__ import annotations

import copy
import dataclasses
import json
import shutil

import pytest
import torch

from metaxm.align.pretrain import (
    PretrainTrainer,
    derive_seed,
    load_pretrained,
    load_variant_adapters,
    pretrain,
)
from metaxm.nn.agent import build_agent
from metaxm.run.checkpoint import checkpoint_path, list_checkpoints, save_checkpoint
from metaxm.run.init import initialise_agent
from metaxm.spec import replace

SMALL = {"pretrain_updates": 4, "batch_size": 16, "eval_states": 32, "eval_interval": 2}
TWO = {"train": {"vector": 2, "projected": 2}, "heldout_variants": {}}


@pytest.mark.slow
def test_pretrain_run_directory_and_exact_resume(make_spec, tmp_path) -> None:
    spec = make_spec(
        modalities=TWO, align=SMALL, train={"checkpoint_interval": 2, "keep_checkpoints": 0}
    )
    result = pretrain(spec, tmp_path / "a")
    run = tmp_path / "a"
    for name in ("config.yaml", "metrics.jsonl", "summary.json", "representation.json"):
        assert (run / name).is_file(), name
    assert (run / "curve.png").stat().st_size > 0 and (run / "latent_pca.png").stat().st_size > 0
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["update"] for r in records] == [1, 2, 3, 4]
    assert [r["step"] for r in records] == [16, 32, 48, 64]  # paired states drawn
    assert "top1_min" in records[1] and "top1_min" not in records[0]
    assert result.evaluation["n_states"] == 32.0
    # a run killed after its update-2 checkpoint, resumed, writes the same records
    shutil.copytree(run, tmp_path / "b")
    list_checkpoints(tmp_path / "b")[-1].unlink()
    pretrain(spec, tmp_path / "b", resume=True)
    assert (tmp_path / "b" / "metrics.jsonl").read_text() == (run / "metrics.jsonl").read_text()


def test_pretraining_raises_retrieval_on_a_tiny_problem(make_spec) -> None:
    spec = make_spec(
        modalities=TWO,
        world={"size": 3},
        align={"batch_size": 32, "eval_states": 48, "lr": 0.01, "views": 2},
    )
    trainer = PretrainTrainer(spec)
    before = trainer.evaluate(cluster=False)
    for _ in range(30):
        trainer.update()
    after = trainer.evaluate(cluster=False)
    assert after["top1_mean"] > before["top1_mean"] + 0.3, (before, after)
    assert after["probe_r2_min"] > 0.8


def test_trainer_resumes_exactly_from_its_state(make_spec) -> None:
    spec = make_spec(modalities=TWO, align={"batch_size": 16, "lr": 0.01})
    a = PretrainTrainer(spec)
    a.update()
    state = copy.deepcopy(a.state_dict())  # the live tensors change with the next update
    expected = a.update()
    b = PretrainTrainer(spec)
    b.load_state_dict(state)
    assert b.update() == expected
    assert b.env_steps == a.env_steps == 32


def test_pretrained_weights_initialise_a_training_run(make_spec, tmp_path) -> None:
    spec = make_spec(modalities=TWO, align={"batch_size": 16})
    trained = PretrainTrainer(spec)
    for _ in range(2):
        trained.update()
    save_checkpoint(
        checkpoint_path(tmp_path, 2), {"algo": "pretrain", "trainer": trained.state_dict()}
    )
    agent = build_agent(spec, seed=123)
    names = load_pretrained(agent, tmp_path)
    expected = [n for n in agent.param_names() if n.startswith(("encoders.", "adapters."))]
    assert sorted(names) == sorted(expected)
    own = dict(agent.named_parameters())
    for n, p in trained.agent.named_parameters():
        if n in names:
            assert torch.equal(own[n], p), n
    assert not torch.equal(own["core.pi.0.weight"], trained.agent.core.pi[0].weight)
    adapters = load_variant_adapters(agent, tmp_path)
    assert adapters is not None and set(adapters.stacks) == {"vector", "projected"}
    v = trained.pool["vector"][1]
    for k, p in adapters.params("vector", v).items():
        assert torch.equal(p, trained.variants.params("vector", v)[k])
    # align.init_from does the same for any trainer's agent, at the start of a fresh run
    fresh = build_agent(spec, seed=123)
    init = dataclasses.replace(spec.align, init_from=str(tmp_path))
    record = initialise_agent(fresh, replace(spec, align=init))
    assert record["align.init_from"]["parameters"] == len(names)
    assert torch.equal(fresh.encoders["vector"].out[0].weight, own["encoders.vector.out.0.weight"])


@pytest.mark.parametrize("loss", ["vae"])
def test_vae_option_trains(make_spec, loss: str) -> None:
    spec = make_spec(align={"loss": loss, "batch_size": 16})
    trainer = PretrainTrainer(spec)
    first = trainer.update()
    assert {"vae_recon", "vae_kl"} <= set(first)
    for _ in range(5):
        last = trainer.update()
    assert last["vae_recon"] < first["vae_recon"]


def test_extra_pretraining_variants_lie_outside_every_split_and_load_by_seed(
    make_spec, tmp_path
) -> None:
    from metaxm.align.pretrain import pretrain_pool
    from metaxm.sampler import VARIANT_POOL, TaskSampler

    spec = make_spec(modalities=TWO, align={"batch_size": 16, "pretrain_variants": 3})
    pool, splits = pretrain_pool(spec), TaskSampler(spec).splits
    for family, seeds in pool.items():
        assert seeds[:2] == splits["train"][family]  # the training variants come first
        extra = seeds[2:]
        assert len(extra) == 3 and min(extra) >= VARIANT_POOL  # no split draws from there
    trained = PretrainTrainer(spec)
    trained.update()
    save_checkpoint(
        checkpoint_path(tmp_path, 1), {"algo": "pretrain", "trainer": trained.state_dict()}
    )
    agent = build_agent(replace(spec, agent=dataclasses.replace(spec.agent, adapters="variant")))
    names = load_pretrained(agent, tmp_path)
    assert "variant_adapters.stacks.projected.gamma" in names
    for family in ("vector", "projected"):
        for v in splits["train"][family]:
            for k, p in agent.variant_adapters.params(family, v).items():
                assert torch.equal(p, trained.variants.params(family, v)[k]), (family, v, k)
        mean = agent.variant_adapters.stacks[family]["beta"].mean(0)
        assert torch.allclose(agent.adapters[family].beta, mean)  # where a new variant starts


@pytest.mark.parametrize("freeze", ["latent", "none"])
def test_a_source_policy_from_pretraining_keeps_the_latent_shared(
    make_spec, tmp_path, freeze: str
) -> None:
    """PPO started from an alignment run (align.init_from) keeps cross-modal retrieval above
    a floor after RL: exactly pretraining's with the latent frozen, close to it without."""
    from metaxm.align.report import representation_report
    from metaxm.align.variants import VariantAdapters
    from metaxm.rl.trainer import PPOTrainer

    spec = make_spec(
        modalities=TWO,
        world={"size": 3},
        align={"batch_size": 32, "eval_states": 48, "lr": 0.01, "views": 2},
    )
    pre = PretrainTrainer(spec)
    for _ in range(30):
        pre.update()
    save_checkpoint(
        checkpoint_path(tmp_path, 30), {"algo": "pretrain", "trainer": pre.state_dict()}
    )
    floor = pre.evaluate(cluster=False)["top1_mean"]
    assert floor > 0.5  # pretraining aligned the two families
    ppo_spec = replace(
        spec,
        agent=dataclasses.replace(spec.agent, adapters="variant"),
        align=dataclasses.replace(spec.align, init_from=str(tmp_path)),
        train=dataclasses.replace(spec.train, freeze=freeze),
    )
    ppo = PPOTrainer(ppo_spec)
    initialise_agent(ppo.agent, ppo_spec)
    for _ in range(5):
        ppo.update()
    adapters = VariantAdapters(ppo.agent, pre.pool)
    adapters.load_state_dict(ppo.agent.variant_adapters.state_dict())
    after = representation_report(
        ppo.agent, spec.world, pre.pool, 48, probe_states=192,
        seed=derive_seed(spec.seed, "evaluation"), adapters=adapters, cluster=False,
    )["top1_mean"]  # fmt: skip
    if freeze == "latent":
        assert after == floor
    else:
        assert after >= floor - 0.2


def test_variant_agents_load_family_pretraining_and_refuse_missing_variants(
    make_spec, tmp_path
) -> None:
    from metaxm.errors import CheckpointError

    variant_agent = {"adapters": "variant"}
    fam = make_spec(modalities=TWO, align={"batch_size": 16, "pretrain_adapters": "family"})
    trained = PretrainTrainer(fam)
    trained.update()
    state = {"algo": "pretrain", "trainer": trained.state_dict()}
    save_checkpoint(checkpoint_path(tmp_path / "family", 1), state)
    agent = build_agent(replace(fam, agent=dataclasses.replace(fam.agent, **variant_agent)))
    load_pretrained(agent, tmp_path / "family")
    for family in ("vector", "projected"):  # every variant starts from its family's adapter
        for name, stack in agent.variant_adapters.stacks[family].items():
            want = getattr(trained.agent.adapters[family], name)
            assert all(torch.equal(row, want) for row in stack), (family, name)
    # a run that aligned other variants than this agent trains: refused in one line
    other = make_spec(modalities=TWO, seed=5, align={"batch_size": 16})
    state = {"algo": "pretrain", "trainer": PretrainTrainer(other).state_dict()}
    save_checkpoint(checkpoint_path(tmp_path / "other", 1), state)
    agent = build_agent(replace(fam, agent=dataclasses.replace(fam.agent, **variant_agent)))
    with pytest.raises(CheckpointError, match="pretraining aligned no adapter for vector"):
        load_pretrained(agent, tmp_path / "other")


@pytest.mark.parametrize("algo", ["maml", "rl2"])
def test_align_init_from_starts_every_trainer(make_spec, tmp_path, algo: str) -> None:
    from metaxm.build import make_trainer

    spec = make_spec(modalities=TWO, align={"batch_size": 16})
    trained = PretrainTrainer(spec)
    trained.update()
    save_checkpoint(
        checkpoint_path(tmp_path, 1), {"algo": "pretrain", "trainer": trained.state_dict()}
    )
    run = replace(
        spec,
        algo=algo,
        agent=dataclasses.replace(spec.agent, core="gru" if algo == "rl2" else "mlp"),
        align=dataclasses.replace(spec.align, init_from=str(tmp_path)),
    )
    trainer = make_trainer(run)
    record = initialise_agent(trainer.agent, run)
    assert record["align.init_from"]["parameters"] > 0
    own = dict(trainer.agent.named_parameters())
    for k, v in trained.agent.named_parameters():
        if k.startswith("encoders."):
            assert torch.equal(own[k], v), k


def test_the_command_resumed_once_finished_says_nothing_is_left(tmp_path, capsys) -> None:
    import yaml

    from metaxm.cli import main
    from tests.test_pipeline import TINY

    spec = tmp_path / "spec.yaml"
    modalities = {"train": {"vector": 1, "projected": 1}, "heldout_variants": {"vector": 1}}
    spec.write_text(
        yaml.safe_dump({**TINY, "modalities": modalities, "align": {"pretrain_updates": 2}})
    )
    args = ["pretrain", str(spec), "--out", str(tmp_path / "pre")]
    assert main(args) == 0
    assert "throughput: " in capsys.readouterr().out
    assert main([*args, "--resume"]) == 0
    out = capsys.readouterr().out
    assert "nothing left to train" in out and "throughput" not in out
