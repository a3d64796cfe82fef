"""Few-shot alignment: paired-step collection budgets, and a fit that raises retrieval."""

from __future__ import annotations

import pytest
import torch

from metaxm.align.fewshot import collect_paired_steps, few_shot_align, fit_adapter, fit_subset
from metaxm.align.losses import encode
from metaxm.align.metrics import retrieval_accuracy
from metaxm.align.pairs import PairedSampler, render_pairs
from metaxm.config import ConfigError
from metaxm.nn.agent import build_agent


def test_paired_steps_follow_the_budget(make_spec) -> None:
    spec = make_spec(align={"fit_envs": 4})
    agent = build_agent(spec)
    paired = collect_paired_steps(agent, spec, ("vector", 11), steps=10, seed=0)
    assert paired.steps == 10 and paired.batch.batch_size == 10
    assert paired.batch.families == ("vector", "vector")
    assert 4 <= paired.episodes <= 10  # 4 envs x 3 rounds, cut to 10 rows
    # the target view shows the states it was rendered from (vector: permuted, scaled)
    again = collect_paired_steps(agent, spec, ("vector", 11), steps=10, seed=0)
    assert torch.equal(paired.batch.obs[0], again.batch.obs[0])
    whole = collect_paired_steps(agent, spec, ("vector", 11), episodes=3, seed=1)
    assert whole.episodes == 3
    assert 3 <= whole.steps <= 3 * spec.world.horizon
    with pytest.raises(ValueError, match="exactly one"):
        collect_paired_steps(agent, spec, ("vector", 11), steps=3, episodes=3)


def test_fit_raises_retrieval_on_a_tiny_problem(make_spec) -> None:
    """A new vector variant, its adapter and encoder fitted to 64 paired steps against a known
    variant: retrieval between the two on fresh states rises far above where it started."""
    spec = make_spec(
        world={"size": 3, "horizon": 6},
        agent={"latent_dim": 16, "encoder_width": 32},
        align={"fit_iters": 60, "fit_lr": 0.01, "fit_envs": 8},
    )
    agent = build_agent(spec)
    source, target = ("vector", 101), ("vector", 202)
    fresh = PairedSampler(spec.world, {"vector": [target[1]]}, 96, views=2, seed=9)
    g = torch.Generator().manual_seed(0)
    eval_batch = render_pairs(fresh.sample_states(), [target, source], fresh.info, g)

    def top1(params) -> float:
        with torch.no_grad():
            zt = encode(agent, eval_batch.obs[0], "vector", params)
            zs = encode(agent, eval_batch.obs[1], "vector")
        return retrieval_accuracy(zt, zs, (1,), eval_batch.state_ids)[1]

    before = top1(None)
    fit = few_shot_align(agent, spec, target, steps=64, source=source, subset="adapter+encoder")
    after = top1(fit.params)
    assert fit.paired_steps == 64 and fit.loss_last < fit.loss_first
    assert after > before + 0.3, (before, after)
    # the agent itself is untouched: its own parameters still give the old retrieval
    assert top1(None) == before


def test_fit_adapter_only_touches_the_subset(make_spec) -> None:
    spec = make_spec(align={"fit_iters": 3})
    agent = build_agent(spec)
    paired = collect_paired_steps(agent, spec, ("vector", 5), steps=8, source=("vector", 6))
    fit = fit_adapter(agent, paired.batch, spec.align, subset="adapter")
    assert set(fit.params) == set(agent.param_names("adapter", "vector"))
    own = dict(agent.named_parameters())
    assert any(not torch.equal(v, own[k]) for k, v in fit.params.items())


def test_a_fit_starts_where_it_is_told(make_spec) -> None:
    """``start``: the agent's own parameters give the default fit exactly; another start gives
    another fit (and the prior holds it near that start); a start of other names is refused."""
    spec = make_spec(align={"fit_iters": 5, "fit_prior": 1.0})
    agent = build_agent(spec)
    paired = collect_paired_steps(agent, spec, ("vector", 5), steps=8, source=("vector", 6))
    own = {k: v.detach().clone() for k, v in agent.named_params("adapter", "vector").items()}
    default = fit_adapter(agent, paired.batch, spec.align, "adapter", seed=3)
    same = fit_adapter(agent, paired.batch, spec.align, "adapter", seed=3, start=own)
    assert all(torch.equal(default.params[k], same.params[k]) for k in own)
    moved = {k: v + 0.5 for k, v in own.items()}
    other = fit_adapter(agent, paired.batch, spec.align, "adapter", seed=3, start=moved)
    assert all(not torch.equal(default.params[k], other.params[k]) for k in own)
    with pytest.raises(
        ValueError, match=r"exactly the adapter\+encoder of 'vector': missing \['encoders"
    ):
        fit_adapter(agent, paired.batch, spec.align, "adapter+encoder", start=own)


def test_fit_subset_auto_fits_the_encoder_only_for_a_new_family(make_spec) -> None:
    auto = make_spec()
    assert fit_subset(auto, "vector") == "adapter"
    assert fit_subset(auto, "audio") == "adapter+encoder"
    chosen = make_spec(align={"fit_subset": "adapter+encoder", "fit_iters": 2})
    assert fit_subset(chosen, "vector") == "adapter+encoder"
    agent = build_agent(chosen)
    fit = few_shot_align(agent, chosen, ("vector", 5), steps=8, source=("vector", 6))
    assert fit.subset == "adapter+encoder"
    assert set(fit.params) == set(agent.param_names("adapter+encoder", "vector"))
    with pytest.raises(ConfigError, match="fit_subset"):
        make_spec(align={"fit_subset": "encoder"})
    with pytest.raises(ConfigError, match="untrained encoder of 'audio'"):
        fit_subset(make_spec(align={"fit_subset": "adapter"}), "audio")


def test_fit_prior_holds_a_fit_on_few_pairs_near_its_start(make_spec) -> None:
    drift = {}
    for prior in (0.0, 1e4):
        spec = make_spec(align={"fit_iters": 20, "fit_prior": prior})
        agent = build_agent(spec)
        paired = collect_paired_steps(agent, spec, ("vector", 5), steps=8, source=("vector", 6))
        fit = fit_adapter(agent, paired.batch, spec.align, subset="adapter")
        own = dict(agent.named_parameters())
        drift[prior] = sum(float((v - own[k].detach()).pow(2).sum()) for k, v in fit.params.items())
    assert drift[0.0] > 0 and drift[1e4] < 0.01 * drift[0.0], drift


def test_fewshot_study_scores_each_budget(make_spec) -> None:
    from studies.align_fewshot import fewshot_study, format_study

    spec = make_spec(
        modalities={"train": {"vector": 1, "projected": 1}, "heldout_families": {"text": 1}},
        world={"size": 3},
        align={"fit_iters": 5},
    )
    agent = build_agent(spec)
    study = fewshot_study(agent, spec, [0, 8], n_states=32)
    assert study["source"].startswith("vector:")
    assert [r["k"] for r in study["rows"]] == [0, 8]
    assert study["mean"][0]["episodes"] == 0.0 and study["mean"][8]["episodes"] >= 1.0
    assert study["mean"][0]["chance_top1"] == pytest.approx(
        study["rows"][0]["chance_top1"]
    )  # the same states for every budget
    assert "probe R^2" in format_study(study)


def test_a_policy_term_fit_leaves_the_agent_untouched(make_spec) -> None:
    """align.fit_policy adds the frozen policy's KL; the policy takes no gradient from it."""
    import dataclasses

    spec = make_spec()
    agent = build_agent(spec)
    before = {k: v.detach().clone() for k, v in agent.named_parameters()}
    pairs = collect_paired_steps(agent, spec, ("vector", 7), steps=24).batch
    config = dataclasses.replace(spec.align, fit_policy=5.0, fit_iters=5)
    with_kl = fit_adapter(agent, pairs, config, "adapter+encoder")
    without = fit_adapter(
        agent, pairs, spec.align.__class__(**{**vars(config), "fit_policy": 0.0}), "adapter+encoder"
    )
    assert with_kl.loss_first > without.loss_first  # the KL term is in the loss
    for k, v in agent.named_parameters():
        assert v.grad is None and torch.equal(v, before[k]), k
