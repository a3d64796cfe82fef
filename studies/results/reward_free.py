"""``make results`` jobs for #15's reward-free regime: ``selffit``, ``selfread`` (and on a world
with inner walls), and the reward-free meta-learned RL^2 agents, with where they fail."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from studies.results.page import RUNS, beside_main, need_main, rel, study_page
from studies.results.rl2_stage import (
    CHANNEL_MEMORY,
    EVERY_FAMILY,
    MEMORY_EVERY_FAMILY,
    STEPS_REWARD_FREE,
    VALIDATION_EVERY,
    VALIDATION_VARIANTS,
    newtask_lines,
    rl2_study,
    rl2_train,
    validation_means,
)


def selffit() -> Path:
    main = RUNS / "main"
    need_main("selffit", "it adapts its ppo agent")
    out, report = main / "selffit", RUNS / "selffit-report"
    compared = RUNS / "selffit_vs_zeroshot.json"  # beside the report: a rerun refuses extras
    commands = [
        ["metaxm", "train", "tasks/gridnav.yaml", "--set", "algo=selffit", "--set",
         "agent.adapters=variant", "--set", f"train.init_from={rel(main / 'ppo')}", "--set",
         "train.total_steps=300000", "--out", rel(out)],
        ["metaxm", "evaluate", rel(main), "--strategy", "zeroshot", "--strategy", "align",
         "--strategy", "selffit", "--out", rel(report)],
        ["python", "scripts/compare_strategies.py", rel(report / "report.json"), "selffit",
         "zeroshot", "--json", rel(compared)],
    ]  # fmt: skip

    def headline() -> str:
        rows = json.loads(compared.read_text())
        cells = [
            f"{m} {r['mean']['point']:+.2f} [{r['mean']['low']:+.2f}, {r['mean']['high']:+.2f}]"
            for m, r in rows.items()
        ]
        above = sum(r["mean"]["low"] > 0 for r in rows.values())
        return (
            "reward-free, pair-free adaptation (`selffit`) against no adaptation (`zeroshot`) on "
            "the main job's held-out modalities: success difference averaged over k >= 1 "
            "episodes, IQM over seeds [95% bootstrap interval]: "
            + ", ".join(cells)
            + f"; above zeroshot on {above} of {len(rows)}. The curves are in "
            f"`{rel(report / 'report.md')}`."
        )

    return study_page("selffit", "Reward-free adaptation (selffit)", commands, headline)


def selfread() -> Path:
    main = RUNS / "main"
    need_main("selfread", "it reads with its agent")
    report = RUNS / "selfread-report"
    compared = RUNS / "selfread_vs_zeroshot.json"  # beside the report: a rerun refuses extras
    commands = [
        ["metaxm", "evaluate", rel(main), "--strategy", "zeroshot", "--strategy", "translate",
         "--strategy", "selfread", "--out", rel(report)],
        ["python", "scripts/compare_strategies.py", rel(report / "report.json"), "selfread",
         "zeroshot", "--json", rel(compared)],
    ]  # fmt: skip

    def headline() -> str:
        data = json.loads((report / "report.json").read_text())
        diffs = json.loads(compared.read_text())
        lines = [
            "Reward-free, pair-free reading (`selfread`: the target's observations and the "
            "agent's actions, nothing else) of the main job's held-out modalities, IQM success "
            "over 5 seeds, against `zeroshot` (no adaptation) and `translate` (paired):",
            "",
        ]
        for mid, entry in data["modalities"].items():
            strategies = entry["strategies"]
            ks = strategies["selfread"]["budgets"]
            iqm = {n: strategies[n]["iqm"]["success"]["point"] for n in ("zeroshot",
                   "selfread", "translate")}  # fmt: skip
            row = ", ".join(f"k = {k}: {v:.2f}" for k, v in zip(ks, iqm["selfread"], strict=True))
            diff = diffs[mid]["mean"]
            lines.append(
                f"- **{mid}**: {row}; `zeroshot` {iqm['zeroshot'][0]:.2f}; `translate` "
                f"{iqm['translate'][1]:.2f} at k = 1. Above zeroshot, averaged over k >= 1: "
                f"{diff['point']:+.2f} [{diff['low']:+.2f}, {diff['high']:+.2f}]."
            )
        lines += ["", f"The curves are in `{rel(report / 'report.md')}`."]
        return "\n".join(lines)

    return study_page("selfread", "Reward-free reading of new modalities (selfread)",
                      commands, headline)  # fmt: skip


WALLED = [f"{f}:{v}" for f in ("vector", "pixels") for v in range(100, 104)]
WALLED += ["projected:100", "text:100", "audio:100"]
"""The validation variants ``walls`` measures (outside every split)."""


def walls() -> Path:
    """The main job's first two stages on GridNav with inner walls, then ``selfread`` and
    ``translate`` on validation variants (``docs/transfer-studies.md`` section 35)."""
    out = RUNS / "walls"
    report = RUNS / "walls-report"
    walled = ["--set", "world.walls=true"]
    commands = [
        ["metaxm", "pretrain", "tasks/gridnav.yaml", *walled, "--set",
         "align.pretrain_updates=2000", "--out", rel(out / "pretrain")],
        ["metaxm", "train", "tasks/gridnav.yaml", *walled, "--set", "train.total_steps=600000",
         "--set", "agent.adapters=variant", "--set", f"align.init_from={rel(out / 'pretrain')}",
         "--set", "train.freeze=latent", "--out", rel(out / "ppo")],
        ["metaxm", "evaluate", rel(out / "ppo"), "--seeds", "8", "--strategy", "selfread",
         "--strategy", "translate", *[a for m in WALLED for a in ("--modality", m)], "--set",
         "evaluate.budgets=[0, 1, 2, 4, 8]", "--set", "evaluate.scratch_cap=8", "--out",
         rel(report)],
    ]  # fmt: skip

    def headline() -> str:
        data = json.loads((report / "report.json").read_text())
        lines = [
            "GridNav with inner walls (`--set world.walls=true`): the main job's pretraining and "
            "source agent, then `selfread` (no reward, no pair) and `translate` (paired) on "
            "validation variants, IQM success over 8 seeds at k = 1 / 2 / 4 / 8, and episodes "
            "to 80% of the family's source:",
            "",
        ]
        for mid, entry in data["modalities"].items():
            for name in ("selfread", "translate"):
                got = entry["strategies"][name]
                reach = got["metrics"]
                v = reach["episodes_to_threshold"]
                to = f"{v['point']:.1f} [{v['low']:.1f}, {v['high']:.1f}]"
                if reach["censored"] == reach["seeds"]:
                    to = f"> {got['budgets'][-1]}"
                if reach["censored"]:
                    to += f" ({reach['censored']} of {reach['seeds']} censored)"
                lines.append(
                    f"- **{mid}** `{name}`: "
                    + " / ".join(f"{v:.2f}" for v in got["iqm"]["success"]["point"][1:])
                    + f"; to 80% {to}"
                )
        lines += ["", f"The curves are in `{rel(report / 'report.md')}`."]
        return "\n".join(lines)

    return study_page("walls", "A world with inner walls", commands, headline)


def rl2_reward_free() -> Path:
    """The main job's ``rl2`` stage again with ``agent.reward_input: false`` (nothing else
    changed), evaluated beside the main job's source agent: RL^2 adapting in context without
    reading a reward."""
    # 2.5x the stage's 1.2M steps, set before any number of the fixed replay was seen (at 1.2M
    # it learns across episodes too, more slowly: docs/transfer-studies.md section 23)
    changed = {"agent.reward_input": False, "train.total_steps": STEPS_REWARD_FREE}
    return rl2_study(
        "rl2-reward-free", "RL^2 without the reward input", changed, VALIDATION_VARIANTS,
        "RL^2 with the main job's `rl2` stage settings but 3M steps, its core reading 0 for the "
        "previous reward (`agent.reward_input: false`",
    )  # fmt: skip


def rl2_every_family() -> Path:
    """The reward-free ``rl2`` of ``rl2-reward-free`` reading every training family: images by
    colour and sentences by word (``docs/sensory.md``), trained on all four families."""
    changed = {
        "agent.reward_input": False,
        **EVERY_FAMILY,
        # twice rl2-reward-free's 3M for twice its families, set before the run was seen
        "train.total_steps": 2 * STEPS_REWARD_FREE,
    }
    name = "rl2-every-family"
    run, seeing, blind = RUNS / name / "rl2", RUNS / f"{name}-trials", RUNS / f"{name}-blind"
    trials = ["python", "scripts/rl2_trials.py", rel(run), "--trials", "1000", "--episodes", "3"]
    controls = [[*trials, "--out", rel(seeing)], [*trials, "--blind", "--out", rel(blind)]]

    def blind_control() -> list[str]:
        read = {w: json.loads((d / "in_context.json").read_text()) for w, d in
                (("seeing", seeing), ("blind", blind))}  # fmt: skip
        lines = ["", "Seeing against blind (`scripts/rl2_trials.py --blind`: the agent sees zeros "
                 "instead of every observation), success in episodes 1 / 2 / 3 of 1,000 trials "
                 "per held-out modality [95% Wilson interval of episode 1]:", ""]  # fmt: skip
        for split in ("heldout_variants", "heldout_families"):
            for family in read["seeing"][split]:
                if family == "all":
                    continue
                cells = []
                for what in ("seeing", "blind"):
                    eps = read[what][split][family]["episodes"]
                    low, high = eps[0]["success_ci"]
                    cells.append(f"{what} " + " / ".join(f"{e['success']:.2f}" for e in eps)
                                 + f" [{low:.2f}, {high:.2f}]")  # fmt: skip
                lines.append(f"- {split.replace('_', ' ')} {family}: " + "; ".join(cells))
        return lines

    return rl2_study(
        name, "RL^2 without the reward input, reading every family", changed, VALIDATION_EVERY,
        "RL^2 with the main job's `rl2` stage settings, trained on all four training families "
        "for 6M steps, reading images by colour and sentences by word "
        "(`agent.sensory_images: colours`, `agent.sensory_text: words`) and 0 for the previous "
        "reward (`agent.reward_input: false`", controls, blind_control,
    )  # fmt: skip


def rl2_channel_memory() -> Path:
    """The reward-free ``rl2`` of ``rl2-reward-free`` with each sensory neuron keeping its
    channel's statistics over the trial (``agent.sensory_memory: trial``), trained on trials of
    6 episodes with a new task in every one, and measured on new tasks (``rl2-newtask``)."""
    name = "rl2-channel-memory"
    fresh = RUNS / f"{name}-newtask"
    evaluate = ["metaxm", "evaluate", rel(RUNS / name), "--strategy", "zeroshot", "--strategy",
                "rl2-newtask", "--out", rel(fresh)]  # fmt: skip

    def fresh_tasks() -> list[str]:
        return [
            "",
            "On a new task in every episode after the first (`rl2-newtask`, as every other "
            "strategy is measured), IQM success over 5 seeds, episodes to 80% of source and from "
            "which it stays there [95% bootstrap interval]:",
            "",
            *newtask_lines(fresh / "report.json"),
        ]

    return rl2_study(
        name, "RL^2 whose sensory neurons remember their channels over the trial",
        CHANNEL_MEMORY, VALIDATION_VARIANTS,
        "RL^2 with the main job's `rl2` stage settings, reading 0 for the previous reward, each "
        "sensory neuron also reading its channel's statistics over the trial "
        "(`agent.sensory_memory: trial`), trained for 6M steps on trials of 6 episodes with a "
        "new task in every one (`rl2.episode_tasks: new`", [evaluate], fresh_tasks,
    )  # fmt: skip


def rl2_family_out() -> Path:
    """``rl2-channel-memory``'s agent meta-trained on one vector family at a time and measured
    on new tasks of both, the other one a family its meta-training never saw (#15's training
    families held out in turn), on the main job's held-out modalities and on validation
    variants."""
    name = "rl2-family-out"
    commands, reports = [], {}
    for family, other in (("vector", "projected"), ("projected", "vector")):
        job = RUNS / f"{name}-{family}"
        beside_main(job, name, "it is measured beside its zeroshot agent")
        alone = {
            **CHANNEL_MEMORY, "modalities.train": {family: 8},
            "modalities.heldout_variants": {family: 1},
            "modalities.heldout_families": {other: 1, "audio": 2},
        }  # fmt: skip
        evaluate = ["metaxm", "evaluate", rel(job), "--spec", "tasks/gridnav.yaml", "--strategy",
                    "zeroshot", "--strategy", "rl2-newtask"]  # fmt: skip
        reports[family] = RUNS / f"{name}-{family}-newtask", RUNS / f"{name}-{family}-validation"
        commands += [
            rl2_train(alone, job / "rl2"),
            [*evaluate, "--out", rel(reports[family][0])],
            [*evaluate, "--out", rel(reports[family][1]),
             *[a for v in VALIDATION_VARIANTS for a in ("--modality", v)]],
        ]  # fmt: skip

    def headline() -> str:
        lines = [
            "RL^2 with `rl2-channel-memory`'s settings (the main job's `rl2` stage, the reward "
            "not read, each sensory neuron keeping its channel's statistics over 6-episode trials "
            "of new tasks, 6M steps), meta-trained on one vector family only, measured on new "
            "tasks (`rl2-newtask`) of the main job's held-out modalities: IQM success over 5 "
            "seeds, episodes to 80% of source and from which it stays there [95% interval].",
        ]
        for family, (held_out, validation) in reports.items():
            other = next(f for f in reports if f != family)
            lines += ["", f"Meta-trained on **{family}** alone ({other} and audio: families it "
                      "never saw):", ""]  # fmt: skip
            lines += newtask_lines(held_out / "report.json")
            lines += validation_means(validation / "report.json", "rl2-newtask")
        lines += ["", "`make results ONLY=rl2-channel-memory` is the same trained on both."]
        return "\n".join(lines)

    title = "RL^2 with channel memory, one training family held out in turn"
    return study_page(name, title, commands, headline)


def rl2_memory_every_family() -> Path:
    """``rl2-channel-memory``'s agent trained on all four training families, reading images by
    colour and sentences by word as ``rl2-every-family`` does (their channels keep their window
    alone), measured on new tasks (``rl2-newtask``) of the main job's held-out modalities and
    of validation variants 100-103 of every family, against ``zeroshot``."""
    return every_family_study(
        "rl2-memory-every-family", "RL^2 with channel memory, reading every training family",
        MEMORY_EVERY_FAMILY, "",
    )  # fmt: skip


COVERAGE_BONUS = 0.005
"""``rl2-coverage-bonus``'s bonus: half of GridNav's ``step_cost``, set before the run was seen."""


def rl2_coverage_bonus() -> Path:
    """``rl2-memory-every-family``'s agent trained with ``rl2.coverage_bonus`` (a reward for each
    step onto a cell new to its episode, in training only), measured the same way, and where it
    fails as ``rl2-failures`` measures it (``docs/transfer-studies.md`` section 44)."""
    name = "rl2-coverage-bonus"
    out = RUNS / f"{name}-failures.json"
    failures = ["python", "scripts/rl2_failures.py", rel(RUNS / name / "rl2"), "--family",
                "vector", "--family", "projected", "--variants", "100-123", "--json",
                rel(out)]  # fmt: skip

    def where_it_fails() -> list[str]:
        return ["", "Where it fails (`scripts/rl2_failures.py`, as `rl2-failures`): "
                + failure_lines(json.loads(out.read_text()))]  # fmt: skip

    return every_family_study(
        name, "RL^2 with channel memory, reading every family, trained with a coverage bonus",
        {**MEMORY_EVERY_FAMILY, "rl2.coverage_bonus": COVERAGE_BONUS},
        f", and {COVERAGE_BONUS} added to the reward of every training step onto a cell new to "
        "its episode (`rl2.coverage_bonus`; half of GridNav's step cost, set before the run)",
        [failures], where_it_fails,
    )  # fmt: skip


def every_family_study(
    name: str,
    title: str,
    changed: dict,
    described: str,
    controls: list[list[str]] | None = None,
    control_lines: Callable[[], list[str]] | None = None,
) -> Path:
    """The main job's ``rl2`` stage with ``changed`` (``rl2-memory-every-family``'s settings and
    more, ``described`` in the headline) measured on new tasks (``rl2-newtask``) of the main
    job's held-out modalities and of validation variants 100-103 of every family, against
    ``zeroshot``; ``controls`` run after, and ``control_lines()`` ends the headline."""
    job = RUNS / name
    beside_main(job, name, "it is measured beside its zeroshot agent")
    held_out, validation = RUNS / f"{name}-newtask", RUNS / f"{name}-validation"
    compared = RUNS / f"{name.replace('-', '_')}_vs_zeroshot.json"
    evaluate = ["metaxm", "evaluate", rel(job), "--spec", "tasks/gridnav.yaml", "--strategy",
                "zeroshot", "--strategy", "rl2-newtask"]  # fmt: skip
    commands = [
        rl2_train(changed, job / "rl2"),
        [*evaluate, "--out", rel(held_out)],
        [*evaluate, "--out", rel(validation),
         *[a for v in VALIDATION_EVERY for a in ("--modality", v)]],
        ["python", "scripts/compare_strategies.py", rel(held_out / "report.json"), "rl2-newtask",
         "zeroshot", "--json", rel(compared)],
        *(controls or []),
    ]  # fmt: skip

    def headline() -> str:
        diffs = json.loads(compared.read_text())
        lines = [
            "RL^2 with `rl2-channel-memory`'s settings (the main job's `rl2` stage, the reward "
            "not read, each sensory neuron keeping its channel's statistics over 6-episode trials "
            "of new tasks) trained on all four training families, images read by colour and "
            "sentences by word (their channels keep their window alone), 12M steps (section 27's "
            f"3M per family){described}, measured on new tasks (`rl2-newtask`) of the main job's "
            "held-out modalities: IQM success over 5 seeds, episodes to 80% of source and from "
            "which it stays there [95% interval]; above `zeroshot`, mean over k >= 1 [95% "
            "interval]:",
            "",
        ]
        above = {mid: "; above zeroshot {point:+.2f} [{low:+.2f}, {high:+.2f}]".format(**d["mean"])
                 for mid, d in diffs.items()}  # fmt: skip
        lines += newtask_lines(held_out / "report.json", above)
        lines += validation_means(validation / "report.json", "rl2-newtask")
        lines += control_lines() if control_lines else []
        return "\n".join(lines)

    return study_page(name, title, commands, headline)


def rl2_failures() -> Path:
    agent = RUNS / "rl2-memory-every-family" / "rl2"
    if not agent.is_dir():
        raise SystemExit("rl2-failures: run rl2-memory-every-family first: it plays its agent")
    out = RUNS / "rl2-failures.json"
    command = ["python", "scripts/rl2_failures.py", rel(agent), "--family", "vector", "--family",
               "projected", "--variants", "100-123", "--json", rel(out)]  # fmt: skip

    def headline() -> str:
        return (
            "`rl2-memory-every-family`'s agent on new tasks (validation variants 100-123, 64 "
            "trials of 6 episodes each, a new task every episode), success: "
            + failure_lines(json.loads(out.read_text()))
        )

    return study_page("rl2-failures", "Where the reward-free RL^2 agent fails", [command],
                      headline)  # fmt: skip


def failure_lines(rows: dict) -> str:
    """``scripts/rl2_failures.py``'s JSON in a sentence per family: success over the trial's
    episodes, by the goal's distance from the start, by variant, and its Spearman correlations
    with the sensor bank."""

    def pooled(by: dict, low: int, high: int) -> str:
        got = [(p * n, n) for o, (p, n) in by.items() if low <= int(o) <= high]
        total = sum(n for _, n in got)
        return f"{sum(a for a, _ in got) / total:.2f}" if total else "none played"

    parts = []
    for family, f in rows.items():
        line = (
            f"{family}: {min(f['by_episode']):.2f}-{max(f['by_episode']):.2f} over the "
            f"trial's 6 episodes; {pooled(f['by_distance'], 1, 1)} with the goal 1 step away,"
            f" {pooled(f['by_distance'], 2, 6)} at 2-6 steps, "
            f"{pooled(f['by_distance'], 7, 99)} at 7 or more; by variant "
            f"{min(f['by_variant'].values()):.2f}-{max(f['by_variant'].values()):.2f}"
        )
        if f["spearman"]:
            line += ", Spearman with the sensor bank " + ", ".join(
                f"{k} {rho:+.2f} (p = {p:.2f})" for k, (rho, p) in f["spearman"].items()
            )
        parts.append(line)
    return "; ".join(parts)
