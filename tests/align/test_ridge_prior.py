"""`scripts/ridge_prior.py`'s closed-form inner solve: the MAP map and its meta-gradient against
an independent solve in the weights' own space (float64)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch


def _primal(x, y, mean, log_prec):
    """Per source channel j: (X'X + diag(p_j)) w_j = X'y_j + p_j * m_j, a D x D solve."""
    cols = []
    for j in range(y.shape[1]):
        p = log_prec[:, j].exp()
        cols.append(torch.linalg.solve(x.T @ x + torch.diag(p), x.T @ y[:, j] + p * mean[:, j]))
    return torch.stack(cols, 1)


def _problem(n: int, d: int, s: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = torch.randn(n, s, generator=g, dtype=torch.float64)
    mean = torch.randn(d, s, generator=g, dtype=torch.float64).requires_grad_()
    log_prec = torch.randn(d, s, generator=g, dtype=torch.float64).requires_grad_()
    return x, y, mean, log_prec


def test_the_dual_solve_is_the_map_estimate_and_its_meta_gradient(load_script) -> None:
    script = load_script("ridge_prior")
    for n, d in ((5, 9), (12, 4)):  # fewer rows than weights (pixels), and more
        x, y, mean, log_prec = _problem(n, d)
        xq = torch.randn(7, d, dtype=torch.float64)
        ours, ref = script.map_solve(x, y, mean, log_prec), _primal(x, y, mean, log_prec)
        assert torch.allclose(ours, ref, atol=1e-10)
        grads = [torch.autograd.grad((xq @ w).pow(2).mean(), [mean, log_prec]) for w in (ours, ref)]
        for a, b in zip(*grads):
            assert torch.allclose(a, b, atol=1e-10)
            assert float(a.abs().max()) > 1e-6  # the prior learns


def test_the_prior_spans_least_squares_and_its_own_mean(load_script) -> None:
    script = load_script("ridge_prior")
    x, y, mean, _ = _problem(12, 4)
    flat = torch.full_like(mean, -20.0)
    assert torch.allclose(script.map_solve(x, y, mean, flat), torch.linalg.lstsq(x, y).solution)
    firm = torch.full_like(mean, 20.0)
    assert torch.allclose(script.map_solve(x, y, mean, firm), mean, atol=1e-6)


def test_the_meta_gradient_matches_higher_unrolled_to_convergence(load_script) -> None:
    """``higher``'s differentiable SGD on the same proximal objective, unrolled until it has
    converged, gives the closed form's meta-gradient (the implicit gradient, iMAML)."""
    higher = pytest.importorskip("higher")
    script = load_script("ridge_prior")
    x, y, mean, log_prec = _problem(12, 4, seed=1)
    log_prec = (log_prec.detach() * 0.3).requires_grad_()  # precisions near 1: well conditioned
    xq = torch.randn(7, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    ours = torch.autograd.grad(
        (xq @ script.map_solve(x, y, mean, log_prec)).pow(2).mean(), [mean, log_prec]
    )
    model = torch.nn.Linear(4, 3, bias=False).double()
    lr = 1.0 / (
        2 * float(torch.linalg.eigvalsh(x.T @ x).max()) + 2 * float(log_prec.detach().exp().max())
    )
    with higher.innerloop_ctx(model, torch.optim.SGD(model.parameters(), lr=lr)) as (f, opt):
        for _ in range(3000):
            w = f.weight.T
            opt.step((x @ w - y).pow(2).sum() + (log_prec.exp() * (w - mean).pow(2)).sum())
        ref = torch.autograd.grad((xq @ f.weight.T).pow(2).mean(), [mean, log_prec])
    for a, b in zip(ours, ref):
        assert torch.allclose(a, b, atol=1e-7), (a - b).abs().max()


def test_the_script_meta_trains_and_measures_every_fit(
    make_spec, load_script, tmp_path: Path
) -> None:
    """On a tiny PPO run with per-variant adapters: every fit measured at every budget on every
    validation variant, the meta-training's curve, the page and the numbers written."""
    from metaxm.run.loop import train

    spec = make_spec(
        agent={"adapters": "variant"},
        train={"total_steps": 64, "num_envs": 4, "checkpoint_interval": 0},
        ppo={"num_steps": 8, "update_epochs": 1, "num_minibatches": 1},
    )
    train(spec, tmp_path / "run")
    script = load_script("ridge_prior")
    argv = [str(tmp_path / "run"), "--updates", "2", "--batch", "1", "--budgets", "1", "2"]
    argv += ["--seeds", "1", "--episodes", "2", "--families", "vector", "--out", str(tmp_path)]
    assert script.main(argv) == 0
    data = json.loads((tmp_path / "ridge-prior.json").read_text())
    fits = ["learned prior", "the prior's start (not meta-learned)", "least squares", "align"]
    assert list(data["rows"]) == [f"vector|{f}" for f in [*fits, "translate"]]
    for by_k in data["rows"].values():
        assert list(by_k) == ["1", "2"]
        assert all(
            len(v) == len(script.VALIDATION) and 0 <= min(v) <= max(v) <= 1 for v in by_k.values()
        )
    assert len(data["curves"]["vector"]) == 2
    assert "| vector | learned prior |" in (tmp_path / "ridge-prior.md").read_text()
