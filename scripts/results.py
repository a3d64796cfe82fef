#!/usr/bin/env python
"""Regenerate the README's headline numbers (``make results``), each page naming its command,
commit and wall-clock time.

python scripts/results.py                 # all: about three hours on a 2-core CPU machine
python scripts/results.py --only sine     # one job (--only may repeat); see JOBS
make results ONLY="main sine"             # the same through make (installs .venv first)

* ``main``: ``metaxm main tasks/gridnav.yaml`` -> ``docs/main-report.md`` (the transfer report);
* ``maml-pointnav``: ``metaxm train tasks/maml-pointnav.yaml`` -> ``docs/results/maml-pointnav.md``
  (pre- and post-adaptation return, mean of the last 10 meta-iterations of the training log);
* ``sine``: ``python examples/sine_maml.py --iterations 2000`` -> ``docs/results/sine-maml.md``;
* ``bench-maml``, ``bench-envs``: ``metaxm bench maml`` and ``metaxm bench envs --quick``;
* ``alignment``: ``metaxm pretrain tasks/gridnav.yaml`` (retrieval and probe R^2);
* ``ppo-baseline``: ``metaxm train tasks/ppo-gridnav.yaml`` on vector, pixels and text;
* ``rl2-hidden``: ``metaxm train tasks/rl2-gridnav-hidden.yaml`` and ``scripts/rl2_trials.py``
  (5M steps: about half an hour alone);
* ``rl2-rewire``: ``scripts/rl2_trials.py --rewire between|within`` on that run;
* ``language``: ``scripts/lang_paraphrases.py tasks/lang-ppo.yaml`` over 5 seeds;
* ``sensory-cartpole``: ``metaxm train tasks/sensory-cartpole.yaml`` (5M steps: about 35
  minutes) and ``scripts/sensory_cartpole.py`` (unpermuted vs re-wired, 100 episodes each);
* ``sensory-gridnav``: ``metaxm train tasks/sensory-gridnav.yaml`` with the sensory and with
  the MLP encoders (6M steps each: about 55 minutes together), and ``scripts/rl2_trials.py``
  on both;
* ``bench-sensory``: ``metaxm bench sensory``;
* ``selffit``: ``metaxm train ... --set algo=selffit`` from the ``main`` job's source agent
  (run ``main`` first), ``metaxm evaluate`` with ``zeroshot``, ``align`` and ``selffit``, and
  ``scripts/compare_strategies.py`` (reward-free adaptation against no adaptation);
* ``selfread``: ``metaxm evaluate`` of the ``main`` job's agents on its held-out modalities
  (the ``vector``, ``projected``, ``pixels`` and ``text`` variants and the ``audio`` family)
  with ``zeroshot``, ``translate`` and ``selfread`` (a reward-free, pair-free reading), and
  ``scripts/compare_strategies.py`` (selfread against no adaptation);
* ``rl2-reward-free``: the main job's ``rl2`` stage with ``agent.reward_input: false`` and 3M
  steps (run ``main`` first; about 14 minutes), ``metaxm evaluate`` beside the main job's source
  agent with ``zeroshot`` and ``rl2`` on its held-out modalities and on validation variants
  100-103, and ``scripts/compare_strategies.py``;
* ``rl2-every-family``: the same reward-free ``rl2`` trained on all four training families for
  6M steps, reading images by colour and sentences by word (run ``main`` first; about 40
  minutes to train and 5 to evaluate), evaluated the same way on the held-out modalities and
  on validation variants 100-103 of every family, and blind (``scripts/rl2_trials.py
  --blind``);
* ``rl2-channel-memory``: that reward-free ``rl2`` with each sensory neuron keeping its
  channel's statistics over the trial, on 6-episode trials with a new task each episode, 6M
  steps (run ``main`` first; about 35 minutes to train), evaluated the same way and on new
  tasks (``rl2-newtask``);
* ``rl2-family-out``: that ``rl2`` meta-trained on one vector family at a time (``vector``,
  then ``projected``; run ``main`` first; about 35 minutes each to train), measured on new
  tasks of the main job's held-out modalities and of validation variants, the other family
  one its meta-training never saw;
* ``rl2-memory-every-family``: that ``rl2`` trained on all four training families, reading
  images by colour and sentences by word (run ``main`` first; about 100 minutes to train),
  measured on new tasks of the held-out modalities and of validation variants of every family;
* ``permutation-case``: ``scripts/permutation_case.py`` (#15's constructed case: a pure
  permutation of a known ``vector`` variant fitted from one CartPole episode; about 2 minutes);
* ``ridge-prior``: ``scripts/ridge_prior.py`` on the ``main`` job's source agent (run ``main``
  first): the paired fit solved in closed form under a meta-learned prior (``priorfit``'s, one
  family at a time), against its start, least squares, ``align`` and ``translate`` on validation
  variants;
* ``one-episode-bound``: ``scripts/one_episode_bound.py`` (about 1 minute): the most any paired
  reading of k episodes reaches on vector and projected, from the families' own priors;
* ``reward-signal``: ``scripts/reward_signal.py`` on the ``main`` job (run ``main`` first; about
  15 seconds): the rewarded episodes among ``maml``'s k = 8 support episodes on each held-out
  modality, beside a random walk's;
* ``rl2-failures``: ``scripts/rl2_failures.py`` on ``rl2-memory-every-family``'s agent (run
  that first; about 25 seconds): its success on new tasks by the goal's distance and by variant;
* ``rl2-coverage-bonus``: ``rl2-memory-every-family``'s agent trained with a reward for each step
  onto a cell new to its episode (``rl2.coverage_bonus``; run ``main`` first; about 90 minutes
  to train), measured the same way and with ``scripts/rl2_failures.py``;
* ``rl2-goal-gain``: ``scripts/rl2_failures.py`` on ``rl2-memory-every-family``'s agent (run
  that first; about 3 minutes): its success by the goal's place on the grid, with every vector
  variant's goal channels as drawn and at gain 1, 0.5 and 2, beside pixels and text;
* ``rl2-scaled-value``: ``rl2-memory-every-family``'s agent with each sensory neuron also
  reading its channel's value over the trial's root mean square of it
  (``agent.sensory_scaled``; run ``main`` first; about 90 minutes to train), measured the same
  way and as ``rl2-goal-gain`` measures it;
* ``rl2-scaled-value-seed1``, ``rl2-scaled-value-seed2``: ``rl2-scaled-value`` at training
  seeds 1 and 2 (run ``main`` first; about 80-95 minutes each to train, 8 to measure);
* ``translate-priors``: ``scripts/translate_priors.py`` on the ``main`` job's source agent (run
  ``main`` first; about 2.5 minutes): ``translate`` on validation variants with its learned
  family priors, without them, and with the projected posterior's calibration moved;
* ``fits-family-out``: the main job's stages but ``rl2``, with ``metafit`` and ``selffit``,
  trained without each training family in turn (``metaxm main``; about 8 minutes each), and
  ``metaxm evaluate`` of ``zeroshot``, ``maml``, ``align``, ``metafit``, ``selffit`` and
  ``priorfit`` on the family left out (its held-out variant and validation variants 100-103),
  against the same fits on the ``main`` job's agents (run ``main`` first);
* ``walls``: the main job's pretraining and source agent on GridNav with inner walls, then
  ``selfread`` and ``translate`` on validation variants (about 9 minutes).

Each page holds its headline number and the command's own printed summary.

Runs go to ``runs/results/<name>`` (an existing finished run is reused: delete it to rerun).
The jobs live in ``studies/results/`` (``studies.results.JOBS``), by kind.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the studies package

from studies.results import JOBS  # noqa: E402
from studies.results.page import ROOT, STAMP, commit  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=list(JOBS), action="append", help="run only these")
    args = parser.parse_args()
    STAMP["commit"] = commit()
    for name in args.only or list(JOBS):
        print(f"{name}: wrote {JOBS[name]().relative_to(ROOT)}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
