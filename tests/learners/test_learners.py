"""The learner API: every learner built from a run, ``adapt(env, episodes=k)`` -> a policy that
acts, is evaluated and saved; one-line refusals where a learner cannot adapt an agent."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import metaxm
from metaxm.errors import CheckpointError
from metaxm.learners import MAML, RL2, AdaptedPolicy, Align, Translate
from metaxm.run.loop import train
from metaxm.spec import spec_from_dict

SPEC = {
    "seed": 3,
    "world": {"name": "gridnav", "size": 4, "horizon": 8},
    "modalities": {
        "train": {"vector": 2},
        "heldout_variants": {"vector": 1},
        "heldout_families": {"projected": 1},
    },
    "agent": {"hidden": 16, "latent_dim": 16, "encoder_width": 16},
    "ppo": {"num_steps": 8, "update_epochs": 1, "num_minibatches": 1},
    "maml": {"meta_batch": 2, "support_episodes": 2, "query_episodes": 2, "outer_epochs": 1},
    "rl2": {"episodes_per_trial": 2, "state_probe": 1.0},  # a probe: its weights load too
    "train": {"total_steps": 256, "num_envs": 8, "checkpoint_interval": 0, "eval_episodes": 0},
    "log": {"mode": "disabled", "progress": False},
    "align": {"fit_iters": 5, "translate_iters": 20},
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("learners")
    for algo in ("ppo", "maml", "rl2"):
        train(spec_from_dict({**SPEC, "algo": algo}), root / algo)
    return root


def env_of(learner, family: str = "vector", variant: int = 1001, n: int = 4, seed: int = 5):
    return metaxm.make_env(learner.spec, family, variant, num_envs=n, seed=seed)


def own_weights(learner) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in learner.agent.state_dict().items()}


@pytest.mark.parametrize(("cls", "run"), [(MAML, "maml"), (MAML, "ppo"), (Align, "ppo")])
def test_feed_forward_learners_adapt_without_touching_the_agent(runs, cls, run, tmp_path) -> None:
    learner = cls.from_run(runs / run)
    before = own_weights(learner)
    env = env_of(learner)
    policy = learner.adapt(env, episodes=8, seed=1)
    assert isinstance(policy, AdaptedPolicy)
    assert policy.episodes > 0 and policy.family == "vector" and policy.variant == 1001
    assert policy.params, "k > 0 adapts some parameters"
    moved = [n for n, v in policy.params.items() if not torch.equal(v, before[n])]
    assert moved, "the adaptation changed nothing"
    after = own_weights(learner)
    assert all(torch.equal(before[k], after[k]) for k in before)  # the agent is untouched
    result = policy.evaluate(env)
    assert set(result) == {"return", "success", "steps"}
    assert 0.0 <= result["success"] <= 1.0 and 1 <= result["steps"] <= 8
    # saved and loaded, the policy acts the same
    loaded = AdaptedPolicy.load(policy.save(tmp_path / "policy.pt"))
    obs = env.reset()
    assert torch.equal(loaded.act(obs), policy.act(obs))
    assert (loaded.family, loaded.variant, loaded.episodes) == ("vector", 1001, policy.episodes)
    assert loaded.params.keys() == policy.params.keys()  # which parameters were adapted
    for name, value in policy.params.items():
        assert torch.equal(loaded.params[name], value)


def test_translate_reads_the_new_modality_through_the_source_encoder(runs, tmp_path) -> None:
    """The held-out family (projected) translated into the source (vector): the policy runs the
    agent on the translation as the source family, the agent untouched, saved and loaded."""
    learner = Translate.from_run(runs / "ppo")
    before = own_weights(learner)
    env = env_of(learner, "projected", 2001)
    policy = learner.adapt(env, episodes=8, seed=1)
    assert policy.translator is not None and policy.reads == "vector"
    assert policy.episodes == 8 and policy.paired_steps > 0
    # this agent has family adapters, so the source is read with the vector family's own
    assert policy.params is None
    after = own_weights(learner)
    assert all(torch.equal(before[k], after[k]) for k in before)
    obs = env.reset()
    with torch.no_grad():
        direct = learner.agent.head.mode(learner.agent(policy.translator(obs), "vector")[0])
    assert torch.equal(policy.act(obs), direct)
    loaded = AdaptedPolicy.load(policy.save(tmp_path / "translate.pt"))
    assert torch.equal(loaded.act(obs), policy.act(obs))
    assert (loaded.reads, loaded.learner) == ("vector", "translate")


def test_translate_refuses_an_instruction_world_in_one_line() -> None:
    from metaxm.errors import ConfigError
    from metaxm.nn.agent import build_agent

    spec = spec_from_dict(
        {
            **SPEC,
            "world": {"name": "gridnav_lang", "size": 4, "objects": 2, "horizon": 8},
            "agent": {**SPEC["agent"], "instruction": "learned", "instruction_dim": 8},
        }
    )
    learner = Translate(build_agent(spec), spec)
    with pytest.raises(ConfigError, match="translate cannot adapt this agent: an instruction"):
        learner.adapt(env_of(learner, n=2), episodes=2)


def test_zero_episodes_is_the_agent_as_it_is(runs) -> None:
    learner = Align.from_run(runs / "ppo")
    env = env_of(learner)
    policy = learner.adapt(env, episodes=0)
    assert policy.params is None and policy.episodes == 0
    obs = env.reset()
    expected = learner.agent.head.mode(learner.agent(obs, "vector")[0])
    assert torch.equal(policy.act(obs), expected)


def test_rl2_carries_each_trials_state_out_of_its_episodes(runs, tmp_path) -> None:
    learner = RL2.from_run(runs / "rl2")
    env = env_of(learner)
    policy = learner.adapt(env, episodes=2, seed=1)
    carry = policy.carry
    assert carry is not None and policy.params is None and policy.episodes == 2
    assert bool(carry["first"].all())  # every trial stopped at the end of its 2nd episode
    assert carry["hidden"].shape == (4, learner.agent.config.hidden)
    assert float(carry["hidden"].abs().sum()) > 0  # the episodes left a trace
    fresh = learner.adapt(env, episodes=0)
    assert float(fresh.carry["hidden"].abs().sum()) == 0.0
    result = policy.evaluate(env)
    assert 0.0 <= result["success"] <= 1.0
    loaded = AdaptedPolicy.load(policy.save(tmp_path / "rl2.pt"))
    assert torch.equal(loaded.carry["hidden"], policy.carry["hidden"])
    obs = env.reset()
    assert torch.equal(loaded.act(obs), policy.act(obs))


def test_learners_refuse_what_they_cannot_adapt_in_one_line(runs) -> None:
    with pytest.raises(CheckpointError, match="maml adapts agents of algo maml or ppo; .* rl2"):
        MAML.from_run(runs / "rl2")
    ppo = Align.from_run(runs / "ppo")
    with pytest.raises(ValueError, match="rl2 adapts a recurrent agent .*feed-forward"):
        RL2(ppo.agent, ppo.spec)
    rl2 = RL2.from_run(runs / "rl2")
    with pytest.raises(ValueError, match="maml adapts a feed-forward agent .*recurrent"):
        MAML(rl2.agent, rl2.spec)
    with pytest.raises(ValueError, match="episodes=6 is not a multiple of env.num_envs=4"):
        ppo.adapt(env_of(ppo), episodes=6)
    mixed = metaxm.make_env(ppo.spec, "vector", [1001, 1002], seed=5)
    with pytest.raises(ValueError, match="one modality at a time"):
        ppo.adapt(mixed, episodes=2)
    with pytest.raises(ValueError, match="no encoder for family 'pixels'"):
        ppo.adapt(env_of(ppo, "pixels", 0), episodes=4)


def test_a_saved_policy_refuses_a_foreign_file(tmp_path) -> None:
    from metaxm.run.checkpoint import save_checkpoint

    path = save_checkpoint(tmp_path / "x.pt", {"format": "something else"})
    with pytest.raises(CheckpointError, match="not a saved policy"):
        AdaptedPolicy.load(path)


def test_a_policy_whose_weights_do_not_fit_names_the_keys_in_one_line(runs, tmp_path) -> None:
    from metaxm.run.checkpoint import load_checkpoint, save_checkpoint

    learner = RL2.from_run(runs / "rl2")
    state = load_checkpoint(learner.adapt(env_of(learner), episodes=0).save(tmp_path / "p.pt"))
    del state["agent"]["state_probe.bias"]
    path = save_checkpoint(tmp_path / "broken.pt", state)
    with pytest.raises(CheckpointError, match=r"do not fit the spec \(Missing key.*state_probe"):
        AdaptedPolicy.load(path)


def test_the_public_api_is_the_learners() -> None:
    from metaxm import learners

    assert metaxm.MAML is learners.MAML and metaxm.RL2 is learners.RL2
    assert metaxm.Align is learners.Align and metaxm.AdaptedPolicy is learners.AdaptedPolicy
    # every learner is in the public API (docs/learners.md names them as metaxm.X)
    assert all(getattr(metaxm, cls.__name__) is cls for cls in learners.LEARNERS.values())
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = metaxm.nope


def test_make_learner_builds_a_learner_by_name_from_a_run(runs) -> None:
    from metaxm.config import ConfigError

    learner = metaxm.make_learner("maml", runs / "maml")
    assert isinstance(learner, MAML) and learner.spec.algo == "maml"
    assert isinstance(metaxm.make_learner("rl2", runs / "rl2"), RL2)
    with pytest.raises(ConfigError, match="no learner 'reptile'; known: maml, rl2, align"):
        metaxm.make_learner("reptile", runs / "ppo")


def test_selfread_reads_a_vector_from_observations_and_actions_alone(
    runs, tmp_path, monkeypatch
) -> None:
    """``selfread`` renders no other modality (no pair) and reads no reward: with both made to
    fail, it still adapts, its translator searching readings, and a saved policy acts the
    same. A family whose translator cannot read from actions (here the held-out projected
    family, given such a translator) is refused in one line."""
    import metaxm.align.pairs
    import metaxm.envs.task_env
    from metaxm.errors import ConfigError
    from metaxm.learners import SelfRead

    learner = SelfRead.from_run(runs / "ppo")
    env = env_of(learner, n=4)
    # what the agent knows of its own modality and training variants, drawn first
    learner.context("vector")

    def no_pairs(*args, **kwargs):  # noqa: ANN002, ANN003
        raise AssertionError("selfread rendered a paired view")

    monkeypatch.setattr(metaxm.align.pairs, "render_pairs", no_pairs)
    step = metaxm.envs.task_env.TaskEnv.step

    def rewardless(self, actions):  # noqa: ANN001
        obs, reward, terminated, truncated, info = step(self, actions)
        return obs, torch.full_like(reward, float("nan")), terminated, truncated, info

    monkeypatch.setattr(metaxm.envs.task_env.TaskEnv, "step", rewardless)
    policy = learner.adapt(env, episodes=8, seed=2)
    assert policy.learner == "selfread" and policy.reads == "vector" and policy.episodes == 8
    assert bool(policy.translator.searching)
    monkeypatch.undo()
    obs = env.reset()
    policy.begin()
    first = policy.act(obs)
    loaded = AdaptedPolicy.load(policy.save(tmp_path / "selfread.pt"))
    assert torch.equal(loaded.act(obs), first)
    from metaxm.align.translate import TRANSLATORS, UnsquashTranslator

    monkeypatch.setitem(TRANSLATORS, "projected", UnsquashTranslator)  # no start_unpaired
    with pytest.raises(ConfigError, match="selfread reads the families .*, not .projected."):
        learner.adapt(env_of(learner, "projected", 2001), episodes=4)
    from metaxm.evaluate.strategies import STRATEGIES

    assert STRATEGIES["selfread"].data == ("observations", "ends")  # its data column: obs + ends
    # the evaluator measures it where it reads, and says where it does not and why: there it
    # is no candidate for the headline, and its aggregate is over the families it reads
    from metaxm.evaluate.loading import load_agents
    from metaxm.evaluate.report import headline, markdown, write_report
    from metaxm.evaluate.runner import run_evaluation

    agents = load_agents(runs / "ppo")
    report = run_evaluation(agents, ["selfread"], seeds=1, progress=False, workers=1)
    (projected,) = [m for m in report["modalities"] if m.startswith("projected:")]
    (vector,) = [m for m in report["modalities"] if m.startswith("vector:")]
    assert "selfread" in report["modalities"][vector]["strategies"]
    assert "selfread" not in report["modalities"][projected]["strategies"]
    assert "not 'projected'" in report["unread"][projected]["selfread"]
    assert report["summary"]["selfread"]["missing"] == [projected]
    report["headline"] = headline(report)
    assert report["headline"].get("best") != "selfread"
    written = write_report(report, tmp_path / "report")  # the plots skip what is not measured
    assert written["speedup"].is_file() and written["curves"].is_file()
    text = markdown(report)
    assert "Not measured here: selfread (selfread reads the families" in text
    assert (
        "| selfread* |" in text and f"* over the modalities selfread reads: not {projected}" in text
    )
    assert (
        report["data"]["selfread"] == ["observations", "ends"]
        and "selfread" in report["in_episode"]
    )
    assert "episode went on" in STRATEGIES["selfread"].in_episode
    assert "walk stood on" in STRATEGIES["selfread"].in_episode  # the walk rule-out, said
    # where the walk shows too little the agent meets the target as it is: the curve says so
    read = report["modalities"][vector]["strategies"]["selfread"]["curves"]["read"]
    budgets = report["modalities"][vector]["strategies"]["selfread"]["budgets"]
    assert [[r for b, r in zip(budgets, seed) if b > 0] for seed in read] == [
        [1.0] * sum(b > 0 for b in budgets)
    ]  # every adaptation here read
    assert "read nothing" not in text
    from metaxm.align.reading_search import ReadingSearchTranslator

    monkeypatch.setattr(ReadingSearchTranslator, "start_unpaired", lambda self, *a: False)
    variant = int(vector.split(":")[1])
    curve = STRATEGIES["selfread"].curve(agents, "vector", variant, [0, 2], seed=0)
    assert curve["read"] == [0.0, 0.0]


def test_selfread_refuses_a_world_that_cannot_tell_success_in_one_line() -> None:
    """CartPole (a gymnasium world) has no test of success on features: ``cannot_read`` says
    so from the spec, and ``world_cannot`` from the environment ``adapt`` is given, which is
    what ``adapt`` checks (it builds no environment of its own); GridNav passes both."""
    from metaxm.learners.selfread import cannot_read, world_cannot

    cartpole = spec_from_dict({**SPEC, "world": {"name": "gym", "env_id": "CartPole-v1"},
                               "modalities": {"train": {"vector": 2}}})  # fmt: skip
    why = cannot_read("vector", cartpole)
    assert why is not None and "tells success from features" in why and "gym" in why
    assert why == world_cannot(metaxm.make_env(cartpole, "vector", 0), "gym")
    gridnav = spec_from_dict(SPEC)
    assert cannot_read("vector", gridnav) is None
    assert world_cannot(metaxm.make_env(gridnav, "vector", 0), "gridnav") is None


def test_selfread_that_reads_nothing_meets_the_target_as_it_is(runs, monkeypatch) -> None:
    """Where the family's reader reads nothing from the walk (made so here: the sensor bank's
    reader refuses every walk), the policy has no translation (not one reading 0) and acts as
    the agent does at k = 0, the episodes still counted."""
    from metaxm.align.sensor_posterior import SensorPosteriorTranslator
    from metaxm.learners import SelfRead

    monkeypatch.setattr(SensorPosteriorTranslator, "start_unpaired", lambda *args: False)
    learner = SelfRead.from_run(runs / "ppo")
    env = env_of(learner, "projected", 2001, n=2)
    policy = learner.adapt(env, episodes=2, seed=1)
    assert policy.translator is None and policy.episodes == 2
    bare = learner.adapt(env, episodes=0)
    obs = env.reset()
    assert torch.equal(policy.act(obs), bare.act(obs))


def test_what_a_learner_or_policy_cannot_use_is_one_line(runs, tmp_path) -> None:
    """A gym.make env, another world's or size's env, another family, a float or negative k, an
    unbatched or numpy observation: each said in one line (they failed deep in torch, or
    passed: a float k ran for MAML, a negative one was "not a multiple")."""
    import gymnasium as gym

    learner = MAML.from_run(runs / "ppo")
    with pytest.raises(TypeError, match="MAML.adapt needs a metaxm TaskEnv .* not OrderEnforcing"):
        learner.adapt(gym.make("metaxm/GridNav-v0", modality="vector", variant=1), episodes=4)
    walls = {"name": "gridnav", "size": 4, "walls": True}  # their cells: more features
    walled = metaxm.make_env(spec_from_dict({**SPEC, "world": walls}), "vector", 1, num_envs=4)
    with pytest.raises(
        ValueError, match=r"reads vector observations of shape \(8,\); env .* \(12,\)"
    ):
        learner.adapt(walled, episodes=4)
    pointnav = metaxm.make_env(spec_from_dict({**SPEC, "world": {"name": "pointnav"}}), "vector", 1)
    with pytest.raises(ValueError, match="trained on the gridnav world; env is a pointnav world"):
        learner.adapt(pointnav, episodes=4)
    env = env_of(learner)
    with pytest.raises(TypeError, match="episodes must be an int, got 4.0"):
        learner.adapt(env, episodes=4.0)
    with pytest.raises(ValueError, match="episodes must be >= 0, got -4"):
        learner.adapt(env, episodes=-4)
    policy = learner.adapt(env, episodes=4)
    with pytest.raises(ValueError, match="acts on vector observations .*; env renders projected"):
        policy.evaluate(env_of(learner, "projected", 1))
    obs = env.reset()
    assert torch.equal(policy.act(obs.numpy()), policy.act(obs))  # numpy is taken
    with pytest.raises(ValueError, match=r"act takes a batch of vector observations, \(B, \*\("):
        policy.act(obs[0])
    from metaxm.errors import ConfigError

    saved = policy.save(tmp_path / "policy.pt")
    with pytest.raises(ConfigError, match="device: 'gpu' is not a torch device"):
        AdaptedPolicy.load(saved, device="gpu")  # was "truncated or corrupt checkpoint"


def test_evaluating_a_recurrent_policy_leaves_it_as_it_was(runs, tmp_path) -> None:
    """``evaluate`` moved an RL^2 policy's carried state on: a second call measured a policy
    one episode further into its trial, and a save after it kept that state."""
    learner = RL2.from_run(runs / "rl2")
    env = env_of(learner)
    policy = learner.adapt(env, episodes=2, seed=1)
    before = {k: v.clone() for k, v in policy.carry.items()}
    first = policy.evaluate(env_of(learner, seed=9))
    assert all(torch.equal(policy.carry[k], v) for k, v in before.items())
    assert policy.evaluate(env_of(learner, seed=9)) == first
    loaded = AdaptedPolicy.load(policy.save(tmp_path / "rl2.pt"))
    assert all(torch.equal(loaded.carry[k], v) for k, v in before.items())


def test_a_policy_of_an_agent_given_a_family_by_hand_saves_and_loads(runs, tmp_path) -> None:
    """After ``agent.add_family`` (the documented way to meet a family the agent lacks) the
    saved policy's spec did not name the family, so ``load`` refused its weights."""
    from metaxm.modalities import get_family

    learner = Align.from_run(runs / "ppo")
    env = env_of(learner, "pixels", 3)
    learner.agent.add_family("pixels", get_family("pixels").observation_space(env.world.scene_info))
    policy = learner.adapt(env, episodes=4, seed=1)
    loaded = AdaptedPolicy.load(policy.save(tmp_path / "pixels.pt"))
    obs = env.reset()
    assert loaded.family == "pixels" and torch.equal(loaded.act(obs), policy.act(obs))
