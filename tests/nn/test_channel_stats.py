"""A sensory neuron's memory of its channel over the trial (``agent.sensory_memory: trial``):
what the statistics say of a channel, where they restart, that a chunk equals stepping, that
the encoder stays blind to the channels' order and signs, and that symbol channels read their
window alone beside them."""

from __future__ import annotations

from collections.abc import Iterator

import gymnasium as gym
import pytest
import torch
from sensory_stepping import stepped

from metaxm.config.agent import AgentConfig
from metaxm.meta.trials import zero_actions
from metaxm.nn.agent import Agent
from metaxm.nn.channel_stats import ChannelStats
from metaxm.nn.layers import init_weights
from metaxm.nn.sensory import SensoryChannels, SensoryEncoder
from metaxm.nn.symbol_channels import ColourChannels, WordChannels

C, K, A = 5, 3, 3  # channels, window, actions (one-hot)


@pytest.fixture(autouse=True)
def _no_grad() -> Iterator[None]:
    with torch.no_grad():
        yield


def _walk(t: int = 12, b: int = 4, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Channel 0 moves +0.5 after action 0 and -0.5 after action 1; channel 1 is a goal, still
    within an episode and moved to a new value at each episode's start; the rest are noise."""
    g = torch.Generator().manual_seed(seed)
    acts = torch.randint(0, A, (t, b), generator=g)
    first = torch.zeros(t, b, dtype=torch.bool)
    first[0], first[t // 2] = True, True  # two episodes in one trial
    x = torch.zeros(t, b, C, dtype=torch.float64)
    for s in range(t):
        if first[s, 0]:
            x[s, :, 0], x[s, :, 1] = 0.0, torch.rand(b, generator=g, dtype=torch.float64)
        else:
            step = (acts[s] == 0).double() * 0.5 - (acts[s] == 1).double() * 0.5
            x[s, :, 0], x[s, :, 1] = x[s - 1, :, 0] + step, x[s - 1, :, 1]
        x[s, :, 2:] = torch.rand(b, C - 2, generator=g, dtype=torch.float64) - 0.5
    return x, torch.nn.functional.one_hot(acts, A).double(), first


def test_the_statistics_say_how_a_channel_answers_each_action_over_the_whole_trial() -> None:
    x, e, first = _walk()
    before = torch.cat((torch.zeros_like(x[:1]), x[:-1]))
    stats, sums = ChannelStats(C, A)(
        x, before, e, first, None,
        torch.zeros(4, ChannelStats(C, A).width, dtype=x.dtype),
    )  # fmt: skip
    last = stats[-1]  # (B, C, 2A + 3): slopes and values per action, mean, spread, RMS change
    moved = ~first
    n = (e * moved[..., None]).sum(0)  # (B, A) counted pushes
    rms = (0.25 * (n[:, 0] + n[:, 1]) / moved.sum(0)).sqrt()
    assert torch.allclose(last[:, 0, 0], 0.5 * n[:, 0] / (n[:, 0] + 1) / (rms + 1e-3))
    assert torch.allclose(last[:, 0, 1], -0.5 * n[:, 1] / (n[:, 1] + 1) / (rms + 1e-3))
    assert torch.allclose(last[:, 0, 2], torch.zeros(4, dtype=x.dtype))
    assert torch.allclose(last[:, 0, -1], rms)
    # the goal never moved within an episode: no answer, no change, though its value did
    # change between the episodes (the jump at the second episode's start is not counted)
    assert float(last[:, 1, :A].abs().max()) == 0.0 and float(last[:, 1, -1].abs().max()) == 0.0
    goals = x[[0, 6], :, 1]
    assert torch.allclose(last[:, 1, 2 * A], (6 * goals).sum(0) / 12)  # the mean over both
    assert float(last[:, 1, 2 * A + 1].min()) > 0.0  # and a spread
    assert sums.shape == (4, ChannelStats(C, A).width)


def test_the_statistics_say_which_way_the_agent_goes_for_a_channel() -> None:
    # a goal channel: the agent takes action 0 in the episodes where it is high, 1 where low
    t, b = 40, 3
    goal = torch.tensor([0.9, -0.6, 0.7, -0.8], dtype=torch.float64).repeat_interleave(10)
    first = torch.zeros(t, b, dtype=torch.bool)
    first[::10] = True
    x = torch.zeros(t, b, C, dtype=torch.float64)
    x[..., 1] = goal[:, None] * torch.tensor([1.0, -1.0, 0.5], dtype=torch.float64)
    acts = torch.where(goal > 0, 0, 1)[:, None].expand(t, b)
    acts = torch.cat((acts[:1], acts[:-1]))  # the action chosen at step t is read at t + 1
    e = torch.nn.functional.one_hot(acts, A).double()
    before = torch.cat((torch.zeros_like(x[:1]), x[:-1]))
    stats, _ = ChannelStats(C, A)(
        x, before, e, first, None,
        torch.zeros(b, ChannelStats(C, A).width, dtype=x.dtype),
    )  # fmt: skip
    given = stats[-1, :, 1, A : 2 * A]  # (B, A): the goal's value when each action was chosen
    assert float(given[0, 0]) > 0.5 and float(given[0, 1]) < -0.5  # high before 0, low before 1
    assert torch.allclose(given[1], -given[0])  # re-signed: the other way
    assert torch.allclose(given[2], given[0], atol=0.01)  # re-scaled: the same, in its spread
    assert float(given[:, 2].abs().max()) == 0.0  # an action never chosen says nothing


def test_the_statistics_restart_where_a_trial_starts_and_nowhere_else() -> None:
    x, e, first = _walk()
    channels = SensoryChannels(gym.spaces.Box(-1.0, 1.0, (C,)), K, A, trial=True)
    memory = torch.zeros(4, channels.memory_dim, dtype=x.dtype)
    reset = torch.zeros(12, 4, dtype=torch.bool)
    windows, _ = channels.windows(x, e, None, memory, first)
    assert windows.shape == (12, 4, K + 2 * A + 3, C + A)
    # the second episode starts with the first one's statistics: they carry across it
    stats = windows[:, :, K:, :C]
    assert float((stats[6] - stats[0]).abs().max()) > 0.1
    # a trial starting at step 6 of environment 0 restarts them there
    reset[6, 0] = True
    restarted, _ = channels.windows(x, e, reset, memory, first)
    alone, _ = channels.windows(x[6:], e[6:], None, memory, first[6:])
    assert torch.equal(restarted[6:, 0, K:], alone[:, 0, K:])
    assert torch.equal(restarted[:, 1:], windows[:, 1:])
    with pytest.raises(ValueError, match="needs the done flags"):
        channels.windows(x, e, None, memory)


def _encoder(sign: str = "invariant") -> tuple[SensoryEncoder, SensoryChannels]:
    config = AgentConfig(
        encoder="sensory", core="gru", sensory_window=K, sensory_sign=sign,
        sensory_memory="trial", latent_dim=16,
    )  # fmt: skip
    enc = SensoryEncoder(config, action_dim=A)
    init_weights(enc, torch.Generator().manual_seed(0))
    channels = SensoryChannels(gym.spaces.Box(-1.0, 1.0, (C,)), K, A, trial=True)
    return enc.double(), channels


def test_a_chunk_equals_stepping_and_reads_the_statistics() -> None:
    enc, channels = _encoder()
    x, e, first = _walk(t=14, b=4, seed=1)
    reset = torch.zeros(14, 4, dtype=torch.bool)
    reset[5, 0] = reset[9, 2] = True
    memory = torch.zeros(4, channels.memory_dim, dtype=x.dtype)
    z_seq, m_seq = enc.sequence(channels, x, e, reset, memory, first)
    z, m = stepped(enc, channels, x, e, reset, memory, first)
    assert torch.equal(m_seq, m)  # the sums added in the same order: the same bits
    assert float((z_seq - z).abs().max()) < 1e-12  # a batched matmul rounds its own way
    # two windows alike with other trials behind them: another latent (the window alone would
    # give the same one)
    other = x.clone()
    other[:4, :, 0] *= -1.0
    assert torch.equal(other[-K:], x[-K:])
    z_other = stepped(enc, channels, other, e, None, None, first)[0]
    z_x = stepped(enc, channels, x, e, None, None, first)[0]
    assert float((z_other[-1] - z_x[-1]).norm(dim=-1).min()) > 1e-4


def test_still_blind_to_the_order_and_the_signs_of_the_channels() -> None:
    enc, channels = _encoder()
    x, e, first = _walk(seed=2)
    z = stepped(enc, channels, x, e, None, None, first)[0]
    flip = torch.tensor([-1.0, 1.0, -1.0, 1.0, -1.0], dtype=x.dtype)
    perm = torch.tensor([3, 0, 4, 1, 2])
    z_flip = stepped(enc, channels, (x * flip)[..., perm], e, None, None, first)[0]
    assert float((z - z_flip).abs().max()) < 1e-9


def test_trial_memory_needs_a_window_of_two() -> None:
    with pytest.raises(ValueError, match="sensory_memory: trial needs sensory_window >= 2"):
        AgentConfig(encoder="sensory", core="gru", sensory_memory="trial", sensory_window=1)
    with pytest.raises(ValueError, match="sensory_window >= 2"):
        SensoryChannels(gym.spaces.Box(-1.0, 1.0, (C,)), 1, A, trial=True)


def test_symbol_families_read_their_window_alone_beside_channels_that_remember() -> None:
    """Colours and words move between slots, so under trial memory their statistic rows are
    zero: the windows are the window-only ones plus those rows, and the memory carries no
    sums. One agent then reads a vector family, which remembers, and images and sentences."""
    g = torch.Generator().manual_seed(5)
    image = gym.spaces.Box(0, 255, (3, 6, 6), dtype="uint8")
    sentence = gym.spaces.MultiDiscrete([9] * 7)
    grey = torch.randint(0, 3, (6, 2, 1, 6, 6), generator=g) * 100
    obs = {
        "pixels": grey.expand(-1, -1, 3, -1, -1),
        "text": torch.randint(0, 9, (6, 2, 7), generator=g),
    }
    e = torch.nn.functional.one_hot(torch.randint(0, A, (6, 2), generator=g), A).double()
    first = torch.zeros(6, 2, dtype=torch.bool)
    rows = ChannelStats(0, A).features
    for family, make, space in (
        ("pixels", ColourChannels, image),
        ("text", WordChannels, sentence),
    ):
        alone, remembering = make(space, K, A), make(space, K, A, trial=True)
        assert remembering.memory_dim == alone.memory_dim  # no sums carried
        memory = torch.zeros(2, alone.memory_dim, dtype=torch.float64)
        w_alone, m_alone = alone.windows(obs[family], e, None, memory, first)
        w_trial, m_trial = remembering.windows(obs[family], e, None, memory, first)
        assert w_trial.shape[2] == K + rows
        assert torch.equal(w_trial[:, :, :K], w_alone) and torch.equal(m_trial, m_alone)
        assert not w_trial[:, :, K:].any()
    config = AgentConfig(
        encoder="sensory", core="gru", sensory_window=K, sensory_memory="trial",
        sensory_images="colours", sensory_text="words", hidden=8,
    )  # fmt: skip
    spaces = {"vector": gym.spaces.Box(-1.0, 1.0, (C,)), "pixels": image, "text": sentence}
    agent = Agent(config, spaces, gym.spaces.Discrete(A))
    assert all(agent.sensory(f) for f in spaces)
    for family in ("pixels", "text"):
        h = agent.initial_state(2)
        a, r = zero_actions(agent, 2, "cpu"), torch.zeros(2)
        _, value, h1 = agent.step(obs[family][0], family, a, r, torch.ones(2, dtype=torch.bool), h)
        assert h1.shape == h.shape and bool(torch.isfinite(value).all())
