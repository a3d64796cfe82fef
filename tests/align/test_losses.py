"""InfoNCE against hand-computed values; masking of duplicate states; the functional path."""

from __future__ import annotations

import math

import pytest
import torch

from metaxm.align.losses import (
    AlignmentLoss,
    encode,
    info_nce,
    multi_view_info_nce,
    paired_infonce,
)
from metaxm.align.pairs import PairedSampler
from metaxm.config.align import AlignConfig
from metaxm.nn.agent import build_agent


def test_info_nce_identity_pairs_hand_computed() -> None:
    z = torch.eye(2)
    # logits = I / 1: each row's CE is -1 + log(e^1 + e^0) = log(1 + e^-1), both directions
    assert float(info_nce(z, z, 1.0)) == pytest.approx(math.log(1 + math.exp(-1)), abs=1e-6)


def test_info_nce_asymmetric_hand_computed() -> None:
    za = torch.tensor([[1.0, 0.0], [0.0, 3.0]])  # normalised: e1, e2
    zb = torch.tensor([[1.0, 1.0], [0.0, 2.0]])  # normalised: (1, 1) / sqrt 2, e2
    # logits = cos / 0.5 = [[sqrt 2, 0], [sqrt 2, 2]]
    r = math.sqrt(2.0)
    rows = (-r + math.log(math.exp(r) + 1.0)) + (-2.0 + math.log(math.exp(r) + math.exp(2.0)))
    cols = math.log(2.0) + (-2.0 + math.log(1.0 + math.exp(2.0)))
    expected = 0.5 * (rows / 2 + cols / 2)
    assert float(info_nce(za, zb, 0.5)) == pytest.approx(expected, abs=1e-6)
    # a 0-d tensor temperature gives the same value and a gradient
    t = torch.tensor(0.5, requires_grad=True)
    loss = info_nce(za, zb, t)
    loss.backward()
    assert float(loss.detach()) == pytest.approx(expected, abs=1e-6)
    assert t.grad is not None and float(t.grad) != 0.0


def test_info_nce_is_log_b_for_uninformative_latents() -> None:
    z = torch.ones(8, 4)
    assert float(info_nce(z, z, 0.1)) == pytest.approx(math.log(8), abs=1e-5)


def test_duplicate_states_are_not_negatives() -> None:
    z = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    unmasked = float(info_nce(z, z, 1.0))
    masked = float(info_nce(z, z, 1.0, state_ids=torch.tensor([0, 0, 1])))
    # rows 0 and 1 are one state: masking leaves each of them its positive against row 2 only;
    # row 2 keeps both as negatives (the logits are symmetric, so both directions agree)
    e = math.exp(-1)
    expected = (2 * math.log(1 + e) + math.log(1 + 2 * e)) / 3
    assert masked == pytest.approx(expected, abs=1e-6)
    assert unmasked > masked


def test_multi_view_is_the_mean_over_pairs() -> None:
    g = torch.Generator().manual_seed(0)
    a, b, c = (torch.randn(6, 3, generator=g) for _ in range(3))
    expected = (info_nce(a, b, 0.2) + info_nce(a, c, 0.2) + info_nce(b, c, 0.2)) / 3
    assert float(multi_view_info_nce([a, b, c], 0.2)) == pytest.approx(float(expected), rel=1e-6)
    with pytest.raises(ValueError, match="2 views"):
        multi_view_info_nce([a], 0.2)


def test_paired_infonce_with_params_matches_loaded_agent(make_spec) -> None:
    spec = make_spec()
    agent = build_agent(spec)
    sampler = PairedSampler.from_spec(spec, seed=3)
    batch = sampler.sample()
    own = paired_infonce(agent, batch, 0.1)
    params = {k: v.detach().clone() for k, v in agent.named_params("adapter", "vector").items()}
    again = paired_infonce(agent, batch, 0.1, params=params)
    assert float(again.detach()) == pytest.approx(float(own.detach()))
    params["adapters.vector.beta"] = params["adapters.vector.beta"] + 0.5
    shifted = encode(agent, batch.obs[0], "vector", params)
    with torch.no_grad():
        agent.adapters["vector"].beta.add_(0.5)
    assert torch.allclose(shifted, agent.encode(batch.obs[0], "vector"), atol=1e-6)


def test_alignment_loss_learned_temperature_and_vae(make_spec) -> None:
    spec = make_spec()
    agent = build_agent(spec)
    batch = PairedSampler.from_spec(spec, seed=1).sample()
    fixed = AlignmentLoss(AlignConfig(temperature=0.2, learn_temperature=False), agent)
    with torch.no_grad():
        loss, stats = fixed(agent, batch)
        assert float(loss) == pytest.approx(float(paired_infonce(agent, batch, 0.2)), rel=1e-6)
    assert not fixed.log_inv_temperature.requires_grad
    learned = AlignmentLoss(AlignConfig(temperature=0.2, learn_temperature=True), agent)
    learned(agent, batch)[0].backward()
    assert learned.log_inv_temperature.grad is not None
    assert float(learned.temperature.detach()) == pytest.approx(0.2, rel=1e-6)
    vae = AlignmentLoss(AlignConfig(loss="vae"), agent, seed=0)
    loss, stats = vae(agent, batch)
    loss.backward()
    assert {"vae_recon", "vae_kl", "align_loss"} <= set(stats)
    assert agent.encoders["vector"].out[0].weight.grad is not None
    again = AlignmentLoss(AlignConfig(loss="vae"), agent, seed=0)
    with torch.no_grad():
        assert float(again(agent, batch)[0]) == pytest.approx(float(loss.detach()), rel=1e-6)
