"""Per-variant adapters during alignment pretraining.

Pretraining keeps one adapter per training variant beside the agent (the agent's own family
adapters stay the shared initialisation): :class:`VariantAdapters` is
:class:`metaxm.nn.variant_adapters.VariantAdapters` initialised from an agent's family adapters,
with :meth:`VariantAdapters.encode` running an agent's encoder and then each row's variant
adapter. With them the shared encoders need not tell the variants apart from a single
observation; each variant's adapter maps the encoder's output onto the shared latent instead,
which is the job the design gives adapters. (A PPO agent with ``agent.adapters: variant`` holds
the same module itself, as ``agent.variant_adapters``.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from torch import Tensor

from metaxm.nn.agent import Agent
from metaxm.nn.variant_adapters import VariantAdapters as _Stacks


class VariantAdapters(_Stacks):
    """Stacked copies of ``agent``'s family adapters, one per variant of ``pool``.

    Args:
        agent: the agent whose family adapters initialise the copies.
        pool: ``{family: variant seeds}``.
    """

    def __init__(self, agent: Agent, pool: Mapping[str, Sequence[int]]) -> None:
        super().__init__(agent.adapters, pool)

    def encode(self, agent: Agent, obs: Tensor, family: str, variants: Tensor) -> Tensor:
        """The latent of ``obs`` through the family's encoder and each row's variant adapter."""
        return self(agent.features(obs, family), family, variants)
