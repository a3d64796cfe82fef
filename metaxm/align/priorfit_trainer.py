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

Beside them it learns the prior for a family with none of its own
(:attr:`~metaxm.align.priorfit.MapPrior.unseen`: mean 0, one log precision per source channel,
starting at ``align.prior_log_prec``) on the same tasks: each support is solved under it too,
on the observations as they are (a squashed family not unsquashed, as a family without a prior
of its own is read), and its query loss is the same squared error. So its tasks are the
training families' own, each met as if it were new; it has its own Adam step and gradient
clipping, so the families' priors learn exactly what they learn without it.
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
from metaxm.align.priorfit import (
    ANY,
    SQUASHED,
    MapPrior,
    features,
    prior_solve,
    units,
)
from metaxm.align.translate import is_vector
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
        skipped: the training families that are not vectors (no prior of their own).
        unseen_optimizer: the Adam step of the prior for a family with none of its own.
    """

    key = "priorfit"

    def __init__(self, spec: Spec) -> None:
        super().__init__(spec)
        spaces = self.agent.observation_spaces
        if not is_vector(spaces[self.source[0]]):
            raise ConfigError(
                f"algo: priorfit maps into the source modality, which must be a vector; "
                f"{self.source[0]} observes {spaces[self.source[0]]}"
            )
        self.skipped = [f for f in self.families if not is_vector(spaces[f])]
        self.families = [f for f in self.families if is_vector(spaces[f])]
        if not self.families:
            raise ConfigError(
                "algo: priorfit fits a linear map from a vector observation, and no training "
                f"family is one ({', '.join(self.skipped)})"
            )
        self.generator = torch.Generator().manual_seed(derive_seed(spec.seed, self.key))
        self.unseen_optimizer: torch.optim.Adam | None = None
        self._unseen_losses: list[Tensor] = []

    def _fresh(self) -> MapPrior:
        spaces, unseen = self.agent.observation_spaces, self._fresh_unseen()
        s = unseen.shape[0]
        dims = {f: int(np.prod(spaces[f].shape)) for f in self.families}
        mean = {f: torch.zeros(d, s, device=self.device) for f, d in dims.items()}
        start = self.config.prior_log_prec
        log_prec = {f: torch.full((d, s), start, device=self.device) for f, d in dims.items()}
        squashed = {f for f in self.families if f in SQUASHED}
        return MapPrior(mean, log_prec, squashed, unseen)

    def _fresh_unseen(self) -> Tensor:
        s = int(np.prod(self.agent.observation_spaces[self.source[0]].shape))
        return torch.full((s,), self.config.prior_log_prec, device=self.device)

    def _restore(self, state: dict[str, Any]) -> MapPrior:
        prior = MapPrior.from_state(state, self.device)
        if prior.unseen is None:  # a run begun before it was learned: it starts now
            prior.unseen = self._fresh_unseen()
        return prior

    def _start(self, state: dict[str, Any] | None = None) -> None:
        """:meth:`MetaFitTrainer._start`, and the unseen prior's own optimizer."""
        super()._start(state)
        assert isinstance(self.metafit, MapPrior) and self.metafit.unseen is not None
        self.metafit.unseen.requires_grad_(True)
        self.unseen_optimizer = torch.optim.Adam([self.metafit.unseen], lr=self.config.meta_lr)

    def named_parameters(self) -> Iterator[tuple[str, Tensor]]:
        """The prior's tensors as ``<kind>.<family>`` (kind: mean, log_prec), then the prior
        for any family as ``unseen.any`` (what the run loop checks is finite)."""
        yield from self._family_parameters()
        if isinstance(self.metafit, MapPrior) and self.metafit.unseen is not None:
            yield f"unseen.{ANY}", self.metafit.unseen

    def _family_parameters(self) -> Iterator[tuple[str, Tensor]]:
        if self.metafit is None:
            return
        assert isinstance(self.metafit, MapPrior)
        yield from ((f"mean.{f}", t) for f, t in self.metafit.mean.items())
        yield from ((f"log_prec.{f}", t) for f, t in self.metafit.log_prec.items())

    def _leaves(self) -> Iterator[Tensor]:
        """The families' priors: what the outer Adam step and its clipping move."""
        return (v for _, v in self._family_parameters())

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
        y = support.obs[1].float().flatten(1)
        weight = prior.solve(family, x, y)
        z_q = self._source_latents(query.obs[1])
        loss = (self._read(xq @ weight) - z_q).pow(2).mean()
        u, uq = (features(o.obs[0], space) for o in (support, query))  # as if never seen
        unseen = prior_solve(u, y, *prior.unseen_prior(u.shape[1]))
        self._unseen_losses.append((self._read(uq @ unseen) - z_q).pow(2).mean())
        with torch.no_grad():
            start = (self._read(xq @ (prior.mean[family] / units(x)[:, None])) - z_q).pow(2).mean()
        return loss, float(start), sum(c.steps for c in collected)

    def _read(self, translated: Tensor) -> Tensor:
        """The source's latents of translated observations (through the frozen agent)."""
        return encode(self.agent, translated, self.source[0], self.source_params)

    def _after_step(self) -> None:
        """Nothing to hold in range: any mean and log precision is a prior."""

    def update(self) -> dict[str, float]:
        """:meth:`MetaFitTrainer.update` for the families' priors, then one step of the unseen
        prior on the query losses its solves of the same tasks gave."""
        self._unseen_losses = []
        metrics = super().update()
        assert self.unseen_optimizer is not None and isinstance(self.metafit, MapPrior)
        total = torch.stack(self._unseen_losses).mean()
        self._unseen_losses = []
        self.unseen_optimizer.zero_grad(set_to_none=True)
        total.backward()
        unseen = self.metafit.unseen
        assert unseen is not None
        torch.nn.utils.clip_grad_norm_([unseen], self.config.max_grad_norm)
        self.unseen_optimizer.step()
        metrics["unseen_query_loss"] = float(total.detach())
        return metrics

    def state_dict(self) -> dict[str, Any]:
        assert self.unseen_optimizer is not None
        return {**super().state_dict(), "unseen_optimizer": self.unseen_optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        if "unseen_optimizer" in state:  # else a run begun before it was learned
            assert self.unseen_optimizer is not None
            self.unseen_optimizer.load_state_dict(state["unseen_optimizer"])
