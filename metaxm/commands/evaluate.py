"""``metaxm evaluate RUNDIR [--spec SPEC] [--seeds N] [--out DIR]``: the transfer report.

RUNDIR is a training run (``metaxm train --out RUNDIR``) or a folder of runs named by algorithm
(``ppo/``, ``maml/``, ``rl2/``, as the main job writes). Every held-out modality of the spec x
every applicable strategy x budget x seed is measured (or, with ``--modality FAMILY:VARIANT``,
the validation variants named: outside every split, to tune on); ``report.json``, ``report.md``,
``curves.png`` and ``speedup.png`` are written to ``--out`` (default ``RUNDIR/report``, and
``RUNDIR/validation`` with ``--modality``, so tuning never overwrites the held-out report), and
every curve to its ``curves.jsonl`` as it is measured; ``--resume`` keeps those of a killed
evaluation of the same agents, spec and jobs (:mod:`metaxm.evaluate.curve_log`).
"""

from __future__ import annotations

import argparse

from metaxm.commands.args import add_overrides

HELP = "few-shot transfer to every held-out modality: report.json, report.md and plots"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("rundir", metavar="RUNDIR", help="a run, or a folder of ppo/maml/rl2 runs")
    parser.add_argument(
        "--spec", help="evaluate under this spec's splits and evaluate section (default: the run's)"
    )
    parser.add_argument("--seeds", type=int, help="seeds per curve (default: evaluate.seeds)")
    parser.add_argument(
        "--out", help="report folder (default: RUNDIR/report; with --modality RUNDIR/validation)"
    )
    parser.add_argument(
        "--strategy",
        dest="strategies",
        action="append",
        metavar="NAME",
        help="only these strategies (repeatable); scratch always runs",
    )
    parser.add_argument(
        "--modality",
        dest="modalities",
        action="append",
        metavar="FAMILY:VARIANT",
        help="measure this modality instead of the spec's held-out ones (repeatable): a "
        "validation variant outside every split, to tune on, e.g. vector:100",
    )
    parser.add_argument(
        "--add-family",
        dest="add_families",
        action="append",
        metavar="FAMILY",
        help="a family the agents were trained without, measured as a held-out family "
        "(repeatable): each agent gets a fresh encoder for it, as for a held-out family of the "
        "spec (its variants: the --spec's heldout_families count, else 1)",
    )
    add_overrides(parser, "--set evaluate.eval_episodes=32 (a value of the evaluation spec)")
    parser.add_argument("--device", help="load the agents onto this device (e.g. cuda)")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="keep the curves a killed evaluation of the same agents, spec and jobs saved in "
        "--out's curves.jsonl, and measure only the rest",
    )


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from metaxm.errors import ConfigError
    from metaxm.evaluate.loading import add_family, check_evaluation_spec, load_agents
    from metaxm.evaluate.report import write_report
    from metaxm.evaluate.runner import run_evaluation, validation_modalities
    from metaxm.run.rundir import OutputLock, check_out_path, check_report_out
    from metaxm.spec import load_spec

    if args.seeds is not None and not 1 <= args.seeds <= 1000:
        raise ConfigError(f"--seeds: need 1 to 1000, got {args.seeds}")
    if args.out is not None:
        check_report_out(check_out_path(args.out))
    fixed = [o for o in args.overrides if o.split("=", 1)[0].strip().startswith("agent.")]
    if fixed:
        raise ConfigError(
            f"--set {fixed[0]}: the trained agents keep the networks their checkpoints hold, "
            "and only scratch's fresh agent would be built with it, so the strategies would "
            "no longer be compared like for like (train a run with it)"
        )
    spec = load_spec(args.spec, args.overrides) if args.spec else None
    agents = load_agents(args.rundir, spec, device=args.device)
    if spec is not None:
        check_evaluation_spec(agents, spec, f"--spec {args.spec}")
    elif args.overrides:
        from metaxm.config import apply_overrides
        from metaxm.evaluate.loading import use_spec
        from metaxm.spec import spec_from_dict, spec_to_dict

        overridden = spec_from_dict(apply_overrides(spec_to_dict(agents.spec), args.overrides))
        check_evaluation_spec(agents, overridden, "--set " + " --set ".join(args.overrides))
        use_spec(agents, overridden)  # the learners too: --set align.* reaches their fits
    for family in dict.fromkeys(args.add_families or ()):
        add_family(agents, family, seed=agents.spec.seed)
    chosen = validation_modalities(agents, args.modalities) if args.modalities else None
    out = Path(args.out or Path(args.rundir) / ("validation" if args.modalities else "report"))
    with OutputLock(out):  # one writer per report folder
        report = run_evaluation(  # every finished curve is on disk at once (curves.jsonl)
            agents, args.strategies, args.seeds, modalities=chosen, report_dir=out,
            resume=args.resume,
        )  # fmt: skip
        paths = write_report(report, out)
    if args.resume:
        back = report["curves_taken_back"]
        print(f"resumed: {back} of {back + report['curves_measured']} curves taken back ({out})")
    print(report["headline"]["text"])
    print(
        f"report: {paths['md']}  data: {paths['json']}  plots: {paths['curves']}, "
        f"{paths['speedup']}"
    )
    return 0
