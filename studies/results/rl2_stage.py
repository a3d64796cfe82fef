"""What the ``make results`` RL^2 studies share: their settings over the main job's ``rl2``
stage, the training command, the study of one such run beside the main job's agents, and the
headline lines of a new-task or validation report."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from studies.results.page import ROOT, RUNS, beside_main, rel, study_page

CHANNEL_MEMORY = {
    "agent.reward_input": False,
    "agent.sensory_memory": "trial",
    "rl2.episode_tasks": "new",
    "rl2.episodes_per_trial": 6,
    # chosen on the validation variants against 3-episode trials and the window alone
    # (docs/transfer-studies.md section 27)
    "train.total_steps": 6_000_000,
}
"""``rl2-channel-memory``'s settings over the main job's ``rl2`` stage."""


FAMILIES = ("vector", "projected", "pixels", "text")
"""The main job's training families."""


EVERY_FAMILY = {
    "agent.sensory_images": "colours",
    "agent.sensory_text": "words",
    "modalities.train": {f: 8 for f in FAMILIES},
    "modalities.heldout_variants": {f: 1 for f in FAMILIES},
}
"""A sensory ``rl2`` stage on every training family, images read by colour, sentences by word."""


MEMORY_EVERY_FAMILY = {
    **CHANNEL_MEMORY,
    **EVERY_FAMILY,
    # section 27's 3M steps per family, set before the run was seen
    "train.total_steps": 12_000_000,
}
"""``rl2-memory-every-family``'s settings over the main job's ``rl2`` stage."""


STEPS_REWARD_FREE = 3_000_000


VALIDATION_VARIANTS = [f"{f}:{v}" for f in ("vector", "projected") for v in range(100, 104)]
"""Variant seeds outside every split (``metaxm evaluate --modality``)."""


VALIDATION_EVERY = [f"{f}:{v}" for f in FAMILIES for v in range(100, 104)]
"""The same seeds of every training family."""


def rl2_train(changed: dict, out: Path) -> list[str]:
    """``metaxm train`` of the main job's ``rl2`` stage with ``changed`` settings into ``out``."""
    from metaxm.spec import load_spec

    stage = load_spec(ROOT / "tasks" / "gridnav.yaml").main.runs["rl2"]
    train = ["metaxm", "train", "tasks/gridnav.yaml", "--set", "algo=rl2"]
    for key, value in {**stage, **changed}.items():
        train += ["--set", f"{key}={json.dumps(value)}"]
    # main.runs: the spec's default stages would train ppo with it
    return [*train, "--set", "main.runs={rl2: {}}", "--out", rel(out)]


def rl2_study(
    name: str,
    title: str,
    changed: dict,
    validation_variants: list[str],
    described: str,
    controls: list[list[str]] | None = None,
    control_lines: Callable[[], list[str]] | None = None,
) -> Path:
    """The main job's ``rl2`` stage with ``changed`` settings, evaluated with ``zeroshot``
    beside the main job's source agent on its held-out modalities and on
    ``validation_variants``, and compared with the main job's own ``rl2``; ``controls`` run
    after the evaluations, and ``control_lines()`` adds their lines to the headline."""
    main, job = RUNS / "main", RUNS / name
    beside_main(job, name, "it is compared with its rl2 stage and its zeroshot agent")
    report, validation = RUNS / f"{name}-report", RUNS / f"{name}-validation"
    compared = RUNS / f"{name.replace('-', '_')}_vs_zeroshot.json"
    commands = [
        rl2_train(changed, job / "rl2"),
        ["metaxm", "evaluate", rel(job), "--strategy", "zeroshot", "--strategy", "rl2", "--out",
         rel(report)],
        ["metaxm", "evaluate", rel(job), "--strategy", "zeroshot", "--strategy", "rl2", "--out",
         rel(validation), *[a for v in validation_variants for a in ("--modality", v)]],
        *(controls or []),
        ["python", "scripts/compare_strategies.py", rel(report / "report.json"), "rl2",
         "zeroshot", "--json", rel(compared)],
    ]  # fmt: skip

    def headline() -> str:
        blind = json.loads((report / "report.json").read_text())
        seeing = json.loads((main / "report" / "report.json").read_text())
        diffs = json.loads(compared.read_text())
        lines = [
            f"{described}; data: {', '.join(blind['data']['rl2'])}), IQM success over 5 seeds, "
            "against the main job's `rl2` (which reads it) and `zeroshot`:",
            "",
        ]
        for mid, entry in blind["modalities"].items():
            if "rl2" not in entry["strategies"]:
                continue
            ks = entry["strategies"]["rl2"]["budgets"]
            main_rl2 = seeing["modalities"][mid]["strategies"].get("rl2")
            cells = {
                "reward not read": entry["strategies"]["rl2"]["iqm"]["success"]["point"],
                "reward read (main job)": main_rl2["iqm"]["success"]["point"] if main_rl2 else [],
            }
            row = "; ".join(
                f"{what}: " + (" / ".join(f"{v:.2f}" for v in values) or "not read")
                for what, values in cells.items()
            )
            diff = diffs[mid]["mean"]
            lines.append(
                f"- **{mid}** (k = {' / '.join(map(str, ks))}): {row}; `zeroshot` "
                f"{entry['strategies']['zeroshot']['iqm']['success']['point'][0]:.2f}. Above "
                f"zeroshot, averaged over k >= 1: {diff['point']:+.2f} [{diff['low']:+.2f}, "
                f"{diff['high']:+.2f}]."
            )
        lines += validation_means(validation / "report.json", "rl2")
        lines += control_lines() if control_lines else []
        lines += ["", f"The curves are in `{rel(report / 'report.md')}`."]
        return "\n".join(lines)

    return study_page(name, title, commands, headline)


def newtask_lines(report: Path, after: dict[str, str] | None = None) -> list[str]:
    """A line per modality of ``report`` that ``rl2-newtask`` measured: its IQM success curve,
    the episodes to 80% of source and those from which it stays there, with intervals, then
    ``after``'s text for that modality."""
    data = json.loads(report.read_text())
    lines = []
    for mid, entry in data["modalities"].items():
        if "rl2-newtask" not in entry["strategies"]:
            continue
        got = entry["strategies"]["rl2-newtask"]
        reach, stay = got["metrics"], got["stay_metrics"]
        cells = [f"{v['point']:.1f} [{v['low']:.1f}, {v['high']:.1f}] ({m['censored']} of "
                 f"{m['seeds']} censored)" for m in (reach, stay)
                 for v in [m["episodes_to_threshold"]]]  # fmt: skip
        lines.append(
            f"- **{mid}** (k = {' / '.join(map(str, got['budgets']))}): "
            + " / ".join(f"{v:.2f}" for v in got["iqm"]["success"]["point"])
            + f"; to 80% {cells[0]}, stays from {cells[1]}"
            + (after or {}).get(mid, "")
        )
    return lines


def validation_means(report: Path, strategy: str) -> list[str]:
    """A line per family of ``report``: ``strategy``'s success at each k, the mean over its
    variants (named by their first and last seed) and evaluation seeds."""
    data = json.loads(report.read_text())
    variants: dict[str, list[str]] = {}
    for mid, entry in data["modalities"].items():
        if strategy in entry["strategies"]:
            variants.setdefault(entry["family"], []).append(mid.split(":")[1])
    return [
        f"- validation {family} {seeds[0]}-{seeds[-1]} (mean over variants and seeds): "
        + family_mean(data, family, strategy)
        for family, seeds in variants.items()
    ]


def family_mean(data: dict, family: str, strategy: str, skip: str = "") -> str:
    """``strategy``'s success at each k, the mean over ``family``'s modalities of the report
    ``data`` (but ``skip``) and their seeds; "not measured" where it measured none."""
    rows = [
        c
        for mid, entry in data["modalities"].items()
        if entry["family"] == family and mid != skip and strategy in entry["strategies"]
        for c in entry["strategies"][strategy]["curves"]["success"]
    ]
    if not rows:
        return "not measured"
    return " / ".join(f"{sum(r[j] for r in rows) / len(rows):.2f}" for j in range(len(rows[0])))
