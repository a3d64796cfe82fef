"""The main job on a tiny spec: every run trains, the evaluation reports, a rerun continues."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from metaxm.cli import main
from metaxm.config import ConfigError
from metaxm.nn.agent import build_agent
from metaxm.spec import spec_from_dict

TINY = {
    "seed": 2,
    "world": {"name": "gridnav", "size": 4, "horizon": 8},
    "modalities": {"train": {"vector": 2}, "heldout_variants": {"vector": 1}},
    "ppo": {"num_steps": 8, "update_epochs": 1, "num_minibatches": 1},
    "train": {"total_steps": 128, "num_envs": 8, "checkpoint_interval": 0, "eval_episodes": 0},
    "log": {"mode": "disabled", "progress": False},
    "evaluate": {
        "seeds": 2,
        "budgets": [0, 1],
        "scratch_cap": 2,
        "eval_episodes": 4,
        "strategies": ["zeroshot", "finetune"],
    },
    "main": {"runs": {"ppo": {"train.total_steps": 256}}, "render": True},
}


def test_main_job_trains_evaluates_and_continues(tmp_path: Path, capsys) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(TINY))
    out = tmp_path / "out"
    assert main(["main", str(spec), "--out", str(out)]) == 0
    assert (out / "render.png").read_bytes()[:4] == b"\x89PNG"
    summary = json.loads((out / "ppo" / "summary.json").read_text())
    assert summary["env_steps"] == 256  # the run's own override of train.total_steps
    report = json.loads((out / "report" / "report.json").read_text())
    assert report["strategies"] == ["zeroshot", "finetune", "scratch"]
    seconds = json.loads((out / "main.json").read_text())["seconds"]
    assert set(seconds) >= {"render", "ppo", "evaluate", "total"}
    capsys.readouterr()
    assert main(["main", str(spec), "--out", str(out)]) == 0
    assert "ppo: finished run kept" in capsys.readouterr().out
    # a setting no training reads leaves the finished stage kept ...
    assert main(["main", str(spec), "--out", str(out), "--set", "main.render=false"]) == 0
    assert "ppo: finished run kept" in capsys.readouterr().out
    # ... one that training reads is refused before anything runs, the report untouched
    before = (out / "report" / "report.json").read_bytes()
    assert main(["main", str(spec), "--out", str(out), "--set", "ppo.lr=0.01"]) == 2
    err = capsys.readouterr().err
    assert "ppo: the finished run" in err and "first difference at ppo.lr" in err
    assert len(err.strip().splitlines()) == 1
    assert (out / "report" / "report.json").read_bytes() == before


@pytest.mark.parametrize(
    ("runs", "message"),
    [
        ({"dqn": {}}, "main: runs.dqn: run names are pretrain, ppo, maml, rl2"),
        ({"pretrain": {"algo": "ppo"}}, "main: runs.pretrain: alignment pretraining starts"),
        ({"ppo": {"algo": "maml"}}, "main: runs.ppo: algo must be 'ppo'"),
        (
            {"maml": {"train.init_from": "{out}/ppo"}, "ppo": {}},
            r"main: runs.maml: train.init_from starts from \{out\}/ppo, a stage that runs after",
        ),
        (
            {"maml": {"train.init_from": "{out}/ppo/checkpoints"}},
            r"main: runs.maml: train.init_from starts from \{out\}/ppo, a stage that runs not at",
        ),
        ({"pretrain": {"align.init_from": "x"}}, "runs.pretrain: alignment pretraining starts"),
        ({"pretrain": {"align": {"init_from": "x"}}}, "runs.pretrain: alignment pretraining"),
        ({}, "main: runs: empty; name at least one stage"),
    ],
)
def test_main_section_errors(runs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        spec_from_dict({**TINY, "main": {"runs": runs}})


def test_a_bad_run_override_fails_before_any_work(tmp_path: Path, capsys) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({**TINY, "main": {"runs": {"ppo": {"ppo.lrr": 1}}}}))
    assert main(["main", str(spec), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "main.runs.ppo: unknown key 'ppo.lrr'" in err
    assert not (tmp_path / "out" / "render.png").exists()


def test_out_in_a_run_override_is_the_output_folder() -> None:
    from metaxm.pipeline import run_spec

    spec = spec_from_dict({**TINY, "main": {"runs": {"ppo": {}, "rl2": {
        "train.init_from": "{out}/ppo", "train.total_steps": 64}}}})  # fmt: skip
    rl2 = run_spec(spec, "rl2", "/data/job")
    assert rl2.algo == "rl2" and rl2.train.init_from == "/data/job/ppo"
    assert rl2.train.total_steps == 64 and run_spec(spec, "ppo", "x").train.init_from is None


def test_a_mapping_for_a_section_sets_its_fields_and_keeps_the_rest() -> None:
    """``train: {total_steps: 64}`` in a stage sets that field alone (it used to replace the
    whole section, every other field back at its default); ``{out}`` inside it is a link."""
    from metaxm.pipeline import run_spec

    spec = spec_from_dict({**TINY, "main": {"runs": {"ppo": {}, "rl2": {
        "train": {"total_steps": 64, "init_from": "{out}/ppo"},
        "modalities": {"train": {"vector": 1}}}}}})  # fmt: skip
    assert spec.main.links["rl2"] == {"ppo"}
    rl2 = run_spec(spec, "rl2", "/data/job")
    assert rl2.train.total_steps == 64 and rl2.train.init_from == "/data/job/ppo"
    assert rl2.train.num_envs == 8 and rl2.train.eval_episodes == 0  # TINY's, not the defaults
    assert rl2.modalities.train == {"vector": 1}  # a mapping-valued field is replaced whole
    with pytest.raises(ValueError, match="runs.rl2: train.init_from starts from {out}/maml"):
        spec_from_dict({**TINY, "main": {"runs": {"ppo": {}, "rl2": {
            "train": {"init_from": "{out}/maml"}}}}})  # fmt: skip


def meta_fit() -> dict:
    """A tiny stage of either meta-learned fit (paired, reward-free); a fresh dict each time,
    since a spec may not hold YAML aliases."""
    return {
        "agent.adapters": "variant",
        "train.init_from": "{out}/ppo",
        "train.total_steps": 40,
        "align.meta_batch": 1,
        "align.meta_episodes": [1],
        "align.meta_query_episodes": 2,
    }


STAGES = {
    **TINY,
    "world": {"name": "gridnav", "size": 3, "horizon": 6},
    "modalities": {
        "train": {"vector": 2, "projected": 2},
        "heldout_variants": {"vector": 1},
        "heldout_families": {"audio": 1},
    },
    "agent": {"latent_dim": 16, "encoder_width": 32, "hidden": 16, "adapter_rank": 2},
    "align": {
        "batch_size": 16,
        "eval_states": 32,
        "pretrain_updates": 3,
        "fit_iters": 2,
        "translate_iters": 3,
    },  # fmt: skip
    "maml": {"meta_batch": 2, "support_episodes": 2, "query_episodes": 2},
    "rl2": {"episodes_per_trial": 2},
    "evaluate": {
        **TINY["evaluate"],
        "strategies": [
            "zeroshot",
            "align",
            "translate",
            "maml",
            "rl2",
            "metafit",
            "selffit",
            "priorfit",
        ],  # fmt: skip
    },
    "main": {
        "render": False,
        "runs": {
            "pretrain": {"align.pretrain_updates": 2},
            "ppo": {
                "agent.adapters": "variant",
                "align.init_from": "{out}/pretrain",
                "train.freeze": "latent",
            },
            "maml": {"train.total_steps": 64, "train.init_from": "{out}/ppo"},
            "rl2": {"train.total_steps": 64, "train.init_from": "{out}/ppo"},
            "metafit": meta_fit(),
            "selffit": meta_fit(),
            "priorfit": {**meta_fit(), "align.meta_episodes": [1, 2]},
        },
    },
}


def test_every_stage_of_the_pipeline_starts_from_the_one_before(tmp_path: Path) -> None:
    """pretrain -> source PPO on the frozen aligned latent -> MAML and RL^2 -> evaluation."""
    import torch

    from metaxm.run.checkpoint import load_checkpoint, resolve_checkpoint

    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(STAGES, sort_keys=False))  # the stages' order matters
    out = tmp_path / "out"
    assert main(["main", str(spec), "--out", str(out)]) == 0
    pre = json.loads((out / "pretrain" / "summary.json").read_text())
    assert pre["updates"] == 2  # the stage's own override of align.pretrain_updates
    assert not (out / "pretrain" / "init.json").exists()
    inits = {
        n: json.loads((out / n / "init.json").read_text())
        for n in ("ppo", "maml", "rl2", "metafit", "selffit", "priorfit")
    }
    ppo_init = inits["ppo"]["align.init_from"]
    assert ppo_init["source"] == str(out / "pretrain")
    # encoders, family adapters, and the 2 + 2 variants' adapters (4 fields each family)
    assert sum(n.startswith("variant_adapters.stacks.") for n in ppo_init["names"]) == 8
    for name in ("maml", "rl2", "metafit", "selffit", "priorfit"):
        assert inits[name]["train.init_from"]["source"] == str(out / "ppo")
        assert any(n.startswith("encoders.") for n in inits[name]["train.init_from"]["names"])
    # the source policy trained on the frozen latent: its encoders and per-variant adapters
    # are exactly pretraining's, and its core is not
    weights = {
        n: load_checkpoint(resolve_checkpoint(out / n))["trainer"] for n in ("pretrain", "ppo")
    }
    pretrained, source = weights["pretrain"]["agent"], weights["ppo"]["agent"]
    for k, v in pretrained.items():
        if k.startswith("encoders."):
            assert torch.equal(source[k], v), k
    for k, v in weights["pretrain"]["variants"].items():
        assert torch.equal(source[f"variant_adapters.{k}"], v), k
    fresh_ppo = build_agent(run_spec_of(spec, out, "ppo"))
    assert not torch.equal(source["core.pi.0.weight"], fresh_ppo.state_dict()["core.pi.0.weight"])
    report = json.loads((out / "report" / "report.json").read_text())
    assert report["strategies"] == [
        "zeroshot", "align", "translate", "maml", "rl2", "metafit", "selffit", "priorfit",
        "scratch",
    ]  # fmt: skip
    assert report["data"]["selffit"] == ["observations"]  # no rewards, no pairs
    assert report["data"]["priorfit"] == ["observations", "paired"]
    # the report says which strategies meta-learned their adaptation, and what
    learned = {n for n, w in report["meta_learned"].items() if w}
    assert learned == {"maml", "rl2", "metafit", "selffit", "priorfit"}
    assert "Gaussian prior" in report["meta_learned"]["priorfit"]
    md = (out / "report" / "report.md").read_text()
    assert "before the target: maml: the start of its inner steps" in md
    assert "searches only: zeroshot, align, translate, scratch." in md
    curves = {m: e["strategies"] for m, e in report["modalities"].items()}
    audio = next(m for m in curves if m.startswith("audio:"))
    # no learned start for a family meta-training never saw: align's fit, on the same agent
    assert curves[audio]["metafit"]["curves"] == curves[audio]["align"]["curves"]
    vector = next(m for m in curves if m.startswith("vector:"))
    # a prior per vector family it trained on; audio, never trained on, under the prior for any
    assert curves[audio]["priorfit"]["curves"]["paired_steps"][0][1] > 0
    assert "priorfit" not in report["unread"].get(audio, {})
    assert curves[vector]["priorfit"]["curves"]["paired_steps"][0][1] > 0
    paired = {n for n, r in curves[vector].items() if "vs_align" in r}  # align's data, its seeds
    assert paired == {"translate", "metafit", "priorfit"}
    assert curves[vector]["metafit"]["curves"]["paired_steps"][0][1] > 0
    for m in (audio, vector):  # translate fits on align's pairs, the same number of them
        assert (
            curves[m]["translate"]["curves"]["paired_steps"]
            == (curves[m]["align"]["curves"]["paired_steps"])
        )
    learned = load_checkpoint(resolve_checkpoint(out / "metafit"))["trainer"]["metafit"]
    moved = [
        not torch.equal(v, source[k]) for k, v in learned["init"]["vector"].items()
    ]  # meta-training changed the start it fits from, and its rates
    assert any(moved) and any(
        not torch.allclose(v, torch.full_like(v, 0.1)) for v in learned["lrs"]["vector"].values()
    )
    prior = load_checkpoint(resolve_checkpoint(out / "priorfit"))["trainer"]["priorfit"]
    assert set(prior) == {"mean", "log_prec", "unsquashed", "unseen"}
    assert set(prior["unseen"]) == {"any"}  # one prior for every family without its own
    assert set(prior["mean"]) == {"vector", "projected"}
    assert set(prior["unsquashed"]) == {"projected"}  # the sensor bank's map reads it unsquashed
    assert prior["mean"]["vector"]["map"].abs().max() > 0  # meta-training moved it from 0
    selffit = load_checkpoint(resolve_checkpoint(out / "selffit"))["trainer"]["selffit"]
    assert set(selffit) == {"init", "lrs", "head"}
    assert any(not torch.equal(v, source[k]) for k, v in selffit["init"]["vector"].items())
    assert curves[vector]["selffit"]["curves"]["episodes"][0][1] > 0
    assert report["source"]["oracle"]["success"] > 0.5  # a 3x3 grid in 6 steps
    seconds = json.loads((out / "main.json").read_text())["seconds"]
    assert set(seconds) >= {
        "pretrain", "ppo", "maml", "rl2", "metafit", "selffit", "priorfit", "evaluate"
    }  # fmt: skip


def run_spec_of(spec_path: Path, out: Path, name: str):
    from metaxm.pipeline import run_spec
    from metaxm.spec import load_spec

    return run_spec(load_spec(spec_path), name, out)


def test_a_killed_pretraining_stage_resumes(tmp_path: Path, capsys) -> None:
    """The main job killed inside its pretraining stage continues that stage exactly."""
    from metaxm.run.checkpoint import list_checkpoints

    data = {
        **STAGES,
        "train": {**TINY["train"], "checkpoint_interval": 1, "keep_checkpoints": 0},
        "main": {"render": False, "evaluate": False, "runs": {"pretrain": {}}},
    }
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(data, sort_keys=False))
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert main(["main", str(spec), "--out", str(whole)]) == 0
    assert main(["main", str(spec), "--out", str(cut)]) == 0
    # as if killed after update 2 of 3: the last checkpoint and the summary never written
    (cut / "pretrain" / "summary.json").unlink()
    list_checkpoints(cut / "pretrain")[-1].unlink()
    capsys.readouterr()
    assert main(["main", str(spec), "--out", str(cut)]) == 0
    assert "pretrain: resuming" in capsys.readouterr().out
    metrics = [(d / "pretrain" / "metrics.jsonl").read_text() for d in (whole, cut)]
    assert metrics[0] == metrics[1]
    # a newest checkpoint cut short: the way on names the commands that take the flag
    (cut / "pretrain" / "summary.json").unlink()
    newest = list_checkpoints(cut / "pretrain")[-1]
    newest.write_bytes(newest.read_bytes()[:100])
    assert main(["main", str(spec), "--out", str(cut)]) == 2
    err = capsys.readouterr().err
    assert (
        "to resume the stage from" in err and "--resume --resume-last-good, then metaxm main" in err
    )
    # as if killed before its first checkpoint: it starts again, not "already holds a run"
    shutil.rmtree(cut / "pretrain" / "checkpoints")
    assert main(["main", str(spec), "--out", str(cut)]) == 0
    assert "pretrain: resuming" in capsys.readouterr().out
    assert (cut / "pretrain" / "metrics.jsonl").read_text() == metrics[0]


def test_a_stage_that_trains_fewer_families_is_not_measured_on_the_others(tmp_path: Path) -> None:
    """The default spec's ``rl2`` stage: the sensory encoder with the state probe and fresh
    wirings, on vector only here; the report measures it on vector, and says why not on
    projected."""
    from metaxm.run.checkpoint import load_checkpoint, resolve_checkpoint

    data = {
        **TINY,
        "modalities": {
            "train": {"vector": 2, "projected": 2},
            "heldout_variants": {"vector": 1, "projected": 1},
        },
        "evaluate": {**TINY["evaluate"], "strategies": ["zeroshot", "rl2"]},
        "main": {
            "render": False,
            "runs": {
                "ppo": {},
                "rl2": {
                    "agent.encoder": "sensory",
                    "rl2.state_probe": 1.0,
                    "rl2.variants": "fresh",
                    "modalities.train": {"vector": 2},
                    "modalities.heldout_variants": {"vector": 1},
                },
            },
        },
    }
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(data, sort_keys=False))
    out = tmp_path / "out"
    assert main(["main", str(spec), "--out", str(out)]) == 0
    report = json.loads((out / "report" / "report.json").read_text())
    (vector,) = [m for m in report["modalities"] if m.startswith("vector:")]
    (projected,) = [m for m in report["modalities"] if m.startswith("projected:")]
    assert "rl2" in report["modalities"][vector]["strategies"]
    assert "rl2" not in report["modalities"][projected]["strategies"]
    assert report["unread"][projected]["rl2"].startswith(
        "the rl2 agent was trained without the projected family"
    )
    agent = load_checkpoint(resolve_checkpoint(out / "rl2"))["trainer"]["agent"]
    assert {"state_probe.weight", "state_probe.bias"} <= set(agent)
    assert any(k.startswith("sensory_encoder.") for k in agent)


SIDE_BY_SIDE = {
    **TINY,
    "rl2": {"episodes_per_trial": 2},
    "maml": {"meta_batch": 2, "support_episodes": 2, "query_episodes": 2},
    "main": {
        "render": False,
        "evaluate": False,
        "runs": {
            "ppo": {},
            "maml": {"train.total_steps": 64, "train.init_from": "{out}/ppo"},
            "rl2": {"train.total_steps": 64},
        },
    },
}


def test_stages_side_by_side_write_what_they_write_in_order(tmp_path: Path, capsys) -> None:
    """main.workers: 2 trains rl2 (no link) beside ppo, and maml after ppo; every stage writes
    the same weights and records as on one worker, and its console goes to OUT/logs."""
    from metaxm.run.checkpoint import load_checkpoint, resolve_checkpoint

    outs = {}
    for workers in (1, 2):
        spec = tmp_path / f"spec{workers}.yaml"
        spec.write_text(yaml.safe_dump({**SIDE_BY_SIDE, "main": {
            **SIDE_BY_SIDE["main"], "workers": workers}}, sort_keys=False))  # fmt: skip
        outs[workers] = tmp_path / f"out{workers}"
        assert main(["main", str(spec), "--out", str(outs[workers])]) == 0
    printed = capsys.readouterr().out
    assert f"rl2: training 64 env steps into {outs[2] / 'rl2'} (output: " in printed
    assert (outs[2] / "logs" / "rl2.log").is_file() and not (outs[1] / "logs").exists()
    for name in ("ppo", "maml", "rl2"):
        one, two = (load_checkpoint(resolve_checkpoint(o / name))["trainer"] for o in outs.values())
        assert one["agent"].keys() == two["agent"].keys()
        for k, v in one["agent"].items():
            assert torch.equal(v, two["agent"][k]), (name, k)
        metrics = [(o / name / "metrics.jsonl").read_text() for o in outs.values()]
        assert metrics[0] == metrics[1] and metrics[0], name
    assert json.loads((outs[2] / "main.json").read_text())["workers"] == 2


def test_a_failing_stage_side_by_side_stops_the_job_in_one_line(tmp_path: Path, capsys) -> None:
    """A stage whose start cannot be loaded fails in its own process; the job says so in one
    line, as on one worker."""
    runs = {"ppo": {}, "rl2": {"train.total_steps": 64, "train.init_from": str(tmp_path)}}
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({**SIDE_BY_SIDE, "main": {
        **SIDE_BY_SIDE["main"], "runs": runs, "workers": 2}}, sort_keys=False))  # fmt: skip
    assert main(["main", str(spec), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("metaxm main: error: ") and str(tmp_path) in err[0]


def test_main_refuses_an_out_folder_that_holds_a_run_or_other_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A copy of a train run with its evaluate report (report/ looks like a main job's) was
    taken: the stages trained inside it and render.png was written over."""
    spec = str(Path(__file__).resolve().parents[1] / "tasks" / "gridnav.yaml")
    run = tmp_path / "run"
    (run / "report").mkdir(parents=True)
    (run / "config.yaml").write_text("seed: 0\n")
    assert main(["main", spec, "--out", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds a run (config.yaml), not a main job's stages" in err
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "a.txt").write_text("mine\n")
    assert main(["main", spec, "--out", str(notes)]) == 2
    assert "holds files but no main job (a.txt)" in capsys.readouterr().err
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml", "report"]
