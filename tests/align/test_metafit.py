"""The meta-learned paired fit: its meta-gradient against ``higher``, and exact resume."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from metaxm.align.fewshot import collect_paired_steps
from metaxm.align.losses import info_nce
from metaxm.align.metafit import MetaFit, inner_fit, pair_loss
from metaxm.nn.agent import build_agent
from metaxm.sampler import fresh_variant_seed

TEXT = {"train": {"text": 2}, "heldout_variants": {}}


def _problem(make_spec):
    spec = make_spec(modalities=TEXT, align={"meta_steps": 2, "fit_mse": 2.0})
    agent = build_agent(spec).double()
    v = fresh_variant_seed(torch.Generator().manual_seed(0))
    support, query = (
        collect_paired_steps(agent, spec, ("text", v), seed=s, episodes=n).batch
        for s, n in ((1, 2), (2, 3))
    )
    g = torch.Generator().manual_seed(4)  # fixed source latents: any targets will do here
    z_sup, z_q = (
        torch.randn(b.batch_size, 16, generator=g, dtype=torch.float64) for b in (support, query)
    )
    return spec, agent, support, query, z_sup, z_q


def _higher(text_encode, agent, spec, names, lrs, support, query, z_sup, z_q, first_order):
    """The same meta-gradient with ``higher``'s differentiable SGD (rates as overrides)."""
    import higher

    cfg = spec.align
    own = dict(agent.named_parameters())
    opt = torch.optim.SGD([{"params": [own[n]]} for n in names], lr=1.0)

    def loss(model, pairs, z_s):
        z = model(pairs.obs[0])  # higher patches forward only
        return (
            info_nce(z, z_s, cfg.temperature, pairs.state_ids)
            + cfg.fit_mse * (z - z_s).pow(2).mean()
        )

    def detach(grads):
        return [None if g is None else g.detach() for g in grads]

    override = {"lr": [lrs[n] for n in names]}
    with higher.innerloop_ctx(
        text_encode(agent), opt, copy_initial_weights=False, override=override
    ) as (
        fmodel,
        diffopt,
    ):
        for _ in range(cfg.meta_steps):
            diffopt.step(
                loss(fmodel, support, z_sup), grad_callback=detach if first_order else None
            )
        out = loss(fmodel, query, z_q)
    leaves = [own[n] for n in names] + [lrs[n] for n in names]
    return torch.autograd.grad(out, leaves)


@pytest.mark.parametrize("first_order", [False, True])
def test_meta_gradient_matches_higher(make_spec, text_encode, first_order: bool) -> None:
    pytest.importorskip("higher")
    spec, agent, support, query, z_sup, z_q = _problem(make_spec)
    own = dict(agent.named_parameters())
    names = agent.param_names("adapter+encoder", "text")
    g = torch.Generator().manual_seed(3)
    lrs = {
        n: (
            0.05 + 0.1 * torch.rand(own[n].shape, generator=g, dtype=torch.float64)
        ).requires_grad_()
        for n in names
    }
    init = {n: own[n] for n in names}
    params = inner_fit(agent, "text", init, lrs, support, z_sup, spec.align, not first_order)
    ours = torch.autograd.grad(
        pair_loss(agent, "text", params, query, z_q, spec.align),
        [init[n] for n in names] + [lrs[n] for n in names],
    )
    ref = _higher(text_encode, agent, spec, names, lrs, support, query, z_sup, z_q, first_order)
    assert len(ours) == len(ref) == 2 * len(names)
    for a, b in zip(ours, ref):
        assert torch.allclose(a, b, atol=1e-6, rtol=1e-6), (a - b).abs().max()
    assert any(float(a.abs().max()) > 1e-4 for a in ours[len(names) :])  # the rates learn


def test_fit_moves_toward_the_source_latents_and_leaves_the_agent_alone(make_spec) -> None:
    spec, agent, support, _, z_sup, _ = _problem(make_spec)
    names = agent.param_names("adapter+encoder", "text")
    own = {n: p.detach().clone() for n, p in agent.named_parameters()}
    init = {"text": {n: own[n].clone() for n in names}}
    lrs = {"text": {n: torch.full_like(own[n], 0.05) for n in names}}
    fit = MetaFit(init, lrs, dataclasses.replace(spec.align, meta_steps=3))
    pairs = support  # view 0: a fresh text variant; view 1: a training text variant
    assert pairs.families == ("text", "text") and not torch.equal(pairs.obs[0], pairs.obs[1])
    params = fit.fit(agent, pairs, None)
    start = float(pair_loss(agent, "text", init["text"], pairs, _source(agent, pairs), spec.align))
    end = float(pair_loss(agent, "text", params, pairs, _source(agent, pairs), spec.align))
    assert end < 0.9 * start, (start, end)
    for n, p in agent.named_parameters():
        assert torch.equal(p, own[n]), n
    with pytest.raises(KeyError, match="no meta-learned start for family 'audio'"):
        MetaFit({}, {}, spec.align).fit(
            agent, dataclasses.replace(pairs, families=("audio", "text")), None
        )


def _source(agent, pairs):
    with torch.no_grad():
        return agent.encode(pairs.obs[1], pairs.families[1])


def test_trainer_resumes_exactly(make_spec, source_run, resumes, tmp_path) -> None:
    from metaxm.align.metafit_trainer import MetaFitTrainer

    spec = make_spec(
        modalities={"train": {"vector": 2}, "heldout_variants": {}},
        agent={"adapters": "variant"},
        align={"meta_steps": 1, "meta_batch": 1, "meta_episodes": [1], "meta_query_episodes": 2},
        train={"init_from": str(tmp_path)},
        algo="metafit",
    )
    source_run(spec, tmp_path)
    a = MetaFitTrainer(spec)
    a.update()
    resumes(MetaFitTrainer, spec, a)


def test_trainer_refuses_what_it_cannot_adapt(make_spec) -> None:
    from metaxm.align.metafit_trainer import MetaFitTrainer
    from metaxm.errors import ConfigError

    with pytest.raises(ConfigError, match="algo: metafit adapts a PPO source agent"):
        MetaFitTrainer(make_spec(algo="metafit", train={"init_from": "x"}))
    with pytest.raises(ConfigError, match="algo: metafit needs train.init_from"):
        MetaFitTrainer(make_spec(algo="metafit", agent={"adapters": "variant"}))
