"""The sensory encoder: permutation invariance with history, what its window tells apart, its
memory in the recurrent state, and the errors that name a misuse."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import gymnasium as gym
import pytest
import torch
from sensory_stepping import stepped

from metaxm.config.agent import AgentConfig
from metaxm.errors import ConfigError
from metaxm.meta.trials import zero_actions
from metaxm.nn.agent import Agent
from metaxm.nn.layers import init_weights
from metaxm.nn.sensory import SensoryChannels, SensoryEncoder, answers
from metaxm.spec import check_spec, spec_from_dict

C, K, A = 7, 4, 3  # channels, window, action encoding width


@pytest.fixture(autouse=True)
def _no_grad() -> Iterator[None]:
    with torch.no_grad():
        yield


def _encoder(
    window: int = K, lags: int = 1, sign: Literal["learned", "invariant"] = "learned"
) -> tuple[SensoryEncoder, SensoryChannels]:
    config = AgentConfig(
        encoder="sensory",
        core="gru",
        sensory_window=window,
        sensory_lags=lags,
        sensory_sign=sign,
        latent_dim=16,
    )
    enc = SensoryEncoder(config, action_dim=A)
    init_weights(enc, torch.Generator().manual_seed(0))
    return enc.double(), SensoryChannels(gym.spaces.Box(-2.0, 2.0, (C,)), window, A)


def _history(t: int = 9, b: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    obs = torch.rand(t, b, C, generator=g, dtype=torch.float64) * 4 - 2
    actions = torch.nn.functional.one_hot(torch.randint(0, A, (t, b), generator=g), A).double()
    return obs, actions


def _run(
    enc: tuple[SensoryEncoder, SensoryChannels], obs: torch.Tensor, actions: torch.Tensor
) -> torch.Tensor:
    """The latents of every step, by stepping the encoder from an empty memory."""
    return stepped(*enc, obs, actions)[0]


def test_the_same_latent_for_any_channel_order_with_history_included() -> None:
    enc = _encoder()
    obs, actions = _history()
    z = _run(enc, obs, actions)
    for seed in range(5):
        perm = torch.randperm(C, generator=torch.Generator().manual_seed(seed))
        zp = _run(enc, obs[..., perm], actions)
        assert float((z - zp).abs().max()) < 1e-6
    # the history matters: the same last observation after another past gives another latent
    other = obs.clone()
    other[:-1] = obs[:-1].flip(0)
    assert float((_run(enc, other, actions)[-1] - z[-1]).abs().max()) > 1e-3


def test_a_rescaled_and_a_resigned_channel_are_told_apart_within_the_window() -> None:
    enc = _encoder()
    obs, actions = _history()
    x = obs[..., 0].clone()  # one moving channel; the rest are held still
    base = torch.zeros_like(obs)
    scaled, signed = base.clone(), base.clone()
    scaled[..., 0], signed[..., 0] = 0.5 * x, -x
    zs, zn = _run(enc, scaled, actions), _run(enc, signed, actions)
    assert float((zs[-1] - zn[-1]).norm(dim=-1).min()) > 1e-3
    # what lies before the window is forgotten: two channels that agree on the last K steps
    # give the same latent, whatever came before
    late = scaled.clone()
    late[:-K, :, 0] = signed[:-K, :, 0]
    assert float((_run(enc, late, actions)[-1] - zs[-1]).abs().max()) < 1e-12
    late[-K, :, 0] += 0.3  # one step inside the window differs: another latent
    assert float((_run(enc, late, actions)[-1] - zs[-1]).norm(dim=-1).min()) > 1e-4


def test_a_push_is_answered_by_a_velocity_at_the_first_lag_and_its_position_at_the_second() -> None:
    # a cart: each push moves the velocity at once and the position one step later
    # (x' = x + v, v' = v + push); each answer has the sign of its channel's gain
    g = torch.Generator().manual_seed(3)
    n, k = 4096, 8
    push = torch.randint(0, 2, (n, k), generator=g).double() * 2 - 1  # left -1, right +1
    v = torch.zeros(n, k + 1, dtype=torch.float64)
    x = torch.zeros(n, k + 1, dtype=torch.float64)
    for t in range(k):
        x[:, t + 1] = x[:, t] + v[:, t]
        v[:, t + 1] = v[:, t] + push[:, t]
    # the window's values are states 1..K, the push(0..K-1) of each step before them
    actions = torch.nn.functional.one_hot(((push + 1) / 2).long(), 2).double()  # (N, K, 2)
    for gain in (1.0, -1.0):
        for channel, lag in ((v, 1), (x, 2)):
            steps = (gain * channel[:, 1:]).diff(dim=1)[:, None]  # (N, 1, K - 1)
            both = answers(steps, actions, 2)  # (N, 1, 4): lag 1 left, right; lag 2 ...
            right = both.mean(0)[0, 2 * lag - 1]
            assert float(right) * gain > 0.05
            assert torch.equal(answers(steps, actions, 1), both[..., :2])


def test_the_same_latent_for_any_channel_order_with_two_lags() -> None:
    pair = _encoder(lags=2)
    obs, actions = _history()
    z = _run(pair, obs, actions)
    perm = torch.randperm(C, generator=torch.Generator().manual_seed(0))
    assert float((z - _run(pair, obs[..., perm], actions)).abs().max()) < 1e-6
    with pytest.raises(ValueError, match="sensory_lags"):
        AgentConfig(encoder="sensory", sensory_window=K, sensory_lags=K)


def test_sign_invariant_neurons_read_a_resigned_channel_as_the_same_sensor() -> None:
    obs, actions = _history()
    flip = torch.ones(C, dtype=torch.float64)
    flip[[0, 3, 4]] = -1.0  # three channels re-signed
    perm = torch.randperm(C, generator=torch.Generator().manual_seed(0))
    learned, invariant = _encoder(lags=2), _encoder(lags=2, sign="invariant")
    z = _run(invariant, obs, actions)
    assert float((z - _run(invariant, obs * flip, actions)).abs().max()) < 1e-12
    assert float((z - _run(invariant, (obs * flip)[..., perm], actions)).abs().max()) < 1e-6
    resigned = _run(learned, obs * flip, actions) - _run(learned, obs, actions)
    assert float(resigned.abs().max()) > 1e-3
    # a channel's level is still read: the same changes from another level (the channel moved
    # by a constant) give another latent
    moved = obs.clone()
    moved[..., 0] += 1.0
    assert float((_run(invariant, moved, actions) - z).norm(dim=-1).min()) > 1e-4
    # and a re-scaled channel is still another input (only the sign is built in)
    scaled = obs.clone()
    scaled[..., 0] *= 0.5
    assert float((_run(invariant, scaled, actions) - z).norm(dim=-1).min()) > 1e-4


def test_sequence_equals_stepping_with_resets() -> None:
    enc, channels = _encoder()
    obs, actions = _history(t=11, b=4)
    reset = torch.zeros(11, 4, dtype=torch.bool)
    reset[3, 0] = reset[7, 1] = reset[0, 2] = True
    g = torch.Generator().manual_seed(2)
    memory = torch.rand(4, channels.memory_dim, generator=g).double()
    z_seq, last_seq = enc.sequence(channels, obs, actions, reset, memory)
    z, m = stepped(enc, channels, obs, actions, reset, memory)
    assert float((z_seq - z).abs().max()) < 1e-12
    assert torch.allclose(last_seq, m)


def _agent() -> Agent:
    config = AgentConfig(encoder="sensory", core="gru", latent_dim=16, hidden=8)
    spaces = {
        "vector": gym.spaces.Box(-2.0, 2.0, (C,)),
        "audio": gym.spaces.Box(0.0, 1.0, (1, 4, 5)),  # 20 channels
        "pixels": gym.spaces.Box(0, 255, (3, 28, 28), dtype="uint8"),
    }
    return Agent(config, spaces, gym.spaces.Discrete(A))


def test_agent_carries_the_widest_memory_beside_the_gru_state() -> None:
    agent = _agent()
    assert agent.sensory("vector") and agent.sensory("audio") and not agent.sensory("pixels")
    # one set of sensory neurons for every channel family; the families' parts have no weights
    names = [n for n, _ in agent.named_parameters()]
    assert any(n.startswith("sensory_encoder.") for n in names)
    assert not any(n.startswith(("encoders.vector.", "encoders.audio.")) for n in names)
    assert "sensory_encoder.neuron.0.weight" in agent.param_names("adapter+encoder", "audio")
    assert agent.memory_dim == (agent.config.sensory_window - 1) * (20 + A)
    h = agent.initial_state(2)
    assert h.shape == (2, agent.config.hidden + agent.memory_dim)
    obs = torch.rand(2, C)
    a, r, d = zero_actions(agent, 2, "cpu"), torch.zeros(2), torch.ones(2, dtype=torch.bool)
    _, _, h1 = agent.step(obs, "vector", a, r, d, h)
    assert h1.shape == h.shape
    memory = h1[:, agent.config.hidden :]
    step_width = C + A  # the newest step sits at the end of the vector family's memory
    own = agent.encoders["vector"].memory_dim  # the vector family's part, at the front
    newest = memory[:, own - step_width : own]
    assert torch.equal(memory[:, own:], torch.zeros(2, agent.memory_dim - own))
    assert torch.allclose(newest[:, :C], obs / 2.0)  # scaled to O(1) by the box's bound, 2
    assert torch.equal(newest[:, C:], agent.head.encode(a))
    with pytest.raises(ValueError, match="sensory encoder, which needs its history"):
        agent.encode(obs, "vector")
    agent.encode(torch.zeros(2, 3, 28, 28, dtype=torch.uint8), "pixels")  # its own encoder


def test_a_sensory_encoder_outside_rl2_is_refused_in_one_line() -> None:
    with pytest.raises(ValueError, match="needs a recurrent agent"):
        Agent(AgentConfig(encoder="sensory"), {"vector": gym.spaces.Box(-1, 1, (3,))},
              gym.spaces.Discrete(2))  # fmt: skip
    data = {
        "world": {"name": "gridnav", "size": 5},
        "modalities": {"train": {"vector": 2}},
        "agent": {"encoder": "sensory"},
    }
    with pytest.raises(ConfigError, match="agent.encoder: sensory needs algo: rl2, not ppo"):
        check_spec(spec_from_dict(data))
    with pytest.raises(ConfigError, match="main.runs.ppo: agent.encoder: sensory needs algo"):
        check_spec(spec_from_dict({**data, "algo": "rl2"}))  # the default main job trains ppo
    check_spec(spec_from_dict({**data, "algo": "rl2", "main": {"runs": {"rl2": {}}}}))


def test_a_new_channel_family_is_read_by_the_trained_neurons_with_no_new_encoder_weights() -> None:
    agent = _agent()
    before = {n for n, _ in agent.named_parameters()}
    agent.add_family("projected", gym.spaces.Box(-1.0, 1.0, (32,)))
    added = {n for n, _ in agent.named_parameters()} - before
    assert added and all(n.startswith("adapters.projected.") for n in added)
    h = agent.initial_state(3)  # the memory widens to the new family's 32 channels
    assert agent.memory_dim == (agent.config.sensory_window - 1) * (32 + A)
    a, r, d = zero_actions(agent, 3, "cpu"), torch.zeros(3), torch.ones(3, dtype=torch.bool)
    pd, value, h1 = agent.step(torch.rand(3, 32) * 2 - 1, "projected", a, r, d, h)
    assert pd.shape == (3, A) and h1.shape == h.shape and bool(torch.isfinite(value).all())
