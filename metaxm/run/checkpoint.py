"""Checkpoints: written atomically, verified by checksum, loaded safely, holding everything
needed to resume exactly.

A checkpoint is a ``torch.save`` of plain data only: tensors, numbers, strings, lists and dicts
(model and optimizer state, generator states, counters, the resolved spec). That is what lets
:func:`load_checkpoint` use ``torch.load(weights_only=True)``: a file carrying a pickled code
payload is refused before anything in it runs.

Writing goes to a temporary file in the same directory, is flushed to disk, then renamed over
the final name (``os.replace`` is atomic on POSIX), so a run killed mid-write, even by SIGKILL,
leaves the previous checkpoints intact and no half-written ``ckpt-*.pt``.

Beside every ``ckpt-<update>.pt`` lies ``ckpt-<update>.pt.sha256``, the SHA-256 of the file in
``sha256sum``'s format (``sha256sum -c`` checks it). It is written, atomically, after the
checkpoint's temporary file is on disk and before that file takes its final name, so a
checkpoint never exists without its checksum. :func:`load_checkpoint` refuses a file whose
checksum does not match (it changed after it was written: a bad disk, a partial copy, an edit)
or that has none, and names the newest earlier checkpoint that still verifies
(:func:`last_good_checkpoint`); :func:`newest_checkpoint` can fall back to it on resume.
:func:`check_resumable` then refuses a checkpoint of another algorithm or spec before any of
its weights are loaded.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import random
import re
import tempfile
import zipfile
from collections.abc import Collection
from pathlib import Path
from typing import Any

import numpy as np
import torch

from metaxm.errors import CheckpointError

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
CHECKSUM_SUFFIX = ".sha256"
_NAME = re.compile(r"^ckpt-(\d+)\.pt$")
RESUME_KEYS = ("algo", "spec", "trainer", "loop", "rng")
"""The top-level keys of a checkpoint of ``metaxm train`` or ``metaxm pretrain``."""
_NOT_WRITTEN_HERE = "it was not written by this metaxm version or was copied without it"


def state_dict_error(err: RuntimeError) -> str:
    """What ``load_state_dict``'s error says is wrong, on one line (its first line only names
    the module)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    detail = " ".join(lines[1:]) or (lines[0] if lines else "")
    return detail if len(detail) <= 300 else detail[:297] + "..."


def checkpoint_path(rundir: str | Path, update: int) -> Path:
    """``RUNDIR/checkpoints/ckpt-<update>.pt``."""
    return Path(rundir) / "checkpoints" / f"ckpt-{update:08d}.pt"


def checksum_path(path: str | Path) -> Path:
    """The checksum file of a checkpoint: ``ckpt-<update>.pt.sha256``."""
    path = Path(path)
    return path.with_name(path.name + CHECKSUM_SUFFIX)


def list_checkpoints(rundir: str | Path) -> list[Path]:
    """The run's checkpoints, oldest first (checksum and temporary files are ignored)."""
    folder = Path(rundir) / "checkpoints"
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint file, or the newest checkpoint of a run directory."""
    path = Path(path)
    if path.is_dir():
        found = list_checkpoints(path)
        if not found:
            runs = sorted(p.name for p in path.iterdir() if p.is_dir() and list_checkpoints(p))
            if runs:  # a main job's folder, or a folder of runs
                shown = ", ".join(runs[:3]) + (", ..." if len(runs) > 3 else "")
                raise CheckpointError(
                    f"{path}: a folder of runs ({shown}), not one run; name one, e.g. "
                    f"{path / runs[0]}"
                )
            raise CheckpointError(f"{path}: no checkpoints in this run directory")
        return found[-1]
    return path


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` to ``path`` atomically, with its checksum file beside it.

    The order keeps a crash at any point harmless: the temporary file is written and fsynced,
    hashed, the checksum file written atomically, and only then is the temporary file renamed
    to ``path``. A crash before that last rename leaves at most a stray checksum file (or one
    that names a newer write of the same update), never a checkpoint without its checksum.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"format_version": FORMAT_VERSION, **payload}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(data, f)
            f.flush()
            os.fsync(f.fileno())
        _write_checksum(checksum_path(path), file_sha256(Path(tmp)), path.name)
        _fsync_dir(path.parent)  # the checksum's rename reaches the disk before the file's
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_checksum(path: str | Path) -> Path:
    """(Re)write the checksum file of an existing checkpoint file; returns its path.

    :func:`save_checkpoint` does this itself. This is for tools (and tests) that make a
    checkpoint by other means and vouch for its contents; it does not make a file safe to load:
    :func:`load_checkpoint` still refuses code and foreign data.
    """
    path = Path(path)
    return _write_checksum(checksum_path(path), file_sha256(path), path.name)


def load_checkpoint(
    path: str | Path, map_location: str | torch.device = "cpu", verify: bool = True
) -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``, after checking its checksum.

    Args:
        path: the checkpoint file.
        map_location: where its tensors go.
        verify: check the file against its checksum file first (and refuse it without one);
            ``False`` is for tools reading files made elsewhere.

    Raises:
        CheckpointError: the file is missing, has no checksum file or does not match it,
            is truncated, corrupt, not a metaxm checkpoint, or carries objects other than
            tensors and plain data (a possible code payload, which is never executed). The
            message names the run's newest earlier checkpoint that verifies.
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path}: a folder, not a checkpoint file")
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    problem = _problem(path, verify)
    if problem is not None:
        raise CheckpointError(f"{path}: {problem}{_last_good_note(path)}")
    corrupt = "truncated or corrupt checkpoint ({})"
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        text = str(err)
        if "Unsupported global" not in text and "GLOBAL" not in text:
            note = _last_good_note(path)
            raise CheckpointError(f"{path}: {corrupt.format(_first_line(err))}{note}") from None
        raise CheckpointError(
            f"{path}: refused to load: it holds objects other than tensors and plain data, "
            f"possibly code ({_first_line(err)}); nothing in it was run"
        ) from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError, KeyError) as err:
        note = _last_good_note(path)
        raise CheckpointError(f"{path}: {corrupt.format(_first_line(err))}{note}") from None
    if not isinstance(data, dict) or data.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: not a metaxm checkpoint (format {FORMAT_VERSION})")
    return data


def last_good_checkpoint(rundir: str | Path, before: Path | None = None) -> Path | None:
    """The run's newest checkpoint (older than ``before``, if given) that verifies: its
    checksum file matches and its archive index is readable. None if none does."""
    found = list_checkpoints(rundir)
    if before is not None and (m := _NAME.match(Path(before).name)):
        found = [p for p in found if _update(p) < int(m.group(1))]
    return next((p for p in reversed(found) if _problem(p) is None), None)


def newest_checkpoint(rundir: str | Path, fallback: bool = False) -> Path | None:
    """The checkpoint to resume ``rundir`` from: its newest, checked (None if it has none).

    Args:
        rundir: the run directory.
        fallback: when the newest checkpoint does not verify, resume from the newest that does,
            with a warning naming those skipped (``--resume-last-good``).

    Raises:
        CheckpointError: the newest checkpoint does not verify (naming the last good one) and
            ``fallback`` is false; or none does.
    """
    found = list_checkpoints(rundir)
    if not found:
        return None
    newest = found[-1]
    problem = _problem(newest)
    if problem is None:
        return newest
    good = last_good_checkpoint(rundir, before=newest)
    if good is None:
        raise CheckpointError(f"{newest}: {problem}; no earlier checkpoint verifies")
    if not fallback:
        raise NewestDamaged(newest, problem, good)
    skipped = [p.name for p in found if _update(p) > _update(good)]
    log.warning(
        "%s: skipping %s (the newest does not verify: %s); resuming from %s",
        rundir, ", ".join(skipped), problem, good.name,
    )  # fmt: skip
    return good


def check_resumable(
    state: dict[str, Any], path: str | Path, algo: str, spec_data: dict[str, Any]
) -> None:
    """Refuse, before any weight is loaded, a checkpoint that ``--resume`` cannot continue.

    Args:
        state: what :func:`load_checkpoint` returned.
        path: its file (for the message).
        algo: what this run trains (the spec's ``algo``), or ``"pretrain"`` for
            ``metaxm pretrain``.
        spec_data: this run's resolved spec as plain data
            (:func:`metaxm.spec.spec_to_dict`).

    Raises:
        CheckpointError: the checkpoint lacks a run's state (another tool wrote it), comes
            from another algorithm (a pretraining checkpoint in a training run, a MAML one in a
            PPO run, ...), or from a run of another spec (naming the first differing key).
    """
    missing = [k for k in RESUME_KEYS if k not in state]
    if missing or not isinstance(state["trainer"], dict) or not isinstance(state["spec"], dict):
        what = f"{', '.join(missing)} missing" if missing else "its trainer or spec is no dict"
        raise CheckpointError(
            f"{path}: holds no run state to resume ({what}); it was not written by "
            "metaxm train or pretrain"
        )
    theirs = str(state["algo"])
    if theirs != algo:
        mine = "this run pretrains" if algo == "pretrain" else f"this run trains {algo}"
        hint = ""
        if algo != "pretrain":
            start = "align.init_from" if theirs == "pretrain" else "train.init_from"
            hint = f" (to start a new run from its weights, use {start})"
        raise CheckpointError(f"{path}: {_kind(theirs)} checkpoint; {mine}{hint}")
    differs = spec_difference(state["spec"], spec_data)
    if differs is not None:
        raise CheckpointError(
            f"{path}: written by a run of another spec (first difference at {differs}); resume "
            "with the spec and --set values it was written with"
        )


class NewestDamaged(CheckpointError):
    """The newest checkpoint does not verify (``problem``) and an earlier one, ``good``, does:
    ``--resume-last-good`` resumes from it (the main job names the command that takes it)."""

    def __init__(self, newest: Path, problem: str, good: Path) -> None:
        self.newest, self.problem, self.good = newest, problem, good
        super().__init__(
            f"{newest}: {problem}; pass --resume-last-good (last_good=True from Python) to resume "
            f"from {good}"
        )

    def __reduce__(self) -> tuple[Any, ...]:  # to cross a process boundary whole
        return NewestDamaged, (self.newest, self.problem, self.good)


def spec_difference(saved: Any, data: dict[str, Any], ignore: Collection[str] = ()) -> str | None:
    """Where a run's saved spec differs from ``data`` (the spec as plain data): the dotted key
    of the first difference, or None where they agree. A spec an older metaxm saved is read
    with the fields added since at their defaults (:func:`metaxm.spec.with_defaults`); the
    top-level sections in ``ignore`` are not compared."""
    from metaxm.spec import with_defaults

    if saved != data:
        saved = with_defaults(saved)
    if ignore and isinstance(saved, dict):
        saved, data = ({k: v for k, v in d.items() if k not in ignore} for d in (saved, data))
    return None if saved == data else first_difference(saved, data)


def first_difference(a: Any, b: Any, key: str = "") -> str:
    """The dotted key of the first difference between two nested dicts (``train.total_steps``),
    ``the top level`` when they are not both dicts."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in list(a) + [k for k in b if k not in a]:
            if a.get(k) != b.get(k):
                return first_difference(a.get(k), b.get(k), f"{key}.{k}" if key else str(k))
    return key or "the top level"


def prune_checkpoints(rundir: str | Path, keep: int) -> None:
    """Delete all but the newest ``keep`` checkpoints and their checksum files (``keep`` <= 0
    keeps everything), and the temporary files of writes a killed process left (a SIGKILL
    mid-write; the one writer a run folder's lock allows is past its own)."""
    for stale in (Path(rundir) / "checkpoints").glob(".ckpt-*.tmp"):
        stale.unlink(missing_ok=True)
    if keep <= 0:
        return
    for old in list_checkpoints(rundir)[:-keep]:
        old.unlink(missing_ok=True)
        checksum_path(old).unlink(missing_ok=True)


# --------------------------------------------------------------------------- integrity helpers
def file_sha256(path: str | Path) -> str:
    """The file's SHA-256, read in chunks (a checkpoint may not fit in memory twice)."""
    with Path(path).open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _write_checksum(sidecar: Path, digest: str, name: str) -> Path:
    """Write ``sidecar`` atomically (temporary file, fsync, rename), as ``sha256sum`` does."""
    fd, tmp = tempfile.mkstemp(prefix=f".{sidecar.name}.", suffix=".tmp", dir=sidecar.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(f"{digest}  {name}\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, sidecar)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return sidecar


def _fsync_dir(folder: Path) -> None:
    """Make the renames in ``folder`` durable (POSIX; a no-op where directories cannot be
    opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _torch_written(path: Path) -> bool:
    """Whether ``path`` starts as torch.save's files do: a zip archive (``PK``, also when cut
    short) or a pickle (the format before torch 1.6)."""
    try:
        with path.open("rb") as f:
            head = f.read(4)
    except OSError:
        return True  # let the reading say what is wrong
    return head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"


def _problem(path: Path, verify: bool = True) -> str | None:
    """Why ``path`` does not verify (no checksum file, a mismatch, no readable archive index),
    or None."""
    if verify:
        sidecar = checksum_path(path)
        try:
            recorded = sidecar.read_text().split(maxsplit=1)
        except FileNotFoundError:
            if not _torch_written(path):  # a spec, a JSON result: no torch file at all
                return "not a checkpoint or a run folder (no file torch.save wrote)"
            return f"no checksum file {sidecar.name}; {_NOT_WRITTEN_HERE}"
        except (OSError, UnicodeDecodeError):
            recorded = []
        if not recorded or recorded[0].lower() != file_sha256(path):
            return "checksum mismatch (the file changed after it was written)"
    try:  # torch.save writes a zip archive; a cut one has no index
        with zipfile.ZipFile(path):
            pass
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return "truncated or corrupt checkpoint (not a complete torch archive)"
    return None


def _last_good_note(path: Path) -> str:
    """``; the last good checkpoint is ...`` for a checkpoint inside a run's ``checkpoints/``
    folder (``; no earlier checkpoint verifies`` when none does); empty for a loose file."""
    if path.parent.name != "checkpoints" or not _NAME.match(path.name):
        return ""
    good = last_good_checkpoint(path.parent.parent, before=path)
    return (
        "; no earlier checkpoint verifies"
        if good is None
        else f"; the last good checkpoint is {good}"
    )


def _update(path: Path) -> int:
    m = _NAME.match(path.name)
    return int(m.group(1)) if m else -1


def _kind(algo: str) -> str:
    return "a pretraining" if algo == "pretrain" else f"a {algo}"


def _first_line(err: BaseException) -> str:
    """The most telling line of a loader error, shortened."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    pick = next((ln for ln in lines if "GLOBAL" in ln or "Unsupported" in ln), None)
    return (pick or (lines[0] if lines else type(err).__name__))[:160]


# --------------------------------------------------------------------------- global RNG state
def global_rng_state() -> dict[str, Any]:
    """The states of torch's, numpy's and Python's global generators, as plain data.

    metaxm's own code draws only from explicit generators; this covers user code and
    libraries that draw from global state, so that a resumed run matches an uninterrupted one.
    """
    np_state = np.random.get_state()  # noqa: NPY002 (capturing the legacy global state)
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": _to_lists(random.getstate()),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_global_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`global_rng_state` captured."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(  # noqa: NPY002
        (
            "MT19937",
            n["keys"].numpy().astype(np.uint32),
            n["pos"],
            n["has_gauss"],
            n["cached_gaussian"],
        )
    )
    random.setstate(_to_tuples(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _to_lists(x: Any) -> Any:
    return [_to_lists(v) for v in x] if isinstance(x, (list, tuple)) else x


def _to_tuples(x: Any) -> Any:
    return tuple(_to_tuples(v) for v in x) if isinstance(x, (list, tuple)) else x
