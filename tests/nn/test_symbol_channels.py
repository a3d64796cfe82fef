"""Symbol channels: what an image's and a sentence's tables hold, the windows against stepping,
and the latent the same for any palette and (with the sign built in) any dihedral transform of
the image, and for any cipher of the words."""

from __future__ import annotations

from collections.abc import Iterator

import gymnasium as gym
import pytest
import torch
from sensory_stepping import stepped

from metaxm.config.agent import AgentConfig
from metaxm.errors import ConfigError
from metaxm.meta.trials import zero_actions
from metaxm.nn.agent import Agent
from metaxm.nn.layers import init_weights
from metaxm.nn.sensory import SensoryEncoder
from metaxm.nn.symbol_channels import ColourChannels, WordChannels, colour_table, word_table
from metaxm.spec import check_spec, spec_from_dict

G, TILE, A, K = 5, 4, 4, 4  # grid side, tile pixels, actions, window
S = G * TILE
SPACE = gym.spaces.Box(0, 255, (3, S, S), dtype="uint8")


@pytest.fixture(autouse=True)
def _no_grad() -> Iterator[None]:
    with torch.no_grad():
        yield


def _draw(cells: torch.Tensor, palette: torch.Tensor) -> torch.Tensor:
    """cells (T, B, G, G) class ids -> images (T, B, 3, S, S) uint8 in ``palette`` (classes, 3)."""
    image = palette[cells].permute(0, 1, 4, 2, 3)  # (T, B, 3, G, G)
    return image.repeat_interleave(TILE, -1).repeat_interleave(TILE, -2).to(torch.uint8)


def _walks(t: int = 10, b: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Agents (class 2) walking on a background (0) with a goal (1), and a fourth colour (3)
    that comes and goes; and one-hot actions."""
    g = torch.Generator().manual_seed(0)
    pos = torch.randint(0, G, (b, 2), generator=g)
    cells = torch.zeros(t, b, G, G, dtype=torch.long)
    actions = torch.randint(0, A, (t, b), generator=g)
    moves = torch.tensor([[-1, 0], [1, 0], [0, -1], [0, 1]])
    for i in range(t):
        pos = (pos + moves[actions[i]]).clamp(0, G - 1)
        cells[i, :, 0, G - 1] = 1
        cells[i, torch.arange(b), pos[:, 0], pos[:, 1]] = 2
        cells[i, :, G - 1, 0] = torch.where(torch.rand(b, generator=g) < 0.5, 3, 0)
    return cells, torch.nn.functional.one_hot(actions, A).double()


def _encoder(sign: str = "invariant") -> tuple[SensoryEncoder, ColourChannels]:
    config = AgentConfig(
        encoder="sensory", core="gru", sensory_window=K, sensory_sign=sign, latent_dim=16
    )
    enc = SensoryEncoder(config, action_dim=A)
    init_weights(enc, torch.Generator().manual_seed(0))
    return enc.double(), ColourChannels(SPACE, K, A)


PALETTE = torch.tensor([[10, 20, 30], [200, 0, 0], [0, 200, 0], [0, 0, 200]])


def test_a_frame_table_holds_each_colour_where_it_lies_and_its_share() -> None:
    cells = torch.zeros(1, 1, G, G, dtype=torch.long)
    cells[0, 0, 1, 3] = 2  # row 1, column 3
    keys, values = colour_table(_draw(cells, PALETTE)[0], colours=4)
    rgb = PALETTE[[0, 2]]
    key = rgb[:, 0] * 65536 + rgb[:, 1] * 256 + rgb[:, 2] + 1  # background, agent
    assert keys[0, :2].tolist() == key.sort().values.tolist() and keys[0, 2:].tolist() == [0, 0]
    agent = int((keys[0] == key[1]).nonzero())
    centre = lambda i: (i + 0.5) * 2 / G - 1  # noqa: E731
    assert torch.allclose(values[0, agent], torch.tensor([centre(3), centre(1), 1 / G**2]))
    assert float(values[0, :, 2].sum()) == pytest.approx(1.0)
    assert values[0, 2:].abs().sum() == 0


def test_a_frame_with_more_colours_than_slots_keeps_the_smallest() -> None:
    cells = torch.arange(G * G).view(1, 1, G, G) % 4
    keys, _ = colour_table(_draw(cells, PALETTE)[0], colours=2)
    key = PALETTE[:, 0] * 65536 + PALETTE[:, 1] * 256 + PALETTE[:, 2] + 1
    assert keys[0].tolist() == key.sort().values[:2].tolist()


def test_sequence_equals_stepping_with_resets_and_colours_that_come_and_go() -> None:
    enc, channels = _encoder()
    cells, actions = _walks(t=11, b=3)
    obs = _draw(cells, PALETTE)
    reset = torch.zeros(11, 3, dtype=torch.bool)
    reset[4, 0] = reset[0, 2] = True
    memory = torch.zeros(3, channels.memory_dim).double()
    z_seq, last_seq = enc.sequence(channels, obs, actions, reset, memory)
    z, m = stepped(enc, channels, obs, actions, reset, memory)
    assert float((z_seq - z).abs().max()) < 1e-12
    assert torch.equal(last_seq, m)


def test_a_colour_absent_from_an_earlier_step_reads_zero_there() -> None:
    _, channels = _encoder()
    cells = torch.zeros(3, 1, G, G, dtype=torch.long)
    cells[2, 0, 0, 0] = 3  # the fourth colour appears at the last step only
    windows, _ = channels.windows(
        _draw(cells, PALETTE), torch.zeros(3, 1, A), None, torch.zeros(1, channels.memory_dim)
    )
    last = windows[2, 0, :, : channels.channels].view(K, -1, 3)  # (K, M, 3)
    present = last[-1, :, 2] > 0
    assert int(present.sum()) == 2
    new = int((last[-1, :, 2] == 1 / G**2).nonzero())
    assert last[:-1, new].abs().sum() == 0  # absent before, so zero there
    assert bool((last[1:, present & (last[-1, :, 2] > 0.5), 2] > 0.9).all())  # the background


def test_the_latent_is_the_same_for_any_palette_and_any_dihedral_transform() -> None:
    enc, channels = _encoder(sign="invariant")
    cells, actions = _walks(t=9, b=2)
    memory = torch.zeros(2, channels.memory_dim).double()
    z, _ = enc.sequence(channels, _draw(cells, PALETTE), actions, None, memory)
    other = torch.tensor([[90, 90, 90], [0, 0, 0], [255, 255, 0], [5, 250, 250]])
    for palette, turns, flip in ((other, 0, False), (PALETTE, 1, False), (other, 3, True)):
        moved = cells.rot90(turns, (-2, -1))
        moved = moved.flip(-1) if flip else moved
        z2, _ = enc.sequence(channels, _draw(moved, palette), actions, None, memory)
        assert float((z - z2).abs().max()) < 1e-9


def test_an_agent_reads_images_as_colour_channels_when_asked() -> None:
    config = AgentConfig(encoder="sensory", core="gru", sensory_images="colours", hidden=8)
    agent = Agent(config, {"pixels": SPACE}, gym.spaces.Discrete(A))
    assert agent.sensory("pixels")
    assert not any(n.startswith("encoders.pixels.") for n, _ in agent.named_parameters())
    h = agent.initial_state(2)
    a, r, d = zero_actions(agent, 2, "cpu"), torch.zeros(2), torch.ones(2, dtype=torch.bool)
    pd, value, h1 = agent.step(_draw(_walks(1, 2)[0], PALETTE)[0], "pixels", a, r, d, h)
    assert h1.shape == h.shape and bool(torch.isfinite(value).all())
    conv = Agent(
        AgentConfig(encoder="sensory", core="gru"), {"pixels": SPACE}, gym.spaces.Discrete(A)
    )
    assert not conv.sensory("pixels")  # the default: images keep their own encoder


def test_a_sentence_table_holds_where_each_word_stands_and_how_often_it_is_said() -> None:
    tokens = torch.tensor([[5, 9, 5, 7, 0, 0]])  # L = 6; word 5 twice, padding last
    keys, values = word_table(tokens, words=4)
    assert keys[0].tolist() == [6, 8, 10, 0]
    place = lambda i: (i + 0.5) * 2 / 6 - 1  # noqa: E731
    expected = [[(place(0) + place(2)) / 2, 0.5], [place(3), 0.25], [place(1), 0.25], [0, 0]]
    assert torch.allclose(values[0], torch.tensor(expected))


def test_word_windows_equal_stepping_and_read_the_same_for_any_cipher() -> None:
    enc, _ = _encoder()
    channels = WordChannels(gym.spaces.MultiDiscrete([12] * 8), K, A)
    g = torch.Generator().manual_seed(3)
    tokens = torch.randint(0, 12, (9, 3, 8), generator=g)
    actions = torch.nn.functional.one_hot(torch.randint(0, A, (9, 3), generator=g), A).double()
    memory = torch.zeros(3, channels.memory_dim).double()
    z_seq, _ = enc.sequence(channels, tokens, actions, None, memory)
    assert (
        float((z_seq - stepped(enc, channels, tokens, actions, None, memory)[0]).abs().max())
        < 1e-12
    )
    cipher = torch.cat((torch.zeros(1, dtype=torch.long), torch.randperm(11, generator=g) + 1))
    z_ciphered, _ = enc.sequence(channels, cipher[tokens], actions, None, memory)
    assert float((z_seq - z_ciphered).abs().max()) < 1e-12


@pytest.mark.parametrize(
    ("name", "value"), [("sensory_images", "colours"), ("sensory_text", "words")]
)
def test_symbol_channels_without_the_sensory_encoder_are_refused_in_one_line(
    name: str, value: str
) -> None:
    data = {
        "world": {"name": "gridnav", "size": 5},
        "algo": "rl2",
        "modalities": {"train": {"pixels": 2, "text": 2}},
        "agent": {name: value},
        "main": {"runs": {"rl2": {}}},
    }
    with pytest.raises(ConfigError, match=f"agent.{name}: {value} needs agent.encoder: sensory"):
        check_spec(spec_from_dict(data))
    check_spec(spec_from_dict({**data, "agent": {name: value, "encoder": "sensory"}}))
