#!/usr/bin/env python
"""RL^2 training updates with the sensory windows of a rollout computed once against in every
PPO epoch (``metaxm.meta.trials.with_windows``), side by side in one run.

Two trainers are built from the same spec and seed; after one untimed update each, ``ROUNDS``
updates of each are timed in interleaved rounds. The "per epoch" side is the replay as it was
before the cache: ``with_windows`` replaced by the identity. Both train the same weights (the
cache changes no value: ``tests/meta/test_replay_windows.py``)::

    python scripts/bench_replay_windows.py runs/results/rl2-every-family/rl2/config.yaml 4 \\
        --set 'main.runs={rl2: {}}'
"""

from __future__ import annotations

import argparse
import time

import torch

import metaxm.meta.rl2 as rl2
from metaxm.build import make_trainer
from metaxm.errors import ConfigError, MetaxmError
from metaxm.spec import load_spec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("spec", help="an RL^2 spec, e.g. a run's config.yaml")
    parser.add_argument("rounds", type=int, help="timed updates of each side")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    torch.set_num_threads(1)
    try:
        spec = load_spec(args.spec, args.set)
        if spec.algo != "rl2" or args.rounds < 1:
            raise ConfigError(f"need an rl2 spec and rounds >= 1 (algo {spec.algo}, {args.rounds})")
    except MetaxmError as err:
        parser.exit(2, f"bench_replay_windows.py: error: {err}\n")
    cached = rl2.with_windows

    def use(on: bool) -> None:
        rl2.with_windows = cached if on else (lambda agent, family, rollout: rollout)

    trainers = {}
    for on in (False, True):
        use(on)
        trainers[on] = make_trainer(spec)
        trainers[on].update()  # warm-up, untimed
    wall, cpu = {False: 0.0, True: 0.0}, {False: 0.0, True: 0.0}
    for _ in range(args.rounds):
        for on in (False, True):
            use(on)
            w, c = time.perf_counter(), time.process_time()
            trainers[on].update()
            wall[on] += time.perf_counter() - w
            cpu[on] += time.process_time() - c
    use(True)
    steps = args.rounds * trainers[True].steps_per_update
    for on, name in ((False, "per epoch"), (True, "cached")):
        print(f"{name:>9}: {steps / wall[on]:7.0f} env steps/s, {steps / cpu[on]:7.0f} per CPU-s")
    ratio = wall[False] / wall[True], cpu[False] / cpu[True]
    print(f"speed-up: {ratio[0]:.2f}x wall clock, {ratio[1]:.2f}x CPU")


if __name__ == "__main__":
    main()
