"""``make results`` job for #15's "training families held out in turn" with the gradient-based
meta-learned fits (``maml``, ``metafit``, ``selffit``) and ``priorfit``: the whole pipeline
trained without one family, each fit measured on that family as one it never saw, against the
same fits on the main job's agents, which trained on it."""

from __future__ import annotations

import json
from pathlib import Path

from studies.results.page import ROOT, RUNS, beside_main, rel, study_page
from studies.results.rl2_stage import FAMILIES, family_mean

FITS = ("zeroshot", "maml", "align", "metafit", "selffit", "priorfit")
"""The strategies measured: the gradient-based meta-learned fits, ``priorfit``, and the
hand-set ``align`` and ``zeroshot`` beside them."""


HELD_OUT = FAMILIES
"""The families held out in turn: every training family of the main job."""


FIT_STAGES = {
    # section 5's settings (inner rate 0.005, 300k steps), chosen on validation variants 100-101
    "metafit": {"agent.adapters": "variant", "train.init_from": "{out}/ppo",
                "train.total_steps": 300_000, "align.meta_inner_lr": 0.005},
    # the `selffit` page's settings
    "selffit": {"agent.adapters": "variant", "train.init_from": "{out}/ppo",
                "train.total_steps": 300_000},
}  # fmt: skip
"""The stages added to the main job's for the fits it does not train."""


def validation(family: str) -> list[str]:
    """``family``'s validation variants 100-103, outside every split."""
    return [f"{family}:{v}" for v in range(100, 104)]


def modality_args(mids: list[str]) -> list[str]:
    """``--modality`` arguments for ``mids`` (a family a run never trained on may be met at
    any seed, the main job's held-out one too)."""
    return [a for m in mids for a in ("--modality", m)]


def report(job: Path) -> Path:
    """Where the evaluation of ``job``'s agents goes."""
    return job.with_name(f"{job.name}-report")


def stage_train(name: str, job: Path) -> list[str]:
    """``metaxm train`` of :data:`FIT_STAGES`' ``name`` from the main job's source agent."""
    command = ["metaxm", "train", "tasks/gridnav.yaml", "--set", f"algo={name}"]
    for key, value in FIT_STAGES[name].items():
        value = rel(RUNS / "main" / "ppo") if value == "{out}/ppo" else value
        command += ["--set", f"{key}={value}"]
    return [*command, "--out", rel(job / name)]


def fits_family_out() -> Path:
    """The main job's stages without ``rl2`` (pretrain, ppo, maml, priorfit) plus ``metafit``
    and ``selffit``, trained on the three other training families, for each family of
    :data:`HELD_OUT` in turn; measured on that family's held-out modality (the main job's
    held-out variant seed, now a family never seen) and validation variants 100-103; and the
    same fits on the main job's agents (``metafit``, ``selffit`` trained from its ``ppo``)."""
    from metaxm.sampler import TaskSampler
    from metaxm.spec import load_spec

    name = "fits-family-out"
    spec = load_spec(ROOT / "tasks" / "gridnav.yaml")
    stages = {**{k: v for k, v in spec.main.runs.items() if k != "rl2"}, **FIT_STAGES}
    # the main job's held-out variant of each family (``family:seed``)
    held = {f: f"{f}:{v}" for f, v in TaskSampler(spec).modalities("heldout_variants")}
    strategies = [a for s in FITS for a in ("--strategy", s)]
    commands: list[list[str]] = []
    for family in HELD_OUT:
        job = RUNS / f"{name}-{family}"
        others = {f: 8 for f in FAMILIES if f != family}
        commands += [
            ["metaxm", "main", "tasks/gridnav.yaml", "--set",
             f"modalities.train={json.dumps(others)}", "--set", "modalities.heldout_variants={}",
             "--set", f"modalities.heldout_families={json.dumps({family: 1})}", "--set",
             f"main.runs={json.dumps(stages)}", "--set", "main.workers=1", "--set",
             "main.render=false", "--set", "main.evaluate=false", "--out", rel(job)],
            ["metaxm", "evaluate", rel(job), *strategies, "--out", rel(report(job)),
             *modality_args([held[family], *validation(family)])],
        ]  # fmt: skip
    trained = RUNS / f"{name}-trained"
    validated = RUNS / f"{name}-trained-validation"
    beside_main(
        trained, name, "its agents are the reference, trained on every family",
        links=("ppo", "maml", "priorfit"),
    )  # fmt: skip
    commands += [
        *(stage_train(s, trained) for s in FIT_STAGES),
        ["metaxm", "evaluate", rel(trained), *strategies, "--out", rel(report(trained)), "--set",
         f"modalities.heldout_variants={json.dumps({f: 1 for f in HELD_OUT})}", "--set",
         "modalities.heldout_families={}"],
        ["metaxm", "evaluate", rel(trained), *strategies, "--out", rel(validated),
         *modality_args([m for f in HELD_OUT for m in validation(f)])],
    ]  # fmt: skip

    def headline() -> str:
        reference = json.loads((report(trained) / "report.json").read_text())
        reference["modalities"].update(
            json.loads((validated / "report.json").read_text())["modalities"]
        )
        lines = [
            "Each fit on a family its whole pipeline never trained on (alignment, source "
            "policy and meta-training on the three other training families: `metaxm main` "
            "with the family left out), against the same fit on the main job's agents, which "
            "trained on it. IQM success over 5 seeds at k = "
            + " / ".join(map(str, reference["budgets"]))
            + " episodes; validation: the mean over variants 100-103 and seeds.",
        ]
        for family in HELD_OUT:
            never = json.loads((report(RUNS / f"{name}-{family}") / "report.json").read_text())
            mid = held[family]
            lines += ["", f"**{family} held out** ({mid}; validation {family} 100-103):", "",
                      "| strategy | held out, never seen | trained on | validation, never seen "
                      "| trained on |", "|---|---|---|---|---|"]  # fmt: skip
            for strategy in FITS:
                cells = [
                    curve(never, mid, strategy),
                    curve(reference, mid, strategy),
                    family_mean(never, family, strategy, skip=mid),
                    family_mean(reference, family, strategy, skip=mid),
                ]
                lines.append(f"| `{strategy}` | " + " | ".join(cells) + " |")
        return "\n".join(lines)

    title = "The meta-learned fits with one training family held out in turn"
    return study_page(name, title, commands, headline)


def curve(data: dict, mid: str, strategy: str) -> str:
    """``strategy``'s IQM success curve on ``mid`` of the report ``data``, or why it was not
    measured."""
    entry = data["modalities"][mid]["strategies"].get(strategy)
    if entry is None:
        return "not measured"
    return " / ".join(f"{v:.2f}" for v in entry["iqm"]["success"]["point"])
