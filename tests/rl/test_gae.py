"""GAE against hand-computed values, and against Monte Carlo returns when lambda = 1."""

from __future__ import annotations

import torch

from metaxm.rl.gae import compute_gae


def test_gae_hand_computed_with_truncation_and_termination() -> None:
    # env 0: truncated at t=1 (bootstrapped from its final observation's value 4.0)
    # env 1: terminated at t=1 (next value 9.9 must be ignored)
    rewards = torch.tensor([[1.0, 0.0], [2.0, 1.0], [3.0, 0.0]])
    values = torch.tensor([[0.5, 0.2], [1.0, 0.4], [1.5, 0.1]])
    next_values = torch.tensor([[1.0, 0.4], [4.0, 9.9], [2.0, 0.3]])
    terminated = torch.tensor([[False, False], [False, True], [False, False]])
    done = torch.tensor([[False, False], [True, True], [False, False]])
    adv, ret = compute_gae(rewards, values, next_values, terminated, done, gamma=0.9, lam=0.5)
    # deltas env 0: 1 + .9*1 - .5 = 1.4; 2 + .9*4 - 1 = 4.6; 3 + .9*2 - 1.5 = 3.3
    # A2 = 3.3; A1 = 4.6 (trace cut at the truncation); A0 = 1.4 + .45 * 4.6 = 3.47
    # deltas env 1: .9*.4 - .2 = .16; 1 - .4 = .6; .9*.3 - .1 = .17 -> A = .43, .6, .17
    expected = torch.tensor([[3.47, 0.43], [4.6, 0.6], [3.3, 0.17]])
    assert torch.allclose(adv, expected, atol=1e-6)
    assert torch.allclose(ret, expected + values, atol=1e-6)


def test_lambda_one_gives_monte_carlo_returns() -> None:
    g = torch.Generator().manual_seed(0)
    t = 6
    rewards = torch.randn(t, 1, generator=g)
    values = torch.randn(t, 1, generator=g)
    next_values = torch.cat((values[1:], torch.zeros(1, 1)))
    terminated = torch.zeros(t, 1, dtype=torch.bool)
    terminated[-1] = True
    _, ret = compute_gae(rewards, values, next_values, terminated, terminated, gamma=0.8, lam=1.0)
    mc = [sum(0.8**k * float(rewards[s + k]) for k in range(t - s)) for s in range(t)]
    assert torch.allclose(ret[:, 0], torch.tensor(mc), atol=1e-5)
