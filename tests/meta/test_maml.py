"""MAML's meta-gradient against an independent ``higher`` implementation, vmap against a loop,
first against second order, the functional policy split, the baseline and the masks."""

from __future__ import annotations

from collections.abc import Callable

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import Tensor, nn

from metaxm.bench.maml import higher_meta_gradient
from metaxm.meta.maml import (
    MAMLConfig,
    adapted_names,
    inner_lrs,
    inner_step,
    meta_gradient,
)
from metaxm.meta.policy_gradient import (
    PGBatch,
    fit_linear_baseline,
    functional_policy,
    normalize_per_task,
)
from metaxm.nn import Agent, AgentConfig
from metaxm.nn.distributions import ActionHead, CategoricalHead, GaussianHead

torch.set_num_threads(1)

SPACES = {
    "vector": gym.spaces.Box(-2, 2, (6,), np.float32),
    "pixels": gym.spaces.Box(0, 255, (3, 12, 12), np.uint8),
    "text": gym.spaces.MultiDiscrete([20] * 6),
}
SMALL = AgentConfig(
    latent_dim=8, encoder_width=8, conv_channels=2, token_dim=4, token_heads=1, hidden=8,
    adapter_rank=2,
)  # fmt: skip


class MLPPolicy(nn.Module):
    """A plain two-layer MLP policy with the agent's forward contract."""

    def __init__(self, obs_dim: int, head: ActionHead, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.head = head
        out = head.action_dim if isinstance(head, GaussianHead) else head.pd_dim
        self.net = nn.Sequential(nn.Linear(obs_dim, 8), nn.Tanh(), nn.Linear(8, out))
        self.log_std = nn.Parameter(torch.full((out,), -0.3))
        self.gaussian = isinstance(head, GaussianHead)

    def forward(self, obs: Tensor, family: str) -> tuple[Tensor, Tensor]:
        pd = self.net(obs)
        if self.gaussian:
            pd = torch.cat((pd, self.log_std.expand_as(pd)), -1)
        return pd, pd.sum(-1)


def _obs(space: gym.Space, shape: tuple[int, ...], g: torch.Generator) -> Tensor:
    if isinstance(space, gym.spaces.MultiDiscrete):
        return torch.randint(1, int(space.nvec[0]), (*shape, *space.shape), generator=g)
    x = torch.rand(*shape, *space.shape, generator=g, dtype=torch.float64)
    return (x * 255).to(torch.uint8) if space.dtype == np.uint8 else x * 4 - 2


def _batch(
    model: nn.Module,
    family: str,
    space: gym.Space,
    n: int,
    steps: int,
    g: torch.Generator,
    noise: float = 0.2,
) -> PGBatch:
    """Random padded episodes; old log-probabilities near the model's own (some ratios clip;
    ``noise`` 0: the model's own, as if it had played them)."""
    head = model.head
    obs = _obs(space, (n, steps), g)
    with torch.no_grad():
        pd = model(obs.flatten(0, 1), family)[0].unflatten(0, (n, steps))
        actions = head.sample(pd, g)
        logp = head.log_prob(pd, actions)
    mask = torch.arange(steps)[None] < torch.randint(steps // 2, steps + 1, (n, 1), generator=g)
    mask = mask.double()
    adv = torch.randn(n, steps, generator=g, dtype=torch.float64) * mask
    jitter = torch.randn(n, steps, generator=g, dtype=torch.float64) * noise
    return PGBatch(obs, actions, logp + jitter, adv, mask)


def tol_dtype(tol: float) -> torch.dtype:
    return torch.float64 if tol < 1e-8 else torch.float32


def _agent(action: gym.Space | None = None) -> Agent:
    return Agent(SMALL, SPACES, action or gym.spaces.Discrete(4), seed=1).double()


def _problem(
    model: nn.Module, family: str, space: gym.Space, inner: int, n: int = 3, seed: int = 0
):
    g = torch.Generator().manual_seed(seed)
    supports = [_batch(model, family, space, n, 7, g) for _ in range(inner)]
    return supports, _batch(model, family, space, n, 9, g)


def _assert_grads_close(a: dict[str, Tensor], b: dict[str, Tensor], tol: float = 1e-6) -> None:
    assert a.keys() == b.keys()
    worst = max(float((a[k] - b[k]).abs().max()) for k in a)
    scale = max(float(v.abs().max()) for v in a.values())
    assert scale > 1e-3, "the meta-gradient is trivially zero"
    assert worst < tol, f"max |difference| {worst:.2e} (gradient scale {scale:.2e})"


@pytest.mark.parametrize(
    ("kind", "first_order"), [("categorical", False), ("gaussian", False), ("gaussian", True)]
)
def test_meta_gradient_matches_higher_on_a_plain_mlp(kind: str, first_order: bool) -> None:
    head = CategoricalHead(3) if kind == "categorical" else GaussianHead(2)
    model = MLPPolicy(5, head).double()
    space = gym.spaces.Box(-2, 2, (5,), np.float32)
    supports, query = _problem(model, "any", space, inner=2)
    cfg = MAMLConfig(inner_lr=0.3, first_order=first_order, ent_coef=0.01)
    names = [n for n, _ in model.named_parameters()]
    _, ours = meta_gradient(model, "any", names, supports, query, cfg)
    _, ref = higher_meta_gradient(
        model, "any", names, supports, query, cfg.inner_lr, first_order, cfg.clip_coef, 0.01
    )
    _assert_grads_close(ours, ref)


@pytest.mark.parametrize(
    ("family", "subset", "first_order", "meta_sgd", "objective"),
    [
        ("text", "adapter", False, False, "reinforce"),
        ("vector", "adapter+encoder", True, False, "reinforce"),
        ("text", "all", False, True, "reinforce"),
        ("text", "adapter", False, False, "lvc"),
        ("text", "all", False, True, "lvc"),
    ],
)
def test_meta_gradient_matches_higher_on_the_agent(
    family: str, subset: str, first_order: bool, meta_sgd: bool, objective: str
) -> None:
    agent = _agent(gym.spaces.Box(-0.1, 0.1, (2,), np.float32) if family == "vector" else None)
    if family == "vector":  # the vector encoder casts to float32; keep it float32 end to end
        agent = agent.float()
    supports, query = _problem(agent, family, SPACES[family], inner=2)
    if family == "vector":
        supports = [s.to(torch.float32) for s in supports]
        query = query.to(torch.float32)
    cfg = MAMLConfig(
        adapt=subset,  # type: ignore[arg-type]
        inner_lr=0.2,
        first_order=first_order,
        inner_objective=objective,  # type: ignore[arg-type]
    )
    names = adapted_names(agent, cfg.adapt, family)
    own = dict(agent.named_parameters())
    lrs = None
    if meta_sgd:
        g = torch.Generator().manual_seed(3)
        lrs = {
            n: (
                0.1 + 0.2 * torch.rand(own[n].shape, generator=g, dtype=own[n].dtype)
            ).requires_grad_()
            for n in names
        }
    _, ours = meta_gradient(agent, family, names, supports, query, cfg, lrs)
    _, ref = higher_meta_gradient(
        agent, family, names, supports, query, cfg.inner_lr, first_order, cfg.clip_coef, 0.0, lrs,
        lvc=objective == "lvc",
    )  # fmt: skip
    _assert_grads_close(ours, ref, 1e-6 if own[names[0]].dtype == torch.float64 else 1e-5)


@pytest.mark.parametrize("family", ["text", "pixels"])
def test_the_trunk_in_chunks_gives_higher_s_meta_gradient(
    family: str,
    monkeypatch,  # noqa: ANN001
) -> None:
    """The trunk (the encoder, when only the adapter is adapted) runs on a task batch in chunks
    of ``TRUNK_CHUNK`` rows: with chunks of 3 rows the encoder never sees more than 3 at once,
    and the meta-gradient is still ``higher``'s."""
    import metaxm.meta.policy_gradient as policy_gradient

    monkeypatch.setattr(policy_gradient, "TRUNK_CHUNK", 3)
    rows, batches = trunk_rows_against_higher(family)
    live = sum(int((b.mask > 0).sum()) for b in batches)  # padding is not run
    assert max(rows) <= 3 and sum(rows) == live


def trunk_rows_against_higher(
    family: str, prepare: Callable[[PGBatch], PGBatch] = lambda b: b
) -> tuple[list[int], list[PGBatch]]:
    """The adapter's meta-gradient on ``family`` (a random problem, each batch through
    ``prepare``) checked against ``higher``'s; returns the rows of each pass of the family's
    encoder and the batches (supports, then the query)."""
    agent, dtype, tol = _agent(), torch.float64, 1e-6
    if family == "pixels":  # the conv encoder casts to float32; keep it float32 end to end
        agent, dtype, tol = agent.float(), torch.float32, 1e-5
    supports, query = _problem(agent, family, SPACES[family], inner=2)
    supports, query = [prepare(s).to(dtype) for s in supports], prepare(query).to(dtype)
    cfg = MAMLConfig(adapt="adapter", inner_lr=0.2)
    names = adapted_names(agent, cfg.adapt, family)
    rows: list[int] = []
    hook = agent.encoders[family].register_forward_hook(
        lambda _m, args, _out: rows.append(len(args[0]))
    )
    _, ours = meta_gradient(agent, family, names, supports, query, cfg)
    hook.remove()
    _, ref = higher_meta_gradient(agent, family, names, supports, query, 0.2, False, cfg.clip_coef)
    _assert_grads_close(ours, ref, tol)
    return rows, [*supports, query]


def test_lvc_steps_as_reinforce_on_its_own_episodes_with_another_meta_gradient() -> None:
    """ProMP's objective: the same inner step where the support episodes were played by the
    start itself (ratio 1), another second-order term (every weight adapted, where it shows)."""
    agent = _agent()
    g = torch.Generator().manual_seed(0)
    supports = [_batch(agent, "text", SPACES["text"], 3, 7, g, noise=0.0)]  # played by the start
    query = _batch(agent, "text", SPACES["text"], 3, 9, g)
    names = adapted_names(agent, "all", "text")
    theta = {n: p.detach() for n, p in agent.named_parameters() if n in names}
    policy = functional_policy(agent, "text", names)
    batch = supports[0]._replace(obs=policy.features(supports[0].obs)).task(0)
    steps = {
        objective: inner_step(policy, theta, batch, inner_lrs(names, 0.2), True, objective)
        for objective in ("reinforce", "lvc")
    }
    _assert_grads_close(steps["reinforce"], steps["lvc"], 1e-12)
    grads = {
        objective: meta_gradient(
            agent, "text", names, supports, query,
            MAMLConfig(adapt="all", inner_lr=0.2, inner_objective=objective),  # type: ignore[arg-type]
        )[1]
        for objective in ("reinforce", "lvc")
    }  # fmt: skip
    worst = max(float((grads["reinforce"][k] - grads["lvc"][k]).abs().max()) for k in names)
    scale = max(float(grads["reinforce"][k].abs().max()) for k in names)
    assert worst > 0.01 * scale


def test_second_order_differs_from_first_order() -> None:
    agent = _agent()
    supports, query = _problem(agent, "text", SPACES["text"], inner=1)
    names = adapted_names(agent, "adapter", "text")
    cfgs = {fo: MAMLConfig(inner_lr=1.0, first_order=fo) for fo in (False, True)}
    grads = {
        fo: meta_gradient(agent, "text", names, supports, query, c)[1] for fo, c in cfgs.items()
    }
    diff = max(float((grads[True][k] - grads[False][k]).abs().max()) for k in grads[True])
    scale = max(float(v.abs().max()) for v in grads[False].values())
    assert diff > 1e-3 * scale  # float64 noise is ~1e-16 of the scale


@pytest.mark.parametrize("family", ["text", "pixels"])
def test_vmap_equals_a_per_task_loop(family: str) -> None:
    agent, tol = _agent(), 1e-10
    if family == "pixels":  # the conv encoder casts to float32; keep it float32 end to end
        agent, tol = agent.float(), 1e-5
    supports, query = _problem(agent, family, SPACES[family], inner=2, n=4)
    supports, query = [s.to(tol_dtype(tol)) for s in supports], query.to(tol_dtype(tol))
    names = adapted_names(agent, "all", family)
    own = dict(agent.named_parameters())
    lrs = {n: torch.full_like(own[n], 0.05).requires_grad_() for n in names}
    cfg = MAMLConfig(adapt="all")
    loss_v, vmapped = meta_gradient(agent, family, names, supports, query, cfg, lrs, True)
    loss_l, looped = meta_gradient(agent, family, names, supports, query, cfg, lrs, False)
    assert abs(float(loss_v - loss_l)) < tol
    scale = max(float(v.abs().max()) for v in looped.values())
    _assert_grads_close(vmapped, looped, tol * max(scale, 1.0))


@pytest.mark.parametrize("encoder", ["family", "tokens"])
@pytest.mark.parametrize("family", list(SPACES))
def test_functional_policy_split_equals_the_agent(family: str, encoder: str) -> None:
    config = AgentConfig(**{**SMALL.__dict__, "encoder": encoder})
    agent = Agent(config, SPACES, gym.spaces.Box(-0.1, 0.1, (2,), np.float32), seed=1)
    agent, tol = agent.double(), 1e-12
    if family != "text" or encoder == "tokens":  # these encoders cast to float32
        agent, tol = agent.float(), 1e-6
    obs = _obs(SPACES[family], (5,), torch.Generator().manual_seed(0))
    for subset in ("adapter", "adapter+encoder", "all"):
        names = adapted_names(agent, subset, family)
        policy = functional_policy(agent, family, names)
        params = {n: p.detach() + 0.1 for n, p in agent.named_params("all").items() if n in names}
        expected = torch.func.functional_call(agent, params, (obs, family))[0]
        got = policy.head(params, policy.features(obs, lead=1))
        torch.testing.assert_close(got, expected, rtol=0, atol=tol)
    assert functional_policy(agent, family, adapted_names(agent, "adapter", family)).trunk(
        obs
    ).shape == (5, SMALL.latent_dim)


def test_linear_baseline_is_a_per_task_ridge_fit() -> None:
    g = torch.Generator().manual_seed(0)
    length, n, e, d, reg = 6, 3, 4, 5, 0.1
    feats = torch.randn(length, n * e, d, generator=g, dtype=torch.float64)
    targets = torch.randn(length, n * e, generator=g, dtype=torch.float64)
    mask = (torch.rand(length, n * e, generator=g) > 0.3).double()
    fitted = fit_linear_baseline(feats, targets, mask, n, reg)
    for i in range(n):
        cols = slice(i * e, (i + 1) * e)
        x = feats[:, cols].reshape(-1, d).numpy()
        y = targets[:, cols].reshape(-1).numpy()
        m = mask[:, cols].reshape(-1).numpy()
        w = np.linalg.solve(x.T @ (m[:, None] * x) + reg * m.sum() * np.eye(d), x.T @ (m * y))
        np.testing.assert_allclose(fitted[:, cols].reshape(-1).numpy(), x @ w, atol=1e-10)


def test_advantages_are_normalised_within_each_task() -> None:
    g = torch.Generator().manual_seed(1)
    adv = torch.randn(7, 6, generator=g, dtype=torch.float64) * 3 + 1
    mask = (torch.rand(7, 6, generator=g) > 0.25).double()
    out = normalize_per_task(adv, mask, 2)
    assert bool((out[mask == 0] == 0).all())
    for i in range(2):
        vals = out[:, 3 * i : 3 * i + 3][mask[:, 3 * i : 3 * i + 3] > 0]
        assert abs(float(vals.mean())) < 1e-10
        assert abs(float(vals.std(unbiased=False)) - 1.0) < 1e-6
    whole = normalize_per_task(adv, mask, 1)  # maml.normalize: batch
    vals = whole[mask > 0]
    assert abs(float(vals.mean())) < 1e-10 and abs(float(vals.std(unbiased=False)) - 1) < 1e-6
