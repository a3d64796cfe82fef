"""A tiny end-to-end evaluation: train a PPO agent briefly, evaluate it, check the report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from metaxm.cli import main
from metaxm.errors import ConfigError
from metaxm.evaluate.metrics import episodes_to_threshold
from metaxm.evaluate.runner import source_level
from metaxm.run.loop import train
from metaxm.spec import spec_from_dict

SPEC = {
    "seed": 1,
    "world": {"name": "gridnav", "size": 4, "horizon": 8},
    "modalities": {
        "train": {"vector": 2},
        "heldout_variants": {"vector": 1},
        "heldout_families": {"projected": 1},
    },
    "ppo": {"num_steps": 8, "update_epochs": 1, "num_minibatches": 1},
    "train": {"total_steps": 256, "num_envs": 8, "checkpoint_interval": 0, "eval_episodes": 0},
    "log": {"mode": "disabled", "progress": False},
    "evaluate": {
        "seeds": 2,
        "budgets": [0, 1, 2],
        "scratch_cap": 4,
        "eval_episodes": 8,
        "strategies": ["zeroshot", "align", "translate", "finetune", "scratch"],
    },
    "align": {"fit_iters": 5, "translate_iters": 5},
}


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("evaluate")
    train(spec_from_dict(SPEC), root / "ppo")
    assert main(["evaluate", str(root), "--out", str(root / "report")]) == 0
    return root, json.loads((root / "report" / "report.json").read_text())


def test_report_covers_every_heldout_modality_strategy_and_seed(report) -> None:
    root, data = report
    assert len(data["modalities"]) == 2
    splits = sorted(e["split"] for e in data["modalities"].values())
    assert splits == ["heldout_families", "heldout_variants"]
    assert data["skipped_strategies"] == []
    for entry in data["modalities"].values():
        assert set(entry["strategies"]) == {"zeroshot", "align", "translate", "finetune", "scratch"}
        for name, rec in entry["strategies"].items():
            budgets = [0, 1, 2, 4] if name == "scratch" else [0, 1, 2]
            assert rec["budgets"] == budgets
            assert len(rec["curves"]["success"]) == 2  # seeds
            assert all(len(c) == len(budgets) for c in rec["curves"]["success"])
            assert all(0.0 <= v <= 1.0 for c in rec["curves"]["success"] for v in c)
            assert set(rec["metrics"]) >= {"jumpstart", "auc", "transfer_ratio", "speedup"}
        zs = entry["strategies"]["zeroshot"]["curves"]["return"]
        assert all(len(set(c)) == 1 for c in zs)  # zero-shot does not adapt
        ft = entry["strategies"]["finetune"]["curves"]["episodes"]
        assert ft == [[0.0, 1.0, 2.0]] * 2  # experience is counted in whole episodes
        al = entry["strategies"]["align"]["curves"]
        assert all(c[0] == 0 and c[1] >= 1 for c in al["paired_steps"])
    assert data["headline"]["text"]
    # thresholds: a held-out variant against its family's training variants, a held-out
    # family against every training modality
    src = data["source"]
    per = src["per_modality"]
    assert set(src["per_family"]) == {"vector"}
    vec = sum(r["success"] for r in per.values()) / len(per)  # both training modalities: vector
    assert src["per_family"]["vector"]["success"] == pytest.approx(vec)
    by_split = {e["split"]: e["source"] for e in data["modalities"].values()}
    assert by_split["heldout_variants"] == pytest.approx(vec)
    assert by_split["heldout_families"] == pytest.approx(src["success"])
    for entry in data["modalities"].values():  # a threshold a fresh agent reaches is flagged
        fresh = entry["strategies"]["scratch"]["iqm"]["success"]["high"][0]
        assert entry["measurable"] == (0.8 * entry["source"] > fresh)
    md = (root / "report" / "report.md").read_text()
    flagged = [e for e in data["modalities"].values() if not e["measurable"]]
    assert md.count("**Not measurable**: ") == len(flagged)
    for e in flagged:  # the reason named is the real one
        weak = e["source"] <= e["fresh"]
        assert e["unmeasurable"].startswith(
            "the source agent is no better" if weak else "a fresh agent already reaches"
        )
        assert e["unmeasurable"] in md

    lines = (root / "report" / "curves.jsonl").read_text().splitlines()
    head = json.loads(lines[0])  # which evaluation wrote the log, and what it hashed
    assert set(head) == {"fingerprint", "parts"}
    assert set(head["parts"]) == {"spec", "jobs", "checkpoints", "source", "plugins"}
    assert len(lines) == 1 + 2 * 5 * 2  # modalities x strategies x seeds, saved as they finish


def test_report_states_data_needs_and_an_oracle_relative_threshold(report) -> None:
    from metaxm.evaluate.metrics import transfer_metrics

    root, data = report
    assert data["data"] == {
        "zeroshot": [],
        "align": ["observations", "paired"],
        "translate": ["observations", "paired"],
        "finetune": ["observations", "rewards"],
        "scratch": ["observations", "rewards"],
    }
    md = (root / "report" / "report.md").read_text()
    assert "| align | obs + pairs |" in md and "| zeroshot | none |" in md
    assert "| translate | obs + pairs |" in md
    assert "finetune: target observations, target rewards" in md
    assert list(data["in_episode"]) == ["translate"]  # the reading search's memory, said
    assert "Learned within a measured episode besides that: translate: where one" in md
    # what each strategy meta-learned for adapting: none of these did
    assert data["meta_learned"] == {n: "" for n in data["data"]}
    assert (
        "Meta-learned for adapting, over training tasks, before the target: nothing. Hand-set "
        "steps, closed forms or searches only: zeroshot, align, translate, finetune, scratch."
    ) in md
    # translate fits align's episodes and pairs: paired with align seed by seed, per modality
    for entry in data["modalities"].values():
        recs = entry["strategies"]
        assert [n for n, r in recs.items() if "vs_align" in r] == ["translate"]
        level = 0.8 * entry["source"]
        hits = {
            n: [max(recs[n]["budgets"]) if h is None else h for h in episodes_to_threshold(
                recs[n]["budgets"], np.array(recs[n]["curves"]["success"]), level)]
            for n in ("translate", "align")
        }  # fmt: skip
        pair = recs["translate"]["vs_align"]
        diff = np.subtract(hits["translate"], hits["align"])
        assert pair["difference"]["point"] == pytest.approx(diff.mean())
        assert (pair["fewer"], pair["more"]) == ((diff < 0).sum(), (diff > 0).sum())
        assert f"translate {pair['difference']['point']:+.1f} [" in md
    assert md.count("Episodes to threshold against align's on the same seeds") == len(
        data["modalities"]
    )
    oracle = data["source"]["oracle"]["success"]
    assert 0.9 <= oracle <= 1.0  # GridNav 4x4 in 8 steps: the oracle's shortest paths
    for entry in data["modalities"].values():
        scratch = [c for c in entry["strategies"]["scratch"]["curves"]["success"]]
        for rec in entry["strategies"].values():
            # the oracle column is the same metric against threshold x the oracle's level
            expected = transfer_metrics(
                rec["budgets"], rec["curves"]["success"], data["scratch_budgets"], scratch,
                oracle, 0.8, seed=entry["variant"],
            ).to_dict()  # fmt: skip
            got = rec["oracle_metrics"]
            assert got["censored"] == expected["censored"]
            assert got["episodes_to_threshold"] == expected["episodes_to_threshold"]


def test_source_level_is_the_family_for_a_variant_and_the_mean_for_a_new_family() -> None:
    source = {
        "success": 0.5,
        "per_family": {"vector": {"success": 0.9}, "pixels": {"success": 0.1}},
    }
    assert source_level(source, "vector", "success") == 0.9
    assert source_level(source, "pixels", "success") == 0.1
    assert source_level(source, "audio", "success") == 0.5
    assert source_level({"agent": None}, "audio", "success") is None


def test_report_files(report) -> None:
    root, data = report
    md = (root / "report" / "report.md").read_text()
    for mid in data["modalities"]:
        assert f"## {mid}" in md
    assert "| zeroshot |" in md and "| scratch |" in md
    for png in ("curves.png", "speedup.png"):
        assert (root / "report" / png).read_bytes()[:4] == b"\x89PNG"


def test_same_seed_same_report(report, tmp_path: Path) -> None:
    root, data = report
    out = tmp_path / "again"
    assert main(["evaluate", str(root), "--out", str(out), "--strategy", "zeroshot"]) == 0
    again = json.loads((out / "report.json").read_text())
    for mid, entry in again["modalities"].items():
        first = data["modalities"][mid]["strategies"]
        for name in ("zeroshot", "scratch"):
            assert entry["strategies"][name]["curves"] == first[name]["curves"]


def test_adapt_command_and_its_errors(report, tmp_path: Path, capsys) -> None:
    root, data = report
    mid = next(iter(data["modalities"]))
    out = tmp_path / "adapt.json"
    code = main(["adapt", str(root), "--modality", mid, "--strategy", "finetune",
                 "--episodes", "2", "--out", str(out)])  # fmt: skip
    assert code == 0
    result = json.loads(out.read_text())
    assert result["budgets"] == [0, 2] and result["episodes"] == [0.0, 2.0]
    assert main(["adapt", str(root), "--modality", "smell:1", "--strategy", "finetune"]) == 2
    assert main(["adapt", str(root), "--modality", mid, "--strategy", "rl2"]) == 2
    assert main(["adapt", str(tmp_path / "none"), "--modality", mid, "--strategy", "finetune"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-3].startswith("metaxm adapt: error: --modality: unknown modality family 'smell'")
    assert "--strategy rl2: cannot run here: no trained rl2 agent" in err[-2]
    assert "no such checkpoint" in err[-1]
    # an earlier result is replaced; any other file (the run's own eval.json) is not
    again = ["adapt", str(root), "--modality", mid, "--strategy", "zeroshot", "--episodes", "1"]
    assert main([*again, "--out", str(out)]) == 0
    assert json.loads(out.read_text())["strategy"] == "zeroshot"
    evaluation = root / "ppo" / "summary.json"
    before = evaluation.read_bytes()
    assert main([*again, "--out", str(evaluation)]) == 2
    assert "holds no metaxm adapt result" in capsys.readouterr().err
    assert evaluation.read_bytes() == before


def test_worker_processes_give_the_same_curves(report) -> None:
    from metaxm.evaluate.loading import load_agents
    from metaxm.evaluate.runner import run_evaluation

    root, data = report
    agents = load_agents(root)
    got = run_evaluation(agents, ["zeroshot", "finetune"], progress=False, workers=2)
    assert got["workers"] == 2
    for mid, entry in got["modalities"].items():
        for name in ("zeroshot", "finetune", "scratch"):
            assert (
                entry["strategies"][name]["curves"]
                == (data["modalities"][mid]["strategies"][name]["curves"])
            )


def test_finetune_lr_sets_the_rate_of_the_ppo_updates() -> None:
    from metaxm.evaluate.episodes import ppo_on_budget
    from metaxm.nn.agent import build_agent

    spec = spec_from_dict(SPEC)
    agent = build_agent(spec)
    curves = {
        lr: ppo_on_budget(agent, spec, "vector", 5, [0, 2, 4], seed=3, eval_episodes=8, lr=lr)
        for lr in (1e-12, 1e-2)
    }
    frozen, moved = curves[1e-12]["return"], curves[1e-2]["return"]
    assert frozen[0] == moved[0]  # the same start, measured on the same episodes
    assert frozen == [frozen[0]] * 3  # a vanishing rate leaves the policy as it was
    assert moved != frozen
    bad = {**SPEC, "evaluate": {**SPEC["evaluate"], "finetune_lr": 0}}
    with pytest.raises(ConfigError, match="evaluate.finetune_lr: 0 is out of range"):
        spec_from_dict(bad)


def saved_policy(root: Path, mid: str, strategy: str, tmp_path: Path) -> tuple[list[str], Any]:
    """``metaxm adapt ... --episodes 2 --save-policy``: its arguments and the policy it saved."""
    from metaxm.learners import AdaptedPolicy

    saved = tmp_path / "policy.pt"
    args = ["adapt", str(root), "--modality", mid, "--strategy", strategy, "--episodes", "2",
            "--out", str(tmp_path / f"{strategy}.json"), "--save-policy", str(saved)]  # fmt: skip
    assert main(args) == 0
    return args, AdaptedPolicy.load(saved)


def test_adapt_saves_the_policy_it_measured(report, tmp_path: Path, capsys) -> None:
    import torch

    from metaxm.evaluate.loading import load_agents
    from metaxm.evaluate.strategies import STRATEGIES

    root, data = report
    mid = next(m for m, e in data["modalities"].items() if e["split"] == "heldout_variants")
    family, variant = mid.split(":")
    args, policy = saved_policy(root, mid, "align", tmp_path)
    assert (policy.learner, policy.family, policy.episodes) == ("align", family, 2)
    # it is the policy the curve measured: the same parameters as the strategy's own at k = 2
    agents = load_agents(root)
    again = STRATEGIES["align"].policy(agents, family, int(variant), 2, 0)
    assert again.params.keys() == policy.params.keys()
    for name, value in again.params.items():
        torch.testing.assert_close(policy.params[name], value)
    # a strategy with no learner has no policy to save: refused before anything runs
    args[5] = "finetune"
    assert main(args) == 2
    assert "--save-policy: finetune has no learner" in capsys.readouterr().err


def test_adapt_saves_a_translate_policy_that_acts_as_the_one_measured(report, tmp_path) -> None:
    import torch

    from metaxm.evaluate.episodes import target_env
    from metaxm.evaluate.loading import load_agents
    from metaxm.evaluate.strategies import STRATEGIES

    root, data = report
    mid = next(m for m, e in data["modalities"].items() if e["split"] == "heldout_families")
    family, variant = mid.split(":")
    _, policy = saved_policy(root, mid, "translate", tmp_path)
    assert (policy.learner, policy.family, policy.reads) == ("translate", family, "vector")
    assert policy.translator is not None and not policy.translator.training
    agents = load_agents(root)
    again = STRATEGIES["translate"].policy(agents, family, int(variant), 2, 0)
    obs = target_env(agents.spec, family, int(variant), 8, 3).reset()
    assert torch.equal(policy.act(obs), again.act(obs))
    torch.testing.assert_close(policy.distribution(obs), again.distribution(obs))


def test_translate_is_skipped_with_its_reason_where_the_source_is_no_vector(tmp_path) -> None:
    """A spec whose first training family is pixels has no vector to translate into: the
    default evaluation skips translate and says why; adapt refuses it in one line."""
    data = {
        **SPEC,
        "world": {"name": "gridnav", "size": 4, "horizon": 8},
        "modalities": {
            "train": {"pixels": 1, "vector": 1},
            "heldout_variants": {"vector": 1},
            "heldout_families": {},
        },
        "evaluate": {**SPEC["evaluate"], "seeds": 1, "strategies": ["zeroshot", "translate"]},
    }
    train(spec_from_dict(data), tmp_path / "ppo")
    assert main(["evaluate", str(tmp_path), "--out", str(tmp_path / "report")]) == 0
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["skipped_strategies"] == ["translate"]
    why = "the source modality, pixels, is not a vector"
    assert report["skipped_because"] == {"translate": why}
    md = (tmp_path / "report" / "report.md").read_text()
    assert "Skipped: translate (the source modality, pixels, is not a vector)." in md
    args = ["adapt", str(tmp_path), "--modality", next(iter(report["modalities"])),
            "--strategy", "translate", "--episodes", "2"]  # fmt: skip
    assert main(args) == 2


def test_a_sensory_rl2_run_is_evaluated_with_a_feed_forward_scratch_baseline(tmp_path) -> None:
    """RL^2 on the sensory encoder reads the held-out family with the trained neurons; the
    scratch baseline (PPO, which cannot carry the sensory memory) reads with MLP encoders."""
    data = {
        **SPEC,
        "algo": "rl2",
        "agent": {"encoder": "sensory", "latent_dim": 8, "hidden": 8, "token_dim": 8},
        "main": {"runs": {"rl2": {}}},
        "evaluate": {**SPEC["evaluate"], "seeds": 1, "strategies": ["rl2", "scratch"]},
    }
    train(spec_from_dict(data), tmp_path / "rl2")
    assert main(["evaluate", str(tmp_path), "--out", str(tmp_path / "report")]) == 0
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    for entry in report["modalities"].values():
        assert set(entry["strategies"]) == {"rl2", "scratch"}
        assert all(len(c) == 3 for c in entry["strategies"]["rl2"]["curves"]["success"])


def test_set_reaches_the_learners_fits(report, tmp_path: Path) -> None:
    """``--set align.*`` changes how the align learner adapts, not only the report's spec."""
    root, data = report
    out = tmp_path / "explored"
    args = ["evaluate", str(root), "--out", str(out), "--strategy", "align"]
    assert main([*args, "--set", "align.explore=1.0"]) == 0
    again = json.loads((out / "report.json").read_text())
    # a random walk plays other episodes: other paired steps, before any fit is compared
    steps = {
        mid: (e["strategies"]["align"]["curves"]["paired_steps"],
              data["modalities"][mid]["strategies"]["align"]["curves"]["paired_steps"])
        for mid, e in again["modalities"].items()
    }  # fmt: skip
    assert any(new != old for new, old in steps.values()), steps


def test_validation_variants_are_measured_instead_of_the_held_out_ones(report, capsys) -> None:
    """--modality FAMILY:VARIANT: tuning goes on variants outside every split; a variant a
    split holds is refused in one line, before anything is measured."""
    from metaxm.sampler import TaskSampler

    root, held = report
    out = root / "validation"  # the default with --modality: the held-out report is kept
    before = (root / "report" / "report.json").read_bytes()
    argv = ["evaluate", str(root), "--strategy", "zeroshot"]
    assert main([*argv, "--modality", "vector:100", "--modality", "projected:101"]) == 0
    assert (root / "report" / "report.json").read_bytes() == before
    data = json.loads((out / "report.json").read_text())
    assert {m: e["split"] for m, e in data["modalities"].items()} == {
        "vector:100": "validation", "projected:101": "validation",
    }  # fmt: skip
    # the thresholds as for held-out ones: vector against its family's training variants,
    # projected (no training variant) against every training modality
    per_family = data["source"]["per_family"]
    assert data["modalities"]["vector:100"]["source"] == per_family["vector"]["success"]
    assert data["modalities"]["projected:101"]["source"] == data["source"]["success"]
    md = (out / "report.md").read_text()
    assert "## vector:100 (validation)" in md and "(its family's training variants)" in md
    assert not set(data["modalities"]) & set(held["modalities"])
    capsys.readouterr()
    spec = spec_from_dict(SPEC)
    train_variant = TaskSampler(spec).splits["train"]["vector"][0]
    for bad, message in [
        (
            f"vector:{train_variant}",
            f"--modality vector:{train_variant}: a training variant of the",
        ),
        (next(iter(held["modalities"])), "a held-out variant of the spec; validation"),
        ("sonar:3", "sonar"),
        ("vector", "expected FAMILY:VARIANT"),
    ]:
        assert main([*argv, "--out", str(root / "refused"), "--modality", bad]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], (bad, err)
        assert not (root / "refused" / "report.json").exists()


def test_adapt_says_when_its_strategy_read_nothing(report, tmp_path: Path, capsys, monkeypatch):
    """The printout says so where a strategy's curve records that its k episodes read nothing
    (``read``: 0; ``selfread``'s rare case, here given to ``zeroshot``'s real curve)."""
    from metaxm.evaluate.strategies import STRATEGIES

    root, data = report
    mid = next(m for m, e in data["modalities"].items() if e["split"] == "heldout_variants")
    zeroshot = STRATEGIES["zeroshot"]
    real = type(zeroshot).curve

    def unread(self, *args):
        curve = real(self, *args)
        return {**curve, "read": [0.0] * len(curve["success"])}

    args = ["adapt", str(root), "--modality", mid, "--strategy", "zeroshot", "--episodes", "2",
            "--out", str(tmp_path / "a.json")]  # fmt: skip
    assert main(args) == 0
    assert "read nothing" not in capsys.readouterr().out
    monkeypatch.setattr(type(zeroshot), "curve", unread)
    assert main(args) == 0
    assert "(zeroshot read nothing from its 2 episodes: the agent met" in capsys.readouterr().out
