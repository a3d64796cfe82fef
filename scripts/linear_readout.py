#!/usr/bin/env python
"""How much of the source modality a linear map from another modality reads, given plenty of
paired states: the ceiling of a linear paired fit such as ``priorfit`` (``docs/transfer.md``).

States are drawn from the run's world and rendered in the source modality and in each named
modality; a linear map without intercept (``metaxm.align.priorfit.features``, the encoders'
scaling, every observation as it is: ``projected`` squashed, where ``priorfit`` has read it
unsquashed since stop 51, transfer-studies section 38) is fitted by least squares on the
first ``--fit`` states and scored on the rest, as R^2 per source channel (the source's noise
channels read about 0 by construction)::

    python scripts/linear_readout.py runs/results/main audio:14416 vector:100 projected:100
"""

from __future__ import annotations

import argparse

import torch

from metaxm.align.fewshot import default_source
from metaxm.align.pairs import render_pairs
from metaxm.align.priorfit import features
from metaxm.build import make_env
from metaxm.errors import ConfigError, MetaxmError
from metaxm.evaluate.loading import load_agents
from metaxm.modalities import get_family, parse_modality_id


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", help="a trained run (its spec and world)")
    parser.add_argument("modalities", nargs="+", metavar="FAMILY:VARIANT")
    parser.add_argument("--states", type=int, default=4096, help="states drawn (default 4096)")
    parser.add_argument("--fit", type=int, default=3000, help="of them, fitted (default 3000)")
    args = parser.parse_args()
    try:
        if not 0 < args.fit < args.states:
            raise ConfigError(f"--fit: need 0 < fit < states ({args.states}), got {args.fit}")
        ids = [parse_modality_id(m) for m in args.modalities]
        spec = load_agents(args.run).spec
        source = default_source(spec)
        env = make_env(spec, *source, num_envs=args.states, seed=0)
        env.reset()
        info, generator = env.world.scene_info, torch.Generator().manual_seed(0)
        for family, variant in ids:
            pairs = render_pairs(env.world.scene(), [(family, variant), source], info, generator)
            x = features(pairs.obs[0], get_family(family).observation_space(info)).double()
            y = pairs.obs[1].double().flatten(1)
            n = args.fit
            weight = torch.linalg.lstsq(x[:n], y[:n]).solution
            error = (x[n:] @ weight - y[n:]).pow(2).mean(0)
            r2 = 1 - error / y[n:].var(0).clamp_min(1e-12)
            shown = " ".join(f"{float(v):.3f}" for v in r2)
            print(f"{family}:{variant} ({x.shape[1]} features): R^2 per source channel {shown}")
    except (MetaxmError, ValueError) as err:
        parser.exit(2, f"linear_readout.py: error: {err}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
