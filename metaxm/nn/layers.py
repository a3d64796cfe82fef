"""Small building blocks shared by the encoders and cores: MLPs, attention, seeded init.

Everything here is written so that ``torch.func.functional_call``, ``grad`` and ``vmap`` can run
it: plain ``nn.Linear``/``nn.Conv2d``/``nn.Embedding`` modules, no in-place ops on parameters,
no Python branching on tensor values (padding masks are applied with ``masked_fill``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from metaxm.config.agent import Activation

_NEG = -1e9  # a finite "minus infinity": a row of only masked keys stays finite under softmax


def activation(name: Activation) -> nn.Module:
    """The activation module called ``name``."""
    return nn.Tanh() if name == "tanh" else nn.ReLU()


def mlp(sizes: list[int], act: Activation, out_act: bool = False) -> nn.Sequential:
    """Linear layers of the given widths with ``act`` between them (and after, if ``out_act``)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2 or out_act:
            layers.append(activation(act))
    return nn.Sequential(*layers)


class SelfAttentionBlock(nn.Module):
    """A pre-norm transformer block (Vaswani et al. 2017), written out nanoGPT-style.

    Args:
        dim: token width.
        heads: attention heads (``dim`` must be divisible by it).
    """

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"token width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x: Tensor, pad: Tensor | None = None) -> Tensor:
        """x: (N, L, C); pad: (N, L) bool, true where a token is padding. Returns (N, L, C)."""
        n, length, c = x.shape
        h = self.heads
        q, k, v = self.qkv(self.norm1(x)).split(c, dim=2)
        q, k, v = (t.reshape(n, length, h, c // h).transpose(1, 2) for t in (q, k, v))  # (N,h,L,c)
        att = q @ k.transpose(2, 3) / math.sqrt(c // h)  # (N, h, L, L)
        if pad is not None:
            att = att.masked_fill(pad[:, None, None, :], _NEG)
        y = (att.softmax(-1) @ v).transpose(1, 2).reshape(n, length, c)
        x = x + self.proj(y)
        return x + self.ff(self.norm2(x))


class AttentionPool(nn.Module):
    """Pools a set of tokens into ``queries`` vectors with learned queries (Lee et al. 2019, PMA).

    Args:
        dim: token width.
        queries: the number of learned queries; the output is their concatenation.
        query_std: the standard deviation of the queries' initial values (:func:`init_weights`).
    """

    def __init__(self, dim: int, queries: int, query_std: float = 0.02) -> None:
        super().__init__()
        self.query_std = query_std
        self.query = nn.Parameter(torch.zeros(queries, dim))
        self.key = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim)
        self.out_dim = queries * dim

    def forward(self, x: Tensor, pad: Tensor | None = None) -> Tensor:
        """x: (N, L, C); pad: (N, L) bool. Returns (N, queries * C)."""
        x = self.norm(x)
        att = self.key(x) @ self.query.t() / math.sqrt(x.shape[-1])  # (N, L, Q)
        if pad is not None:
            att = att.masked_fill(pad[:, :, None], _NEG)
        w = att.softmax(1)  # over tokens
        return (w.transpose(1, 2) @ x).flatten(1)  # (N, Q * C)


def init_weights(module: nn.Module, generator: torch.Generator, gain: float = math.sqrt(2)) -> None:
    """Re-initialise every parameter below ``module`` from ``generator``.

    Orthogonal weights with ``gain`` and zero biases for linear and convolution layers, as in
    the PPO implementation details of Huang et al. (2022); N(0, 0.02) for embeddings, and for
    learned queries unless their pool asks otherwise; LayerNorm keeps ones and zeros.
    """
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.Conv1d)):
            nn.init.orthogonal_(m.weight, gain, generator=generator)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, 0.0, 0.02, generator=generator)
        elif isinstance(m, AttentionPool):
            nn.init.normal_(m.query, 0.0, m.query_std, generator=generator)
