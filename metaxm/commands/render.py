"""``metaxm render SPEC --out render.png``: one state of the spec's world in every modality."""

from __future__ import annotations

import argparse

from metaxm.commands.args import add_overrides

HELP = "draw one state of a spec's world in every modality family of the spec (a PNG)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", help="task spec YAML, e.g. tasks/gridnav.yaml")
    parser.add_argument("--out", default="render.png", help="PNG to write (default: %(default)s)")
    parser.add_argument(
        "--variants", type=int, default=3, metavar="N", help="variants per family (default: 3)"
    )
    add_overrides(parser, "--set world.size=9")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from metaxm.errors import ConfigError
    from metaxm.render import plot_formats, render_spec
    from metaxm.run.rundir import check_result_path
    from metaxm.spec import load_spec

    if not 1 <= args.variants <= 64:
        raise ConfigError(f"--variants: need 1 to 64, got {args.variants}")
    check_result_path(args.out, example="render.png")
    suffix = Path(args.out).suffix.lower().lstrip(".")
    formats = plot_formats()
    if suffix and suffix not in formats:  # no suffix: matplotlib writes a png
        raise ConfigError(
            f"--out {args.out}: an image needs one of the suffixes {', '.join(sorted(formats))}"
        )
    spec = load_spec(args.spec, args.overrides)
    path = render_spec(spec, args.out, variants=args.variants)
    print(f"metaxm render: wrote {path}")
    return 0
