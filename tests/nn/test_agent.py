"""The agent: shapes, identity adapters, parameter subsets, seeding, torch.func purity, GRU."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch.func import functional_call, grad, vmap

from metaxm.nn import Agent, AgentConfig
from metaxm.nn.encoders import (
    ConvEncoder,
    MLPEncoder,
    TokenTransformerEncoder,
    standardize_image,
)
from metaxm.nn.tokens import FamilyTokenizer, TokenEncoderFallback

SPACES = {
    "vector": gym.spaces.Box(-2, 2, (8,), np.float32),
    "pixels": gym.spaces.Box(0, 255, (3, 28, 28), np.uint8),
    "text": gym.spaces.MultiDiscrete([30] * 12),
    "audio": gym.spaces.Box(0, 1, (1, 32, 8), np.float32),
}
SMALL = AgentConfig(latent_dim=16, encoder_width=16, conv_channels=4, token_dim=8, hidden=16)


def _obs(family: str, n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    space = SPACES[family]
    if isinstance(space, gym.spaces.MultiDiscrete):
        return torch.randint(0, int(space.nvec[0]), (n, *space.shape), generator=g)
    x = torch.rand(n, *space.shape, generator=g)
    return (x * 255).to(torch.uint8) if space.dtype == np.uint8 else x


def _agent(config: AgentConfig = SMALL, action: gym.Space | None = None, seed: int = 0) -> Agent:
    return Agent(config, SPACES, action or gym.spaces.Discrete(4), seed=seed)


@pytest.mark.parametrize("encoder", ["family", "tokens"])
def test_forward_shapes_every_family(encoder: str) -> None:
    agent = _agent(AgentConfig(**{**SMALL.__dict__, "encoder": encoder}))
    for family in SPACES:
        pd, value = agent(_obs(family, 5), family)
        assert pd.shape == (5, 4) and value.shape == (5,)
        assert torch.isfinite(pd).all() and torch.isfinite(value).all()


def test_gaussian_policy_outputs_mean_and_log_std() -> None:
    agent = _agent(action=gym.spaces.Box(-0.1, 0.1, (2,), np.float32))
    pd, _ = agent(_obs("vector", 3), "vector")
    assert pd.shape == (3, 4)
    assert torch.equal(pd[:, 2:], torch.full((3, 2), SMALL.init_log_std))


def test_encoders_chosen_by_family_and_by_space() -> None:
    agent = _agent()
    assert isinstance(agent.encoders["vector"], MLPEncoder)
    assert isinstance(agent.encoders["pixels"], ConvEncoder)
    assert isinstance(agent.encoders["text"], TokenTransformerEncoder)
    assert isinstance(agent.encoders["audio"], ConvEncoder)
    agent.add_family("mystery", gym.spaces.Box(0, 1, (4, 5), np.float32), seed=1)
    assert isinstance(agent.encoders["mystery"], TokenEncoderFallback)
    assert agent(torch.rand(2, 4, 5), "mystery")[0].shape == (2, 4)
    tokens = _agent(AgentConfig(**{**SMALL.__dict__, "encoder": "tokens"}))
    assert all(isinstance(e, FamilyTokenizer) for e in tokens.encoders.values())


@pytest.mark.parametrize("frames", [2, 6])
def test_audio_encoder_reads_every_frame_of_any_scene_width(frames: int) -> None:
    # GridNav with the goal hidden has 2 features (2 time frames, narrower than a 4 x 4 patch),
    # GridNavLang 6 (frames 5 and 6 beyond the last whole patch)
    encoder = ConvEncoder(gym.spaces.Box(0, 1, (1, 32, frames), np.float32), SMALL)
    g = torch.Generator().manual_seed(0)
    obs = torch.rand(3, 1, 32, frames, generator=g)
    z = encoder(obs)
    assert z.shape == (3, SMALL.latent_dim) and torch.isfinite(z).all()
    # swap two bins of the last frame: the image's mean and spread stay the same, so the
    # output moves only if the convolution sees that frame
    swapped = obs.clone()
    swapped[:, 0, [0, 1], -1] = obs[:, 0, [1, 0], -1]
    assert not torch.allclose(encoder(swapped), z)


def test_adapter_is_the_identity_at_initialisation() -> None:
    agent = _agent()
    obs = _obs("vector", 4)
    e = agent.encoders["vector"](obs)
    assert torch.equal(agent.encode(obs, "vector"), e)
    # the encoder's output is layer-normalised: zero mean, unit variance per row
    assert torch.allclose(e.mean(1), torch.zeros(4), atol=1e-5)
    assert torch.allclose(e.var(1, unbiased=False), torch.ones(4), atol=1e-3)


def test_param_subsets() -> None:
    agent = _agent()
    d, r = SMALL.latent_dim, SMALL.adapter_rank
    adapter = agent.named_params("adapter", "vector")
    assert sorted(adapter) == [f"adapters.vector.{k}" for k in ("beta", "down", "gamma", "up")]
    assert sum(p.numel() for p in adapter.values()) == 2 * d + 2 * d * r
    both = agent.param_names("adapter+encoder", "pixels")
    assert set(both) == {n for n, _ in agent.named_parameters() if ".pixels." in n}
    assert agent.param_names("all") == [n for n, _ in agent.named_parameters()]
    assert all(n.startswith("core.") for n in agent.param_names("core"))
    with pytest.raises(ValueError, match="needs one of the agent's families"):
        agent.param_names("adapter", "smell")


def test_seeded_init_is_reproducible_and_leaves_global_rng_alone() -> None:
    before = torch.get_rng_state()
    a, b, c = _agent(seed=3), _agent(seed=3), _agent(seed=4)
    assert torch.equal(torch.get_rng_state(), before)
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(pa, pb), name
    w = "encoders.vector.body.0.weight"
    assert not torch.equal(a.state_dict()[w], c.state_dict()[w])


def test_functional_adaptation_leaves_the_shared_init_untouched() -> None:
    agent = _agent()
    obs = _obs("text", 3)
    copy = {k: v.detach().clone() for k, v in agent.named_params("adapter", "text").items()}
    copy["adapters.text.beta"] = copy["adapters.text.beta"] + 1.0
    adapted = functional_call(agent, copy, (obs, "text"))[0]
    assert not torch.allclose(adapted, agent(obs, "text")[0])
    assert torch.equal(agent.adapters["text"].beta, torch.zeros(SMALL.latent_dim))
    # shifting beta by 1 is the same as running the core on z + 1
    z = agent.encode(obs, "text") + 1.0
    assert torch.allclose(adapted, agent.core(z)[0], atol=1e-6)


@pytest.mark.parametrize("family", ["vector", "pixels", "text"])
def test_vmapped_grad_matches_a_loop(family: str) -> None:
    agent = _agent()
    params = {k: v.detach() for k, v in agent.named_params("adapter+encoder", family).items()}
    obs = _obs(family, 6).unflatten(0, (2, 3))  # two tasks of three observations

    def loss(p: dict[str, torch.Tensor], o: torch.Tensor) -> torch.Tensor:
        pd, v = functional_call(agent, p, (o, family))
        return pd.logsumexp(-1).mean() + v.pow(2).mean()

    batched = vmap(grad(loss), in_dims=(None, 0))(params, obs)
    for i in range(2):
        single = grad(loss)(params, obs[i])
        for k in params:
            assert torch.allclose(batched[k][i], single[k], atol=1e-5), k


def test_gru_step_and_sequence_agree() -> None:
    agent = _agent(AgentConfig(**{**SMALL.__dict__, "core": "gru"}))
    t, b = 4, 3
    obs = _obs("vector", t * b).unflatten(0, (t, b))
    g = torch.Generator().manual_seed(1)
    prev_a = torch.randint(0, 4, (t, b), generator=g)
    prev_r = torch.randn(t, b, generator=g)
    done = torch.rand(t, b, generator=g) < 0.3
    h0 = agent.initial_state(b)
    pd_seq, v_seq, h_seq = agent.sequence(obs, "vector", prev_a, prev_r, done, h0)
    h = h0
    for i in range(t):
        pd, v, h = agent.step(obs[i], "vector", prev_a[i], prev_r[i], done[i], h)
        assert torch.allclose(pd, pd_seq[i], atol=1e-6) and torch.allclose(v, v_seq[i], atol=1e-6)
    assert torch.allclose(h, h_seq, atol=1e-6)
    assert pd_seq.shape == (t, b, 4) and h.shape == (b, SMALL.hidden)
    # the previous reward reaches the policy
    pd2 = agent.step(obs[0], "vector", prev_a[0], prev_r[0] + 1.0, done[0], h0)[0]
    assert not torch.allclose(pd2, pd_seq[0])


def test_a_core_without_the_reward_input_reads_no_reward() -> None:
    """agent.reward_input: false: the same weights, the previous reward read as 0, whatever it
    was; the episode's end and the previous action still reach the policy."""
    blind = _agent(AgentConfig(**{**SMALL.__dict__, "core": "gru", "reward_input": False}))
    seeing = _agent(AgentConfig(**{**SMALL.__dict__, "core": "gru"}))
    assert blind.state_dict().keys() == seeing.state_dict().keys()
    seeing.load_state_dict(blind.state_dict())
    obs, h0 = _obs("vector", 3), blind.initial_state(3)
    a, done = torch.tensor([0, 1, 2]), torch.tensor([False, True, False])
    zero, one = torch.zeros(3), torch.ones(3)
    pd0 = blind.step(obs, "vector", a, zero, done, h0)[0]
    assert torch.equal(blind.step(obs, "vector", a, one * 5, done, h0)[0], pd0)
    assert torch.equal(seeing.step(obs, "vector", a, zero, done, h0)[0], pd0)  # 0 is 0
    assert not torch.allclose(seeing.step(obs, "vector", a, one, done, h0)[0], pd0)
    assert not torch.allclose(blind.step(obs, "vector", a, zero, ~done, h0)[0], pd0)
    assert not torch.allclose(blind.step(obs, "vector", (a + 1) % 4, zero, done, h0)[0], pd0)


def test_gru_cell_equals_torch_gru_cell() -> None:
    agent = _agent(AgentConfig(**{**SMALL.__dict__, "core": "gru"}))
    core = agent.core
    cell = torch.nn.GRUCell(core.ih.in_features, core.hidden_dim)
    with torch.no_grad():
        cell.weight_ih.copy_(core.ih.weight)
        cell.bias_ih.copy_(core.ih.bias)
        cell.weight_hh.copy_(core.hh.weight)
        cell.bias_hh.copy_(core.hh.bias)
    x = torch.randn(5, core.ih.in_features, generator=torch.Generator().manual_seed(0))
    h = torch.randn(5, core.hidden_dim, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(core._cell(core.ih(x), h), cell(x, h), atol=1e-6)


def test_recurrent_agent_requires_its_inputs() -> None:
    agent = _agent(AgentConfig(**{**SMALL.__dict__, "core": "gru"}))
    with pytest.raises(ValueError, match="prev_action"):
        agent(_obs("vector", 2), "vector")
    with pytest.raises(ValueError, match="no recurrent state"):
        _agent().initial_state(2)


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="divisible"):
        AgentConfig(token_dim=10, token_heads=4)
    with pytest.raises(ValueError, match="latent_dim"):
        AgentConfig(latent_dim=0)


def test_conv_encoder_standardises_each_image() -> None:
    # a variant that brightens the background or changes contrast reaches the same latent
    agent = _agent()
    x = _obs("pixels", 4).float()
    shifted = x * 0.5 + torch.tensor([30.0, 0.0, 60.0]).view(1, 3, 1, 1)
    for family in ("pixels",):
        z, z2 = agent.encode(x, family), agent.encode(shifted, family)
        assert torch.allclose(z, z2, atol=1e-4)
    tokens = _agent(AgentConfig(**{**SMALL.__dict__, "encoder": "tokens"}))
    assert torch.allclose(tokens.encode(x, "pixels"), tokens.encode(shifted, "pixels"), atol=1e-4)


def test_frame_encoder_reads_every_frame_with_one_network() -> None:
    from metaxm.nn.encoders import FrameEncoder

    agent = _agent(AgentConfig(**{**SMALL.__dict__, "audio_encoder": "frames"}))
    encoder = agent.encoders["audio"]
    assert isinstance(encoder, FrameEncoder) and isinstance(_agent().encoders["audio"], ConvEncoder)
    obs = _obs("audio", 3)  # (3, 1, 32, 8): 8 frames
    assert encoder(obs).shape == (3, SMALL.latent_dim)
    # one network per frame: frame i's reading of a spectrum is frame j's reading of it
    x = obs.clone()
    x[:, 0, :, 3] = obs[:, 0, :, 0]
    frames = encoder.frame(standardize_image(x).permute(0, 3, 1, 2).flatten(2))  # (3, 8, w)
    assert torch.allclose(frames[:, 0], frames[:, 3])
    # and the frames stay apart after it: swapping two frames moves the latent
    swapped = obs[..., [1, 0, 2, 3, 4, 5, 6, 7]]
    assert not torch.allclose(encoder(swapped), encoder(obs))


def test_no_reward_input_outside_rl2_is_refused_in_one_line() -> None:
    from metaxm.errors import ConfigError
    from metaxm.spec import check_spec, spec_from_dict

    data = {
        "world": {"name": "gridnav", "size": 5},
        "modalities": {"train": {"vector": 2}},
        "agent": {"reward_input": False},
        "main": {"runs": {"rl2": {}}},
    }
    with pytest.raises(ConfigError, match="agent.reward_input: false needs algo: rl2, not ppo"):
        check_spec(spec_from_dict(data))
    check_spec(spec_from_dict({**data, "algo": "rl2"}))
