"""``agent.sensory_scaled``: each neuron also reads its channel's value divided by the root mean
square of its values over the trial, which a channel's gain does not change."""

from __future__ import annotations

import gymnasium as gym
import pytest
import torch
from sensory_stepping import stepped
from test_channel_stats import A, C, K, _walk

from metaxm.config.agent import AgentConfig
from metaxm.nn.agent import Agent
from metaxm.nn.channel_stats import ChannelStats
from metaxm.nn.layers import init_weights
from metaxm.nn.sensory import SensoryChannels, SensoryEncoder
from metaxm.nn.symbol_channels import ColourChannels


def _stats(x: torch.Tensor, e: torch.Tensor, first: torch.Tensor, scaled: bool) -> torch.Tensor:
    before = torch.cat((torch.zeros_like(x[:1]), x[:-1]))
    stats = ChannelStats(C, A, scaled)
    carry = torch.zeros(x.shape[1], stats.width, dtype=x.dtype)
    return stats(x, before, e, first, None, carry)[0]


def test_the_scaled_value_is_the_value_over_the_trials_root_mean_square() -> None:
    x, e, first = _walk()
    plain, scaled = _stats(x, e, first, False), _stats(x, e, first, True)
    odd = 2 * A + 1
    assert scaled.shape[-1] == plain.shape[-1] + 1 == ChannelStats(C, A, True).features
    assert torch.equal(scaled[..., :odd], plain[..., :odd])  # the others are where they were
    assert torch.equal(scaled[..., odd + 1 :], plain[..., odd:])
    steps = torch.arange(1, x.shape[0] + 1, dtype=x.dtype)[:, None, None]
    rms = (x.square().cumsum(0) / steps).sqrt()
    assert torch.allclose(scaled[..., odd], x / (rms + 1e-3))
    assert ChannelStats(C, A, True).odd == ChannelStats(C, A).odd + 1
    assert ChannelStats(C, A, True).width == ChannelStats(C, A).width  # no new sums


def test_a_channels_gain_does_not_change_its_scaled_value() -> None:
    x, e, first = _walk(t=20, seed=3)
    gain = torch.tensor([0.5, 2.0, 1.0, 0.7, 1.9], dtype=x.dtype)
    odd = 2 * A + 1
    one, scaled = _stats(x, e, first, True), _stats(x * gain, e, first, True)
    assert torch.allclose(one[..., odd], scaled[..., odd], rtol=0.01)  # up to the floor
    assert not torch.allclose(one[..., 2 * A], scaled[..., 2 * A])  # the mean is not


def test_still_blind_to_the_order_and_the_signs_of_the_channels() -> None:
    config = AgentConfig(
        encoder="sensory", core="gru", sensory_window=K, sensory_sign="invariant",
        sensory_memory="trial", sensory_scaled=True, latent_dim=16,
    )  # fmt: skip
    enc = SensoryEncoder(config, action_dim=A)
    init_weights(enc, torch.Generator().manual_seed(0))
    enc = enc.double()
    channels = SensoryChannels(gym.spaces.Box(-1.0, 1.0, (C,)), K, A, trial=True, scaled=True)
    x, e, first = _walk(seed=2)
    flip = torch.tensor([-1.0, 1.0, -1.0, 1.0, -1.0], dtype=x.dtype)
    perm = torch.tensor([3, 0, 4, 1, 2])
    with torch.no_grad():
        z = stepped(enc, channels, x, e, None, None, first)[0]
        z_flip = stepped(enc, channels, (x * flip)[..., perm], e, None, None, first)[0]
        z_scaled = stepped(enc, channels, x * 3.0, e, None, None, first)[0]
    assert float((z - z_flip).abs().max()) < 1e-9
    assert float((z - z_scaled).abs().max()) > 1e-4  # the raw values still read their scale


def test_an_agent_reads_the_scaled_value_and_needs_trial_memory() -> None:
    config = AgentConfig(
        encoder="sensory", core="gru", sensory_window=K, sensory_memory="trial",
        sensory_scaled=True, sensory_images="colours", latent_dim=16, hidden=8,
    )  # fmt: skip
    enc = SensoryEncoder(config, action_dim=A)
    init_weights(enc, torch.Generator().manual_seed(0))
    enc = enc.double()
    channels = SensoryChannels(gym.spaces.Box(-1.0, 1.0, (C,)), K, A, trial=True, scaled=True)
    x, e, first = _walk(t=14, b=4, seed=1)
    reset = torch.zeros(14, 4, dtype=torch.bool)
    reset[5, 0] = True
    memory = torch.zeros(4, channels.memory_dim, dtype=x.dtype)
    with torch.no_grad():
        z_seq, m_seq = enc.sequence(channels, x, e, reset, memory, first)
        z, m = stepped(enc, channels, x, e, reset, memory, first)
    assert torch.equal(m_seq, m) and float((z_seq - z).abs().max()) < 1e-12
    plain = AgentConfig(
        encoder="sensory", core="gru", sensory_window=K, sensory_memory="trial", latent_dim=16
    )
    width = enc.neuron[0].in_features
    assert width == SensoryEncoder(plain, action_dim=A).neuron[0].in_features + 1
    image = gym.spaces.Box(0, 255, (3, 6, 6), dtype="uint8")
    colours = ColourChannels(image, K, A, trial=True, scaled=True)
    assert colours.zero_rows == ChannelStats(0, A, True).features
    agent = Agent(config, {"vector": gym.spaces.Box(-1.0, 1.0, (C,)), "pixels": image},
                  gym.spaces.Discrete(A))  # fmt: skip
    assert all(agent.sensory(f) for f in ("vector", "pixels"))
    with pytest.raises(ValueError, match="sensory_scaled needs sensory_memory: trial"):
        AgentConfig(encoder="sensory", core="gru", sensory_scaled=True)
