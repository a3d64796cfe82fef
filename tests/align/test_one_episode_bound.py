"""`scripts/one_episode_bound.py`: the exact posterior over a new goal after k paired episodes
of a vector or projected variant, and what reading or searching it reaches."""

from __future__ import annotations

import numpy as np
import pytest


def test_a_channel_fit_recovers_the_gain_and_rules_out_what_no_gain_explains(load_script) -> None:
    script = load_script("one_episode_bound")
    like, gain = script.channel_fit(np.array([-1.5, 0.5]), np.array([1.0, -1 / 3]))
    assert gain == pytest.approx(-1.5) and like > 0
    assert script.channel_fit(np.array([0.9]), np.array([0.3]))[0] == 0  # gain 3: too large
    assert script.channel_fit(np.array([1.0, 1.0]), np.array([1.0, 0.5]))[0] == 0  # two gains
    assert script.channel_fit(np.array([0.0]), np.array([0.0])) == (1.0, None)  # gain open
    assert script.channel_fit(np.array([0.2]), np.array([0.0]))[0] == 0


@pytest.mark.parametrize("k", [1, 2])
def test_the_vector_posterior_never_rules_out_the_true_goal(load_script, k: int) -> None:
    script = load_script("one_episode_bound")
    info = script.SceneInfo(feature_dim=4, layout_size=script.SIZE)
    rng = np.random.default_rng(0)
    for n in range(60):
        params = script.get_family("vector").variant(5000 + n, info)
        goals = script.CELLS[rng.choice(len(script.CELLS), k)]
        new_goal = script.CELLS[rng.integers(len(script.CELLS))]
        post = script.vector_posterior(params, goals, new_goal)
        assert post[new_goal[0] * script.SIZE + new_goal[1]] > 0


def test_one_episode_leaves_the_goal_open_and_a_search_finds_it(load_script) -> None:
    script = load_script("one_episode_bound")
    vector = script.run("vector", 1, 80, 1000, True).mean(0)
    assert vector[0] < 0.9 < vector[2]  # read below #15's 90%, search above it
    # with many paired episodes the Gaussian solve pins a projected map: the goal is read
    projected = script.run("projected", 6, 20, 1000, True).mean(0)
    assert projected[0] >= 0.9


def test_outcomes_read_walk_and_search(load_script) -> None:
    script = load_script("one_episode_bound")
    start, goal = np.array([0, 0]), np.array([0, 3])
    logp = np.full(len(script.CELLS), -np.inf)
    logp[[3, 5]] = [0.0, -1.0]  # the goal first
    assert script.outcomes(logp, start, goal) == (1.0, True, True)
    logp[[3, 5]] = [-1.0, 0.0]  # the goal second, walked over on the way to the first
    assert script.outcomes(logp, start, goal) == (0.0, True, True)
    logp = np.full(len(script.CELLS), -np.inf)
    logp[[48, 3]] = [0.0, -1.0]  # first the far corner (12 steps), then back (9 more)
    assert script.outcomes(logp, start, goal)[1:] == (False, True)
