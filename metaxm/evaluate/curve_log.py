"""Curves saved as they are measured, taken back by an evaluation that resumes.

``metaxm evaluate`` and the main job write every finished curve to ``curves.jsonl`` in the
report folder at once. Its first line is the evaluation's fingerprint: a hash of the spec it
evaluates under, its jobs (modality, strategy, seed) and budgets, the SHA-256 of every
checkpoint it loaded, metaxm's own source and the source of every plugin registered
(:func:`metaxm.plugin_source.plugin_sources`). An evaluation that resumes (``metaxm evaluate
--resume``; a main job whose last evaluation wrote no report, killed before its end) takes
back the curves of a log whose fingerprint is its own and measures only the rest; a log of
another evaluation (other agents, spec, seeds, strategies, code or plugin code) is started
over, and the line that says so names why. Every job is seeded on its own,
so a resumed report's curves are the ones a whole run gives
(``tests/evaluate/test_curve_log.py``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from metaxm.evaluate.episodes import Curve
    from metaxm.evaluate.runner import Job, Plan
    from metaxm.evaluate.strategies import Agents

log = logging.getLogger(__name__)

NAME = "curves.jsonl"
"""The log's file name in a report folder."""


@functools.cache
def source_digest() -> str:
    """The SHA-256 of metaxm's own source (every ``.py`` file of the package, by path): a
    curve measured by other code is not taken back."""
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def fingerprint(agents: Agents, plan: Plan) -> str:
    """The hash that ties a log to one evaluation: the spec, the plan's jobs and budgets, the
    loaded checkpoints' SHA-256 (:attr:`Agents.checkpoints`), metaxm's source and the
    plugins' (:func:`~metaxm.plugin_source.plugin_sources`)."""
    from metaxm.plugin_source import plugin_sources
    from metaxm.spec import spec_to_dict

    data = {
        "spec": spec_to_dict(agents.spec),
        "jobs": [list(job) for job in plan.jobs],
        "budgets": plan.budgets,
        "scratch_budgets": plan.scratch_budgets,
        "checkpoints": dict(sorted(agents.checkpoints.items())),
        "source": source_digest(),
        "plugins": plugin_sources(agents.spec),
    }
    text = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class CurveLog:
    """``curves.jsonl`` in ``folder``, for one evaluation (its :func:`fingerprint`).

    Args:
        folder: the report folder (made if missing).
        key: the evaluation's fingerprint.
        resume: take back the curves of a log with the same fingerprint (else start over).
    """

    def __init__(self, folder: str | Path, key: str, resume: bool) -> None:
        self.path = Path(folder) / NAME
        self.measured: dict[Job, tuple[Curve, float]] = {}
        kept = self._read(key) if resume else None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("w") as f:  # the log as kept, so a torn last line goes
            f.write(json.dumps({"fingerprint": key}) + "\n")
            for line in kept or []:
                f.write(line + "\n")

    def _read(self, key: str) -> list[str] | None:
        """The kept lines of a log with fingerprint ``key``, filling :attr:`measured`; None
        (and a warning that says why) where there is none to keep."""
        try:
            lines = self.path.read_text().splitlines()
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as err:
            log.warning("evaluate: %s cannot be read (%s); measuring every curve", self.path, err)
            return None
        try:
            head = json.loads(lines[0])["fingerprint"] if lines else None
        except (ValueError, KeyError, TypeError):
            head = None
        if head != key:
            why = "it has no fingerprint" if head is None else "another evaluation wrote it"
            log.warning("evaluate: not resuming from %s: %s; measuring every curve", self.path, why)
            return None
        kept = []
        for line in lines[1:]:
            try:
                record = json.loads(line)
                job = (record["modality"], record["strategy"], record["seed"], record["job_seed"])
                self.measured[job] = (record["curve"], float(record["seconds"]))
            except (ValueError, KeyError, TypeError):  # a line the kill tore
                continue
            kept.append(line)
        return kept

    def __call__(self, record: dict[str, Any]) -> None:
        """Append one finished curve (``run_evaluation``'s ``on_curve`` record)."""
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
