"""Curves saved as they are measured, taken back by an evaluation that resumes.

``metaxm evaluate`` and the main job write every finished curve to ``curves.jsonl`` in the
report folder at once. Its first line is the evaluation's fingerprint: a hash of the spec it
evaluates under, its jobs (modality, strategy, seed) and budgets, the SHA-256 of every
checkpoint it loaded, metaxm's own source and the source of every plugin registered
(:func:`metaxm.plugin_source.plugin_sources`), each part's hash kept beside it. An evaluation
that resumes (``metaxm evaluate --resume``; a main job whose last evaluation wrote no report,
killed before its end) takes back the curves of a log whose fingerprint is its own and
measures only the rest; a log of another evaluation (other agents, spec, seeds, strategies,
code or plugin code) is started over, and the line that says so names which parts differ.
Every job is seeded on its own, so a resumed report's curves are the ones a whole run gives
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


PARTS = {
    "spec": "settings (the spec)",
    "jobs": "jobs or budgets",
    "checkpoints": "checkpoints",
    "source": "metaxm code",
    "plugins": "plugin or env code",
}
"""What a fingerprint hashes, each part named as a warning names it when it differs."""


def _sha(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def fingerprint(agents: Agents, plan: Plan) -> dict[str, Any]:
    """The log's first line, which ties it to one evaluation: ``fingerprint``, the hash of
    its ``parts``: the spec, the plan's jobs and budgets, the loaded checkpoints' SHA-256
    (:attr:`Agents.checkpoints`), metaxm's source and the plugins' (``{package: SHA-256}``,
    :func:`~metaxm.plugin_source.plugin_sources`), kept so that a log not taken back can say
    which differ."""
    from metaxm.plugin_source import plugin_sources
    from metaxm.spec import spec_to_dict

    parts = {
        "spec": _sha(spec_to_dict(agents.spec)),
        "jobs": _sha([[list(job) for job in plan.jobs], plan.budgets, plan.scratch_budgets]),
        "checkpoints": _sha(dict(sorted(agents.checkpoints.items()))),
        "source": source_digest(),
        "plugins": plugin_sources(agents.spec),
    }
    return {"fingerprint": _sha(parts), "parts": parts}


def differences(saved: Any, now: dict[str, Any]) -> str:
    """What differs between a saved log's ``parts`` and ``now``'s, in words (the plugins by
    package); empty where the saved log kept none to compare (an older one)."""
    if not isinstance(saved, dict):
        return ""
    out = [
        text for part, text in PARTS.items() if part != "plugins" and saved.get(part) != now[part]
    ]
    old, new = saved.get("plugins"), now["plugins"]
    if old != new:
        old = old if isinstance(old, dict) else {}
        changed = sorted(k for k in {*old, *new} if old.get(k) != new.get(k))
        out.append(f"{PARTS['plugins']} ({', '.join(changed)})" if changed else PARTS["plugins"])
    return ", ".join(out)


class CurveLog:
    """``curves.jsonl`` in ``folder``, for one evaluation (its :func:`fingerprint`).

    Args:
        folder: the report folder (made if missing).
        head: the evaluation's :func:`fingerprint`, the log's first line.
        resume: take back the curves of a log with the same fingerprint (else start over).
    """

    def __init__(self, folder: str | Path, head: dict[str, Any], resume: bool) -> None:
        self.path = Path(folder) / NAME
        self.measured: dict[Job, tuple[Curve, float]] = {}
        kept = self._read(head) if resume else None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("w") as f:  # the log as kept, so a torn last line goes
            f.write(json.dumps(head) + "\n")
            for line in kept or []:
                f.write(line + "\n")

    def _read(self, head: dict[str, Any]) -> list[str] | None:
        """The kept lines of a log with ``head``'s fingerprint, filling :attr:`measured`; None
        (and a warning that says why, naming what differs where it can) where there is none
        to keep."""
        try:
            lines = self.path.read_text().splitlines()
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as err:
            log.warning("evaluate: %s cannot be read (%s); measuring every curve", self.path, err)
            return None
        try:
            saved = json.loads(lines[0]) if lines else None
            key, parts = saved["fingerprint"], saved.get("parts")
        except (ValueError, KeyError, TypeError, AttributeError):
            key = parts = None
        if key != head["fingerprint"]:
            diff = differences(parts, head["parts"]) if key is not None else ""
            why = (
                "it has no fingerprint"
                if key is None
                else f"its curves were measured with other {diff}"
                if diff
                else "another evaluation wrote it"
            )
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
