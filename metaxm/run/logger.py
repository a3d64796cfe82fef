"""The run logger: JSONL always, wandb when asked (offline by default), a tqdm progress bar.

``RUNDIR/metrics.jsonl`` holds one JSON object per log step and nothing that depends on the
wall clock, so a resumed run reproduces an uninterrupted one line for line; wall-clock figures
(elapsed seconds, environment steps per second, and any metric a trainer names ``*_s``, such
as MAML's ``iteration_s``) go to ``RUNDIR/timing.jsonl``, to wandb and to the progress bar.
wandb writes under ``RUNDIR/wandb`` and never touches the network unless ``log.mode`` is
``online``.
"""

from __future__ import annotations

import json
import logging
import math
import time
import uuid
from pathlib import Path
from typing import Any

from tqdm import tqdm

from metaxm.config.log import LogConfig
from metaxm.errors import ConfigError

log = logging.getLogger(__name__)

WALL_CLOCK_SUFFIX = "_s"
"""A metric whose name ends so is seconds of wall clock or CPU: logged to ``timing.jsonl``."""


class RunLogger:
    """Writes log records of one run.

    Args:
        rundir: the run directory.
        config: the ``log`` section.
        total_steps: the run's length in environment steps (the progress bar's total).
        run_config: the resolved spec, stored with the wandb run.
        resume_update: when resuming, the update of the checkpoint: ``metrics.jsonl`` is cut
            back to the records up to it (a killed run may have logged past its checkpoint).
        initial_step: the environment step the run starts from.
    """

    def __init__(
        self,
        rundir: str | Path,
        config: LogConfig,
        total_steps: int,
        run_config: dict[str, Any] | None = None,
        resume_update: int | None = None,
        initial_step: int = 0,
    ) -> None:
        self.rundir = Path(rundir)
        self.config = config
        self.metrics_path = self.rundir / "metrics.jsonl"
        self.timing_path = self.rundir / "timing.jsonl"
        if resume_update is None:
            self.metrics_path.write_text("")
            self.timing_path.write_text("")
        else:
            _truncate_jsonl(self.metrics_path, resume_update)
            _truncate_jsonl(self.timing_path, resume_update)
        self._metrics = self.metrics_path.open("a")
        self._timing = self.timing_path.open("a")
        self._start = time.perf_counter()
        self._start_step = initial_step
        self._wandb = None
        if config.mode != "disabled":
            try:
                self._wandb = _init_wandb(
                    self.rundir, config, run_config, resume_update is not None
                )
            except ConfigError:
                self._metrics.close()
                self._timing.close()
                raise
        self._bar = None
        if config.progress:
            self._bar = tqdm(
                total=total_steps, initial=initial_step, unit="step", dynamic_ncols=True,
                desc=self.rundir.name, unit_scale=True,
            )  # fmt: skip

    def log(self, record: dict[str, Any]) -> dict[str, float]:
        """Append ``record`` (must hold ``step`` and ``update``) and report it everywhere.

        Returns:
            the wall-clock figures logged beside it (``elapsed``, ``sps``).
        """
        clock = {k: v for k, v in record.items() if k.endswith(WALL_CLOCK_SUFFIX)}
        seeded = {k: v for k, v in record.items() if k not in clock}
        self._metrics.write(json.dumps(seeded) + "\n")
        self._metrics.flush()
        elapsed = time.perf_counter() - self._start
        timing = {
            "update": record["update"],
            "step": record["step"],
            "elapsed": round(elapsed, 3),
            "sps": round((record["step"] - self._start_step) / max(elapsed, 1e-9), 1),
            **clock,
        }
        self._timing.write(json.dumps(timing) + "\n")
        self._timing.flush()
        if self._wandb is not None:
            self._wandb.log({**record, **timing}, step=record["step"])
        if self._bar is not None:
            self._bar.update(record["step"] - self._bar.n)
            post = {
                "ret": record.get("return"),
                "succ": record.get("success"),
                "sps": timing["sps"],
            }
            self._bar.set_postfix(
                {
                    k: f"{v:.3g}"
                    for k, v in post.items()
                    if isinstance(v, float) and math.isfinite(v)
                }
            )
        return timing

    def summary(self, values: dict[str, Any]) -> None:
        """Record end-of-run values (final evaluation, throughput) in wandb's summary."""
        if self._wandb is not None:
            for k, v in values.items():
                self._wandb.summary[k] = v

    def close(self) -> None:
        """Flush and close everything (safe to call twice)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        for f in (self._metrics, self._timing):
            if not f.closed:
                f.close()
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None


def read_metrics(rundir: str | Path) -> list[dict[str, Any]]:
    """The records of ``RUNDIR/metrics.jsonl``."""
    path = Path(rundir) / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _truncate_jsonl(path: Path, update: int) -> None:
    """Keep the records with ``update`` <= the given one (and drop a torn last line)."""
    if not path.is_file():
        path.write_text("")
        return
    kept = []
    lines = path.read_text().splitlines()
    for number, line in enumerate(lines, 1):
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            rec = None
        if not isinstance(rec, dict):
            if number < len(lines):  # a kill tears only the last line: this one was edited
                log.warning("%s: line %d is not a record; dropped, the rest kept", path, number)
            continue
        if rec.get("update", 0) <= update:
            kept.append(line + "\n")
    path.write_text("".join(kept))


def _init_wandb(rundir: Path, config: LogConfig, run_config: dict[str, Any] | None, resume: bool):
    import wandb  # heavy: imported only when asked for

    id_file = rundir / "wandb_id.txt"
    if resume and id_file.is_file():
        run_id = id_file.read_text().strip()
    else:
        run_id = uuid.uuid4().hex[:8]  # OS entropy: leaves every seeded generator alone
        id_file.write_text(run_id + "\n")
    try:
        return wandb.init(
            project=config.project,
            dir=str(rundir),
            mode=config.mode,
            id=run_id,
            name=rundir.name,
            config=run_config,
            resume="allow",
            settings=wandb.Settings(console="off", silent=True),
        )
    except (wandb.errors.Error, ValueError) as err:  # no API key, a bad WANDB_* variable
        said = " ".join(str(err).split())[:160] or type(err).__name__
        fix = (
            "set log.mode=offline to keep the run's logs on this machine"
            if isinstance(err, wandb.errors.Error)
            else "check the WANDB_* environment variables"
        )
        raise ConfigError(f"log.mode: {config.mode}: wandb did not start ({said}); {fix}") from None
