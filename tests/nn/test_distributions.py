"""Action heads against torch.distributions, and their samplers against their probabilities."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from metaxm.nn.distributions import CategoricalHead, GaussianHead, action_head


def test_categorical_matches_torch() -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 4, generator=g)
    actions = torch.tensor([0, 1, 2, 3, 1])
    ref = torch.distributions.Categorical(logits=logits)
    head = CategoricalHead(4)
    assert torch.allclose(head.log_prob(logits, actions), ref.log_prob(actions), atol=1e-6)
    assert torch.allclose(head.entropy(logits), ref.entropy(), atol=1e-6)
    assert torch.equal(head.mode(logits), logits.argmax(1))
    assert torch.equal(head.encode(actions).argmax(1), actions)


def test_categorical_sampler_frequencies() -> None:
    probs = torch.tensor([0.1, 0.2, 0.3, 0.4])
    logits = probs.log().expand(40_000, 4)
    samples = CategoricalHead(4).sample(logits, torch.Generator().manual_seed(0))
    freq = torch.bincount(samples, minlength=4).float() / 40_000
    assert torch.allclose(freq, probs, atol=0.01)
    again = CategoricalHead(4).sample(logits, torch.Generator().manual_seed(0))
    assert torch.equal(samples, again)


def test_gaussian_matches_torch_in_normalised_units() -> None:
    g = torch.Generator().manual_seed(0)
    mean, log_std = torch.randn(6, 2, generator=g), torch.randn(6, 2, generator=g) * 0.3
    pd = torch.cat((mean, log_std), 1)
    a = torch.randn(6, 2, generator=g) * 0.1
    head = GaussianHead(2, scale=0.1)
    # in the world's units the policy is N(0.1 mean, 0.1 std); log_prob is of a / 0.1
    ref = torch.distributions.Normal(0.1 * mean, 0.1 * log_std.exp())
    world_logp = ref.log_prob(a).sum(1)
    assert torch.allclose(head.log_prob(pd, a), world_logp + 2 * np.log(0.1), atol=1e-5)
    assert torch.allclose(head.entropy(pd), ref.entropy().sum(1) - 2 * np.log(0.1), atol=1e-5)
    assert torch.allclose(head.mode(pd), 0.1 * mean)
    assert torch.allclose(head.encode(torch.full((1, 2), 0.05)), torch.full((1, 2), 0.5))
    s = head.sample(torch.tensor([1.0, -1.0, -1.0, 0.0]).expand(20_000, 4), g)
    assert torch.allclose(s.mean(0), torch.tensor([0.1, -0.1]), atol=0.003)
    assert torch.allclose(s.std(0), torch.tensor([0.1 * np.exp(-1.0), 0.1]).float(), atol=0.003)


def test_action_head_from_space() -> None:
    assert isinstance(action_head(gym.spaces.Discrete(3)), CategoricalHead)
    head = action_head(gym.spaces.Box(-0.1, 0.1, (2,), np.float32))
    assert isinstance(head, GaussianHead) and head.pd_dim == 4 and head.scale == pytest.approx(0.1)
    with pytest.raises(ValueError, match="no policy head"):
        action_head(gym.spaces.MultiBinary(3))


def test_explore_swaps_rows_for_uniform_actions_at_its_rate() -> None:
    from metaxm.nn.distributions import CategoricalHead, GaussianHead, explore

    head = CategoricalHead(4)
    action = torch.zeros(20_000, dtype=torch.long)
    g = torch.Generator().manual_seed(0)
    state = g.get_state()
    assert explore(head, action, 0.0, g) is action
    assert torch.equal(g.get_state(), state)  # rate 0 draws nothing
    swapped = explore(head, action, 0.5, g)
    # half the rows drawn afresh, a quarter of those land on action 0 again
    assert abs(float((swapped != 0).float().mean()) - 0.5 * 0.75) < 0.02
    every = explore(head, action, 1.0, g)
    counts = torch.bincount(every, minlength=4).float() / every.numel()
    assert torch.allclose(counts, torch.full((4,), 0.25), atol=0.02)
    gauss = GaussianHead(2, scale=3.0)
    cont = explore(gauss, torch.zeros(5000, 2), 1.0, g)
    assert cont.shape == (5000, 2) and float(cont.abs().max()) <= 3.0
    assert float(cont.std()) > 1.5  # uniform on [-3, 3]: std sqrt(3)
