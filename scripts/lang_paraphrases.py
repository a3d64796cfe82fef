#!/usr/bin/env python
"""Held-out paraphrases: the learned vs the pretrained (MiniLM) instruction encoder.

Trains one PPO agent per encoder and seed on the same budget, then measures success with the
training paraphrases and with held-out ones (studies.paraphrases):

python scripts/lang_paraphrases.py tasks/lang-ppo.yaml --seeds 0 1 --out runs/lang-paraphrases
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import torch

from metaxm.errors import ConfigError, MetaxmError
from metaxm.spec import load_spec

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the studies package
from studies.paraphrases import paraphrase_study, paraphrase_table  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec", help="a PPO spec of gridnav_lang with paraphrases: train")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--encoders", nargs="+", default=["learned", "minilm"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--episodes", type=int, default=512)
    parser.add_argument("--out", help="write paraphrases.json and paraphrases.md here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    try:
        spec = load_spec(args.spec, args.set)
        torch.set_num_threads(spec.train.threads)
        records = paraphrase_study(spec, args.encoders, args.seeds, args.episodes, args.out)
    except MetaxmError as err:
        print(f"lang_paraphrases: error: {err}", file=sys.stderr)
        return 2 if isinstance(err, ConfigError) else 1
    table = paraphrase_table(records)
    if args.out:
        from pathlib import Path

        (Path(args.out) / "paraphrases.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
