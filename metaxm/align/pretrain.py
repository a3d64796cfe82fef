"""Self-supervised pretraining of encoders and adapters on paired renders (``metaxm pretrain``).

Before any RL, the agent's per-family encoders and adapters are trained so that renders of the
same state in different training modalities meet in the shared latent: every update draws
``align.batch_size`` random world states, renders each in ``align.views`` training families (a
training variant per state; every family when ``views`` is 0) and takes one Adam step on the
``align.loss`` (InfoNCE by default). The core (policy and value) is not touched; an RL run then
starts from these weights with ``align.init_from: RUNDIR``.

The run directory is the same as ``metaxm train``'s (:mod:`metaxm.run.loop`, whose helpers this
module reuses): ``config.yaml``, ``metrics.jsonl``, ``timing.jsonl``, atomic
``checkpoints/ckpt-*.pt`` with everything needed to resume exactly, and ``summary.json``; plus
``representation.json`` (:func:`~metaxm.align.report.representation_report` on the training
families), ``curve.png`` (loss and retrieval against paired states) and ``latent_pca.png``.
There are no environment steps in pretraining: the ``step`` of a record counts the paired
states drawn so far (``batch_size`` per update), and the run ends after
``align.pretrain_updates`` updates.
"""

from __future__ import annotations

import json
import logging
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from metaxm.align.losses import AlignmentLoss
from metaxm.align.pairs import PairedSampler
from metaxm.align.report import representation_report
from metaxm.align.variants import VariantAdapters
from metaxm.errors import CheckpointError, ConfigError
from metaxm.nn.agent import Agent, build_agent
from metaxm.resources import check_spec as check_resources
from metaxm.run.checkpoint import (
    check_resumable,
    load_checkpoint,
    resolve_checkpoint,
    set_global_rng_state,
)
from metaxm.run.logger import RunLogger
from metaxm.run.loop import (
    MetricWindow,
    RunResult,
    _check_finite,
    _seed_globals,
    check_losses,
    save_run_checkpoint,
)
from metaxm.run.rundir import OutputLock, discard_unstarted, open_rundir, write_config
from metaxm.sampler import TaskSampler

if TYPE_CHECKING:
    from metaxm.spec import Spec

log = logging.getLogger(__name__)


def derive_seed(root: int, *names: str | int) -> int:
    """A seed for one named stream of randomness, derived from the run's root seed."""
    return zlib.crc32(repr((int(root), "align", *names)).encode()) % (2**31)


def pretrain_pool(spec: Spec) -> dict[str, list[int]]:
    """The variants pretraining aligns: every training variant, and ``align.pretrain_variants``
    more per training family, with seeds above the sampler's pool, so that no split (and no
    validation variant drawn from the pool) ever holds them. More variants ask more of the
    encoders: each variant's own adapter must reach the shared latent from what the family's
    encoder makes of it, so the encoder cannot specialise to a handful of variants.
    """
    from metaxm.sampler import VARIANT_POOL

    pool = {f: list(seeds) for f, seeds in TaskSampler(spec).splits["train"].items()}
    n = spec.align.pretrain_variants
    if n:
        for family in pool:
            g = torch.Generator().manual_seed(derive_seed(spec.seed, "extra variants", family))
            pool[family] += [
                VARIANT_POOL + int(i) for i in torch.randperm(VARIANT_POOL, generator=g)[:n]
            ]
    return pool


def check_pool(spec: Spec) -> dict[str, list[int]]:
    """The pretraining pool of ``spec`` (:func:`pretrain_pool`), checked: ``align.views: 0``
    pairs every family of it, so it needs two.

    Raises:
        ConfigError: one family with ``align.views: 0``.
    """
    pool = pretrain_pool(spec)
    if spec.align.views == 0 and len(pool) < 2:
        raise ConfigError(
            f"align.views: 0 pairs every family of the pool, and it holds one "
            f"({', '.join(pool)}); pretraining aligns at least two views: add a "
            "training family or set align.views >= 2"
        )
    return pool


class PretrainTrainer:
    """Alignment pretraining as a run-loop trainer (:class:`metaxm.run.loop.Trainer`).

    Args:
        spec: the task spec (``align``, ``agent``, ``modalities.train``, ``world``).

    Attributes:
        agent: the agent being pretrained (all of the spec's families; only the training
            families' encoders and adapters receive gradients).
        env_steps: paired states drawn so far (the x-axis of the run's records).
        episodes: always 0 (pretraining runs no episodes).
        updates: updates done so far.
    """

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.config = spec.align
        self.device = torch.device(spec.device)
        self.agent: Agent = build_agent(spec).to(self.device)
        self.pool = check_pool(spec)
        self.sampler = PairedSampler(
            spec.world, self.pool, self.config.batch_size, self.config.views,
            self.config.random_steps, derive_seed(spec.seed, "pairs"), spec.device,
        )  # fmt: skip
        self.loss = AlignmentLoss(self.config, self.agent, derive_seed(spec.seed, "loss"))
        self.loss.to(self.device)
        self.variants: VariantAdapters | None = None
        if self.config.pretrain_adapters == "variant":
            self.variants = VariantAdapters(self.agent, self.pool).to(self.device)
        self.params = [p for p in self.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(self.params, lr=self.config.lr)
        self.env_steps = 0
        self.episodes = 0
        self.updates = 0

    def parameters(self) -> Iterator[Tensor]:
        for _, p in self.named_parameters():
            yield p

    def named_parameters(self) -> Iterator[tuple[str, Tensor]]:
        yield from self.agent.named_parameters()
        yield from (("align_loss." + n, p) for n, p in self.loss.named_parameters())
        if self.variants is not None:
            yield from (("variants." + n, p) for n, p in self.variants.named_parameters())

    def variant_params(self, family: str, variant: int) -> dict[str, Tensor] | None:
        """A training variant's pretrained adapter by the agent's names (None: the family's)."""
        return None if self.variants is None else self.variants.params(family, variant)

    def update(self) -> dict[str, float]:
        """One Adam step of the alignment loss on a fresh paired batch."""
        lr = self.config.lr
        if self.config.anneal_lr:
            lr *= max(1.0 - self.updates / max(self.config.pretrain_updates, 1), 0.0)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        batch = self.sampler.sample()
        loss, stats = self.loss(self.agent, batch, adapters=self.variants)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, self.config.max_grad_norm)
        self.optimizer.step()
        self.updates += 1
        self.env_steps += batch.batch_size
        return {**{k: float(v) for k, v in stats.items()}, "grad_norm": float(grad_norm), "lr": lr}

    def evaluate(self, cluster: bool = True) -> dict[str, float]:
        """The representation report on fresh states in the training variants (probes fitted
        on four times as many other states)."""
        return representation_report(
            self.agent, self.spec.world, self.pool, self.config.eval_states,
            probe_states=4 * self.config.eval_states,
            seed=derive_seed(self.spec.seed, "evaluation"), adapters=self.variants,
            cluster=cluster,
        )  # fmt: skip

    def state_dict(self) -> dict[str, Any]:
        return {
            "agent": self.agent.state_dict(),
            "variants": None if self.variants is None else self.variants.state_dict(),
            "pool": {f: list(v) for f, v in self.pool.items()},
            "loss": self.loss.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "sampler": self.sampler.state_dict(),
            "counters": {"env_steps": self.env_steps, "updates": self.updates},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.agent.load_state_dict(state["agent"])
        if self.variants is not None:
            self.variants.load_state_dict(state["variants"])
        self.loss.load_state_dict(state["loss"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.sampler.load_state_dict(state["sampler"])
        self.env_steps = state["counters"]["env_steps"]
        self.updates = state["counters"]["updates"]


def pretrain(
    spec: Spec, rundir: str | Path, resume: bool = False, last_good: bool = False
) -> RunResult:
    """Run (or, with ``resume``, continue) alignment pretraining of ``spec`` in ``rundir``.

    Returns:
        the run's result; its ``evaluation`` is the final representation report.

    Raises:
        ConfigError: ``rundir`` holds a run and ``resume`` is false, or another spec's run.
        CheckpointError: the checkpoint to resume from cannot be loaded safely.
        DivergenceError: a NaN or inf appeared in the loss or a parameter.
    """
    from metaxm.spec import spec_to_dict

    rundir = Path(rundir)
    data = spec_to_dict(spec)
    check_resources(spec)
    lock = OutputLock(rundir)  # checks the path; takes nothing yet
    _seed_globals(spec.seed)
    if spec.train.threads:  # as metaxm train does (see TrainConfig.threads)
        torch.set_num_threads(spec.train.threads)
    trainer = PretrainTrainer(spec)  # refuses what it cannot train before anything is written
    lock.acquire()
    fresh = not resume and not (rundir / "config.yaml").exists()
    try:
        checkpoint = open_rundir(rundir, data, resume, last_good)
        if not resume:
            write_config(rundir, data)
        return _pretrain(spec, rundir, data, trainer, checkpoint, resume)
    except BaseException:
        if fresh and (rundir / "config.yaml").exists():  # this start wrote it, then failed
            discard_unstarted(rundir)  # before its first checkpoint: no trace
        raise
    finally:
        lock.release(remove_created=True)


def _pretrain(
    spec: Spec,
    rundir: Path,
    data: dict[str, Any],
    trainer: PretrainTrainer,
    checkpoint: Path | None,
    resume: bool,
) -> RunResult:
    """:func:`pretrain` once it holds the run folder."""
    from metaxm.align.plot import plot_latent_pca, plot_pretrain_curve

    cfg, train_cfg = spec.align, spec.train
    if checkpoint is not None:
        # on the CPU: generator states must stay CPU byte tensors; the trainer moves the rest
        state = load_checkpoint(checkpoint, map_location="cpu")
        check_resumable(state, checkpoint, "pretrain", data)
        if not (rundir / "config.yaml").exists():  # deleted: the checkpoint vouched for data
            write_config(rundir, data)
        trainer.load_state_dict(state["trainer"])
        set_global_rng_state(state["rng"])
        log.info("resuming %s from update %d", rundir, trainer.updates)
    total = cfg.pretrain_updates
    logger = RunLogger(
        rundir, spec.log, total * cfg.batch_size, data,
        resume_update=trainer.updates if resume else None, initial_step=trainer.env_steps,
    )  # fmt: skip
    window = MetricWindow()
    exploded = False
    record: dict[str, Any] = {}
    start_steps, start_time = trainer.env_steps, time.perf_counter()
    try:
        while trainer.updates < total:
            metrics = trainer.update()
            update = trainer.updates
            _check_finite(trainer, metrics, update)  # type: ignore[arg-type]
            exploded = check_losses(metrics, train_cfg, f"update {update}", exploded)
            window.add(metrics)
            finished = update >= total
            if update % train_cfg.log_interval == 0 or finished:
                record = {"step": trainer.env_steps, "update": update, "episodes": 0}
                record.update(window.flush())
                if cfg.eval_interval and update % cfg.eval_interval == 0 and not finished:
                    ev = trainer.evaluate(cluster=False)
                    record.update({k: ev[k] for k in ("top1_min", "top1_mean", "probe_r2_min")})
                logger.log(record)
            every = train_cfg.checkpoint_interval
            if (every and update % every == 0) or finished:
                save_run_checkpoint(
                    rundir, "pretrain", data, trainer, update, train_cfg.keep_checkpoints
                )
        elapsed = time.perf_counter() - start_time
        sps = (trainer.env_steps - start_steps) / max(elapsed, 1e-9)
        evaluation = trainer.evaluate()
        (rundir / "representation.json").write_text(json.dumps(evaluation, indent=2) + "\n")
        summary = {"paired_states": trainer.env_steps, "updates": trainer.updates}
        summary["paired_states_per_s"] = round(sps, 1)
        (rundir / "summary.json").write_text(json.dumps({**summary, **evaluation}, indent=2))
        logger.summary({**summary, **{f"eval/{k}": v for k, v in evaluation.items()}})
        plot_pretrain_curve(rundir)
        first = [(f, seeds[0]) for f, seeds in trainer.pool.items()]
        params = [trainer.variant_params(f, v) for f, v in first]
        plot_latent_pca(trainer.agent, spec.world, first, rundir / "latent_pca.png", params=params)
    finally:
        logger.close()
    return RunResult(
        rundir=rundir, updates=trainer.updates, env_steps=trainer.env_steps, sps=sps,
        last=record, evaluation=evaluation,
    )  # fmt: skip


def load_pretrained(agent: Agent, source: str | Path) -> list[str]:
    """Copy the encoders and adapters of a pretraining run into ``agent``.

    Args:
        agent: the agent to initialise (its families may be a superset or subset of the run's).
        source: a pretraining ``RUNDIR`` (its newest checkpoint) or a checkpoint file.

    Returns:
        the names of the parameters copied (``encoders.*``, ``token_encoder.*``,
        ``adapters.*`` present in both, and ``variant_adapters.*``: an ``adapters: variant``
        agent takes the run's per-variant adapters of every family whose training variants are
        the same, and its family adapters become their mean).
    """
    path = resolve_checkpoint(source)
    device = next(agent.parameters()).device
    state = load_checkpoint(path, map_location=device)
    weights = state.get("trainer", {}).get("agent")
    if weights is None:
        raise CheckpointError(f"{path}: holds no agent weights")
    own = agent.state_dict()
    keep = ("encoders.", "token_encoder.", "adapters.")
    names = [k for k, v in weights.items() if k.startswith(keep) and k in own]
    for k in names:
        if own[k].shape != weights[k].shape:
            raise CheckpointError(
                f"{path}: {k} has shape {tuple(weights[k].shape)}, the agent's "
                f"{tuple(own[k].shape)}; pretrain with the same agent settings"
            )
    if not names:
        raise CheckpointError(f"{path}: no encoder or adapter of it matches this agent's families")
    agent.load_state_dict({k: weights[k] for k in names}, strict=False)
    names += _load_agent_variant_adapters(agent, state["trainer"].get("variants"), path)
    return names


def _load_agent_variant_adapters(
    agent: Agent, saved: dict[str, Tensor] | None, path: Path
) -> list[str]:
    """Give an ``adapters: variant`` agent the pretraining run's adapter of each of its
    training variants and set each family's adapter to their mean (where a held-out variant
    starts); without this the agent's variant adapters would start as the identity, not where
    pretraining put each variant on the shared latent. A run that pretrained per-variant
    adapters must have aligned every one of the agent's variants (it may have aligned more:
    ``align.pretrain_variants``); a run that pretrained family adapters gives each variant its
    family's.

    Raises:
        CheckpointError: the run aligned per-variant adapters, but not of all these variants.
    """
    va = agent.variant_adapters
    if va is None:
        return []
    copied = []
    for family, stack in va.stacks.items():
        if not saved:  # family adapters were pretrained: every variant starts from its family's
            own = agent.adapters[family]
            with torch.no_grad():
                for name, param in stack.items():
                    param.copy_(getattr(own, name).unsqueeze(0).expand_as(param))
            copied += [f"variant_adapters.stacks.{family}.{name}" for name in stack]
            continue
        seeds = saved.get(f"seeds_{family}")
        missing = sorted(set(va.seeds(family)) - set([] if seeds is None else seeds.tolist()))
        if seeds is None or missing:
            raise CheckpointError(
                f"{path}: pretraining aligned no adapter for {family} variants {missing}; "
                "pretrain with the same modalities.train"
            )
        rows = torch.tensor([seeds.tolist().index(v) for v in va.seeds(family)])
        for name, param in stack.items():
            value = saved[f"stacks.{family}.{name}"]
            if value.shape[1:] != param.shape[1:]:
                continue
            with torch.no_grad():
                param.copy_(value[rows.to(value.device)])
                getattr(agent.adapters[family], name).copy_(param.mean(0))
            copied.append(f"variant_adapters.stacks.{family}.{name}")
    return copied


def load_variant_adapters(agent: Agent, source: str | Path) -> VariantAdapters | None:
    """The per-variant adapters of a pretraining run (None when it trained family adapters).

    Args:
        agent: an agent with the run's families (e.g. after :func:`load_pretrained`).
        source: a pretraining ``RUNDIR`` (its newest checkpoint) or a checkpoint file.
    """
    state = load_checkpoint(
        resolve_checkpoint(source), map_location=next(agent.parameters()).device
    )
    trainer = state.get("trainer", {})
    if trainer.get("variants") is None:
        return None
    adapters = VariantAdapters(agent, trainer["pool"]).to(next(agent.parameters()).device)
    adapters.load_state_dict(trainer["variants"])
    return adapters
