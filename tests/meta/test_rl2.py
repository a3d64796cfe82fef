"""RL^2: trial bookkeeping on a fake world, the replay, resume, the run loop, learning a bandit."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import pytest
import torch
from torch import Tensor

from metaxm.build import make_trainer
from metaxm.envs import WORLDS, SceneInfo, TaskParams, World, make_world, register_world
from metaxm.envs.base import Scene
from metaxm.envs.task_env import TaskEnv
from metaxm.meta.rl2 import RL2Config, RL2Trainer, build_rl2_agent, run_trial
from metaxm.meta.trials import TrialStats, TrialTasks, collect_trials, replay, start_trials
from metaxm.run.loop import train
from metaxm.spec import Spec, spec_from_dict


# ---------------------------------------------------------------------------- a fake world
@dataclass(frozen=True)
class BanditConfig:
    """A two-armed bandit as a world.

    Attributes:
        name: the registry name.
        horizon: pulls per episode (the episode is cut there).
        stop_on_success: end the episode at the first pull of the paying arm.
    """

    name: Literal["bandit2"] = "bandit2"
    horizon: int = 1
    stop_on_success: bool = True


class TwoArmedBandit(World):
    """Task: which arm pays 1 (the other pays 0); the observation is a constant."""

    name = "bandit2"

    def __init__(self, config: BanditConfig, num_envs: int, device: Any = "cpu", seed: int = 0):
        super().__init__(num_envs, device, seed)
        self.config = config
        self.horizon = config.horizon
        self.action_space = gym.spaces.Discrete(2)
        self.scene_info = SceneInfo(feature_dim=1, feature_names=("bias",))
        self.good = torch.zeros(num_envs, dtype=torch.long)
        self.set_tasks(self.sample_tasks(num_envs))

    def sample_tasks(self, n: int, generator: torch.Generator | None = None) -> TaskParams:
        return {"good": torch.randint(0, 2, (n,), generator=generator or self.generator)}

    def set_tasks(self, params: TaskParams, env_ids: Tensor | None = None) -> None:
        if env_ids is None:
            self.good = params["good"].clone()
        else:
            self.good[env_ids] = params["good"]

    def reset(self, env_ids: Tensor | None = None) -> None:
        self.t[self.all_ids() if env_ids is None else env_ids] = 0

    def step(self, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        paid = actions.long() == self.good
        self.t += 1
        terminated = paid & self.config.stop_on_success
        return paid.float(), terminated, paid

    def scene(self) -> Scene:
        return Scene(features=torch.zeros(self.num_envs, 1))

    def task_params(self) -> TaskParams:
        return {"good": self.good.clone()}

    def oracle_action(self) -> Tensor:
        return self.good.clone()


@pytest.fixture(autouse=True, scope="module")
def bandit_world() -> Iterator[None]:
    """The fake world is registered for this module's tests only (the registry is global)."""
    register_world("bandit2", TwoArmedBandit, BanditConfig)
    yield
    WORLDS.pop("bandit2")


def bandit_spec(**sections: Any) -> Spec:
    data: dict[str, Any] = {
        "seed": 0,
        "world": {"name": "bandit2", "horizon": 1},
        "modalities": {"train": {"vector": 4}, "heldout_variants": {"vector": 2}},
        "algo": "rl2",
        "rl2": {"episodes_per_trial": 3},
        "agent": {"latent_dim": 8, "encoder_width": 16, "hidden": 16},
        "ppo": {"num_steps": 12, "update_epochs": 2, "num_minibatches": 2},
        "train": {"total_steps": 384, "num_envs": 8, "checkpoint_interval": 2, "eval_episodes": 12},
        "log": {"mode": "disabled", "progress": False},
    }
    for key, value in sections.items():
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    return spec_from_dict(data)


# ---------------------------------------------------------------------------- trial bookkeeping
def _collect(
    steps: int = 40,
    n: int = 3,
    horizon: int = 3,
    encoder: str = "family",
    reward_input: bool = True,
    new_tasks: bool = False,
) -> dict[str, Any]:
    """A rollout on bandit episodes of 1 to ``horizon`` pulls, recording what the core saw;
    ``encoder`` ``sensory-trial`` is the sensory encoder with ``sensory_memory: trial``."""
    memory = "trial" if encoder == "sensory-trial" else "window"
    agent_config = {
        "encoder": encoder.removesuffix("-trial"),
        "sensory_window": 4,
        "sensory_memory": memory,
        "reward_input": reward_input,
    }
    spec = bandit_spec(world={"horizon": horizon}, agent=agent_config)
    agent = build_rl2_agent(spec)
    world = make_world(spec.world, 6, seed=1)
    env = TaskEnv(world, "vector", seed=2, resample_tasks=new_tasks)
    tasks = TrialTasks(world, list(range(100, 150)), torch.Generator().manual_seed(3))
    state = start_trials(agent, env, tasks)
    seen: dict[str, list[Tensor]] = {"h_in": [], "h_out": [], "variants": [], "good": []}
    step = agent.step

    def spy(obs: Tensor, family: str, *rest: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        seen["variants"].append(torch.tensor(env.variants))
        seen["good"].append(world.good.clone())
        out = step(obs, family, *rest)
        seen["h_in"].append(rest[-1].clone())
        seen["h_out"].append(out[2].clone())
        return out

    agent.step = spy  # type: ignore[method-assign]
    stats = TrialStats(n)
    rollout, _ = collect_trials(
        agent, env, "vector", state, steps, n, tasks, torch.Generator().manual_seed(4), stats
    )
    del agent.step
    seen = {k: torch.stack(v[:steps]) for k, v in seen.items()}  # drop the bootstrap step
    return {"agent": agent, "rollout": rollout, "stats": stats, **seen}


@pytest.mark.parametrize("encoder", ["family", "sensory", "sensory-trial"])
def test_hidden_state_carried_across_episodes_and_zeroed_between_trials(encoder: str) -> None:
    c = _collect(encoder=encoder)
    ro, h_in, h_out = c["rollout"], c["h_in"], c["h_out"]
    steps, b = ro.actions.shape
    # count episode ends independently of the trainer: the done flag of step t is first[t + 1]
    done = torch.cat((ro.first[1:], torch.zeros(1, b, dtype=torch.bool)))
    crossed = 0
    for j in range(b):
        ended = 0  # episodes finished in the current trial
        for t in range(steps):
            starts = t == 0 or bool(ro.trial_end[t - 1, j])
            assert bool(ro.reset[t, j]) == starts
            if starts:  # a new trial: the state fed to the core is zero
                assert torch.equal(h_in[t, j], torch.zeros_like(h_in[t, j]))
                ended = 0
            else:  # inside a trial, across episode boundaries too: the previous output
                assert torch.equal(h_in[t, j], h_out[t - 1, j])
                crossed += int(ro.first[t, j])
            if t < steps - 1:
                ended += int(done[t, j])
                assert bool(ro.trial_end[t, j]) == (ended == 3)
    assert crossed > 10  # episode boundaries inside trials were crossed with the state kept
    assert int(ro.reset[1:].sum()) >= b  # and every environment started a new trial


def test_trial_keeps_its_task_and_variant_and_the_next_trial_draws_new_ones() -> None:
    c = _collect()
    ro, variants, good = c["rollout"], c["variants"], c["good"]
    inside = ~ro.reset[1:]  # (T - 1, B): step t + 1 continues the trial of step t
    assert torch.equal(variants[1:][inside], variants[:-1][inside])
    assert torch.equal(good[1:][inside], good[:-1][inside])
    assert bool((variants[1:][ro.reset[1:]] != variants[:-1][ro.reset[1:]]).any())
    # the prev-action / prev-reward inputs are zero exactly at trial starts
    assert torch.equal(ro.prev_rewards[ro.reset], torch.zeros(int(ro.reset.sum())))
    assert torch.equal(ro.prev_actions[1:][inside], ro.actions[:-1][inside])


def test_episode_tasks_new_draws_a_task_for_every_episode_and_keeps_the_variant() -> None:
    c = _collect(new_tasks=True)
    ro, variants, good = c["rollout"], c["variants"], c["good"]
    inside = ~ro.reset[1:]
    assert torch.equal(variants[1:][inside], variants[:-1][inside])  # the wiring is kept
    assert bool((good[1:][inside] != good[:-1][inside]).any())  # the task is not
    trainer = make_trainer(bandit_spec(rl2={"episode_tasks": "new"}))
    assert all(env.resample_tasks for env in trainer.envs.values())
    assert not any(env.resample_tasks for env in make_trainer(bandit_spec()).envs.values())


@pytest.mark.parametrize("encoder", ["family", "sensory", "sensory-trial"])
def test_replay_reproduces_the_acting_policy_and_values_run_on_inside_trials(
    encoder: str,
) -> None:
    c = _collect(encoder=encoder)
    ro = c["rollout"]
    with torch.no_grad():
        pd, value = replay(c["agent"], "vector", ro)
    logp = c["agent"].head.log_prob(pd, ro.actions)
    assert float((logp - ro.logprobs).abs().max()) < 1e-5
    assert float((value - ro.values).abs().max()) < 1e-5
    # the return runs on across an episode boundary inside a trial and stops at a trial's end
    going = ~ro.trial_end[:-1]
    assert torch.equal(ro.next_values[:-1][going], ro.values[1:][going])
    assert bool((going & ro.first[1:]).any())
    assert torch.equal(ro.next_values[ro.trial_end], torch.zeros(int(ro.trial_end.sum())))


@pytest.mark.parametrize(
    ("encoder", "reward_input"),
    [("family", True), ("sensory", True), ("sensory-trial", True), ("family", False)],
)
def test_replay_gradients_equal_a_step_by_step_loop(encoder: str, reward_input: bool) -> None:
    """Also for a core that reads no reward: the replay trains what acting reads (it used to feed
    the reward to the GRU whatever agent.reward_input said, so training and acting disagreed)."""
    c = _collect(steps=24, encoder=encoder, reward_input=reward_input)
    assert bool((c["rollout"].prev_rewards != 0).any())  # rewards to be read, or not
    agent, ro = c["agent"], c["rollout"]

    def loop() -> tuple[Tensor, Tensor]:  # the reference: agent.step with resets, one t at a time
        h, pds, values = ro.hidden, [], []
        for t in range(ro.obs.shape[0]):
            h = torch.where(ro.reset[t, :, None], 0.0, h)
            pd, v, h = agent.step(
                ro.obs[t], "vector", ro.prev_actions[t], ro.prev_rewards[t], ro.first[t], h
            )
            pds.append(pd)
            values.append(v)
        return torch.stack(pds), torch.stack(values)

    grads = []
    for fn in (lambda: replay(agent, "vector", ro), loop):
        agent.zero_grad()
        pd, value = fn()
        (agent.head.log_prob(pd, ro.actions).sum() + value.pow(2).sum()).backward()
        grads.append({n: p.grad.clone() for n, p in agent.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and any(k.startswith("core.hh") for k in grads[0])
    assert encoder.startswith("sensory") == any(".neuron." in k for k in grads[0])
    for name, g in grads[0].items():
        assert float((g - grads[1][name]).abs().max()) < 1e-5 * (1 + float(g.abs().max())), name


def test_trial_stats_average_by_episode_index() -> None:
    stats = TrialStats(2)
    info = {
        "episode_return": torch.tensor([1.0, 3.0, 5.0, 7.0]),
        "success": torch.tensor([True, False, True, True]),
        "episode_length": torch.tensor([2, 4, 6, 8]),
    }
    stats.add(torch.tensor([True, True, True, False]), torch.tensor([0, 1, 1, 0]), info)
    out = stats.summary("/vector")
    assert out["episodes/ep1/vector"] == 1 and out["return/ep1/vector"] == 1.0
    assert out["episodes/ep2/vector"] == 2 and out["return/ep2/vector"] == 4.0
    assert out["success/ep2/vector"] == 0.5 and out["length/ep2/vector"] == 5.0
    assert out["episodes/vector"] == 3 and out["return/vector"] == 3.0


def test_set_env_tasks_changes_only_the_given_environments() -> None:
    spec = bandit_spec()
    world = make_world(spec.world, 4, seed=0)
    env = TaskEnv(world, "vector", 7, {"good": torch.tensor([0, 0, 1, 1])}, seed=0)
    env.reset()
    before = {k: v.clone() for k, v in env.params.items()}
    ids = torch.tensor([1, 3])
    env.set_env_tasks(ids, {"good": torch.tensor([1, 0])}, [9, 11])
    assert env.variants == [7, 9, 7, 11]
    assert torch.equal(world.good, torch.tensor([0, 1, 1, 0]))
    nine, eleven = env._params(9), env._params(11)
    for k, v in env.params.items():
        assert torch.equal(v[0], before[k][0]) and torch.equal(v[2], before[k][2])
        assert torch.equal(v[1], nine[k]) and torch.equal(v[3], eleven[k])


# ---------------------------------------------------------------------------- few-shot API
def test_run_trial_gives_a_seeded_per_episode_curve() -> None:
    agent = build_rl2_agent(bandit_spec())
    world = BanditConfig(horizon=1)
    a = run_trial(agent, world, "vector", [3, 4, 5], episodes=4, seed=5)
    b = run_trial(agent, world, "vector", [3, 4, 5], episodes=4, seed=5)
    assert a.returns.shape == (3, 4) and torch.equal(a.returns, b.returns)
    assert torch.equal(a.length, torch.ones(3, 4, dtype=torch.long))
    assert torch.equal(a.returns, a.success.float())  # one pull: return 1 iff it paid
    curve = a.curve()
    assert set(curve) == {"return", "success", "length"}  # the bandit has no optimal_steps
    assert curve["return"] == a.returns.double().mean(0).tolist()
    assert a.summary("x/")["x/return/ep2"] == curve["return"][1]


# ---------------------------------------------------------------------------- trainer and loop
def test_spec_selects_the_rl2_trainer_with_a_recurrent_core() -> None:
    spec = bandit_spec()
    assert spec.agent.core == "mlp"  # the spec's default; RL^2 builds the gru core anyway
    trainer = make_trainer(spec)
    assert isinstance(trainer, RL2Trainer) and trainer.agent.recurrent
    with pytest.raises(ValueError, match="episodes_per_trial"):
        RL2Config(episodes_per_trial=0)


def test_alignment_weight_adds_an_auxiliary_step_after_the_ppo_epochs() -> None:
    sections: dict[str, Any] = {  # GridNav: the bandit's states are all alike, nothing to align
        "world": {"name": "gridnav", "size": 4, "horizon": 8},
        "modalities": {"train": {"vector": 2, "projected": 2}, "heldout_variants": {}},
    }
    plain = RL2Trainer(bandit_spec(**sections))
    aligned = RL2Trainer(bandit_spec(**sections, align={"weight": 0.5, "batch_size": 16}))
    m_plain, m_aligned = plain.update(), aligned.update()
    assert m_aligned["align_loss"] > 0 and aligned.state_dict()["align"] is not None
    for key in ("policy_loss", "value_loss", "return"):  # same trials, same PPO epochs
        assert m_aligned[key] == m_plain[key], key
    p, q = plain.agent.encoders["projected"], aligned.agent.encoders["projected"]
    assert not all(torch.equal(a, b) for a, b in zip(p.parameters(), q.parameters()))


def test_resumed_trainer_continues_exactly() -> None:
    spec = bandit_spec(world={"horizon": 3})
    a = RL2Trainer(spec)
    a.update()
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    expected = a.update()
    b = RL2Trainer(spec)
    buf.seek(0)
    b.load_state_dict(torch.load(buf, weights_only=True))
    assert b.update() == expected
    for (name, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        assert torch.equal(p, q), name


def test_train_logs_metrics_by_episode_index(tmp_path: Path) -> None:
    spec = bandit_spec(modalities={"train": {"vector": 2, "projected": 2}, "heldout_variants": {}})
    result = train(spec, tmp_path / "run")
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    assert len(rows) == 2  # 384 steps / (12 steps x 8 envs x 2 families)
    last = rows[-1]
    for key in ("return", "return/ep1", "success/ep3", "length/ep2", "return/ep2/projected"):
        assert key in last, key
    assert last["length/ep1"] == 1.0  # one pull per episode
    ev = result.evaluation
    assert ev["episodes_per_trial"] == 3 and 0.0 <= ev["train/sampled/return/ep3"] <= 1.0
    assert ev["oracle_return"] == 1.0 and "train/mode/success/ep1/vector" in ev


@pytest.mark.slow
def test_rl2_learns_a_two_armed_bandit_in_context() -> None:
    spec = bandit_spec(
        rl2={"episodes_per_trial": 5},
        agent={"latent_dim": 8, "encoder_width": 16, "hidden": 32},
        ppo={"lr": 0.003, "num_steps": 20, "update_epochs": 4, "num_minibatches": 2},
        train={"total_steps": 60_000, "num_envs": 64},
    )
    trainer = RL2Trainer(spec)
    while trainer.env_steps < spec.train.total_steps:
        trainer.update()
    curve = run_trial(trainer.agent, spec.world, "vector", 4, episodes=5, num_trials=512).curve()
    # the first pull is a coin flip; after it the agent knows the paying arm and keeps to it
    assert 0.4 < curve["return"][0] < 0.6
    assert min(curve["return"][1:]) > 0.9
