"""The adapter: the small module that few-shot adaptation changes for a new modality variant.

Form: a FiLM affine (Perez et al. 2018) plus a low-rank residual (LoRA, Hu et al. 2022) acting
on the encoder's normalised output ``e`` (width ``latent_dim``)::

    z = (1 + gamma) * e + beta + (e @ A) @ B   # gamma, beta (d,); A (d, r); B (r, d)

Why this form: the encoders end in a LayerNorm without affine parameters, so ``gamma`` and
``beta`` *are* that norm's affine part, a per-feature gain and offset that can re-weight and
re-centre every latent feature a modality variant shifts; the rank-``r`` term can additionally
mix features (e.g. undo a swap of two state channels) at ``2 * latent * r`` parameters. With
latent 64 and rank 4 an adapter has 640 parameters, small enough for MAML's inner loop and for
fitting from a handful of paired steps. It starts as the identity (``gamma = beta = B = 0``;
``A`` random, as LoRA does), so adding it never changes what an agent computes.

The agent holds one adapter per *family*: its parameters are the shared, meta-learned
initialisation. Adapting to one *variant* never edits them in place; it makes a copy
(``{name: p.clone() for name, p in agent.named_params("adapter", family).items()}``), adapts
the copy, and runs the agent with ``torch.func.functional_call(agent, copy, (obs, family))``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class Adapter(nn.Module):
    """FiLM + low-rank residual on the latent; the identity at initialisation.

    Args:
        dim: the latent width.
        rank: the rank ``r`` of the residual; 0 keeps only the FiLM affine.
    """

    def __init__(self, dim: int, rank: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(dim))
        self.beta = nn.Parameter(torch.zeros(dim))
        self.rank = rank
        if rank > 0:
            self.down = nn.Parameter(torch.zeros(dim, rank))
            self.up = nn.Parameter(torch.zeros(rank, dim))

    def reset_parameters(self, generator: torch.Generator) -> None:
        """gamma = beta = up = 0 (identity); down ~ N(0, 1 / dim), drawn from ``generator``."""
        with torch.no_grad():
            self.gamma.zero_()
            self.beta.zero_()
            if self.rank > 0:
                self.down.normal_(0.0, self.down.shape[0] ** -0.5, generator=generator)
                self.up.zero_()

    def forward(self, e: Tensor) -> Tensor:
        """e: (..., dim) -> (..., dim)."""
        z = e * (1.0 + self.gamma) + self.beta
        if self.rank > 0:
            z = z + (e @ self.down) @ self.up
        return z
