"""``metaxm main SPEC --out DIR``: the main job (what ``make run`` runs).

Draws the spec's modalities, trains one run per entry of the spec's ``main.runs`` (e.g. PPO
pre-training with alignment, MAML, RL^2), evaluates them on the held-out modalities and writes
the transfer report; see :mod:`metaxm.pipeline`. Run it again after an interruption and it
continues: finished runs are kept, interrupted ones resumed.
"""

from __future__ import annotations

import argparse

from metaxm.commands.args import add_overrides

HELP = "the main job: meta-train every algorithm of the spec, evaluate, write the report"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", help="task spec YAML, e.g. tasks/gridnav.yaml")
    parser.add_argument(
        "--out", default="runs/main", metavar="DIR", help="output folder (default: %(default)s)"
    )
    add_overrides(parser, "--set evaluate.seeds=3")


def run(args: argparse.Namespace) -> int:
    import logging
    import os

    from metaxm.pipeline import run_main
    from metaxm.spec import load_spec

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        from metaxm.errors import ConfigError

        raise ConfigError(
            "metaxm main does not run under torchrun (every rank would evaluate and write the "
            "report); run its training steps with torchrun ... -m metaxm train, then "
            "metaxm evaluate"
        )
    from metaxm.run.rundir import check_out_path

    check_out_path(args.out)
    spec = load_spec(args.spec, args.overrides)
    run_main(spec, args.out, echo=lambda line: print(f"metaxm main: {line}", flush=True))
    return 0
