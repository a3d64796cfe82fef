"""The ``evaluate:`` section of a spec."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from metaxm.config import bounded

Metric = Literal["success", "return"]


@dataclass(frozen=True)
class EvalConfig:
    """How the evaluator measures few-shot transfer.

    Attributes:
        seeds: independent repetitions of every (modality, strategy) curve.
        budgets: episodes of target-modality experience after which adapting strategies are
            measured (0 = before any).
        scratch_cap: the most episodes PPO from scratch gets; it is measured at ``budgets``
            and then at doublings up to this cap. Runs that never reach the threshold are
            reported as censored at the cap.
        eval_episodes: fresh episodes behind every measurement.
        strategies: which strategies to run (those whose agent is missing are skipped);
            ``scratch`` is measured beside them always, the baseline of the speed-up.
        metric: the performance the transfer metrics and the threshold are computed on.
        threshold: the fraction of source-modality performance that counts as adapted.
        workers: processes that measure curves in parallel (each with one torch thread).
        finetune_lr: the Adam learning rate of ``finetune`` (null: ``ppo.lr``, the rate the
            agent was trained with, which on a few episodes can undo what it learned).
        target_episodes: the headline's target: the best strategy reaches the threshold within
            this many episodes...
        target_speedup: ...while scratch needs at least this many times more.
    """

    seeds: int = bounded(5, 1, 1000)
    budgets: tuple[int, ...] = bounded((0, 1, 2, 4, 8, 16, 32), 0, 4096)
    scratch_cap: int = bounded(1024, 1, 10**6)
    eval_episodes: int = bounded(64, 1, 10**6)
    strategies: tuple[str, ...] = (
        "zeroshot", "maml", "rl2", "align", "translate", "finetune", "scratch",
    )  # fmt: skip
    metric: Metric = "success"
    threshold: float = bounded(0.8, 0, 1)
    workers: int = bounded(1, 1, 256)
    finetune_lr: float | None = bounded(None, 1e-10, 1)
    target_episodes: int = bounded(8, 0, 4096)
    target_speedup: float = bounded(10.0, 1.0, 1e6)

    def __post_init__(self) -> None:
        if self.seeds < 1 or self.eval_episodes < 1 or self.workers < 1:
            raise ValueError("seeds, eval_episodes and workers must be >= 1")
        if (
            not self.budgets
            or list(self.budgets) != sorted(set(self.budgets))
            or self.budgets[0] < 0
        ):
            raise ValueError(f"budgets must be increasing and >= 0, got {list(self.budgets)}")
        if self.scratch_cap < self.budgets[-1]:
            raise ValueError(
                f"scratch_cap ({self.scratch_cap}) must be >= the largest budget "
                f"({self.budgets[-1]})"
            )
        if self.finetune_lr is not None and self.finetune_lr <= 0:
            raise ValueError(f"finetune_lr must be > 0 or null, got {self.finetune_lr}")
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"threshold must lie in (0, 1], got {self.threshold}")
