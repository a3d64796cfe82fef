"""LogConfig: the ``log:`` section of a spec, wandb and the progress bar
(:mod:`metaxm.run.logger`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

WandbMode = Literal["offline", "online", "disabled"]


@dataclass(frozen=True)
class LogConfig:
    """Where a run reports (the ``log:`` section of a spec).

    Attributes:
        mode: wandb mode: ``offline`` writes a local run under ``RUNDIR/wandb`` that
            ``wandb sync`` can upload later; ``online`` streams to the wandb server;
            ``disabled`` does not import wandb at all. JSONL is written in every mode.
        project: the wandb project name.
        progress: show a tqdm progress bar (step, return, success) on stderr.
    """

    mode: WandbMode = "offline"
    project: str = "metaxm"
    progress: bool = True

    def __post_init__(self) -> None:
        if not self.project:
            raise ValueError("project must be a non-empty string")
