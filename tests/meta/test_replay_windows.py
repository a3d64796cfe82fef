"""A rollout's sensory windows computed once (``trials.with_windows``) replay as computed anew."""

from __future__ import annotations

import torch

from metaxm.envs import make_world
from metaxm.envs.task_env import TaskEnv
from metaxm.meta.rl2 import build_rl2_agent
from metaxm.meta.trials import (
    TrialRollout,
    TrialStats,
    TrialTasks,
    collect_trials,
    replay_hidden,
    start_trials,
    with_windows,
)
from metaxm.nn.agent import Agent
from metaxm.spec import spec_from_dict


def _rollout(family: str, **agent: object) -> tuple[Agent, TrialRollout]:
    spec = spec_from_dict({
        "seed": 0,
        "world": {"name": "gridnav", "size": 4, "horizon": 6},
        "modalities": {"train": {family: 2}, "heldout_variants": {family: 1}},
        "algo": "rl2",
        "rl2": {"episodes_per_trial": 2},
        "agent": {"latent_dim": 8, "encoder_width": 16, "hidden": 16, **agent},
        "log": {"mode": "disabled", "progress": False},
    })  # fmt: skip
    agent = build_rl2_agent(spec)
    world = make_world(spec.world, 5, seed=1)
    env = TaskEnv(world, family, seed=2)
    tasks = TrialTasks(world, [100, 101], torch.Generator().manual_seed(3))
    state = start_trials(agent, env, tasks)
    rollout, _ = collect_trials(
        agent, env, family, state, 30, 2, tasks, torch.Generator().manual_seed(4), TrialStats(2)
    )
    assert bool(rollout.reset[1:].any())  # trials start inside the rollout
    return agent, rollout


def test_an_images_rollout_replays_the_same_from_its_windows_in_every_column_subset() -> None:
    agent, rollout = _rollout(
        "pixels", encoder="sensory", core="gru", sensory_images="colours", reward_input=False
    )
    cached = with_windows(agent, "pixels", rollout)
    assert cached.windows is not None and cached.windows.shape[:2] == rollout.obs.shape[:2]
    assert torch.equal(replay_hidden(agent, "pixels", cached),
                       replay_hidden(agent, "pixels", rollout))  # fmt: skip
    idx = torch.tensor([3, 0])  # a minibatch's columns
    h = replay_hidden(agent, "pixels", cached.columns(idx))
    assert torch.equal(h, replay_hidden(agent, "pixels", rollout.columns(idx)))
    h.square().sum().backward()  # the encoder's own weights still learn from the windows
    grads = [p.grad for p in agent.sensory_encoder.parameters()]
    assert all(g is not None for g in grads) and any(bool(g.abs().sum() > 0) for g in grads)


def test_a_family_without_parameter_free_windows_keeps_its_rollout() -> None:
    agent, rollout = _rollout("vector")  # the per-family encoder: no sensory windows
    assert with_windows(agent, "vector", rollout) is rollout
    agent, rollout = _rollout("pixels", encoder="sensory", core="gru")  # images by conv
    assert with_windows(agent, "pixels", rollout) is rollout
    agent, rollout = _rollout("vector", encoder="sensory", core="gru")
    for p in agent.encoders["vector"].parameters():  # none today; one with weights: no cache
        p.requires_grad_(True)
    assert with_windows(agent, "vector", rollout).windows is not None
    agent.encoders["vector"].register_parameter("w", torch.nn.Parameter(torch.ones(1)))
    assert with_windows(agent, "vector", rollout) is rollout
