"""One adapter per training variant, applied row by row (``agent.adapters: variant``).

The design gives every modality *variant* its own small adapter (:mod:`metaxm.nn.adapter`).
With one adapter per *family* shared by all its variants, a memoryless agent must tell the
variants apart from a single observation, which it cannot do for most of them: a ``vector``
variant permutes and rescales the state features, a ``pixels`` variant rotates or flips the
image (so "the goal is to the left" means a different action per variant), a ``text`` variant
ciphers the token ids. Training a multi-variant agent with one family adapter then plateaus
far below what the same agent reaches on one variant.

:class:`VariantAdapters` keeps a stacked copy of a family's adapter per variant of a pool (the
spec's ``train`` split) and applies, to each row of a batch, the adapter of that row's variant,
so a batch mixing variants costs one gather, not a loop. The agent uses it when a caller passes
the rows' variant seeds (``agent(obs, family, variants=...)``); rows whose variant is not in the
pool (a held-out variant) go through the family adapter, the starting point of few-shot
adaptation. :meth:`params` returns one variant's adapter under the family adapter's parameter
names, ready for ``torch.func.functional_call``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

FIELDS = ("gamma", "beta", "down", "up")


class VariantAdapters(nn.Module):
    """Stacked adapter copies, one per (family, variant) of ``pool``.

    Args:
        adapters: ``{family: Adapter}`` whose current values initialise the copies.
        pool: ``{family: variant seeds}``.
    """

    def __init__(self, adapters: Mapping[str, nn.Module], pool: Mapping[str, Sequence[int]]):
        super().__init__()
        self.stacks = nn.ModuleDict()
        self._seeds: dict[str, list[int]] = {}
        self.rank = 0  # every family's adapter has the agent's one rank
        for family, seeds in pool.items():
            source = adapters[family]
            self.rank = source.rank
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

    def __contains__(self, family: object) -> bool:
        return family in self._seeds

    def seeds(self, family: str) -> list[int]:
        """The variant seeds of ``family`` that have an adapter, in stack order."""
        return list(self._seeds[family])

    def match(self, family: str, variants: Tensor) -> tuple[Tensor, Tensor]:
        """Per row of ``variants`` (B,): its stack index and whether it is in the pool."""
        seeds = getattr(self, f"seeds_{family}")
        hit = variants[:, None] == seeds[None, :]  # (B, V)
        return hit.float().argmax(1), hit.any(1)

    def rows(self, family: str, variants: Tensor) -> Tensor:
        """The stack index of each variant seed in ``variants`` (B,); all must be in the pool."""
        index, known = self.match(family, variants)
        if not bool(known.all()):
            raise ValueError(f"variants outside the {family!r} pool: {variants.unique().tolist()}")
        return index

    def apply(self, e: Tensor, family: str, index: Tensor) -> Tensor:
        """e (B, d), stack indices (B,) -> z (B, d), each row through its variant's adapter."""
        stack = self.stacks[family]
        z = e * (1.0 + stack["gamma"][index]) + stack["beta"][index]
        if self.rank > 0:
            low = torch.einsum("bd,bdr->br", e, stack["down"][index])
            z = z + torch.einsum("br,brd->bd", low, stack["up"][index])
        return z

    def forward(self, e: Tensor, family: str, variants: Tensor) -> Tensor:
        """e (B, d), per-row variant seeds (B,) -> z (B, d); every variant must be pooled."""
        return self.apply(e, family, self.rows(family, variants))

    def mix(self, e: Tensor, family: str, variants: Tensor, fallback: Tensor) -> Tensor:
        """Like :meth:`forward`, but rows of variants outside the pool take ``fallback``."""
        index, known = self.match(family, variants)
        return torch.where(known[:, None], self.apply(e, family, index), fallback)

    def params(self, family: str, variant: int) -> dict[str, Tensor]:
        """Variant ``variant``'s adapter under the agent's names (``adapters.<family>.*``)."""
        row = self._seeds[family].index(int(variant))
        return {f"adapters.{family}.{k}": v[row] for k, v in self.stacks[family].items()}

    @torch.no_grad()
    def mean_into(self, adapters: Mapping[str, nn.Module]) -> None:
        """Set each pooled family's adapter to the mean of its variants' adapters: the
        starting point for a variant the pool does not hold."""
        for family, stack in self.stacks.items():
            for name, value in stack.items():
                getattr(adapters[family], name).copy_(value.mean(0))
