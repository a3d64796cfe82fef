"""What ``evaluate`` and ``adapt`` say about inputs they cannot use, the report's wording of an
unmeasurable threshold, and the headline target as a setting."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
import yaml

from metaxm.cli import main
from metaxm.evaluate.report import headline
from metaxm.evaluate.runner import unmeasurable_reason
from metaxm.evaluate.strategies import STRATEGIES

VECTOR_ONLY = {
    "world": {"name": "gridnav", "size": 4, "horizon": 12},
    "modalities": {"train": {"vector": 1}},
    "agent": {"latent_dim": 8, "encoder_width": 16, "hidden": 16},
    "ppo": {"num_steps": 16, "update_epochs": 1, "num_minibatches": 1},
    "train": {"total_steps": 128, "num_envs": 4, "eval_episodes": 2},
    "evaluate": {"seeds": 1, "budgets": [0, 1], "eval_episodes": 2, "scratch_cap": 2},
    "log": {"mode": "disabled", "progress": False},
}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("vector-only")
    spec = root / "spec.yaml"
    spec.write_text(yaml.safe_dump(VECTOR_ONLY))
    assert main(["train", str(spec), "--out", str(root / "run")]) == 0
    return root / "run"


def test_evaluate_refuses_a_spec_without_held_out_modalities_or_with_unread_families(
    run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["evaluate", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds no held-out modality" in err
    assert "error: evaluate:" not in err  # the command's prefix, once
    assert not (run / "report").exists()  # nothing left behind
    assert main(["evaluate", str(run), "--spec", "tasks/gridnav.yaml"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "the agents have no encoder for 'projected', 'pixels', 'text', 'audio'" in err


def test_evaluate_refuses_settings_the_trained_agents_fix(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = ["--out", str(tmp_path / "report")]
    assert main(["evaluate", str(run), "--set", "agent.hidden=32", *out]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--set agent.hidden=32" in err
    # walls add features: the vector agent would read observations of another shape
    assert main(["evaluate", str(run), "--set", "world.walls=true", *out]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "reads vector observations of shape (8,)" in err
    assert "(12,)" in err and not (tmp_path / "report").exists()
    spec = tmp_path / "walls.yaml"
    spec.write_text(yaml.safe_dump({**VECTOR_ONLY, "world": {**VECTOR_ONLY["world"],
                                                             "walls": True}}))  # fmt: skip
    assert main(["evaluate", str(run), "--spec", str(spec), *out]) == 2
    assert f"--spec {spec}: the ppo agent reads vector" in capsys.readouterr().err


def test_evaluate_honours_log_progress(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["evaluate", str(run), "--strategy", "zeroshot", "--set"]
    assert main([*args, "modalities.heldout_variants={vector: 1}"]) == 0
    assert "evaluate:" not in capsys.readouterr().err  # log.progress: false: no bar


def test_adapt_adds_a_family_the_agent_was_not_trained_with_where_the_strategy_allows(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["adapt", str(run), "--modality", "projected:3", "--episodes", "1"]
    assert main([*base, "--strategy", "finetune"]) == 2
    assert "pass --add-family to give it a fresh one" in capsys.readouterr().err
    assert main([*base, "--strategy", "zeroshot", "--add-family"]) == 2
    assert "zeroshot does not train an encoder" in capsys.readouterr().err
    out = tmp_path / "a.json"
    assert main([*base, "--strategy", "finetune", "--add-family", "--out", str(out)]) == 0
    assert out.is_file() and '"modality": "projected:3"' in out.read_text()


def test_unmeasurable_names_its_real_cause() -> None:
    weak = unmeasurable_reason(0.1, 0.8, 0.2, "success")
    assert weak.startswith("the source agent is no better than a fresh one here")
    near = unmeasurable_reason(0.875, 0.8, 0.75, "success")
    assert near.startswith("a fresh agent already reaches the threshold (0.750 >= 80% of source")
    assert "though the source agent is better" in near


def _report(best: list[float], scratch: list[float], **settings: float) -> dict:
    def summary(points: list[float], budgets: list[int]) -> dict:
        return {"budgets": budgets, "by_budget": [{"point": p, "high": p} for p in points]}

    return {
        "metric": "success", "threshold": 0.8, "budgets": [0, 4, 16],
        "scratch_budgets": [0, 4, 16, 64], "source": {"success": 1.0},
        "summary": {"align": summary(best, [0, 4, 16]),
                    "scratch": summary(scratch, [0, 4, 16, 64])},
        **settings,
    }  # fmt: skip


def test_the_headline_target_is_a_setting() -> None:
    report = _report([0.1, 0.5, 0.9], [0.1, 0.2, 0.3, 0.9])  # align at 16, scratch at 64
    assert not headline(report)["target_met"]  # default: <= 8 episodes, 10x
    loose = headline({**report, "target_episodes": 16, "target_speedup": 4.0})
    assert loose["target_met"] and "Target (<= 16 episodes, scratch >= 4x): met" in loose["text"]


def test_a_control_is_never_the_best_strategy() -> None:
    report = _report([0.1, 0.5, 0.9], [0.1, 0.2, 0.3, 0.9])  # align at 16
    summary = {"budgets": [0, 4, 16], "by_budget": [{"point": 0.9, "high": 0.9}] * 3}
    report["summary"]["rl2-blind"] = summary  # at the threshold from k = 0
    assert headline(report)["best"] == "rl2-blind"  # were it a strategy
    report["controls"] = {"rl2-blind": "rl2 with every observation zeroed"}
    assert headline(report)["best"] == "align"


def test_a_tie_for_best_is_named_and_a_censored_iqm_is_a_bound() -> None:
    """Two strategies at the level after as few episodes: both named (the first in the
    report's order was the best alone). An IQM of episodes that keeps a censored seed is
    printed as a lower bound, and a speed-up bounded both ways is not printed as a number."""
    from metaxm.evaluate.report import _episodes, _speed

    report = _report([0.1, 0.5, 0.9], [0.1, 0.2, 0.3, 0.9])  # align reaches it at 16
    report["summary"]["translate"] = report["summary"]["align"]
    said = headline(report)
    assert said["best"] == "align" and said["tied"] == ["translate"]
    assert "Best strategy: align (tied with translate), reaching" in said["text"]
    five = {"seeds": 5, "episodes_to_threshold": {"point": 27.0, "low": 11.0, "high": 32.0}}
    assert _episodes({**five, "censored": 1}, [0, 32]) == "27 [11, 32] (1/5 censored)"  # trimmed
    assert _episodes({**five, "censored": 2}, [0, 32]) == ">= 27 [11, 32] (2/5 censored)"
    assert _episodes({**five, "censored": 3}, [0, 32]) == "> 32 (3/5 censored)"
    m = {**five, "censored": 2, "speedup": 9.6}
    assert _speed({**m, "speedup_is_lower_bound": True}) == "n/a (both censored)"
    assert _speed({**m, "speedup_is_lower_bound": False}) == "<= 9.6"
    assert _speed({**m, "censored": 0, "speedup_is_lower_bound": True}) == ">= 9.6"


def test_the_headline_says_on_how_many_modalities_the_best_reaches_its_own_threshold() -> None:
    """The aggregate pools every modality's seeds: it can pass the level while one modality
    fails outright, so the headline counts the modalities that reach their own threshold."""
    report = _report([0.1, 0.5, 0.9], [0.1, 0.2, 0.3, 0.9])  # align at 16 in aggregate

    def entry(points: list[float]) -> dict:
        rec = {"budgets": [0, 4, 16], "iqm": {"success": {"point": points}}}
        return {"source": 1.0, "strategies": {"align": rec}}

    report["modalities"] = {"a:1": entry([0.1, 0.9, 1.0]), "b:1": entry([0.0, 0.0, 0.1])}
    assert (
        "(its own threshold reached on 1 of 2 held-out modalities at k = 16)"
        in (headline(report)["text"])
    )


def test_the_rl2_controls_say_what_their_measured_episode_keeps() -> None:
    # rl2-blind's trials keep their task, as rl2's do (its goal memory counts, so it is said);
    # rl2-newtask measures on a new task, so nothing of the trial's task is learned there
    assert STRATEGIES["rl2-blind"].in_episode == STRATEGIES["rl2"].in_episode != ""
    assert STRATEGIES["rl2-newtask"].in_episode == ""


def test_adapt_help_names_every_strategy() -> None:
    """``metaxm adapt --strategy``'s help (written out, so that ``--help`` loads no torch) names
    every strategy the evaluator has, and ``--save-policy``'s every one with a learner."""
    import argparse

    from metaxm.commands import adapt
    from metaxm.evaluate.strategies import STRATEGIES

    parser = argparse.ArgumentParser()
    adapt.add_arguments(parser)
    helps = {a.dest: a.help for a in parser._actions}
    *builtin, plugins = helps["strategy"].split(",")
    named = {s.strip().split(" (")[0] for s in builtin}
    assert named == set(STRATEGIES)
    assert plugins.strip().startswith("or one a plugin registers")
    learners = {n for n, s in STRATEGIES.items() if getattr(s, "learner", None)}
    assert all(n in helps["save_policy"] for n in learners)


def test_a_strategy_whose_agent_lacks_the_family_says_so_instead_of_reading_it() -> None:
    """A main-job stage may train on fewer families than the spec evaluates (its agent has no
    encoder for the others): its strategy is not measured there, and the report says why."""
    from metaxm.evaluate.strategies import STRATEGIES, Agents
    from metaxm.meta.rl2 import build_rl2_agent
    from metaxm.nn.agent import build_agent
    from metaxm.spec import spec_from_dict

    both = spec_from_dict({**VECTOR_ONLY, "modalities": {"train": {"vector": 1, "projected": 1}}})
    one = spec_from_dict({**VECTOR_ONLY, "algo": "rl2"})
    agents = Agents(both, {"ppo": build_agent(both), "rl2": build_rl2_agent(one)})
    why = STRATEGIES["rl2"].cannot_read(agents, "projected")
    assert why == "the rl2 agent was trained without the projected family (it reads vector)"
    assert STRATEGIES["rl2"].cannot_read(agents, "vector") is None
    assert STRATEGIES["zeroshot"].cannot_read(agents, "projected") is None
    assert STRATEGIES["scratch"].cannot_read(agents, "projected") is None  # needs no agent


def test_an_rl2_agent_that_reads_no_reward_consumes_no_reward() -> None:
    """The data column follows the agent: agent.reward_input: false leaves observations and
    where episodes ended (in GridNav the success bit, so it is named)."""
    from metaxm.evaluate.strategies import STRATEGIES, Agents
    from metaxm.meta.rl2 import build_rl2_agent
    from metaxm.spec import spec_from_dict

    seeing = spec_from_dict({**VECTOR_ONLY, "algo": "rl2"})
    blind = spec_from_dict({**VECTOR_ONLY, "algo": "rl2", "agent": {"reward_input": False}})
    rl2 = STRATEGIES["rl2"]
    assert rl2.data_of(Agents(seeing, {"rl2": build_rl2_agent(seeing)})) == rl2.data
    assert rl2.data == ("observations", "rewards")
    assert rl2.data_of(Agents(blind, {"rl2": build_rl2_agent(blind)})) == ("observations", "ends")
    assert STRATEGIES["selfread"].data == ("observations", "ends")
    assert STRATEGIES["rl2"].same_task and not STRATEGIES["rl2-newtask"].same_task


def test_the_curves_plot_keeps_a_strategys_colour_where_another_is_not_measured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from matplotlib.axes import Axes

    from metaxm.evaluate.report import plot_curves

    def rec(points: list[float]) -> dict:
        band = {"point": points, "low": points, "high": points}
        return {"budgets": [0, 1], "iqm": {"success": band}}

    strategies = {"zeroshot": rec([0.1, 0.1]), "rl2": rec([0.4, 0.6]), "align": rec([0.1, 0.5])}
    without_rl2 = {k: v for k, v in strategies.items() if k != "rl2"}
    report = {
        "metric": "success", "threshold": 0.8, "scratch_budgets": [0, 1],
        "modalities": {
            "vector:1": {"split": "heldout_variants", "source": 1.0, "strategies": strategies},
            "pixels:2": {"split": "heldout_variants", "source": 1.0, "strategies": without_rl2},
        },
    }  # fmt: skip
    drawn: list[tuple[str, str]] = []
    plot = Axes.plot

    def spy(self: Axes, *args: object, **kw: object) -> object:
        drawn.append((str(kw["label"]), str(kw["color"])))
        return plot(self, *args, **kw)

    monkeypatch.setattr(Axes, "plot", spy)
    plot_curves(report, tmp_path / "curves.png")
    colours: dict[str, set[str]] = {}
    for label, colour in drawn:
        colours.setdefault(label, set()).add(colour)
    assert all(len(c) == 1 for c in colours.values()), colours  # one colour per strategy
    assert len({next(iter(c)) for c in colours.values()}) == 3  # and a different one each
    assert (tmp_path / "curves.png").stat().st_size > 0


def test_the_blind_control_plays_rl2s_trials_with_every_observation_zeroed() -> None:
    from metaxm.evaluate.loading import learners
    from metaxm.evaluate.strategies import STRATEGIES, Agents
    from metaxm.meta.rl2 import build_rl2_agent
    from metaxm.spec import spec_from_dict

    spec = spec_from_dict({**VECTOR_ONLY, "algo": "rl2"})
    agent = build_rl2_agent(spec)
    with torch.no_grad():  # an untrained agent's actions barely depend on what it sees
        for p in agent.parameters():
            p.mul_(10.0)
    agents = Agents(spec, {"rl2": agent})
    agents.configs = {"rl2": spec}
    agents.learners = learners(agents, {"rl2": {}})
    blind, seeing = STRATEGIES["rl2-blind"], STRATEGIES["rl2"]
    assert blind.control and not seeing.control and blind.data_of(agents) == ("rewards",)

    def curve(strategy: object, variant: int) -> dict:
        return strategy.curve(agents, "vector", variant, [0, 1, 2], 0)  # type: ignore[attr-defined]

    assert curve(blind, 5) == curve(blind, 6)  # whatever the variant shows, it sees zeros
    assert curve(seeing, 5) != curve(seeing, 6)
    with pytest.raises(ValueError, match="no learner"):
        blind.policy(agents, "vector", 5, 1, 0)


def test_a_strategy_asked_for_by_name_that_cannot_run_is_said_to_be_skipped(
    run: Path, caplog: pytest.LogCaptureFixture, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Beside one that can run, it is skipped with a warning; alone, the evaluation is refused
    (it wrote a report of scratch alone, exit 0)."""
    args = ["evaluate", str(run), "--out", str(tmp_path / "r"), "--strategy", "maml", "--set"]
    args += ["modalities.heldout_variants={vector: 1}", "--strategy"]
    with caplog.at_level("WARNING"):
        assert main([*args, "zeroshot"]) == 0
    assert "evaluate: maml is skipped: no trained maml agent" in caplog.text
    assert main([*args, "scratch", "--out", str(tmp_path / "alone")]) == 2
    err = capsys.readouterr().err
    assert "no strategy asked for can run on these agents (maml: no trained maml agent)" in err
    assert err.count("\n") == 1 and not (tmp_path / "alone").exists()


def test_an_unfinished_run_is_loaded_with_a_warning(
    run: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A run killed mid-training has no summary.json: its newest checkpoint is evaluated, and
    now the user is told so (evaluate and adapt used it without a word)."""
    import shutil

    from metaxm.evaluate.loading import load_agent

    killed = tmp_path / "killed"
    shutil.copytree(run, killed)
    (killed / "summary.json").unlink()
    with caplog.at_level("WARNING", logger="metaxm.evaluate.loading"):
        load_agent(run)
        assert caplog.records == []  # a finished run: nothing to say
        load_agent(killed)
    [record] = caplog.records
    assert record.getMessage().startswith(f"{killed} did not finish (no summary.json): its agent")
    assert "ckpt-00000002.pt, at 128 of 128 env steps" in record.getMessage()


def test_evaluate_adds_a_family_the_agents_were_trained_without(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A never-seen family no longer has to be declared before training: ``--add-family``
    gives every agent a fresh encoder for it and measures it as a held-out family."""
    out = tmp_path / "report"
    argv = ["evaluate", str(run), "--out", str(out), "--strategy", "zeroshot"]
    assert main([*argv, "--add-family", "projected"]) == 0
    data = json.loads((out / "report.json").read_text())
    assert [(m.split(":")[0], e["split"]) for m, e in data["modalities"].items()] == [
        ("projected", "heldout_families")
    ]
    assert main([*argv, "--add-family", "vector"]) == 2
    assert "--add-family vector: the agents already read it" in capsys.readouterr().err
    assert main([*argv, "--add-family", "smell"]) == 2
    assert "unknown modality family 'smell'" in capsys.readouterr().err
    assert main(["evaluate", str(run), "--spec", "tasks/gridnav.yaml"]) == 2
    assert "or give them one with --add-family FAMILY" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"strategies": "align"}, "strategies: a list of names, not the string 'align'"),
        ({"seeds": 0}, "seeds: a whole number >= 1, not 0"),
        ({"seeds": 2.5}, "seeds: a whole number >= 1, not 2.5"),
        ({"modalities": "vector:100"}, "modalities: a list of (split, family, variant)"),
        ({"modalities": ["vector:100"]}, "each one a (split, family, variant) such as"),
        ({"modalities": [("validation", "vector", "100")]}, "not ('validation', 'vector', '100')"),
    ],
)
def test_the_library_evaluation_names_an_argument_of_the_wrong_kind(kwargs, message) -> None:
    """``run_evaluation`` from Python: a string of strategies was read as its letters ("unknown
    strategy 'a'"), a modality id as a tuple to unpack."""
    from types import SimpleNamespace

    from metaxm.errors import ConfigError
    from metaxm.evaluate.runner import plan_evaluation
    from metaxm.spec import Spec

    with pytest.raises(ConfigError, match=re.escape(message)):
        plan_evaluation(SimpleNamespace(spec=Spec()), **kwargs)


def test_evaluate_refuses_splits_that_are_not_the_runs(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Another seed, or fewer training variants, redraw the splits: the source level was
    measured on variants no agent trained on, and a trained variant was scored as held out,
    both with exit 0 (found by a reproducibility walkthrough)."""
    from types import SimpleNamespace

    from metaxm.errors import ConfigError
    from metaxm.evaluate.loading import check_splits
    from metaxm.sampler import TaskSampler
    from metaxm.spec import spec_from_dict

    out = ["--out", str(tmp_path / "report")]
    assert main(["evaluate", str(run), "--set", "seed=7", *out]) == 2
    err = capsys.readouterr().err
    assert (
        err.count("\n") == 1
        and "--set seed=7: the source level would be measured on vector:" in err
    )
    assert "which no loaded agent trained on" in err and not (tmp_path / "report").exists()
    two = spec_from_dict({"modalities": {"train": {"vector": 2}}})
    one = spec_from_dict(
        {"modalities": {"train": {"vector": 1}, "heldout_variants": {"vector": 1}}}
    )
    agents = SimpleNamespace(configs={"ppo": two})
    second = TaskSampler(two).splits["train"]["vector"][1]
    with pytest.raises(ConfigError, match=f"held-out vector:{second} is a variant the ppo agent"):
        check_splits(agents, one, "--set modalities.train={vector: 1}")
    check_splits(SimpleNamespace(configs={"ppo": one}), one, "--spec same")  # the run's: fine
    # a trained family moved to heldout_families draws its variants in the same order
    both = spec_from_dict({"modalities": {"train": {"vector": 2, "projected": 2}}})
    moved = spec_from_dict(
        {"modalities": {"train": {"vector": 2}, "heldout_families": {"projected": 1}}}
    )
    first = TaskSampler(both).splits["train"]["projected"][0]
    with pytest.raises(ConfigError, match=f"held-out projected:{first} is a variant the ppo"):
        check_splits(SimpleNamespace(configs={"ppo": both}), moved, "--set")


def test_adapt_makes_the_folder_of_its_out(run: Path, tmp_path: Path) -> None:
    """``--out`` in a folder that does not exist yet: made, as --save-policy's, render's and
    evaluate's are (it failed after the adaptation, naming no flag)."""
    out = tmp_path / "new" / "deeper" / "a.json"
    args = ["adapt", str(run), "--modality", "vector:5", "--strategy", "zeroshot"]
    assert main([*args, "--episodes", "0", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["strategy"] == "zeroshot"
