"""A modality-agnostic encoder: any observation as a set of tokens, pooled by attention.

Selected with ``agent.encoder: tokens``. Each family gets a parameter-free
:class:`FamilyTokenizer` (a learned embedding table only for token-id observations) that cuts an
observation into tokens of one fixed layout, whatever the family:

* ``PATCH`` values (a 4 x 4 patch of one image/spectrogram channel, one entry of a vector, or the
  embedding of one token id), zero-padded;
* Fourier features of where the token sits (channel, row, column), as in Perceiver
  (Jaegle et al. 2021), so order and geometry survive the set encoding.

One shared :class:`SetTokenEncoder` (linear token projection, transformer blocks, attention
pooling with learned queries, Lee et al. 2019) maps the token set to the latent. A family never
seen before therefore needs no new weights at all, which is what adapting to a brand-new family
without an encoder of its own requires.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor, nn

from metaxm.nn.encoders import _out, _scale, standardize_image
from metaxm.nn.layers import AttentionPool, SelfAttentionBlock, mlp

if TYPE_CHECKING:
    from metaxm.nn.agent import AgentConfig

PATCH = 16  # values per token
FREQS = 3  # Fourier frequencies per coordinate
COORD_DIM = 3 * 2 * FREQS
TOKEN_IN = PATCH + COORD_DIM
MAX_VECTOR_TOKENS = 64  # longer vectors are cut into chunks of PATCH values


def _fourier(coords: Tensor) -> Tensor:
    """coords: (L, 3) in [0, 1] -> (L, COORD_DIM) sin/cos features."""
    freqs = math.pi * 2.0 ** torch.arange(FREQS, dtype=torch.float32)  # (F,)
    x = coords[:, :, None] * freqs  # (L, 3, F)
    return torch.cat((x.sin(), x.cos()), 2).flatten(1)


class FamilyTokenizer(nn.Module):
    """Cuts one family's observations into (N, L, TOKEN_IN) tokens plus an (N, L) padding mask."""

    def __init__(self, space: gym.Space, config: AgentConfig) -> None:
        super().__init__()
        self.kind: str
        if isinstance(space, gym.spaces.MultiDiscrete):
            nvec = np.asarray(space.nvec).ravel()
            self.kind = "ids"
            self.embed = nn.Embedding(int(nvec.max()), PATCH)
            length = nvec.size
            coords = torch.stack(
                (
                    torch.zeros(length),
                    torch.arange(length) / max(length - 1, 1),
                    torch.zeros(length),
                ),
                1,
            )
        elif isinstance(space, gym.spaces.Box) and len(space.shape) == 3:
            self.kind = "image"
            c, h, w = space.shape
            self.pad_hw = (-h % 4, -w % 4)
            gh, gw = (h + self.pad_hw[0]) // 4, (w + self.pad_hw[1]) // 4
            ci, ri, wi = torch.meshgrid(
                torch.arange(c) / max(c - 1, 1),
                torch.arange(gh) / max(gh - 1, 1),
                torch.arange(gw) / max(gw - 1, 1),
                indexing="ij",
            )
            coords = torch.stack((ci, ri, wi), -1).reshape(-1, 3)
        elif isinstance(space, gym.spaces.Box):
            d = int(np.prod(space.shape))
            self.kind = "vector" if d <= MAX_VECTOR_TOKENS else "chunks"
            length = d if self.kind == "vector" else -(-d // PATCH)
            self.flat_dim = d
            coords = torch.stack(
                (
                    torch.zeros(length),
                    torch.arange(length) / max(length - 1, 1),
                    torch.zeros(length),
                ),
                1,
            )
        else:
            raise ValueError(f"the token encoder cannot read observations from {space}")
        self.scale = 1.0 if self.kind == "ids" else _scale(space)
        self.register_buffer("coords", _fourier(coords.float()), persistent=False)

    def forward(self, obs: Tensor) -> tuple[Tensor, Tensor | None]:
        n = obs.shape[0]
        pad = None
        if self.kind == "ids":
            ids = obs.long()
            values = self.embed(ids)  # (N, L, PATCH)
            pad = ids == 0
        elif self.kind == "image":
            x = standardize_image(obs)
            x = nn.functional.pad(x, (0, self.pad_hw[1], 0, self.pad_hw[0]))
            c, h, w = x.shape[1:]
            x = x.reshape(n, c, h // 4, 4, w // 4, 4).permute(0, 1, 2, 4, 3, 5)
            values = x.reshape(n, c * (h // 4) * (w // 4), PATCH)
        elif self.kind == "vector":
            x = obs.flatten(1).float() * self.scale  # (N, D)
            values = nn.functional.pad(x[:, :, None], (0, PATCH - 1))
        else:
            x = obs.flatten(1).float() * self.scale
            x = nn.functional.pad(x, (0, -self.flat_dim % PATCH))
            values = x.reshape(n, -1, PATCH)
        coords = self.coords.expand(n, *self.coords.shape)
        return torch.cat((values, coords), 2), pad


class SetTokenEncoder(nn.Module):
    """Shared across families: token projection, transformer blocks, attention pooling."""

    def __init__(self, config: AgentConfig) -> None:
        super().__init__()
        d = config.token_dim
        self.proj = nn.Linear(TOKEN_IN, d)
        self.blocks = nn.ModuleList(
            SelfAttentionBlock(d, config.token_heads) for _ in range(config.token_layers)
        )
        self.pool = AttentionPool(d, config.pool_queries)
        self.fc = mlp([self.pool.out_dim, config.encoder_width], config.activation, out_act=True)
        self.out = _out(config.encoder_width, config.latent_dim)

    def forward(self, tokens: Tensor, pad: Tensor | None) -> Tensor:
        """tokens: (N, L, TOKEN_IN); pad: (N, L) bool or None -> (N, latent_dim)."""
        x = self.proj(tokens)
        for block in self.blocks:
            x = block(x, pad)
        return self.out(self.fc(self.pool(x, pad)))


class TokenEncoderFallback(nn.Module):
    """Tokenizer + its own set encoder: the encoder of last resort for an unusual space."""

    def __init__(self, space: gym.Space, config: AgentConfig) -> None:
        super().__init__()
        self.tokenizer = FamilyTokenizer(space, config)
        self.encoder = SetTokenEncoder(config)

    def forward(self, obs: Tensor) -> Tensor:
        return self.encoder(*self.tokenizer(obs))
