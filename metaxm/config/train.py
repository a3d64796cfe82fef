"""TrainConfig: the ``train:`` section of a spec, run length, environments and checkpoints
(:mod:`metaxm.run.loop`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from metaxm.config import bounded


@dataclass(frozen=True)
class TrainConfig:
    """How long a run is and how often it reports (the ``train:`` section of a spec).

    Attributes:
        total_steps: environment steps to train for, summed over all environments and families
            (the run stops at the first update that reaches it).
        num_envs: parallel environments per training family.
        log_interval: updates between two records in ``metrics.jsonl``.
        checkpoint_interval: updates between two checkpoints (a multiple of ``log_interval``,
            so a checkpoint always falls on a log step); 0 saves only at the end.
        keep_checkpoints: how many of the newest checkpoints to keep (0 keeps all).
        eval_episodes: fresh episodes per training family for the final evaluation (0 skips).
        threads: torch's intra-op CPU threads for the run (0 keeps torch's default, one per
            core). metaxm's agents are small, so their cost is per-op overhead that extra
            threads only add synchronisation to; on a machine shared with other jobs, spinning
            threads can cost ten times the CPU time. Raise it for large encoders on idle cores.
        init_from: a run directory or checkpoint whose agent starts this run: every part
            (a family's encoder, a family's adapter, the token encoder, the core) whose
            parameters all match in name and shape is copied before the first update (e.g. MAML
            or RL^2 starting from a PPO pre-training run; RL^2's GRU core does not match an MLP
            core and stays fresh). Ignored when resuming: the checkpoint holds the weights.
        freeze: ``latent`` trains only what reads the shared latent (the core): the encoders
            and adapters keep the weights the run started from (``align.init_from`` or
            ``init_from``, one of which it needs; not with ``align.weight`` > 0), so every
            modality stays where alignment put it (:meth:`metaxm.nn.agent.Agent.freeze_latent`,
            :func:`metaxm.trainer_checks.check_frozen`); ``none`` trains every weight. PPO and RL^2
            only: MAML's inner loop adapts the adapter itself.
        loss_limit: a logged loss (a metric named ``*loss*``) whose size passes this has
            exploded without going NaN (e.g. ``ppo.lr`` far too large): the run warns once,
            naming the update and the loss.
        stop_on_divergence: stop there instead, with :class:`~metaxm.errors.DivergenceError`
            (the checkpoints on disk are from before it).
    """

    total_steps: int = bounded(200_000, 1, 10**11)
    num_envs: int = bounded(32, 1, 65536)
    log_interval: int = bounded(1, 1, 10**7)
    checkpoint_interval: int = bounded(10, 0, 10**7)
    keep_checkpoints: int = bounded(3, 0, 10**6)
    eval_episodes: int = bounded(512, 0, 10**6)
    threads: int = bounded(1, 0, 1024)
    init_from: str | None = None
    freeze: Literal["none", "latent"] = "none"
    loss_limit: float = bounded(1e6, 1.0, 1e30)
    stop_on_divergence: bool = False

    def __post_init__(self) -> None:
        if self.total_steps < 1 or self.num_envs < 1 or self.log_interval < 1:
            raise ValueError("total_steps, num_envs and log_interval must be >= 1")
        if (
            min(self.checkpoint_interval, self.keep_checkpoints, self.eval_episodes, self.threads)
            < 0
        ):
            raise ValueError(
                "checkpoint_interval, keep_checkpoints, eval_episodes and threads must be >= 0"
            )
        if self.checkpoint_interval % self.log_interval:
            raise ValueError(
                f"checkpoint_interval ({self.checkpoint_interval}) must be a multiple of "
                f"log_interval ({self.log_interval})"
            )
