"""Run machinery shared by every algorithm: the loop, logging, checkpoints, learning curves.

See :mod:`metaxm.run.loop` for the :class:`~metaxm.run.loop.Trainer` protocol a new algorithm
implements to get run directories, JSONL/wandb logging, progress bars, atomic checkpoints,
exact resume and the NaN guard for free.
"""

from __future__ import annotations
