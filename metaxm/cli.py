"""The ``metaxm`` command line: ``metaxm train | adapt | evaluate | render | bench | ...``.

Each subcommand lives in ``metaxm/commands/<name>.py`` with ``HELP``, ``add_arguments(parser)``
and ``run(args) -> int``; those modules import the heavy parts of metaxm inside ``run`` so that
``metaxm --help`` stays instant. User errors (a bad spec, flag, path or checkpoint:
:class:`~metaxm.errors.ConfigError`, :class:`~metaxm.errors.CheckpointError`) print one line
and exit with status 2, as does an ``OSError`` (a path that cannot be read or written); other
:class:`~metaxm.errors.MetaxmError` (a run that diverged) exit with status 1. Ctrl-C stops a
command with status 130, SIGTERM with 143, each after the same clean-up.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading
from collections.abc import Sequence

from metaxm import __version__
from metaxm.errors import CheckpointError, ConfigError, MetaxmError

# subcommand name -> module under metaxm.commands
COMMANDS = ("main", "train", "pretrain", "adapt", "evaluate", "render", "bench")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="metaxm",
        description="Meta-RL for fast adaptation to new observation modalities.",
    )
    parser.add_argument("--version", action="version", version=f"metaxm {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        module = importlib.import_module(f"metaxm.commands.{name}")
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def _out_of_memory(err: BaseException) -> bool:
    """A failed allocation: Python's ``MemoryError``, or torch's (CPU allocator, CUDA)."""
    text = str(err)
    return isinstance(err, MemoryError) or any(
        s in text for s in ("can't allocate memory", "out of memory", "Cannot allocate memory")
    )


class Terminated(KeyboardInterrupt):
    """SIGTERM (``timeout``, Slurm, Docker, Kubernetes), raised where the command is so that it
    stops as after a Ctrl-C: a checkpoint being written is not left half-written, and a fresh
    run that reached no checkpoint leaves nothing to block its retry."""


def _terminate(signum: int, frame: object) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends the process at once
    raise Terminated


def main(argv: Sequence[str] | None = None) -> int:
    on_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if on_main_thread else None
    try:
        return _main(argv)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _main(argv: Sequence[str] | None) -> int:
    from metaxm.plugins import load_plugins

    try:
        load_plugins()  # installed packages' worlds and families, for every command
    except ConfigError as err:
        print(f"metaxm: error: {err}", file=sys.stderr)
        return 2
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except (ConfigError, CheckpointError) as err:  # the user's input or files
        print(f"metaxm {args.command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a path the user named cannot be read or written (disk, rights)
        where = f": {err.filename}" if err.filename else ""
        print(f"metaxm {args.command}: error: {err.strerror or err}{where}", file=sys.stderr)
        return 2
    except MetaxmError as err:
        print(f"metaxm {args.command}: error: {err}", file=sys.stderr)
        return 1
    except (MemoryError, RuntimeError) as err:  # an allocation past what the estimate foresaw
        if not _out_of_memory(err):
            raise
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        print(
            f"metaxm {args.command}: error: out of memory ({first}); lower the spec's sizes "
            "(batch, environments, widths)",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt as err:
        ended = "terminated" if isinstance(err, Terminated) else "interrupted"
        print(f"metaxm {args.command}: {ended}", file=sys.stderr)
        return 143 if isinstance(err, Terminated) else 130
