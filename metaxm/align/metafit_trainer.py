"""MetaFitTrainer: meta-training the paired fit as a run-loop trainer (``algo: metafit``).

It starts from a trained source agent (``train.init_from``, normally the main job's PPO run
with ``agent.adapters: variant``), which it never changes, and learns, per training family, the
fit's starting encoder and adapter and per-parameter inner rates (:mod:`metaxm.align.metafit`).
One update draws ``align.meta_batch`` fresh variants of every training family, collects each
one's support (k episodes, k drawn from ``align.meta_episodes``) and query episodes, runs the
inner fit on the support and takes one Adam step on the mean query loss. ``env_steps`` counts
the environment steps of those episodes, so ``train.total_steps`` sets the run's length as
for every trainer; checkpoints hold the learned start, the rates, the optimizer and the
generator, so ``--resume`` continues exactly.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from metaxm.align.fewshot import collect_paired_steps, default_source, source_params
from metaxm.align.losses import encode
from metaxm.align.metafit import MetaFit, inner_fit, pair_loss
from metaxm.nn.agent import Agent, build_agent
from metaxm.rl.trainer import derive_seed
from metaxm.sampler import TaskSampler, fresh_variant_seed
from metaxm.trainer_checks import check_fit

if TYPE_CHECKING:
    from metaxm.spec import Spec


class MetaFitTrainer:
    """Meta-learns :class:`~metaxm.align.metafit.MetaFit` over fresh variants.

    Args:
        spec: the task spec (``align`` meta settings, ``modalities.train``, ``world``).

    Attributes:
        agent: the source agent (loaded by the run loop from ``train.init_from``; frozen).
        metafit: the learned start and rates (built at the first update, from the agent as
            loaded, or restored from a checkpoint).
    """

    key = "metafit"
    """The ``algo``, and the checkpoint entry that holds the learned fit."""

    def __init__(self, spec: Spec) -> None:
        check_fit(spec, self.key)
        self.spec = spec
        self.config = spec.align
        self.device = torch.device(spec.device)
        self.agent: Agent = build_agent(spec).to(self.device)
        self.agent.requires_grad_(False)
        self.families = TaskSampler(spec).families("train")
        self.source = default_source(spec)
        self.source_params = source_params(self.agent, self.source)  # follows the loaded agent
        self.generator = torch.Generator().manual_seed(derive_seed(spec.seed, "metafit"))
        self.metafit: MetaFit | None = None
        self.optimizer: torch.optim.Adam | None = None
        self.env_steps = 0
        self.episodes = 0
        self.updates = 0

    def _start(self, state: dict[str, Any] | None = None) -> None:
        """The learned fit, fresh (:meth:`_fresh`) or from a checkpoint's ``state``, and the
        outer optimizer over its tensors."""
        self.metafit = self._fresh() if state is None else self._restore(state)
        leaves = [*self._leaves()]
        for p in leaves:
            p.requires_grad_(True)
        self.optimizer = torch.optim.Adam(leaves, lr=self.config.meta_lr)

    def _fresh_start(self) -> tuple[dict[str, dict[str, Tensor]], dict[str, dict[str, Tensor]]]:
        """theta_0 := the agent's family encoder and adapter (the variants' mean adapter),
        alpha := ``meta_inner_lr``, per training family."""
        own = {f: self.agent.named_params("adapter+encoder", f) for f in self.families}
        init = {f: {k: v.detach().clone() for k, v in p.items()} for f, p in own.items()}
        lr = self.config.meta_inner_lr
        return init, {f: {k: torch.full_like(v, lr) for k, v in p.items()} for f, p in init.items()}

    def _fresh(self) -> MetaFit:
        return MetaFit(*self._fresh_start(), self.config)

    def _restore(self, state: dict[str, Any]) -> MetaFit:
        return MetaFit.from_state(state, self.config, self.device)  # checkpoints load on CPU

    def named_parameters(self) -> Iterator[tuple[str, Tensor]]:
        """The learned fit's tensors as ``<kind>.<name>`` (kind: init, lrs, ...)."""
        if self.metafit is None:
            return
        for kind, table in self.metafit.state_dict().items():
            for params in table.values():
                yield from ((f"{kind}.{k}", v) for k, v in params.items())

    def _leaves(self) -> Iterator[Tensor]:
        return (v for _, v in self.named_parameters())

    def _source_latents(self, obs: Tensor) -> Tensor:
        with torch.no_grad():
            return encode(self.agent, obs, self.source[0], self.source_params)

    def task(self, family: str, variant: int, k: int, seed: int) -> tuple[Tensor, float, int]:
        """One meta-training task: a support of ``k`` episodes of ``family:variant``, the inner
        fit on it, and the query loss after it (with the graph to the meta-parameters), the
        query loss at the learned start, and the environment steps played."""
        assert self.metafit is not None
        cfg = self.config
        collected = [
            collect_paired_steps(
                self.agent, self.spec, (family, variant), source=self.source, seed=s, episodes=n
            )
            for s, n in ((seed, k), (seed + 1, cfg.meta_query_episodes))
        ]
        support, query = (c.batch for c in collected)
        self.episodes += sum(c.episodes for c in collected)
        z_sup = self._source_latents(support.obs[1])
        z_q = self._source_latents(query.obs[1])
        params = inner_fit(
            self.agent, family, self.metafit.init[family], self.metafit.lrs[family],
            support, z_sup, cfg, create_graph=not cfg.meta_first_order,
        )  # fmt: skip
        loss = pair_loss(self.agent, family, params, query, z_q, cfg)
        with torch.no_grad():
            start = pair_loss(self.agent, family, self.metafit.init[family], query, z_q, cfg)
        return loss, float(start), sum(c.steps for c in collected)

    def _after_step(self) -> None:
        """After each outer step: a rate must stay a step down the gradient."""
        assert self.metafit is not None
        with torch.no_grad():
            for lrs in self.metafit.lrs.values():
                for v in lrs.values():
                    v.clamp_(min=0.0)

    def update(self) -> dict[str, float]:
        """One meta-update over ``meta_batch`` fresh variants of every training family."""
        if self.metafit is None:
            self._start()
        assert self.metafit is not None and self.optimizer is not None
        cfg, g = self.config, self.generator
        losses: dict[str, list[Tensor]] = {f: [] for f in self.families}
        before: dict[str, list[float]] = {f: [] for f in self.families}
        steps = 0
        for family in self.families:
            for _ in range(cfg.meta_batch):
                variant = fresh_variant_seed(g)
                k = cfg.meta_episodes[int(torch.randint(len(cfg.meta_episodes), (), generator=g))]
                seed = int(torch.randint(0, 2**31 - 2, (), generator=g))
                loss, start, played = self.task(family, variant, k, seed)
                losses[family].append(loss)
                before[family].append(start)
                steps += played
        total = sum(sum(v) for v in losses.values()) / sum(len(v) for v in losses.values())
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(list(self._leaves()), cfg.max_grad_norm)
        self.optimizer.step()
        self._after_step()
        self.updates += 1
        self.env_steps += steps
        n = cfg.meta_batch
        metrics = {"query_loss": float(total.detach()), "grad_norm": float(grad_norm)}
        for family in self.families:
            metrics[f"query_loss/{family}"] = float(sum(losses[family]).detach()) / n
            metrics[f"start_loss/{family}"] = sum(before[family]) / n
        return metrics

    def state_dict(self) -> dict[str, Any]:
        assert self.metafit is not None and self.optimizer is not None
        return {
            "agent": self.agent.state_dict(),
            self.key: {
                kind: {f: {k: v.detach() for k, v in p.items()} for f, p in table.items()}
                for kind, table in self.metafit.state_dict().items()
            },
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "counters": {
                "env_steps": self.env_steps, "episodes": self.episodes, "updates": self.updates,
            },
        }  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.agent.load_state_dict(state["agent"])
        self._start(state[self.key])
        assert self.optimizer is not None
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        for k, v in state["counters"].items():
            setattr(self, k, v)
