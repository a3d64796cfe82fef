"""Re-wiring a sensor during RL^2 trials (``Rewire``): between episodes and within them, the
task and the world's state kept, only the variant the observations go through changed; and the
blind control, which takes the observations away."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import gymnasium as gym
import pytest
import torch
from torch import Tensor

from metaxm.build import make_env
from metaxm.envs import WORLDS, SceneInfo, TaskParams, World, register_world
from metaxm.envs.base import Scene
from metaxm.meta.rl2 import build_rl2_agent
from metaxm.meta.trial_eval import Rewire, run_trial, run_trials
from metaxm.spec import spec_from_dict

SPEC = spec_from_dict(
    {
        "world": {"name": "gridnav", "size": 4, "horizon": 8},
        "modalities": {"train": {"vector": 2}},
        "agent": {"latent_dim": 8, "encoder_width": 8, "hidden": 8},
    }
)


def test_set_env_variants_changes_what_is_seen_not_the_state() -> None:
    env = make_env(SPEC, "vector", [11, 11, 11], seed=0)
    env.reset()
    env.step(torch.zeros(3, dtype=torch.long))
    features = env.world.scene().features.clone()
    length = env.episode_length.clone()
    before = env.observe()
    env.set_env_variants(torch.tensor([1]), [12])
    after = env.observe()
    assert env.variants == [11, 12, 11]
    assert torch.equal(env.world.scene().features, features)  # no reset, no move
    assert torch.equal(env.episode_length, length)
    assert not torch.allclose(after[1], before[1])  # another permutation, signs and scales


@pytest.mark.parametrize("when", ["between", "within"])
def test_every_trial_is_rewired_and_keeps_its_task(when: str) -> None:
    agent = build_rl2_agent(SPEC)
    env = make_env(SPEC, "vector", 0, num_envs=16, seed=3)
    goals = {k: v.clone() for k, v in env.world.task_params().items()}
    rewire = Rewire(when, (999,), at=1)
    result = run_trials(agent, env, "vector", 3, generator=torch.Generator().manual_seed(0),
                        rewire=rewire)  # fmt: skip
    assert env.variants == [999] * 16  # each trial met the new wiring
    for key, value in env.world.task_params().items():
        assert torch.equal(value, goals[key])  # the task is kept
    assert result.returns.shape == (16, 3)


def test_between_keeps_the_first_episode_and_changes_the_rest() -> None:
    """Rewiring between episodes cannot touch episode 1: it equals the unrewired trial's."""
    agent = build_rl2_agent(SPEC)
    kwargs = {"episodes": 3, "num_trials": 32, "seed": 5}
    plain = run_trial(agent, SPEC.world, "vector", 0, **kwargs)
    rewired = run_trial(agent, SPEC.world, "vector", 0, rewire=Rewire("between", (999,)),
                        **kwargs)  # fmt: skip
    assert torch.equal(plain.returns[:, 0], rewired.returns[:, 0])
    assert torch.equal(plain.length[:, 0], rewired.length[:, 0])
    assert not torch.equal(plain.returns[:, 1:], rewired.returns[:, 1:])


def test_a_blind_trial_plays_the_same_whatever_the_variant_shows() -> None:
    agent = build_rl2_agent(SPEC)
    kwargs = {"episodes": 3, "num_trials": 32, "seed": 5}
    seen = [run_trial(agent, SPEC.world, "vector", v, **kwargs) for v in (0, 999)]
    blind = [run_trial(agent, SPEC.world, "vector", v, blind=True, **kwargs) for v in (0, 999)]
    assert not torch.equal(seen[0].length, seen[1].length)  # the wiring changes what it does
    assert torch.equal(blind[0].length, blind[1].length)  # blind, it cannot
    assert torch.equal(blind[0].returns, blind[1].returns)


def test_new_tasks_change_the_task_after_the_first_episode_and_keep_the_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``new_tasks`` draws a task for every episode after the first (the variant kept): the
    first episode equals the plain trial's, later ones differ, and tasks are drawn only then."""
    from metaxm.envs.gridnav import GridNav

    drawn: list[int] = []
    set_tasks = GridNav.set_tasks

    def spy(self: GridNav, params: TaskParams, env_ids: Tensor | None = None) -> None:
        if self.num_envs == 32:  # the trials' world (make_env builds others on the way)
            drawn.append(self.num_envs if env_ids is None else int(env_ids.numel()))
        set_tasks(self, params, env_ids)

    monkeypatch.setattr(GridNav, "set_tasks", spy)
    agent = build_rl2_agent(SPEC)
    kwargs = {"episodes": 3, "num_trials": 32, "seed": 5}
    plain = run_trial(agent, SPEC.world, "vector", 0, **kwargs)
    assert drawn == [32]  # the trials' tasks, once
    drawn.clear()
    fresh = run_trial(agent, SPEC.world, "vector", 0, new_tasks=True, **kwargs)
    assert drawn[0] == 32 and sum(drawn[1:]) >= 2 * 32  # and one per later episode
    assert torch.equal(plain.returns[:, 0], fresh.returns[:, 0])
    assert not torch.equal(plain.returns[:, 1:], fresh.returns[:, 1:])


def test_rewire_refuses_an_empty_pool_and_a_step_before_the_first() -> None:
    with pytest.raises(ValueError, match="pool of variants"):
        Rewire("between", ())
    with pytest.raises(ValueError, match="at must be >= 1"):
        Rewire("within", (1,), at=0)


# ---------------------------------------------------------------------------- on a fake world
@dataclass(frozen=True)
class ClockConfig:
    """A world whose only feature is the step count within the episode, t / horizon.

    Attributes:
        name: the registry name.
        horizon: steps per episode (it never ends earlier).
    """

    name: Literal["clock"] = "clock"
    horizon: int = 6


class Clock(World):
    name = "clock"

    def __init__(self, config: ClockConfig, num_envs: int, device: Any = "cpu", seed: int = 0):
        super().__init__(num_envs, device, seed)
        self.horizon = config.horizon
        self.action_space = gym.spaces.Discrete(2)
        self.scene_info = SceneInfo(feature_dim=1, feature_names=("clock",))

    def sample_tasks(self, n: int, generator: torch.Generator | None = None) -> TaskParams:
        return {"unused": torch.zeros(n)}

    def set_tasks(self, params: TaskParams, env_ids: Tensor | None = None) -> None:
        pass

    def task_params(self) -> TaskParams:
        return {"unused": torch.zeros(self.num_envs)}

    def reset(self, env_ids: Tensor | None = None) -> None:
        self.t[self.all_ids() if env_ids is None else env_ids] = 0

    def step(self, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        self.t += 1
        no = torch.zeros(self.num_envs, dtype=torch.bool)
        return torch.zeros(self.num_envs), no, no

    def scene(self) -> Scene:
        return Scene(features=(self.t.float() / self.horizon)[:, None])

    def oracle_action(self) -> Tensor:
        return torch.zeros(self.num_envs, dtype=torch.long)


@pytest.fixture
def clock_world() -> Iterator[None]:
    register_world("clock", Clock, ClockConfig)
    yield
    WORLDS.pop("clock")


@pytest.mark.usefixtures("clock_world")
@pytest.mark.parametrize("when", ["between", "within"])
def test_the_wiring_switches_exactly_where_asked_on_a_fake_world(when: str) -> None:
    """Every observation the agent saw is the clock rendered through the variant it should be
    in at that step: the first until the switch, the other after it."""
    spec = spec_from_dict(
        {
            "world": {"name": "clock", "horizon": 6},
            "modalities": {"train": {"vector": 2}},
            "algo": "rl2",
            "agent": {"latent_dim": 8, "encoder_width": 8, "hidden": 8},
        }
    )
    agent = build_rl2_agent(spec)
    first, other = 11, 12
    env = make_env(spec, "vector", first, num_envs=4, seed=0)
    gain = {v: float(env.family.variant(v, env.world.scene_info)["gain"][0]) for v in (11, 12)}
    assert abs(gain[first] - gain[other]) > 0.05  # the two wirings read the clock differently
    seen, step = [], agent.step

    def spy(obs: Tensor, *rest: Any) -> Any:
        seen.append(obs[:, 0].clone())  # the clock's channel (the rest is noise)
        return step(obs, *rest)

    agent.step = spy  # type: ignore[method-assign]
    rewire = Rewire(when, (other,), at=2)
    run_trials(agent, env, "vector", 2, generator=torch.Generator().manual_seed(0), rewire=rewire)
    del agent.step
    obs = torch.stack(seen)  # (2 episodes x 6 steps, 4)
    assert obs.shape == (12, 4)
    for i in range(12):
        episode, t = divmod(i, 6)
        switched = episode == 1 if when == "between" else (episode == 1 or t >= 2)
        expected = max(-2.0, min(2.0, t / 6 * gain[other if switched else first]))
        assert torch.allclose(obs[i], torch.full((4,), expected)), (i, when)
