"""Arguments more than one subcommand takes, written once: ``--set`` and a run's options."""

from __future__ import annotations

import argparse


def add_overrides(parser: argparse.ArgumentParser, example: str) -> None:
    """``--set KEY=VALUE`` (repeatable) into ``args.overrides``; ``example`` ends its help."""
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"override a spec value, type-checked like the file (repeatable), e.g. {example}",
    )


def add_run_arguments(parser: argparse.ArgumentParser, spec_example: str, example: str) -> None:
    """A training command's arguments: SPEC, ``--set``, ``--out RUNDIR``, ``--resume``,
    ``--check`` and ``--resume-last-good`` (:func:`metaxm.run.rundir.check_resume_flags`)."""
    parser.add_argument("spec", metavar="SPEC", help=f"task spec YAML, e.g. {spec_example}")
    add_overrides(parser, example)
    parser.add_argument("--out", required=True, metavar="RUNDIR", help="the run directory")
    parser.add_argument(
        "--resume", action="store_true", help="continue the run in RUNDIR from its last checkpoint"
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="check the spec (every field, the world, the memory estimate) and RUNDIR, then "
        "exit; builds and writes nothing",
    )
    parser.add_argument(
        "--resume-last-good",
        action="store_true",
        help="with --resume: if the newest checkpoint fails its checksum, resume from the newest "
        "one that verifies (otherwise the run stops and names it)",
    )
