"""The functional MAML (:mod:`metaxm.meta.functional`): meta-gradients against ``higher`` and
closed forms, FOMAML, Meta-SGD's rates, weights left alone by ``adapt``, one-line errors,
``sgd_step`` under ``vmap(grad(...))``, and the sine example learning to beat its baseline."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import higher
import pytest
import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap
from torch.nn import functional as F

from metaxm.meta import MAML, MetaSGD
from metaxm.meta.functional import sgd_step

torch.set_num_threads(1)

LR = 0.01
TASKS = 3
Params = dict[str, Tensor]
LRs = dict[str, "Tensor | float"]


def _load_example() -> ModuleType:
    path = Path(__file__).parents[2] / "examples" / "sine_maml.py"
    spec = importlib.util.spec_from_file_location("sine_maml", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


sine = _load_example()


def _net(seed: int = 0) -> nn.Module:
    return sine.make_net(40, seed).double()


def _tasks(seed: int = 0, tasks: int = TASKS) -> list[Tensor]:
    batch = sine.sample_batch(tasks, 10, 10, torch.Generator().manual_seed(seed))
    return [t.double() for t in batch]


def _ours(maml: MAML, batch: Sequence[Tensor], steps: int) -> dict[str, Tensor]:
    """``{name: meta-gradient}`` over ``maml.named_parameters()`` with the learn2learn loop."""
    xs, ys, xq, yq = batch
    maml.zero_grad(set_to_none=True)
    for i in range(xs.shape[0]):
        learner = maml.clone()
        for _ in range(steps):
            learner.adapt(F.mse_loss(learner(xs[i]), ys[i]))
        (F.mse_loss(learner(xq[i]), yq[i]) / xs.shape[0]).backward()
    return {k: p.grad.clone() for k, p in maml.named_parameters()}


def _higher(
    model: nn.Module,
    batch: Sequence[Tensor],
    steps: int,
    first_order: bool,
    lrs: Sequence[Tensor] | None = None,
) -> tuple[list[Tensor], list[Tensor]]:
    """The same meta-gradient with ``higher``: per-parameter groups, rates as ``override``."""
    xs, ys, xq, yq = batch
    params = list(model.parameters())
    opt = torch.optim.SGD([{"params": [p]} for p in params], lr=LR)
    override = None if lrs is None else {"lr": list(lrs)}
    for t in [*params, *(lrs or [])]:
        t.grad = None
    for i in range(xs.shape[0]):
        with higher.innerloop_ctx(model, opt, copy_initial_weights=False, override=override) as (
            fmodel,
            diffopt,
        ):
            for _ in range(steps):
                diffopt.step(
                    F.mse_loss(fmodel(xs[i]), ys[i]),
                    grad_callback=(lambda gs: [g.detach() for g in gs]) if first_order else None,
                )
            (F.mse_loss(fmodel(xq[i]), yq[i]) / xs.shape[0]).backward()
    return [p.grad.clone() for p in params], [lr.grad.clone() for lr in lrs or []]


def _loss(model: nn.Module, params: Params, x: Tensor, y: Tensor) -> Tensor:
    return F.mse_loss(functional_call(model, params, (x,)), y)


def _max_diff(a: Sequence[Tensor], b: Sequence[Tensor]) -> float:
    return max(float((x - y).abs().max()) for x, y in zip(a, b, strict=True))


# ---------------------------------------------------------------------- meta-gradients
@pytest.mark.parametrize("first_order", [False, True])
@pytest.mark.parametrize("steps", [1, 2])
def test_meta_gradient_matches_higher(steps: int, first_order: bool) -> None:
    model, batch = _net(), _tasks()
    ours = _ours(MAML(model, lr=LR, first_order=first_order), batch, steps)
    ref, _ = _higher(model, batch, steps, first_order)
    assert list(ours) == [f"module.{k}" for k, _ in model.named_parameters()]
    assert _max_diff(list(ours.values()), ref) < 1e-10
    assert min(float(g.abs().max()) for g in ref) > 1e-3  # a gradient worth comparing


@pytest.mark.parametrize("first_order", [False, True])
@pytest.mark.parametrize("steps", [1, 2])
def test_meta_sgd_matches_higher(steps: int, first_order: bool) -> None:
    model, batch = _net(), _tasks()
    gen, theta = torch.Generator().manual_seed(1), list(model.parameters())
    init = [LR * torch.rand(p.shape, generator=gen, dtype=p.dtype) + LR / 2 for p in theta]
    meta = MetaSGD(model, first_order=first_order, lrs=init)
    ours = _ours(meta, batch, steps)
    ref_theta, ref_lrs = _higher(model, batch, steps, first_order, lrs=list(meta.lrs))
    n = len(ref_theta)
    assert list(ours)[n:] == [f"lrs.{i}" for i in range(n)]
    assert _max_diff(list(ours.values())[:n], ref_theta) < 1e-10
    assert _max_diff(list(ours.values())[n:], ref_lrs) < 1e-10


@pytest.mark.parametrize("first_order", [False, True])
def test_meta_sgd_rate_gradient_closed_form(first_order: bool) -> None:
    """One step: ``d L_q(theta - lr * g) / d lr = -g * grad L_q(theta')``, in either order."""
    model, (xs, ys, xq, yq) = _net(), _tasks()
    meta = MetaSGD(model, lr=LR, first_order=first_order)
    ours = _ours(meta, (xs, ys, xq, yq), steps=1)
    theta = {k: p.detach() for k, p in model.named_parameters()}
    expected = {k: torch.zeros_like(p) for k, p in theta.items()}
    for i in range(TASKS):
        g = grad(_loss, argnums=1)(model, theta, xs[i], ys[i])
        adapted = {k: p - LR * g[k] for k, p in theta.items()}
        gq = grad(_loss, argnums=1)(model, adapted, xq[i], yq[i])
        for k in theta:
            expected[k] -= g[k] * gq[k] / TASKS
    got = [ours[f"lrs.{i}"] for i in range(len(theta))]
    assert _max_diff(got, list(expected.values())) < 1e-12


def test_first_order_is_fomaml_and_differs_from_second_order() -> None:
    """FOMAML's meta-gradient is the query gradient at the adapted weights (two steps here)."""
    model, (xs, ys, xq, yq) = _net(), _tasks()
    first = _ours(MAML(model, lr=LR, first_order=True), (xs, ys, xq, yq), steps=2)
    second = _ours(MAML(model, lr=LR), (xs, ys, xq, yq), steps=2)
    expected = {k: torch.zeros_like(p) for k, p in model.named_parameters()}
    for i in range(TASKS):
        params = {k: p.detach() for k, p in model.named_parameters()}
        for _ in range(2):
            g = grad(_loss, argnums=1)(model, params, xs[i], ys[i])
            params = {k: p - LR * g[k] for k, p in params.items()}
        gq = grad(_loss, argnums=1)(model, params, xq[i], yq[i])
        for k in expected:
            expected[k] += gq[k] / TASKS
    assert _max_diff(list(first.values()), list(expected.values())) < 1e-12
    assert _max_diff(list(first.values()), list(second.values())) > 1e-5


# ---------------------------------------------------------------------- the learner
def test_adapt_is_functional_and_backward_reaches_the_model() -> None:
    model, (xs, ys, xq, yq) = _net(), _tasks()
    before = {k: p.detach().clone() for k, p in model.named_parameters()}
    maml = MAML(model, lr=LR)
    learner = maml.clone()
    assert all(a is b for a, b in zip(learner.parameters(), model.parameters(), strict=True))
    torch.testing.assert_close(learner(xs[0]), maml(xs[0]), rtol=0, atol=0)
    learner.adapt(F.mse_loss(learner(xs[0]), ys[0]))
    branch = learner.clone()
    branch.adapt(F.mse_loss(branch(xs[0]), ys[0]))
    for k, p in model.named_parameters():
        assert torch.equal(p, before[k]) and p.grad is None
        assert not torch.equal(learner.params[k], p)
        assert not torch.equal(branch.params[k], learner.params[k])
    F.mse_loss(learner(xq[0]), yq[0]).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_buffers_are_the_module_own() -> None:
    model = nn.Sequential(nn.Linear(1, 4), nn.BatchNorm1d(4), nn.Linear(4, 1)).double()
    learner = MAML(model, lr=LR).clone()
    x = torch.randn(8, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    learner.adapt(learner(x).pow(2).mean())
    assert model[1].num_batches_tracked.item() == 1
    assert model[1].running_mean.abs().sum() > 0
    assert set(learner.params) == {k for k, _ in model.named_parameters()}


class WithSpare(nn.Module):
    """A module with a layer its forward never uses."""

    def __init__(self) -> None:
        super().__init__()
        self.used, self.spare = nn.Linear(2, 1), nn.Linear(2, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.used(x)


def test_unused_parameter_raises_one_line_naming_it() -> None:
    model, x = WithSpare(), torch.ones(3, 2)
    learner = MAML(model, lr=LR).clone()
    with pytest.raises(ValueError, match=r"'spare\.weight'") as err:
        learner.adapt(learner(x).sum())
    assert "\n" not in str(err.value) and "allow_unused=True" in str(err.value)
    learner = MAML(model, lr=LR, allow_unused=True).clone()
    learner.adapt(learner(x).sum())
    assert learner.params["spare.weight"] is model.spare.weight
    assert not torch.equal(learner.params["used.weight"], model.used.weight)
    learner = MAML(model, lr=LR).clone()
    learner.adapt(learner(x).sum(), allow_unused=True)  # per call, as in learn2learn


def test_frozen_parameter_needs_allow_nograd() -> None:
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
    model[0].bias.requires_grad_(False)
    x = torch.ones(3, 2)
    learner = MAML(model, lr=LR).clone()
    with pytest.raises(ValueError, match=r"'0\.bias'.*allow_nograd=True"):
        learner.adapt(learner(x).sum())
    learner = MAML(model, lr=LR, allow_nograd=True).clone()
    learner.adapt(learner(x).sum())
    assert learner.params["0.bias"] is model[0].bias
    assert not torch.equal(learner.params["0.weight"], model[0].weight)
    meta_sgd = MetaSGD(model, lr=LR, allow_nograd=True).clone()  # a TypeError before
    meta_sgd.adapt(meta_sgd(x).sum())
    assert meta_sgd.params["0.bias"] is model[0].bias


def test_meta_sgd_refuses_a_rate_of_another_shape() -> None:
    """A (3, 4, 4) rate for a (4, 4) weight was taken and broadcast the weight to (3, 4, 4),
    failing only at the next forward pass."""
    model = nn.Linear(4, 4)
    with pytest.raises(
        ValueError, match=r"rate for 'weight' has shape \(3, 4, 4\), which does not"
    ):
        MetaSGD(model, lrs=[torch.ones(3, 4, 4), torch.ones(4)])
    MetaSGD(model, lrs=[torch.tensor(0.1), torch.ones(4)])  # a scalar broadcasts


# ---------------------------------------------------------------------- sgd_step
@pytest.mark.parametrize("first_order", [False, True])
@pytest.mark.parametrize("meta_sgd", [False, True])
def test_sgd_step_is_bitwise_under_vmap_grad(meta_sgd: bool, first_order: bool) -> None:
    """``sgd_step`` inside ``vmap(grad(...))`` gives bitwise the meta-gradient of ``p - lr * g``."""
    model, (xs, ys, xq, yq) = _net(), _tasks()
    theta = {k: p.detach() for k, p in model.named_parameters()}
    lrs = {k: torch.full_like(p, LR) if meta_sgd else LR for k, p in theta.items()}

    def via_sgd_step(
        params: Params, lrs: LRs, xs: Tensor, ys: Tensor, xq: Tensor, yq: Tensor
    ) -> Tensor:
        g = grad(_loss, argnums=1)(model, params, xs, ys)
        return _loss(model, sgd_step(params, g, lrs, first_order), xq, yq)

    def by_hand(params: Params, lrs: LRs, xs: Tensor, ys: Tensor, xq: Tensor, yq: Tensor) -> Tensor:
        g = grad(_loss, argnums=1)(model, params, xs, ys)
        g = {k: v.detach() for k, v in g.items()} if first_order else g
        return _loss(model, {k: p - lrs[k] * g[k] for k, p in params.items()}, xq, yq)

    argnums = (0, 1) if meta_sgd else 0
    dims = (None, None, 0, 0, 0, 0)
    a = vmap(grad(via_sgd_step, argnums=argnums), in_dims=dims)(theta, lrs, xs, ys, xq, yq)
    b = vmap(grad(by_hand, argnums=argnums), in_dims=dims)(theta, lrs, xs, ys, xq, yq)
    a, b = (x if meta_sgd else (x,) for x in (a, b))  # one dict per argnum
    assert [list(d) for d in a] == [list(d) for d in b] == [list(theta)] * len(a)
    assert all(torch.equal(u[k], v[k]) for u, v in zip(a, b) for k in theta)


def test_sgd_step_keeps_parameters_without_a_gradient() -> None:
    p, q = torch.ones(2), torch.zeros(2)
    out = sgd_step({"p": p, "q": q}, {"p": torch.full((2,), 3.0)}, {"p": 0.5}, first_order=False)
    assert torch.equal(out["p"], torch.full((2,), -0.5)) and out["q"] is q


# ---------------------------------------------------------------------- learning
def test_sine_maml_adapts_better_than_pretrained_baseline() -> None:
    """300 meta-steps of 10 tasks: one inner step of MAML beats the baseline's by a margin."""
    r = sine.main(
        iterations=300,
        seed=0,
        meta_batch=10,
        outer_lr=1e-2,
        test_tasks=50,
        steps=(0, 1),
        progress=False,
    )
    assert r["maml"][1] < 0.7 * r["baseline"][1]
    assert r["maml"][1] < 0.7 * r["maml"][0]  # the gain comes from the inner step
