"""The episode engine: counted episodes, masks, the step budget, recording and hooks."""

from __future__ import annotations

import torch

from metaxm.build import make_env
from metaxm.envs.play import play
from metaxm.spec import spec_from_dict

SPEC = spec_from_dict(
    {"world": {"name": "gridnav", "size": 4, "horizon": 6}, "modalities": {"train": {"vector": 1}}}
)


def random_act(env, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    n = env.action_space.n
    return lambda obs: torch.randint(n, (obs.shape[0],), generator=gen)


def test_every_environment_counts_its_episodes_and_the_mask_follows_them() -> None:
    env = make_env(SPEC, "vector", num_envs=5, seed=1)
    played = play(env, random_act(env), episodes=3, record=("alive", "count", "done", "reward"))
    assert played.returns.shape == played.success.shape == played.length.shape == (5, 3)
    assert bool((played.length >= 1).all()) and bool((played.length <= 6).all())
    rec = played.record
    t = played.steps
    assert rec["alive"].shape == rec["count"].shape == (t, 5)
    # alive is exactly "fewer than 3 episodes finished before this step"
    assert torch.equal(rec["alive"], rec["count"] < 3)
    # each environment finished 3 episodes, the last at its last alive step
    finished = (rec["done"] & rec["alive"]).sum(0)
    assert finished.tolist() == [3] * 5
    # the return of each counted episode is the sum of its rewards
    episode_sum = torch.zeros(5, 3)
    for step in range(t):
        live = rec["alive"][step]
        idx = rec["count"][step].clamp(max=2)
        episode_sum[live, idx[live]] += rec["reward"][step][live]
    assert torch.allclose(episode_sum, played.returns, atol=1e-5)
    # it stopped as soon as the last environment was done
    assert not bool(rec["alive"][-1].logical_not().all())


def test_a_step_budget_plays_exactly_that_many_steps_and_records_scenes() -> None:
    env = make_env(SPEC, "vector", num_envs=3, seed=2)
    played = play(env, random_act(env), steps=10, record=("scene", "obs"))
    assert played.steps == 10 and len(played.record["scene"]) == 10
    assert played.record["obs"].shape[:2] == (10, 3)
    assert all(s.batch_size == 3 for s in played.record["scene"])


def test_extras_are_recorded_and_hooks_see_every_step() -> None:
    env = make_env(SPEC, "vector", num_envs=2, seed=3)
    act = random_act(env)
    seen, observed = [], []

    def act_with_extras(obs):
        action = act(obs)
        return action, {"twice": action * 2}

    played = play(
        env, act_with_extras, record=("action", "twice"),
        observe=lambda a, r, d: observed.append(d.clone()),
        after=lambda step: seen.append(step.count.clone()),
    )  # fmt: skip
    assert torch.equal(played.record["twice"], played.record["action"] * 2)
    assert len(seen) == len(observed) == played.steps
    assert bool((seen[-1] >= 1).all())  # the count after the last step: every episode done


def test_the_same_seeds_give_the_same_episodes() -> None:
    runs = []
    for _ in range(2):
        env = make_env(SPEC, "vector", num_envs=4, seed=7)
        runs.append(play(env, random_act(env, 9), episodes=2))
    assert torch.equal(runs[0].returns, runs[1].returns)
    assert torch.equal(runs[0].length, runs[1].length)


def test_recorded_scenes_keep_their_own_task_when_tasks_are_resampled() -> None:
    # a world writing a new task into the tensors a recorded scene still holds would show that
    # scene's layout (what pixels and text render) another episode's goal than its features
    env = make_env(SPEC, "text", num_envs=4, seed=2, resample_tasks=True)
    played = play(env, random_act(env), episodes=4, record=("scene",))
    scale = (env.world.size - 1) / 2.0
    goals = set()
    for scene in played.record["scene"]:
        from_features = ((scene.features + 1.0) * scale).round().long()  # (B, 4): agent, goal
        assert torch.equal(from_features[:, :2], scene.layout.agent)
        assert torch.equal(from_features[:, 2:], scene.layout.goal)
        goals.update(map(tuple, scene.layout.goal.tolist()))
    assert len(goals) > 4  # tasks were resampled while the scenes were recorded
