"""``metaxm main SPEC --out DIR``: the main job (what ``make run`` runs).

Today it draws the spec's modalities (``DIR/render.png``) and runs ``bench envs --quick``
(``DIR/bench_envs.json``); meta-training and evaluation join it as they land.
"""

from __future__ import annotations

import argparse

HELP = "the main job: render the spec's modalities and benchmark the batched worlds"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", help="task spec YAML, e.g. tasks/gridnav.yaml")
    parser.add_argument(
        "--out", default="runs/main", metavar="DIR", help="output folder (default: %(default)s)"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a spec value, e.g. --set world.size=9 (repeatable)",
    )
    parser.add_argument(
        "--variants", type=int, default=3, metavar="N", help="variants per family in render.png"
    )
    # batch sizes for the benchmark step: for tests
    parser.add_argument("--batches", nargs="+", type=int, help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from metaxm.commands.bench import run_envs
    from metaxm.errors import ConfigError
    from metaxm.render import render_spec
    from metaxm.spec import load_spec

    if args.variants < 1:
        raise ConfigError(f"--variants: need at least 1, got {args.variants}")
    spec = load_spec(args.spec, args.set)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    render = render_spec(spec, out / "render.png", variants=args.variants)
    print(f"metaxm main: modalities drawn in {render}", flush=True)
    bench_json = out / "bench_envs.json"
    run_envs(quick=True, json_path=str(bench_json), batches=args.batches)
    print(f"metaxm main: outputs in {out}/ (render.png, bench_envs.json)")
    return 0
