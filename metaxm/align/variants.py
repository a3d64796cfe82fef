"""One adapter per training variant, applied row by row: the pretraining form of the adapters.

The agent holds one adapter per *family*; adapting to a *variant* means fitting a copy of it
(:mod:`metaxm.nn.adapter`). Pretraining can do the same for every training variant at once:
:class:`VariantAdapters` keeps a stacked copy of the family adapter per (family, variant) of a
pool and applies, to each row of a batch, the adapter of that row's variant, so a batch mixing
variants costs one gather. With them the shared encoders need not tell the variants apart from
a single observation (a ``vector`` variant permutes and rescales the state features, which an
encoder cannot undo without knowing which variant it reads); each variant's adapter maps the
encoder's output onto the shared latent instead, which is the job the design gives adapters.

:meth:`VariantAdapters.params` returns one variant's adapter under the agent's parameter names,
ready for ``encode(agent, obs, family, params)`` or ``torch.func.functional_call``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from metaxm.nn.agent import Agent

FIELDS = ("gamma", "beta", "down", "up")


def features(agent: Agent, obs: Tensor, family: str) -> Tensor:
    """The encoder's output ``e`` (N, latent_dim) before the adapter (as in ``Agent.encode``)."""
    if agent.token_encoder is not None:
        return agent.token_encoder(*agent.encoders[family](obs))
    return agent.encoders[family](obs)


class VariantAdapters(nn.Module):
    """Stacked copies of the agent's family adapters, one per variant of ``pool``.

    Args:
        agent: the agent whose family adapters initialise the copies.
        pool: ``{family: variant seeds}``.
    """

    def __init__(self, agent: Agent, pool: Mapping[str, Sequence[int]]) -> None:
        super().__init__()
        self.rank = agent.config.adapter_rank
        self.stacks = nn.ModuleDict()
        self._seeds: dict[str, list[int]] = {}
        for family, seeds in pool.items():
            source = agent.adapters[family]
            stack = nn.ParameterDict()
            for name in FIELDS:
                if hasattr(source, name):
                    p = getattr(source, name).detach()
                    stack[name] = nn.Parameter(p.unsqueeze(0).repeat(len(seeds), *[1] * p.dim()))
            self.stacks[family] = stack
            self._seeds[family] = [int(s) for s in seeds]
            self.register_buffer(
                f"seeds_{family}", torch.tensor(self._seeds[family], dtype=torch.long)
            )

    def rows(self, family: str, variants: Tensor) -> Tensor:
        """The stack index of each variant seed in ``variants`` (B,)."""
        seeds = getattr(self, f"seeds_{family}")
        match = variants[:, None] == seeds[None, :]  # (B, V)
        if not bool(match.any(1).all()):
            raise ValueError(f"variants outside the {family!r} pool: {variants.unique().tolist()}")
        return match.float().argmax(1)

    def forward(self, e: Tensor, family: str, variants: Tensor) -> Tensor:
        """e (B, d), per-row variant seeds (B,) -> z (B, d), each row through its adapter."""
        stack = self.stacks[family]
        i = self.rows(family, variants)
        z = e * (1.0 + stack["gamma"][i]) + stack["beta"][i]
        if self.rank > 0:
            low = torch.einsum("bd,bdr->br", e, stack["down"][i])
            z = z + torch.einsum("br,brd->bd", low, stack["up"][i])
        return z

    def encode(self, agent: Agent, obs: Tensor, family: str, variants: Tensor) -> Tensor:
        """The latent of ``obs`` through the family's encoder and each row's variant adapter."""
        return self(features(agent, obs, family), family, variants)

    def params(self, family: str, variant: int) -> dict[str, Tensor]:
        """Variant ``variant``'s adapter under the agent's names (``adapters.<family>.*``)."""
        row = self._seeds[family].index(int(variant))
        return {f"adapters.{family}.{k}": v[row] for k, v in self.stacks[family].items()}

    def load_into_family(self, agent: Agent, family: str, variant: int) -> None:
        """Copy one variant's adapter into the agent's family adapter."""
        with torch.no_grad():
            for name, value in self.params(family, variant).items():
                dict(agent.named_parameters())[name].copy_(value)
