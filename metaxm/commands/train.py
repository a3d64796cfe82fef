"""``metaxm train SPEC [--set key=value ...] --out RUNDIR [--resume]``: one training run.

Writes ``RUNDIR/config.yaml`` (the resolved spec), ``metrics.jsonl``, ``timing.jsonl``,
``checkpoints/``, ``curve.png``, ``eval.json`` and ``summary.json`` (see
:mod:`metaxm.run.loop`), then prints the final evaluation beside the world's oracle and the
training throughput.

Under ``torchrun --nproc_per_node=N -m metaxm train ...`` the ranks share out the training
families and rank 0 writes and prints (:mod:`metaxm.run.distributed`).
"""

from __future__ import annotations

import argparse

from metaxm.commands.args import add_run_arguments

HELP = "train an agent on a task spec (PPO from scratch, or the spec's algo)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_run_arguments(
        parser, "tasks/ppo-gridnav.yaml", "--set ppo.lr=0.001 --set 'modalities.train={pixels: 1}'"
    )


def run(args: argparse.Namespace) -> int:
    import logging
    import os

    from metaxm.run.loop import train
    from metaxm.run.rundir import check_only, check_resume_flags
    from metaxm.spec import load_spec

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    check_resume_flags(args)
    spec = load_spec(args.spec, args.overrides)
    if args.check:
        return check_only(spec, args.out, args.resume, last_good=args.resume_last_good)
    result = train(spec, args.out, resume=args.resume, last_good=args.resume_last_good)
    if os.environ.get("RANK", "0") != "0":
        return 0  # under torchrun, rank 0 reports
    print(f"run: {result.rundir}  updates: {result.updates}  env steps: {result.env_steps}")
    if result.trained:
        print(
            f"training throughput: {result.sps:,.0f} env steps/s wall clock "
            f"({result.cpu_sps:,.0f} env steps per CPU-second of this process)"
        )
    elif result.sps:
        print(
            "nothing left to train: the run had finished; its training throughput was "
            f"{result.sps:,.0f} env steps/s wall clock ({result.cpu_sps:,.0f} per CPU-second)"
        )
    else:  # it stopped after its last checkpoint, before its summary.json
        print("nothing left to train: the run had finished")
    ev = result.evaluation
    if ev:
        n = int(ev["episodes"])
        print(f"evaluation on {n} fresh episodes per family:")
        print(f"  {'policy':<28}{'return':>10}{'success':>10}{'length':>10}")
        rows = [
            ("agent (deterministic, mode)", ""),
            ("agent (sampled)", "sampled_"),
            ("oracle", "oracle_"),
        ]
        for name, prefix in rows:
            if f"{prefix}return" not in ev:
                continue  # a world without an oracle (a gymnasium env)
            r, s, ln = (ev[f"{prefix}{k}"] for k in ("return", "success", "length"))
            print(f"  {name:<28}{r:>10.3f}{s:>10.3f}{ln:>10.1f}")
        if ev.get("oracle_return", 0) != 0:
            print(f"  return / oracle return: {ev['return'] / ev['oracle_return']:.3f}")
    return 0
