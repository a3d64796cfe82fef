"""Per-family encoders: each maps one family's observations to the shared latent width.

==========  =========================================  ==========================================
family      observation                                encoder
==========  =========================================  ==========================================
vector      float (D,)                                 :class:`MLPEncoder`
projected   float (32,)                                :class:`MLPEncoder`
pixels      uint8 (3, S, S)                            :class:`ConvEncoder` (patchify + conv)
text        int64 token ids (L,), 0 = padding          :class:`TokenTransformerEncoder`
audio       float (1, F, T) spectrogram                :class:`ConvEncoder` over freq x time, or
                                                       :class:`FrameEncoder` (one network per
                                                       time frame, shared)
==========  =========================================  ==========================================

A family without an entry in :data:`ENCODERS` gets one chosen from its observation space
(:func:`make_encoder`): a 1-D box gets an MLP, a 3-D box a CNN, a ``MultiDiscrete`` the token
transformer, anything else the modality-agnostic :class:`~metaxm.nn.tokens.SetTokenEncoder`.
Register a builder for your own family with :func:`register_encoder`.

Every encoder ends in a linear layer to ``latent_dim`` followed by a LayerNorm *without* affine
parameters: the latent of every family is normalised the same way, and the affine part lives
in the family's adapter (:mod:`metaxm.nn.adapter`), where adaptation can reach it cheaply.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor, nn

from metaxm.nn.layers import AttentionPool, SelfAttentionBlock, mlp

if TYPE_CHECKING:
    from metaxm.nn.agent import AgentConfig

EncoderBuilder = Callable[[gym.Space, "AgentConfig"], nn.Module]


def _out(width: int, latent_dim: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(width, latent_dim), nn.LayerNorm(latent_dim, elementwise_affine=False)
    )


def _scale(space: gym.Space) -> float:
    """1 / the largest absolute bound of a box (1/255 for images), so inputs are O(1)."""
    high = np.abs(np.concatenate([np.ravel(space.low), np.ravel(space.high)]))
    bound = float(high[np.isfinite(high)].max()) if np.isfinite(high).any() else 1.0
    return 1.0 / bound if bound > 0 else 1.0


def standardize_image(obs: Tensor) -> Tensor:
    """(N, C, H, W) -> float, each channel of each image centred, each image scaled to unit RMS."""
    x = obs.float()
    x = x - x.mean((2, 3), keepdim=True)
    return x / (x.pow(2).mean((1, 2, 3), keepdim=True).sqrt() + 1e-3)


def time_frames(obs: Tensor) -> Tensor:
    """A spectrogram (N, C, F, T) -> its time frames (N, T, C * F), standardised as an image
    (:func:`standardize_image`)."""
    return standardize_image(obs).permute(0, 3, 1, 2).flatten(2)


class MLPEncoder(nn.Module):
    """Flatten, scale to O(1), two hidden layers. For state-like vectors."""

    def __init__(self, space: gym.Space, config: AgentConfig) -> None:
        super().__init__()
        self.scale = _scale(space)
        d = int(np.prod(space.shape))
        w = config.encoder_width
        self.body = mlp([d, w, w], config.activation, out_act=True)
        self.out = _out(w, config.latent_dim)

    def forward(self, obs: Tensor) -> Tensor:
        """obs: (N, *shape) -> (N, latent_dim)."""
        return self.out(self.body(obs.flatten(1).float() * self.scale))


class ConvEncoder(nn.Module):
    """A small CNN for images (C, H, W) and spectrograms (1, F, T).

    The first layer cuts the input into non-overlapping ``patch`` x ``patch`` patches (stride =
    kernel = ``patch``, as a ViT stem; GridNav's pixels draw a cell as 3 or 4 pixels, so a patch
    holds about one cell), then ``conv_layers`` 3 x 3 convolutions mix neighbouring patches and
    a linear layer reads the whole map, with ReLUs as in convolutional RL agents. At 28 x 28
    this costs about a tenth of the Nature-CNN (Mnih et al. 2015) and learns GridNav faster on
    a CPU.

    Each input is standardised on its own first: the mean of each channel is subtracted and the
    result divided by its standard deviation (per-image standardisation). A scene is mostly
    background, and a variant with a bright background and small tiles would otherwise give
    latents that hardly vary between states, which PPO cannot get started from.
    """

    def __init__(self, space: gym.Space, config: AgentConfig, patch: int = 4) -> None:
        super().__init__()
        c, h, w = space.shape
        # zeros (the mean, after standardisation) pad H and W up to whole patches, so that no
        # row or column is cut off (a spectrogram of 6 features has 6 time frames)
        self.pad = (0, -w % patch, 0, -h % patch)
        ch = config.conv_channels
        layers: list[nn.Module] = [nn.Conv2d(c, ch, patch, stride=patch), nn.ReLU()]
        for _ in range(config.conv_layers):
            layers += [nn.Conv2d(ch, ch, 3, padding=1), nn.ReLU()]
        self.body = nn.Sequential(*layers, nn.Flatten())
        with torch.no_grad():
            flat = self.body(torch.zeros(1, c, h + self.pad[3], w + self.pad[1])).shape[1]
        self.fc = mlp([flat, config.encoder_width], "relu", out_act=True)
        self.out = _out(config.encoder_width, config.latent_dim)

    def forward(self, obs: Tensor) -> Tensor:
        """obs: (N, C, H, W) -> (N, latent_dim)."""
        x = standardize_image(obs)
        if any(self.pad):
            x = nn.functional.pad(x, self.pad)
        return self.out(self.fc(self.body(x)))


class TokenTransformerEncoder(nn.Module):
    """Token ids (L,) with 0 as padding: embeddings + positions, transformer blocks, pooling.

    Pooling uses ``config.pool_queries`` learned queries (set attention, Lee et al. 2019) whose
    outputs are concatenated, so several facts of a sentence (agent row, goal column, ...) reach
    the latent side by side.
    """

    def __init__(self, space: gym.Space, config: AgentConfig) -> None:
        super().__init__()
        nvec = np.asarray(space.nvec).ravel()
        vocab, length = int(nvec.max()), int(nvec.size)
        d = config.token_dim
        self.embed = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(length, d)
        self.blocks = nn.ModuleList(
            SelfAttentionBlock(d, config.token_heads) for _ in range(config.token_layers)
        )
        self.pool = AttentionPool(d, config.pool_queries)
        self.fc = mlp([self.pool.out_dim, config.encoder_width], config.activation, out_act=True)
        self.out = _out(config.encoder_width, config.latent_dim)
        self.register_buffer("positions", torch.arange(length), persistent=False)

    def forward(self, obs: Tensor) -> Tensor:
        """obs: (N, L) integer ids -> (N, latent_dim)."""
        ids = obs.long()
        pad = ids == 0  # (N, L)
        x = self.embed(ids) + self.pos(self.positions)  # (N, L, d)
        for block in self.blocks:
            x = block(x, pad)
        return self.out(self.fc(self.pool(x, pad)))


class FrameEncoder(nn.Module):
    """A spectrogram (C, F, T) read one time frame at a time by one shared network, then the
    frames' readings together (``agent.audio_encoder: frames``).

    Every frame of an ``audio`` render is one feature played as a tone by the same variant
    (base pitch, pitch scale, harmonics), so one network that reads a frame's C x F spectrum
    serves every frame. A few-shot fit of a new audio variant then learns how to hear a value
    from the frames that change in an episode (the agent's position) and reads the frames that
    do not (the goal's) with it; :class:`ConvEncoder`'s 4 x 4 patches mix the frames and learn
    each one apart. The spectrogram is standardised as in :class:`ConvEncoder`.
    """

    def __init__(self, space: gym.Space, config: AgentConfig) -> None:
        super().__init__()
        c, f, t = space.shape
        width = 2 * config.conv_channels
        self.frame = mlp([c * f, config.encoder_width, width], "relu", out_act=True)
        self.fc = mlp([t * width, config.encoder_width], "relu", out_act=True)
        self.out = _out(config.encoder_width, config.latent_dim)

    def forward(self, obs: Tensor) -> Tensor:
        """obs: (N, C, F, T) -> (N, latent_dim)."""
        return self.out(self.fc(self.frame(time_frames(obs)).flatten(1)))


def _audio(space: gym.Space, config: AgentConfig) -> nn.Module:
    if config.audio_encoder == "frames":
        return FrameEncoder(space, config)
    return ConvEncoder(space, config, patch=4)


def _pixels(space: gym.Space, config: AgentConfig) -> nn.Module:
    return ConvEncoder(space, config, patch=4)


ENCODERS: dict[str, EncoderBuilder] = {
    "vector": MLPEncoder,
    "projected": MLPEncoder,
    "pixels": _pixels,
    "text": TokenTransformerEncoder,
    "audio": _audio,
}


def register_encoder(family: str, builder: EncoderBuilder, overwrite: bool = False) -> None:
    """Use ``builder(observation_space, agent_config) -> nn.Module`` for ``family``'s encoder."""
    if family in ENCODERS and not overwrite:
        raise ValueError(f"an encoder for family {family!r} is already registered")
    ENCODERS[family] = builder


def make_encoder(
    family: str, space: gym.Space, config: AgentConfig, action_dim: int = 0
) -> nn.Module:
    """The encoder for ``family``: its registered one, else one chosen from ``space``.

    With ``config.encoder == "sensory"`` a channel-structured family (a box of at most
    :data:`~metaxm.nn.sensory.MAX_CHANNELS` entries) gets a parameter-free
    :class:`~metaxm.nn.sensory.SensoryChannels` for the agent's shared sensory encoder, which
    also reads the previous actions, encoded ``action_dim`` wide; with ``sensory_images:
    colours`` an RGB image family gets :class:`~metaxm.nn.symbol_channels.ColourChannels`, with
    ``sensory_text: words`` a token-id family :class:`~metaxm.nn.symbol_channels.WordChannels`.
    """
    if config.encoder == "sensory":
        from metaxm.nn.sensory import SensoryChannels, sensory_channels

        trial = config.sensory_memory == "trial"
        memory = {"trial": trial, "scaled": config.sensory_scaled}
        if sensory_channels(space) is not None:
            return SensoryChannels(space, config.sensory_window, action_dim, **memory)
        from metaxm.nn import symbol_channels as symbols

        if config.sensory_images == "colours" and symbols.is_image(space):
            return symbols.ColourChannels(space, config.sensory_window, action_dim, **memory)
        if config.sensory_text == "words" and symbols.is_sentence(space):
            return symbols.WordChannels(space, config.sensory_window, action_dim, **memory)
    if config.encoder == "tokens":
        from metaxm.nn.tokens import FamilyTokenizer

        return FamilyTokenizer(space, config)
    if family == "text" and config.text_encoder == "minilm":  # the frozen sentence encoder
        from metaxm.nn.instruction import SentenceTextEncoder

        return SentenceTextEncoder(space, config)
    if family in ENCODERS:
        return ENCODERS[family](space, config)
    return fallback_encoder(space, config)


def fallback_encoder(space: gym.Space, config: AgentConfig) -> nn.Module:
    """An encoder chosen from the observation space alone (for unregistered families)."""
    if isinstance(space, gym.spaces.MultiDiscrete):
        return TokenTransformerEncoder(space, config)
    if isinstance(space, gym.spaces.Box) and len(space.shape) == 1:
        return MLPEncoder(space, config)
    if isinstance(space, gym.spaces.Box) and len(space.shape) == 3:
        patch = 4 if min(space.shape[1:]) >= 16 else 1
        return ConvEncoder(space, config, patch=patch)
    from metaxm.nn.tokens import TokenEncoderFallback

    return TokenEncoderFallback(space, config)
