"""A learner and strategy of one's own, written as ``docs/learners.md`` shows, registered from
outside metaxm and measured by ``metaxm evaluate`` with no other change."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from metaxm.cli import main
from metaxm.evaluate.loading import load_agents
from metaxm.evaluate.strategies import STRATEGIES, LearnerStrategy
from metaxm.learners import LEARNERS, AdaptedPolicy, Learner
from metaxm.run.loop import train
from metaxm.spec import spec_from_dict
from tests.test_pipeline import TINY


class Frozen(Learner):
    """Takes the agent as it is: its k episodes change nothing."""

    name = "frozen"
    algos = ("ppo",)
    data = ("observations",)
    recurrent = False

    def adapt(self, env, episodes, seed=0):  # noqa: D102
        family, variant = self.target(env)
        rounds = self.rounds(env, episodes)
        return AdaptedPolicy(
            self.agent, self.spec, family, variant, episodes=rounds * env.num_envs,
            learner=self.name,
        )  # fmt: skip


class FrozenStrategy(LearnerStrategy):
    name = "frozen"
    needs = "ppo"
    learner = "frozen"
    data = ("observations",)


@pytest.fixture
def registered():
    LEARNERS[Frozen.name] = Frozen
    STRATEGIES[FrozenStrategy.name] = FrozenStrategy()
    yield
    del LEARNERS[Frozen.name], STRATEGIES[FrozenStrategy.name]


def test_a_plugin_learner_is_built_and_measured_like_a_built_in_one(
    registered, tmp_path: Path
) -> None:
    spec = {**TINY, "seed": 5, "train": {**TINY["train"], "total_steps": 8192}}
    train(spec_from_dict(spec), tmp_path / "ppo")
    out = tmp_path / "report"
    args = ["evaluate", str(tmp_path), "--strategy", "zeroshot", "--strategy", "frozen"]
    assert main([*args, "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["data"]["frozen"] == ["observations"]
    for m in report["modalities"].values():
        frozen, zeroshot = (
            m["strategies"]["frozen"]["curves"],
            m["strategies"]["zeroshot"]["curves"],
        )
        # the same agent measured on the same seeds at every k: zeroshot's curve; its k
        # episodes played and counted
        for metric in ("return", "success", "steps"):
            assert frozen[metric] == zeroshot[metric]
        assert all(seed == [0.0, 1.0] for seed in frozen["episodes"])
        assert len({r for seed in frozen["return"] for r in seed}) > 1  # not one flat number
    # the policy the curve measured, as a user gets it (and as it prints)
    agents = load_agents(tmp_path)
    mid = next(iter(report["modalities"]))
    family, variant = mid.split(":")
    policy = STRATEGIES["frozen"].policy(agents, family, int(variant), 1, 0)
    assert repr(policy) == (
        f"AdaptedPolicy(learner='frozen', family='{family}', variant={variant}, episodes=1)"
    )
