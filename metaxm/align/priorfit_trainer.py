"""PriorFitTrainer: meta-training the closed-form paired fit's prior (``algo: priorfit``).

The run is a ``metafit`` run (:mod:`metaxm.align.metafit_trainer`: the same source agent from
``train.init_from``, never changed; the same fresh variants, ``align.meta_*`` settings,
counters and exact resume) with another task (:mod:`metaxm.align.priorfit`): the support's
pairs are solved in closed form for the linear map to the source observation under the
family's prior, and the outer loss is the squared error of the source latents that map gives
on the query's target observations, against the source's own. It learns, per training family
whose observation is a vector, the prior's mean (starting at 0) and log precisions (starting
at ``align.prior_log_prec``), a squashed family's observations read unsquashed
(:data:`~metaxm.align.priorfit.SQUASHED`); the other families are left out (``skipped``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from metaxm.align.fewshot import collect_paired_steps
from metaxm.align.losses import encode
from metaxm.align.metafit_trainer import MetaFitTrainer
from metaxm.align.priorfit import SQUASHED, MapPrior, readable, units
from metaxm.errors import ConfigError
from metaxm.rl.trainer import derive_seed

if TYPE_CHECKING:
    from metaxm.spec import Spec


class PriorFitTrainer(MetaFitTrainer):
    """Meta-learns :class:`~metaxm.align.priorfit.MapPrior` over fresh variants.

    Args:
        spec: the task spec (``align`` meta settings, ``modalities.train``, ``world``).

    Attributes:
        agent: the source agent (loaded by the run loop from ``train.init_from``; frozen).
        metafit: the learned :class:`MapPrior`.
        skipped: the training families a linear map does not read (no prior is learned).
    """

    key = "priorfit"

    def __init__(self, spec: Spec) -> None:
        super().__init__(spec)
        spaces = self.agent.observation_spaces
        if not readable(spaces[self.source[0]]):
            raise ConfigError(
                f"algo: priorfit maps into the source modality, which must be a vector; "
                f"{self.source[0]} observes {spaces[self.source[0]]}"
            )
        self.skipped = [f for f in self.families if not readable(spaces[f])]
        self.families = [f for f in self.families if readable(spaces[f])]
        if not self.families:
            raise ConfigError(
                "algo: priorfit fits a linear map from a vector observation, and no training "
                f"family is one ({', '.join(self.skipped)})"
            )
        self.generator = torch.Generator().manual_seed(derive_seed(spec.seed, self.key))

    def _fresh(self) -> MapPrior:
        spaces = self.agent.observation_spaces
        s = int(np.prod(spaces[self.source[0]].shape))
        dims = {f: int(np.prod(spaces[f].shape)) for f in self.families}
        mean = {f: torch.zeros(d, s, device=self.device) for f, d in dims.items()}
        start = self.config.prior_log_prec
        log_prec = {f: torch.full((d, s), start, device=self.device) for f, d in dims.items()}
        return MapPrior(mean, log_prec, {f for f in self.families if f in SQUASHED})

    def _restore(self, state: dict[str, Any]) -> MapPrior:
        return MapPrior.from_state(state, self.device)

    def named_parameters(self) -> Iterator[tuple[str, Tensor]]:
        """The prior's tensors as ``<kind>.<family>`` (kind: mean, log_prec)."""
        if self.metafit is None:
            return
        assert isinstance(self.metafit, MapPrior)
        yield from ((f"mean.{f}", t) for f, t in self.metafit.mean.items())
        yield from ((f"log_prec.{f}", t) for f, t in self.metafit.log_prec.items())

    def task(self, family: str, variant: int, k: int, seed: int) -> tuple[Tensor, float, int]:
        """Support: ``k`` episodes' pairs, solved for the map; query: the source latents of
        its translation of other episodes, against the source's own. Also the query loss of
        the prior's mean (in the support's units, no other use of its data), and the
        environment steps played."""
        prior = self.metafit
        assert isinstance(prior, MapPrior)
        collected = [
            collect_paired_steps(
                self.agent, self.spec, (family, variant), source=self.source, seed=s, episodes=n
            )
            for s, n in ((seed, k), (seed + 1, self.config.meta_query_episodes))
        ]
        support, query = (c.batch for c in collected)
        self.episodes += sum(c.episodes for c in collected)
        space = self.agent.observation_spaces[family]
        x, xq = (prior.inputs(family, o.obs[0], space) for o in (support, query))
        weight = prior.solve(family, x, support.obs[1].float().flatten(1))
        z_q = self._source_latents(query.obs[1])
        loss = (self._read(xq @ weight) - z_q).pow(2).mean()
        with torch.no_grad():
            start = (self._read(xq @ (prior.mean[family] / units(x)[:, None])) - z_q).pow(2).mean()
        return loss, float(start), sum(c.steps for c in collected)

    def _read(self, translated: Tensor) -> Tensor:
        """The source's latents of translated observations (through the frozen agent)."""
        return encode(self.agent, translated, self.source[0], self.source_params)

    def _after_step(self) -> None:
        """Nothing to hold in range: any mean and log precision is a prior."""
