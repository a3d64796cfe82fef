"""Meta-learned paired adaptation: MAML / Meta-SGD over the few-shot alignment fit.

The ``align`` strategy (:mod:`metaxm.align.fewshot`) fits a new modality variant's encoder and
adapter to the source latents of k episodes' paired renders with a hand-set Adam schedule,
starting from the source agent's weights. Here that fit is *meta-learned*: over many freshly
drawn variants of every training family, learn the starting parameters ``theta_0`` of the
family's encoder and adapter and a learning rate per parameter ``alpha`` (Meta-SGD, Li et al.
2017, arXiv:1707.09835), so that a few gradient steps on the pairs of k episodes land the new
variant's latents where the frozen policy reads them (MAML, Finn et al. 2017,
arXiv:1703.03400)::

    inner (support: the paired steps of k episodes the source agent played in the variant)
        theta_{s+1} = theta_s - alpha * grad L(theta_s; support),  s < S,  theta_0 learned
    outer (query: the paired steps of other episodes of the same variant)
        min_{theta_0, alpha}  E_variants L(theta_S; query)
    L(theta; pairs) = InfoNCE(z_t, z_s) + fit_mse * mean((z_t - z_s)^2)

``z_t`` is the target view through ``theta``; ``z_s`` the source view (the spec's default
source, :func:`~metaxm.align.fewshot.default_source`, through its own training adapter) and
fixed. Support and query are collected exactly as the evaluator collects a fit's data (whole
episodes of the source agent's stochastic policy, :func:`collect_paired_steps`), with k drawn
from ``align.meta_episodes`` per task, so one schedule serves every budget.

Departures from MAML: the inner loop is plain gradient descent on a *paired* loss (no reward),
the meta-gradient is second order by default (``align.meta_first_order`` drops it), and the
tasks are modality variants, not world tasks: a variant seed is drawn afresh for each task
from a range that no split uses (:func:`metaxm.sampler.fresh_variant_seed`). A family never
trained on (a held-out family) has no learned ``theta_0``: its encoder is new, so
:class:`MetaFit` leaves it to the hand-set fit and says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from metaxm.align.losses import encode, info_nce
from metaxm.align.pairs import PairedBatch
from metaxm.config.align import AlignConfig
from metaxm.nn.agent import Agent

Params = dict[str, Tensor]


def pair_loss(
    agent: Agent, family: str, params: Mapping[str, Tensor], pairs: PairedBatch, z_s: Tensor,
    config: AlignConfig,
) -> Tensor:  # fmt: skip
    """``L(theta; pairs)`` of the module docstring: InfoNCE plus ``fit_mse`` x squared
    distance between the target view's latents through ``params`` and the source latents."""
    z_t = encode(agent, pairs.obs[0], family, params)  # (N, d)
    nce = info_nce(z_t, z_s, config.temperature, pairs.state_ids)
    return nce + config.fit_mse * (z_t - z_s).pow(2).mean()


def inner_fit(
    agent: Agent,
    family: str,
    init: Mapping[str, Tensor],
    lrs: Mapping[str, Tensor],
    pairs: PairedBatch,
    z_s: Tensor,
    config: AlignConfig,
    create_graph: bool = False,
) -> Params:
    """``align.meta_steps`` Meta-SGD steps from ``init`` on ``pairs``; differentiable in
    ``init`` and ``lrs`` when ``create_graph`` (second order) or through the last step only
    (first order: the inner gradients are treated as constants)."""
    params = dict(init)
    for _ in range(config.meta_steps):
        loss = pair_loss(agent, family, params, pairs, z_s, config)
        grads = torch.autograd.grad(loss, list(params.values()), create_graph=create_graph)
        params = {k: p - lrs[k] * g for (k, p), g in zip(params.items(), grads)}
    return params


def load_tables(
    state: Mapping[str, Mapping[str, Params]], device: torch.device | str | None = None
) -> dict[str, dict[str, Params]]:
    """A saved learned fit's ``{kind: {family (or name): {param: tensor}}}``, on ``device``."""
    return {
        kind: {f: {k: v.to(device) for k, v in p.items()} for f, p in table.items()}
        for kind, table in state.items()
    }


@dataclass
class MetaFit:
    """A meta-learned paired fit: per training family, ``theta_0`` and ``alpha``.

    Attributes:
        init: ``{family: {name: theta_0}}`` (the family's encoder and adapter, agent's names).
        lrs: ``{family: {name: alpha}}``, same shapes.
        config: the ``align`` section (``meta_steps``, ``fit_mse``, ``temperature``).
    """

    init: dict[str, Params]
    lrs: dict[str, Params]
    config: AlignConfig

    def fit(
        self, agent: Agent, pairs: PairedBatch, source_params: Mapping[str, Tensor] | None
    ) -> Params:
        """Adapt to the target view of ``pairs`` (view 0) from the learned start; detached.

        Raises:
            KeyError: the target family has no learned start (it was never trained on).
        """
        family = pairs.families[0]
        if family not in self.init:
            raise KeyError(f"no meta-learned start for family {family!r}")
        with torch.no_grad():
            z_s = encode(agent, pairs.obs[1], pairs.families[1], source_params)
        init = {k: v.detach().requires_grad_(True) for k, v in self.init[family].items()}
        with torch.enable_grad():
            params = inner_fit(agent, family, init, self.lrs[family], pairs, z_s, self.config)
        return {k: v.detach() for k, v in params.items()}

    def state_dict(self) -> dict[str, dict[str, Params]]:
        return {"init": self.init, "lrs": self.lrs}

    @classmethod
    def from_state(
        cls,
        state: Mapping[str, Mapping[str, Params]],
        config: AlignConfig,
        device: torch.device | str | None = None,
    ) -> MetaFit:
        """What :meth:`state_dict` saved, on ``device`` (default: where it is)."""
        tables = load_tables(state, device)
        return cls(tables["init"], tables["lrs"], config)
