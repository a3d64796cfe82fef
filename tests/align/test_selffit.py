"""The meta-learned reward-free fit: its transitions, its meta-gradient against ``higher``,
what it changes, and its trainer (exact resume, refusals)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from metaxm.align.fewshot import collect_paired_steps
from metaxm.align.losses import info_nce
from metaxm.align.metafit import pair_loss
from metaxm.align.selffit import (
    InverseDynamics,
    SelfFit,
    Transitions,
    collect_transitions,
    inner_selffit,
    inverse_loss,
    selfsup_loss,
)
from metaxm.build import make_env
from metaxm.envs.play import transitions
from metaxm.nn.agent import build_agent
from metaxm.sampler import fresh_variant_seed

TEXT = {"train": {"text": 2}, "heldout_variants": {}}


def test_transitions_link_steps_of_one_episode_only() -> None:
    kept = torch.tensor([[1, 1], [1, 1], [0, 1], [0, 1]], dtype=torch.bool)
    count = torch.tensor([[0, 0], [0, 0], [1, 0], [1, 1]])
    # kept steps, step-major: (0,0)=0 (0,1)=1 (1,0)=2 (1,1)=3 (2,1)=4 (3,1)=5
    first, second = transitions(kept, count)
    assert first.tolist() == [0, 1, 3] and second.tolist() == [2, 3, 4]


def _agent_moves_and_goal_stays(features: torch.Tensor, first, second, size: int) -> None:
    """GridNav features: agent (x, y) then goal (x, y), each scaled to [-1, 1]."""
    cell = 2.0 / (size - 1)
    a, b = features[first], features[second]
    assert torch.equal(a[:, 2:4], b[:, 2:4])  # one episode: one goal
    assert bool(((b[:, :2] - a[:, :2]).abs().sum(1) <= cell + 1e-6).all())  # one move at most


def test_collected_transitions_follow_the_episodes(make_spec) -> None:
    spec = make_spec()
    agent = build_agent(spec)
    paired = collect_paired_steps(agent, spec, ("vector", 5), seed=1, episodes=3)
    first, second = paired.transitions
    assert first.numel() == paired.steps - 3 > 0  # each episode: its length minus one
    assert paired.actions.shape == (paired.steps,)
    _agent_moves_and_goal_stays(paired.batch.scene.features, first, second, 4)
    # the learner's collection sees the target alone, one episode per environment
    env = make_env(spec, "vector", 5, num_envs=3, seed=2, resample_tasks=True)
    data = collect_transitions(agent, env, "vector", torch.Generator().manual_seed(0))
    n = data.obs.shape[0]
    assert data.first.numel() == n - 3 and data.actions.shape == (n,) and data.episodes == 3
    both = Transitions.concat([data, data])
    assert both.obs.shape[0] == 2 * n and both.episodes == 6
    assert torch.equal(both.first[data.first.numel() :], data.first + n)


def _problem(make_spec):
    spec = make_spec(modalities=TEXT, align={"meta_steps": 2, "fit_mse": 2.0})
    agent = build_agent(spec).double()
    v = fresh_variant_seed(torch.Generator().manual_seed(0))
    env = make_env(spec, "text", v, num_envs=2, seed=1, resample_tasks=True)
    support = collect_transitions(agent, env, "text", torch.Generator().manual_seed(2))
    query = collect_paired_steps(agent, spec, ("text", v), seed=3, episodes=3)
    g = torch.Generator().manual_seed(4)  # fixed source latents: any targets will do here
    z_q = torch.randn(query.steps, 16, generator=g, dtype=torch.float64)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(5)
        head = InverseDynamics(16, 8, agent.head.n).double()
    return spec, agent, head, support, query, z_q


def _outer(z, query, z_q, cfg, head, phi):
    pair = info_nce(z, z_q, cfg.temperature, query.batch.state_ids)
    pair = pair + cfg.fit_mse * (z - z_q).pow(2).mean()
    return pair + inverse_loss(head, phi, z_q, query.actions, *query.transitions)


def _higher(text_encode, agent, spec, head, phi, names, lrs, support, query, z_q, first_order):
    """The same meta-gradient with ``higher``'s differentiable SGD (rates as overrides)."""
    import higher

    cfg = spec.align
    own = dict(agent.named_parameters())
    opt = torch.optim.SGD([{"params": [own[n]]} for n in names], lr=1.0)

    def inner(model):
        z = model(support.obs)  # higher patches forward only
        return inverse_loss(head, phi, z, support.actions, support.first, support.second)

    def detach(grads):
        return [None if g is None else g.detach() for g in grads]

    override = {"lr": [lrs[n] for n in names]}
    with higher.innerloop_ctx(
        text_encode(agent), opt, copy_initial_weights=False, override=override
    ) as (fmodel, diffopt):
        for _ in range(cfg.meta_steps):
            diffopt.step(inner(fmodel), grad_callback=detach if first_order else None)
        out = _outer(fmodel(query.batch.obs[0]), query, z_q, cfg, head, phi)
    leaves = [own[n] for n in names] + [lrs[n] for n in names] + list(phi.values())
    return torch.autograd.grad(out, leaves)


@pytest.mark.parametrize("first_order", [False, True])
def test_meta_gradient_matches_higher(make_spec, text_encode, first_order: bool) -> None:
    pytest.importorskip("higher")
    spec, agent, head, support, query, z_q = _problem(make_spec)
    own = dict(agent.named_parameters())
    names = agent.param_names("adapter+encoder", "text")
    g = torch.Generator().manual_seed(3)
    lrs = {
        n: (0.5 + torch.rand(own[n].shape, generator=g, dtype=torch.float64)).requires_grad_()
        for n in names
    }
    phi = {k: v.detach().clone().requires_grad_() for k, v in head.named_parameters()}
    init = {n: own[n] for n in names}
    params = inner_selffit(agent, head, phi, init, lrs, support, spec.align, not first_order)
    z = pair_loss(agent, "text", params, query.batch, z_q, spec.align)
    grounding = inverse_loss(head, phi, z_q, query.actions, *query.transitions)
    leaves = [init[n] for n in names] + [lrs[n] for n in names] + list(phi.values())
    ours = torch.autograd.grad(z + grounding, leaves, retain_graph=True)
    ref = _higher(text_encode, agent, spec, head, phi, names, lrs, support, query, z_q, first_order)
    assert len(ours) == len(ref) == 2 * len(names) + len(phi)
    for a, b in zip(ours, ref):
        assert torch.allclose(a, b, atol=1e-6, rtol=1e-6), (a - b).abs().max()
    n = len(names)
    assert any(float(a.abs().max()) > 1e-6 for a in ours[n : 2 * n])  # the rates learn
    # second order, the head learns through the inner loop too, not only from its own
    # (grounding) loss; first order treats the inner gradients as constants, so it does not
    alone = torch.autograd.grad(grounding, list(phi.values()))
    same = [torch.allclose(a, b) for a, b in zip(ours[2 * n :], alone)]
    assert all(same) if first_order else not all(same)


def test_fit_lowers_the_inverse_loss_and_leaves_the_agent_alone(make_spec) -> None:
    spec, agent, head, support, _, _ = _problem(make_spec)
    names = agent.param_names("adapter+encoder", "text")
    own = {n: p.detach().clone() for n, p in agent.named_parameters()}
    phi = {k: v.detach().clone() for k, v in head.named_parameters()}
    fit = SelfFit(
        {"text": {n: own[n].clone() for n in names}},
        {"text": {n: torch.full_like(own[n], 0.5) for n in names}},
        phi, dataclasses.replace(spec.align, meta_steps=5),
    )  # fmt: skip
    module = InverseDynamics(16, 8, agent.head.n).double()
    before = float(selfsup_loss(agent, module, phi, fit.init["text"], support))
    params = fit.fit(agent, support)
    after = float(selfsup_loss(agent, module, phi, params, support))
    assert after < before, (before, after)
    for n, p in agent.named_parameters():
        assert torch.equal(p, own[n]), n
    # a family without a learned start: the hand-set fit from the agent's own encoder
    fit.init, fit.lrs = {}, {}
    hand = fit.fit(agent, support)
    assert hand.keys() == params.keys()
    assert float(selfsup_loss(agent, module, phi, hand, support)) < before


def _trainer_spec(make_spec, tmp_path, **extra):
    return make_spec(
        modalities={"train": {"vector": 2}, "heldout_variants": {}},
        agent={"adapters": "variant"},
        align={"meta_steps": 1, "meta_batch": 1, "meta_episodes": [1], "meta_query_episodes": 2},
        train={"init_from": str(tmp_path)},
        algo="selffit",
        **extra,
    )


def test_trainer_resumes_exactly(make_spec, source_run, resumes, tmp_path) -> None:
    from metaxm.align.selffit_trainer import SelfFitTrainer

    spec = _trainer_spec(make_spec, tmp_path)
    source_run(spec, tmp_path)
    a = SelfFitTrainer(spec)
    first = a.update()
    assert first["query_loss/vector"] > 0
    state = resumes(SelfFitTrainer, spec, a)
    assert set(state["selffit"]) == {"init", "lrs", "head"}
    head = dict(SelfFitTrainer(spec).head.named_parameters())  # the same start every time
    assert all(torch.equal(v, head[k]) for k, v in a._fresh().head.items())


def test_trainer_refuses_what_it_cannot_adapt(make_spec, tmp_path) -> None:
    from metaxm.align.selffit_trainer import SelfFitTrainer
    from metaxm.errors import ConfigError

    with pytest.raises(ConfigError, match="algo: selffit adapts a PPO source agent"):
        SelfFitTrainer(make_spec(algo="selffit", train={"init_from": "x"}))
    from metaxm.spec import spec_from_dict

    data = dataclasses.asdict(_trainer_spec(make_spec, tmp_path))
    data["world"] = {"name": "pointnav", "horizon": 12}  # continuous actions
    spec = spec_from_dict(data)
    with pytest.raises(ConfigError, match="needs a discrete action space"):
        SelfFitTrainer(spec)


def _stubborn(spec):
    """An agent whose policy takes action 0 in every state."""
    agent = build_agent(spec)
    with torch.no_grad():
        agent.core.pi[4].weight.zero_()
        agent.core.pi[4].bias.copy_(torch.tensor([50.0, 0.0, 0.0, 0.0]))
    return agent


def test_every_few_shot_collection_explores_at_align_explore(make_spec) -> None:
    """align.explore reaches the paired steps (metafit), the transitions (selffit) and the
    align learner's pairs: a policy that always takes action 0 walks into one wall alone."""
    from metaxm.learners import Align

    seen = {}
    for rate in (0.0, 1.0):
        spec = make_spec(align={"explore": rate})
        agent = _stubborn(spec)
        paired = collect_paired_steps(agent, spec, ("vector", 5), seed=1, episodes=4)
        env = make_env(spec, "vector", 5, num_envs=4, seed=2, resample_tasks=True)
        data = collect_transitions(agent, env, "vector", torch.Generator().manual_seed(0), rate)
        for actions in (paired.actions, data.actions):
            assert set(actions.tolist()) == ({0} if rate == 0 else {0, 1, 2, 3})
        # action 0 moves the agent one way only, until a wall stops it
        first, second = paired.transitions
        features = paired.batch.scene.features
        moved = features[second, :2] - features[first, :2]
        ways = {tuple(m.sign().int().tolist()) for m in moved if m.abs().sum() > 0}
        assert len(ways) <= 1 if rate == 0 else len(ways) == 4
        env = make_env(spec, "vector", 5, num_envs=4, seed=2, resample_tasks=True)
        pairs = Align(agent, spec).pairs(env, 2, seed=3)
        seen[rate] = torch.unique(pairs.scene.features[:, :2], dim=0).shape[0]
    assert seen[1.0] > seen[0.0]  # the random walk shows the fit more agent positions
