"""``metaxm pretrain SPEC [--set key=value ...] --out RUNDIR [--resume]``: alignment pretraining.

Trains the encoders and adapters of the spec's training families to map paired renders of the
same states to the same point of the shared latent (:mod:`metaxm.align.pretrain`), then prints
the representation report: cross-modal retrieval with the chance level beside it, NMI/AMI of
k-means clusters, and linear-probe R^2 on held-out states. An RL run starts from the result
with ``--set align.init_from=RUNDIR``.
"""

from __future__ import annotations

import argparse

from metaxm.commands.args import add_run_arguments

HELP = "pretrain encoders and adapters by cross-modal alignment of paired renders"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_run_arguments(
        parser, "tasks/gridnav.yaml", "--set align.pretrain_updates=500 --set align.loss=vae"
    )


def run(args: argparse.Namespace) -> int:
    import logging

    from metaxm.align.pretrain import pretrain
    from metaxm.align.report import format_report
    from metaxm.run.rundir import check_only, check_resume_flags
    from metaxm.spec import load_spec

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    check_resume_flags(args)
    spec = load_spec(args.spec, args.overrides)
    if args.check:
        from metaxm.align.pretrain import check_pool

        check_pool(spec)  # what the trainer refuses when it is built
        return check_only(
            spec, args.out, args.resume, "alignment pretraining", args.resume_last_good
        )
    result = pretrain(spec, args.out, resume=args.resume, last_good=args.resume_last_good)
    print(f"run: {result.rundir}  updates: {result.updates}  paired states: {result.env_steps}")
    if result.sps:
        print(f"throughput: {result.sps:,.0f} paired states/s")
    else:  # a resume of a finished run
        print("nothing left to train")
    print(format_report(result.evaluation))
    return 0
