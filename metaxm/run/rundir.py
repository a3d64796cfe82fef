"""Output folders: checked before anything is written, and one writer at a time.

Every command that writes a folder (``metaxm train``, ``pretrain``, ``main``, ``evaluate``)
goes through :class:`OutputLock` and, for a run, :func:`open_rundir`:

* ``--out`` is checked first: an empty path, an existing file, or a folder holding files but no
  run (a ``metrics.jsonl`` and no ``config.yaml``, say) is refused in one line, so nothing of
  the user's is overwritten;
* a lock file ``DIR/.metaxm.lock`` is taken before anything else is written, with an
  exclusive ``flock``; it holds the writer's pid, host and start time. A second writer is
  refused in one line naming the holder. The kernel drops a ``flock`` when its process dies,
  even by SIGKILL, so a lock file left behind by a killed run is stale by construction: the
  next writer takes it over (``--resume`` after a kill keeps working). ``flock`` is advisory
  and local: on a network file system shared by several hosts, give each host its own folder;
* a refused start removes what it made (the lock file, and the folder if it created it).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

from metaxm.errors import ConfigError
from metaxm.run.checkpoint import list_checkpoints, newest_checkpoint, spec_difference
from metaxm.yaml_io import dump_yaml, read_yaml

log = logging.getLogger(__name__)

LOCK_NAME = ".metaxm.lock"
RUN_FILES = ("config.yaml", "checkpoints", "metrics.jsonl")


def check_out_path(path: str | Path, flag: str = "--out") -> Path:
    """``path`` as a folder metaxm may write into; refuses an empty path or an existing file."""
    if str(path).strip() == "":
        raise ConfigError(f"{flag}: empty path; name the folder to write into")
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{flag} {path}: is a file, not a folder")
    parent = next((p for p in path.absolute().parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise ConfigError(f"{flag} {path}: {parent} is a file, not a folder")
    return path


def check_result_path(path: str | Path, flag: str = "--out", example: str = "result.json") -> None:
    """Refuse a result file path that cannot be written: empty, a folder, under a file, or in
    a folder that is not writable (checked before the work that fills it); ``example`` is the
    file name a refusal of a folder suggests."""
    if str(path).strip() == "":
        raise ConfigError(f"{flag}: empty path; name the file to write")
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{flag} {path}: is a folder; name a file (e.g. {path}/{example})")
    parent = next(p for p in path.absolute().parents if p.exists())  # made if missing
    if not parent.is_dir():
        raise ConfigError(f"{flag} {path}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK):
        raise ConfigError(f"{flag} {path}: the folder {parent} is not writable")


REPORT_FILES = {"report.json", "report.md", "curves.png", "speedup.png", "curves.jsonl"}


def check_report_out(folder: Path) -> None:
    """Refuse a report folder holding files other than a report's (they are never touched)."""
    if not folder.is_dir():
        return
    others = sorted(p.name for p in folder.iterdir() if p.name not in REPORT_FILES | {LOCK_NAME})
    if others:
        shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
        raise ConfigError(
            f"--out {folder} holds files that are not a report ({shown}); choose a new or "
            "empty folder"
        )


class OutputLock:
    """An exclusive lock on an output folder (see the module docstring).

    Use as a context manager; :meth:`acquire` creates the folder if needed and remembers
    whether it did, so :meth:`release` with ``remove_created`` can leave no trace of a refused
    start.
    """

    def __init__(self, folder: str | Path, flag: str = "--out") -> None:
        self.folder = check_out_path(folder, flag)
        self.flag = flag
        self.path = self.folder / LOCK_NAME
        self.created = False
        self._fd: int | None = None

    def acquire(self) -> OutputLock:
        try:  # two starts may both find no folder: exactly one of them makes it
            self.folder.mkdir(parents=True)
            self.created = True
        except FileExistsError:
            if not self.folder.is_dir():
                raise
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                os.close(fd)
                if err.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                    raise
                self.release(remove_created=True)
                raise ConfigError(
                    f"{self.flag} {self.folder}: another metaxm process is writing here "
                    f"({self._holder()}); wait for it or choose another folder"
                ) from None
            # the holder may have removed the file between our open and our flock
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        self._fd = fd
        os.ftruncate(fd, 0)
        info = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
        os.write(fd, (json.dumps(info) + "\n").encode())
        return self

    def _holder(self) -> str:
        try:
            info = json.loads(self.path.read_text())
            since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info["since"]))
            return f"pid {info['pid']} on {info['host']}, since {since}"
        except (OSError, ValueError, KeyError, TypeError):
            return f"holder unknown, see {self.path}"

    def release(self, remove_created: bool = False) -> None:
        """Drop the lock and its file; with ``remove_created`` also the folder, if this lock
        made it and it is now empty."""
        if self._fd is not None:
            self.path.unlink(missing_ok=True)
            os.close(self._fd)  # closing drops the flock
            self._fd = None
        if remove_created and self.created:
            with contextlib.suppress(OSError):  # something else was written there: keep it
                self.folder.rmdir()

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        self.release(remove_created=exc_type is not None)  # a failed start leaves no folder


def check_resume_flags(args: Any) -> None:
    """Refuse ``--resume-last-good`` without ``--resume`` and an unusable ``--out`` at once."""
    if getattr(args, "resume_last_good", False) and not args.resume:
        raise ConfigError("--resume-last-good: only with --resume")
    check_out_path(args.out)


def check_only(
    spec: Any, out: str | Path, resume: bool, what: str | None = None, last_good: bool = False
) -> int:
    """``--check``: the spec is loaded and checked; check ``out`` for this start too (with
    ``--resume-last-good``'s fallback past a checkpoint that does not verify), print one line
    and return 0. Builds and writes nothing."""
    from metaxm.spec import spec_to_dict

    path = check_out_path(out)
    if path.is_dir():
        open_rundir(path, spec_to_dict(spec), resume, last_good)
    elif resume:
        raise ConfigError(f"--resume: {path} holds no run (no such folder)")
    if not resume:  # a fresh run starts its agent from these (metaxm.run.init)
        check_init_sources(spec)
    action = "resume" if resume else "start"
    print(f"spec and --out {path} are fine to {action} ({what or spec.algo} on {spec.world.name})")
    return 0


def check_init_sources(spec: Any) -> None:
    """Refuse an ``align.init_from`` or ``train.init_from`` that names no run or checkpoint.

    Raises:
        ConfigError: the path does not exist.
        CheckpointError: a folder without checkpoints, or a checkpoint that does not verify.
    """
    from metaxm.run.checkpoint import load_checkpoint, resolve_checkpoint

    for key, source in (
        ("align.init_from", spec.align.init_from), ("train.init_from", spec.train.init_from),
    ):  # fmt: skip
        if not source:
            continue
        if not Path(source).exists():
            raise ConfigError(f"{key}: {source} does not exist; name a run folder or checkpoint")
        load_checkpoint(resolve_checkpoint(source))  # checksum and format, one line if bad


def open_rundir(
    rundir: Path, data: dict[str, Any], resume: bool, last_good: bool = False
) -> Path | None:
    """Check ``rundir`` for a fresh run or a resume of the spec ``data``; writes nothing.

    Returns:
        the checkpoint to resume from, or None to start from the beginning.

    Raises:
        ConfigError: a fresh run into a folder that holds a run or other files; a resume of a
            folder without a run, or with another spec.
        CheckpointError: the newest checkpoint does not verify (``last_good`` falls back to
            the newest one that does).
    """
    config_path = rundir / "config.yaml"
    if resume:
        if config_path.is_file():
            differs = spec_difference(read_yaml(config_path), data)
            if differs is not None:
                raise ConfigError(
                    f"--resume: the spec differs from the one {rundir} was started with "
                    f"(first difference at {differs}); resume with the same spec and --set "
                    "values"
                )
        elif list_checkpoints(rundir):
            log.warning(
                "%s has checkpoints but no config.yaml (deleted?): the checkpoint's spec is "
                "checked against this one instead, and config.yaml written again", rundir
            )  # fmt: skip
        else:
            raise ConfigError(f"--resume: {rundir} holds no run (no config.yaml)")
        found = newest_checkpoint(rundir, fallback=last_good)
        if found is None:
            log.warning("%s has no checkpoint yet; starting the run from the beginning", rundir)
        return found
    if config_path.exists() or (rundir / "checkpoints").exists():
        raise ConfigError(
            f"--out {rundir} already holds a run; pass --resume (resume=True from Python) to "
            "continue it or choose another directory"
        )
    others = (
        sorted(p.name for p in rundir.iterdir() if p.name != LOCK_NAME) if rundir.is_dir() else []
    )
    if others:
        shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
        raise ConfigError(
            f"--out {rundir} holds files but no run ({shown}); choose a new or empty folder"
        )
    return None


STARTED_FILES = (
    "config.yaml",
    "init.json",
    "metrics.jsonl",
    "timing.jsonl",
    "wandb",
    "wandb_id.txt",
)


def discard_unstarted(rundir: Path) -> None:
    """Remove what a fresh run wrote before it failed, if it reached no checkpoint: a plain
    retry then starts it afresh (instead of "already holds a run"). Anything else is kept."""
    import shutil

    if list_checkpoints(rundir):
        return
    for name in STARTED_FILES:
        path = rundir / name
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # only if empty
        (rundir / "checkpoints").rmdir()


def write_config(rundir: Path, data: dict[str, Any]) -> None:
    """Write ``RUNDIR/config.yaml`` (the resolved spec) atomically."""
    path = rundir / "config.yaml"
    tmp = path.with_suffix(".yaml.tmp")
    tmp.write_text(dump_yaml(data))
    tmp.replace(path)
