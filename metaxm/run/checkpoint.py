"""Checkpoints: written atomically, loaded safely, holding everything needed to resume exactly.

A checkpoint is a ``torch.save`` of plain data only: tensors, numbers, strings, lists and dicts
(model and optimizer state, generator states, counters, the resolved spec). That is what lets
:func:`load_checkpoint` use ``torch.load(weights_only=True)``: a file carrying a pickled code
payload is refused before anything in it runs.

Writing goes to a temporary file in the same directory, is flushed to disk, then renamed over
the final name (``os.replace`` is atomic on POSIX), so a run killed mid-write, even by SIGKILL,
leaves the previous checkpoints intact and no half-written ``ckpt-*.pt``.
"""

from __future__ import annotations

import os
import pickle
import random
import re
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from metaxm.errors import CheckpointError

FORMAT_VERSION = 1
_NAME = re.compile(r"^ckpt-(\d+)\.pt$")


def checkpoint_path(rundir: str | Path, update: int) -> Path:
    """``RUNDIR/checkpoints/ckpt-<update>.pt``."""
    return Path(rundir) / "checkpoints" / f"ckpt-{update:08d}.pt"


def list_checkpoints(rundir: str | Path) -> list[Path]:
    """The run's checkpoints, oldest first (temporary files are ignored)."""
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
            raise CheckpointError(f"{path}: no checkpoints in this run directory")
        return found[-1]
    return path


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` to ``path`` atomically (temporary file, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"format_version": FORMAT_VERSION, **payload}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(data, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``.

    Raises:
        CheckpointError: the file is missing, truncated, corrupt, not a metaxm checkpoint, or
            carries objects other than tensors and plain data (a possible code payload, which is
            never executed).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    corrupt = (
        "truncated or corrupt checkpoint ({}); earlier checkpoints in the folder are untouched"
    )
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; a cut one has no index
        raise CheckpointError(f"{path}: " + corrupt.format("not a complete torch archive"))
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        text = str(err)
        if "Unsupported global" not in text and "GLOBAL" not in text:
            raise CheckpointError(f"{path}: " + corrupt.format(_first_line(err))) from None
        raise CheckpointError(
            f"{path}: refused to load: it holds objects other than tensors and plain data, "
            f"possibly code ({_first_line(err)}); nothing in it was run"
        ) from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError, KeyError) as err:
        raise CheckpointError(f"{path}: " + corrupt.format(_first_line(err))) from None
    if not isinstance(data, dict) or data.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: not a metaxm checkpoint (format {FORMAT_VERSION})")
    return data


def _first_line(err: BaseException) -> str:
    """The most telling line of a loader error, shortened."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    pick = next((ln for ln in lines if "GLOBAL" in ln or "Unsupported" in ln), None)
    return (pick or (lines[0] if lines else type(err).__name__))[:160]


def prune_checkpoints(rundir: str | Path, keep: int) -> None:
    """Delete all but the newest ``keep`` checkpoints (``keep`` <= 0 keeps everything)."""
    if keep <= 0:
        return
    for old in list_checkpoints(rundir)[:-keep]:
        old.unlink(missing_ok=True)


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
