"""The jobs of ``make results`` (``scripts/results.py``): each runs its commands and writes one
page of ``docs/`` with its headline number, its command, commit and wall-clock time.

The jobs live in modules by kind (:mod:`~studies.results.headline`,
:mod:`~studies.results.bench`, :mod:`~studies.results.sensory`,
:mod:`~studies.results.reward_free`, with the RL^2 settings it shares in
:mod:`~studies.results.rl2_stage`, :mod:`~studies.results.goal_reading`,
:mod:`~studies.results.adaptation`, :mod:`~studies.results.family_out`), on the plumbing of
:mod:`~studies.results.page`. A new job is a function that returns the page it wrote, added to
:data:`JOBS`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from studies.results.adaptation import (
    one_episode_bound,
    permutation_case,
    reward_signal,
    ridge_prior,
    translate_priors,
)
from studies.results.bench import bench_envs, bench_maml, bench_sensory
from studies.results.family_out import fits_family_out
from studies.results.goal_reading import (
    rl2_goal_gain,
    rl2_scaled_value,
    rl2_scaled_value_seed1,
    rl2_scaled_value_seed2,
)
from studies.results.headline import (
    alignment,
    language,
    main_job,
    maml_pointnav,
    ppo_baseline,
    sine,
)
from studies.results.reward_free import (
    rl2_channel_memory,
    rl2_coverage_bonus,
    rl2_every_family,
    rl2_failures,
    rl2_family_out,
    rl2_memory_every_family,
    rl2_reward_free,
    selffit,
    selfread,
    walls,
)
from studies.results.sensory import rl2_hidden, rl2_rewire, sensory_cartpole, sensory_gridnav

JOBS: dict[str, Callable[[], Path]] = {
    "main": main_job,
    "maml-pointnav": maml_pointnav,
    "sine": sine,
    "bench-maml": bench_maml,
    "bench-envs": bench_envs,
    "alignment": alignment,
    "ppo-baseline": ppo_baseline,
    "rl2-hidden": rl2_hidden,
    "rl2-rewire": rl2_rewire,
    "language": language,
    "sensory-cartpole": sensory_cartpole,
    "sensory-gridnav": sensory_gridnav,
    "bench-sensory": bench_sensory,
    "selffit": selffit,
    "selfread": selfread,
    "rl2-reward-free": rl2_reward_free,
    "rl2-every-family": rl2_every_family,
    "rl2-channel-memory": rl2_channel_memory,
    "rl2-family-out": rl2_family_out,
    "rl2-memory-every-family": rl2_memory_every_family,
    "permutation-case": permutation_case,
    "ridge-prior": ridge_prior,
    "one-episode-bound": one_episode_bound,
    "reward-signal": reward_signal,
    "rl2-failures": rl2_failures,
    "rl2-coverage-bonus": rl2_coverage_bonus,
    "rl2-goal-gain": rl2_goal_gain,
    "rl2-scaled-value": rl2_scaled_value,
    "rl2-scaled-value-seed1": rl2_scaled_value_seed1,
    "rl2-scaled-value-seed2": rl2_scaled_value_seed2,
    "translate-priors": translate_priors,
    "walls": walls,
    "fits-family-out": fits_family_out,
}
"""Job name -> the function that runs it and writes its page."""
