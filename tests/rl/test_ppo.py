"""PPO: the clipped loss by hand, the NaN guard, exact state round trips, learning a tiny task."""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest
import torch

from metaxm.errors import ConfigError, DivergenceError
from metaxm.modalities import register
from metaxm.rl.ppo import Batch, PPOConfig, ppo_loss, ppo_update
from metaxm.rl.rollout import EpisodeStats, collect
from metaxm.rl.trainer import PPOTrainer
from metaxm.spec import Spec


def _batch(trainer: PPOTrainer, n: int = 8) -> Batch:
    obs = trainer.obs["vector"][:n]
    with torch.no_grad():
        pd, value = trainer.agent(obs, "vector")
    actions = torch.arange(n) % 4
    logp = trainer.agent.head.log_prob(pd, actions)
    adv = torch.linspace(-1.0, 1.0, n)
    return Batch(obs, actions, logp, value, adv, value + 0.5)


def test_ppo_loss_matches_the_clipped_objective_by_hand(make_spec: Callable[..., Spec]) -> None:
    trainer = PPOTrainer(make_spec())
    cfg = PPOConfig(norm_adv=False, ent_coef=0.0, vf_coef=1.0, clip_vloss=False, clip_coef=0.2)
    mb = _batch(trainer)
    # old log-probs lower by log 1.5: every ratio is 1.5, clipped to 1.2 where it helps
    mb.logprobs = mb.logprobs - torch.log(torch.tensor(1.5))
    loss, stats = ppo_loss(trainer.agent, "vector", mb, cfg)
    adv = mb.advantages
    expected_pg = torch.max(-adv * 1.5, -adv * 1.2).mean()
    assert float(stats["policy_loss"]) == pytest.approx(float(expected_pg), abs=1e-5)
    assert float(stats["value_loss"]) == pytest.approx(0.5 * 0.25, abs=1e-6)
    assert float(stats["clipfrac"]) == 1.0
    assert float(loss.detach()) == pytest.approx(float(expected_pg) + 0.125, abs=1e-5)


def test_ratio_one_gives_zero_kl_and_normalised_advantage_loss_zero(
    make_spec: Callable[..., Spec],
) -> None:
    trainer = PPOTrainer(make_spec())
    loss, stats = ppo_loss(trainer.agent, "vector", _batch(trainer), PPOConfig())
    assert float(stats["approx_kl"]) == pytest.approx(0.0, abs=1e-7)
    assert float(stats["policy_loss"]) == pytest.approx(0.0, abs=1e-6)  # mean of -normalised adv


def test_nan_loss_stops_before_the_parameters_change(make_spec: Callable[..., Spec]) -> None:
    trainer = PPOTrainer(make_spec())
    before = {k: v.clone() for k, v in trainer.agent.state_dict().items()}
    mb = _batch(trainer)
    mb.returns = mb.returns.clone()
    mb.returns[0] = float("nan")
    with pytest.raises(DivergenceError, match=r"update 7 \(env step 99\): value_loss is nan"):
        ppo_update(
            trainer.agent, trainer.optimizer, {"vector": mb}, PPOConfig(),
            torch.Generator().manual_seed(0), where="update 7 (env step 99)",
        )  # fmt: skip
    for k, v in trainer.agent.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_rollout_bootstraps_only_where_episodes_go_on(make_spec: Callable[..., Spec]) -> None:
    trainer = PPOTrainer(make_spec())
    stats = EpisodeStats.zeros()
    env = trainer.envs["vector"]
    gen = torch.Generator().manual_seed(0)
    ro, _ = collect(trainer.agent, env, "vector", trainer.obs["vector"], 40, gen, stats)
    assert ro.obs.shape == (40, 16, 8) and ro.actions.shape == (40, 16)
    going = ~ro.done[:-1]
    assert torch.equal(ro.next_values[:-1][going], ro.values[1:][going])
    assert torch.equal(ro.next_values[ro.terminated], torch.zeros(int(ro.terminated.sum())))
    assert stats.summary()["episodes"] == float(ro.done.sum())


def test_state_dict_round_trip_continues_exactly(make_spec: Callable[..., Spec]) -> None:
    spec = make_spec()
    a = PPOTrainer(spec)
    a.update()
    buffer = io.BytesIO()  # through bytes, as a checkpoint goes, and loadable with weights_only
    torch.save(a.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    b = PPOTrainer(spec)
    b.load_state_dict(state)
    ma, mb = a.update(), b.update()
    assert ma == mb
    assert all(torch.equal(x, y) for x, y in zip(a.agent.parameters(), b.agent.parameters()))


def test_multi_family_training_sums_over_families(make_spec: Callable[..., Spec]) -> None:
    register(
        "test_reversed",
        lambda scene, params, gen: scene.features.flip(1),
        lambda info: __import__("gymnasium").spaces.Box(-1, 1, (info.feature_dim,)),
        overwrite=True,
    )
    trainer = PPOTrainer(make_spec(modalities={"train": {"vector": 2, "test_reversed": 1}}))
    assert sorted(trainer.envs) == ["test_reversed", "vector"]
    assert trainer.envs["vector"].variants[:2] == trainer.sampler.splits["train"]["vector"]
    m = trainer.update()
    assert m["episodes"] == m["episodes/vector"] + m["episodes/test_reversed"]
    assert trainer.env_steps == 2 * 16 * 32


def test_gru_core_is_refused(make_spec: Callable[..., Spec]) -> None:
    with pytest.raises(ConfigError, match="algo: rl2"):
        PPOTrainer(make_spec(agent={"core": "gru"}))


def test_ppo_learns_tiny_gridnav(make_spec: Callable[..., Spec]) -> None:
    trainer = PPOTrainer(make_spec(train={"total_steps": 6144}))
    before = trainer.evaluate(128)
    while trainer.env_steps < 6144:
        trainer.update()
    after = trainer.evaluate(128)
    assert after["oracle_success"] == 1.0
    assert before["success"] < 0.6
    assert after["success"] >= 0.95
    assert after["length"] <= after["oracle_length"] + 0.5
