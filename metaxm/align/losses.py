"""Alignment losses on paired renders: symmetric InfoNCE, and the entry point for trainers.

InfoNCE (van den Oord et al. 2018, "Representation Learning with Contrastive Predictive
Coding", arXiv:1807.03748) in its symmetric two-view form (CLIP, Radford et al. 2021,
arXiv:2103.00020): for B paired latents ``a`` and ``b`` (row ``i`` of both shows state ``i``),

    logits = cos(a_i, b_j) / T                     # (B, B)
    loss   = (CE(logits, diag) + CE(logits^T, diag)) / 2

so each latent must pick out its partner among the B latents of the other view. With more than
two views the loss is the mean over all pairs of views.

Departure from the papers: two rows that show the *same* state (possible when states are drawn
at random from a small world) are not negatives of each other; their logits are masked out
(pass ``state_ids``), so the loss never pushes identical states apart.

Trainers use :func:`paired_infonce` (a function of the agent and a :class:`PairedBatch`), or
:class:`AlignmentLoss`, which adds the ``align`` section's options (learned temperature, the
VAE of :mod:`metaxm.align.vae`)::

    sampler = PairedSampler.from_spec(spec, seed=...)
    loss = paired_infonce(agent, sampler.sample(), temperature=0.1)
    (ppo_loss + spec.align.weight * loss).backward()

``params`` (a dict of some of the agent's parameters, as MAML's ``functional_call`` takes)
encodes with those parameters instead of the agent's own.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from itertools import combinations
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from metaxm.align.pairs import PairedBatch
from metaxm.config.align import AlignConfig
from metaxm.nn.agent import Agent

if TYPE_CHECKING:
    from metaxm.align.variants import VariantAdapters

MAX_INV_TEMPERATURE = 100.0
"""CLIP's clamp on the learned inverse temperature, which keeps the logits bounded."""


def info_nce(
    za: Tensor, zb: Tensor, temperature: float | Tensor = 0.1, state_ids: Tensor | None = None
) -> Tensor:
    """Symmetric InfoNCE between two views of the same B states (see the module docstring).

    Args:
        za: (B, d) latents of the first view.
        zb: (B, d) latents of the second view, row ``i`` the same state as ``za[i]``.
        temperature: T > 0; a float or a 0-d tensor (learned).
        state_ids: (B,) ids of identical states; rows with equal ids are not negatives.

    Returns:
        the 0-d loss, ``log(B)`` for latents that carry no information about the pairing.
    """
    a = F.normalize(za, dim=-1)
    b = F.normalize(zb, dim=-1)
    logits = a @ b.T / temperature  # (B, B)
    target = torch.arange(logits.shape[0], device=logits.device)
    if state_ids is not None:
        same = state_ids[:, None] == state_ids[None, :]
        duplicate = same & ~torch.eye(same.shape[0], dtype=torch.bool, device=same.device)
        logits = logits.masked_fill(duplicate, float("-inf"))
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def multi_view_info_nce(
    latents: Sequence[Tensor],
    temperature: float | Tensor = 0.1,
    state_ids: Tensor | None = None,
) -> Tensor:
    """The mean of :func:`info_nce` over every pair of >= 2 views of the same states."""
    if len(latents) < 2:
        raise ValueError(f"InfoNCE needs >= 2 views, got {len(latents)}")
    pairs = list(combinations(range(len(latents)), 2))
    total = sum(info_nce(latents[i], latents[j], temperature, state_ids) for i, j in pairs)
    return total / len(pairs)


def encode(
    agent: Agent, obs: Tensor, family: str, params: Mapping[str, Tensor] | None = None
) -> Tensor:
    """The agent's adapted latent z of ``obs``; with ``params`` (a subset of the agent's
    parameters, by name) the encoding uses those instead of the agent's own."""
    if params is None:
        return agent.encode(obs, family)
    named = {f"agent.{k}": v for k, v in params.items()}
    return torch.func.functional_call(_Encode(agent), named, (obs, family), strict=False)


class _Encode(nn.Module):
    """``agent.encode`` as a module's forward, for ``functional_call`` (names get ``agent.``)."""

    def __init__(self, agent: Agent) -> None:
        super().__init__()
        self.agent = agent

    def forward(self, obs: Tensor, family: str) -> Tensor:
        return self.agent.encode(obs, family)


def encode_views(
    agent: Agent,
    batch: PairedBatch,
    params: Mapping[str, Tensor] | None = None,
    adapters: VariantAdapters | None = None,
) -> list[Tensor]:
    """The latents (B, latent_dim) of every view of ``batch``.

    Args:
        agent: the agent.
        batch: the paired batch.
        params: parameters by name to encode with instead of the agent's own.
        adapters: per-variant adapters; a view of a family they hold goes through each row's
            variant adapter instead of the family adapter.
    """
    out = []
    for o, f, v in zip(batch.obs, batch.families, batch.variants):
        if adapters is not None and f in adapters.stacks:
            out.append(adapters.encode(agent, o, f, v))
        else:
            out.append(encode(agent, o, f, params))
    return out


def paired_infonce(
    agent: Agent,
    batch: PairedBatch,
    temperature: float | Tensor = 0.1,
    params: Mapping[str, Tensor] | None = None,
) -> Tensor:
    """InfoNCE between the agent's latents of the views of a paired batch.

    This is the auxiliary loss for PPO, MAML and RL^2: add ``weight * paired_infonce(...)`` to
    the training loss. Gradients reach every family's encoder and adapter in the batch.

    Args:
        agent: the agent (its ``encode``).
        batch: states rendered in >= 2 views (:class:`~metaxm.align.pairs.PairedSampler`).
        temperature: the InfoNCE temperature.
        params: optional parameters by name to encode with (``torch.func.functional_call``).
    """
    latents = encode_views(agent, batch, params)
    return multi_view_info_nce(latents, temperature, batch.state_ids)


class AlignmentLoss(nn.Module):
    """The ``align`` section's loss: InfoNCE (fixed or learned temperature) or the VAE.

    Its own parameters (the learned temperature, the VAE's variance heads and decoders) are
    trained alongside the agent's.

    Args:
        config: the ``align`` section.
        agent: the agent whose families the VAE decodes.
        seed: seeds the VAE's weights and its sampling noise.
    """

    def __init__(self, config: AlignConfig, agent: Agent, seed: int = 0) -> None:
        super().__init__()
        self.config = config
        inv = math.log(1.0 / config.temperature)
        self.log_inv_temperature = nn.Parameter(
            torch.tensor(inv), requires_grad=config.learn_temperature
        )
        self.vae = None
        if config.loss == "vae":
            from metaxm.align.vae import SharedLatentVAE

            self.vae = SharedLatentVAE(
                agent.observation_spaces, agent.config.latent_dim, config.vae_beta, seed=seed
            )

    @property
    def temperature(self) -> Tensor:
        """T = 1 / exp(log_inv_temperature), the inverse clamped at 100 as in CLIP."""
        return 1.0 / self.log_inv_temperature.exp().clamp(max=MAX_INV_TEMPERATURE)

    def forward(
        self,
        agent: Agent,
        batch: PairedBatch,
        params: Mapping[str, Tensor] | None = None,
        adapters: VariantAdapters | None = None,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """The loss on ``batch`` and detached diagnostics (``align_loss``, ``temperature``);
        ``params`` and ``adapters`` as in :func:`encode_views`."""
        latents = encode_views(agent, batch, params, adapters)
        if self.vae is not None:
            loss, stats = self.vae(latents, batch)
        else:
            loss = multi_view_info_nce(latents, self.temperature, batch.state_ids)
            stats = {}
        stats = {"align_loss": loss.detach(), **stats}
        stats["temperature"] = self.temperature.detach()
        return loss, stats
