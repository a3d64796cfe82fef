"""``make results`` jobs for RL^2 in context and the sensory encoder: the hidden-goal run, its
re-wiring ablation, and the sensory encoder on re-wired CartPole and GridNav."""

from __future__ import annotations

import json
from pathlib import Path

from studies.results.page import RUNS, rel, study_page


def rl2_hidden() -> Path:
    out = RUNS / "rl2-hidden"
    commands = [
        ["metaxm", "train", "tasks/rl2-gridnav-hidden.yaml", "--out", rel(out)],
        ["python", "scripts/rl2_trials.py", rel(out), "--trials", "1000", "--out", rel(out)],
    ]

    def headline() -> str:
        study = json.loads((out / "in_context.json").read_text())["heldout_variants"]
        rows = []
        for family, entry in study.items():
            first, second = entry["episodes"][0], entry["episodes"][1]
            by_variant = entry["vs_first"][0]["by_variant"]
            rows.append(
                f"held-out {family} variants: steps to the hidden goal **{first['length'][0]:.2f} "
                f"in episode 1, {second['length'][0]:.2f} in episode 2** of a trial "
                f"({by_variant['improved']}/{by_variant['variants']} variants improve)."
            )
        return " ".join(rows)

    return study_page("rl2-hidden", "RL^2 in context (hidden goal)", commands, headline)


def rl2_rewire() -> Path:
    """The re-wiring ablation on the ``rl2-hidden`` run (trained first if it is not there)."""
    out = RUNS / "rl2-hidden"
    if not (out / "summary.json").exists():
        rl2_hidden()
    modes = ("between", "within")
    commands = [
        ["python", "scripts/rl2_trials.py", rel(out), "--trials", "1000", "--rewire", mode,
         "--out", rel(RUNS / f"rl2-rewire-{mode}")]
        for mode in modes
    ]  # fmt: skip

    def headline() -> str:
        cells = []
        for mode, folder in (("kept", out), *((m, RUNS / f"rl2-rewire-{m}") for m in modes)):
            held = json.loads((folder / "in_context.json").read_text())["heldout_variants"]
            for family, entry in held.items():
                steps = [e["length"][0] for e in entry["episodes"]]
                cells.append(f"{mode} ({family}): " + " -> ".join(f"{s:.2f}" for s in steps))
        return "held-out variants, steps per episode of a trial, by wiring: " + "; ".join(cells)

    return study_page("rl2-rewire", "RL^2: reading the sensor or remembering the task",
                      commands, headline)  # fmt: skip


def sensory_cartpole() -> Path:
    out = RUNS / "sensory-cartpole"
    commands = [
        ["metaxm", "train", "tasks/sensory-cartpole.yaml", "--out", rel(out)],
        ["python", "scripts/sensory_cartpole.py", rel(out), "--episodes", "100", "--out",
         rel(out)],
    ]  # fmt: skip

    def headline() -> str:
        rows = json.loads((out / "sensory_cartpole.json").read_text())["conditions"]
        cells = [
            f"{name} {v['mean_return']:.1f} ({100 * v['ratio_to_unpermuted']:.0f}%)"
            for name, v in rows.items()
        ]
        return (
            "CartPole-v1 through the sensory encoder, mean return of the policy's mode over 100 "
            "episodes (of unpermuted): " + ", ".join(cells) + "."
        )

    return study_page("sensory-cartpole", "The sensory encoder on re-wired CartPole", commands,
                      headline)  # fmt: skip


def sensory_gridnav() -> Path:
    runs = {e: RUNS / f"sensory-gridnav-{e}" for e in ("sensory", "family")}
    commands = []
    for encoder, out in runs.items():
        commands += [
            ["metaxm", "train", "tasks/sensory-gridnav.yaml", "--set", f"agent.encoder={encoder}",
             "--out", rel(out)],
            ["python", "scripts/rl2_trials.py", rel(out), "--trials", "1000", "--episodes", "3",
             "--out", rel(out)],
        ]  # fmt: skip

    def headline() -> str:
        cells = []
        for encoder, out in runs.items():
            study = json.loads((out / "in_context.json").read_text())
            parts = []
            for split in ("train", "heldout_variants", "heldout_families"):
                for family, entry in study[split].items():
                    if family != "all":
                        by_episode = " / ".join(f"{e['success']:.2f}" for e in entry["episodes"])
                        if split == "heldout_variants":  # the target: episode 2's success
                            second = entry["episodes"][1]
                            low, high = second["success_ci"]
                            by_episode += (
                                f" (ep 2: {second['success']:.3f} [{low:.3f}, {high:.3f}])"
                            )
                        parts.append(f"{split} {family} {by_episode}")
            timing = (out / "timing.jsonl").read_text().splitlines()[-1]
            minutes = json.loads(timing)["elapsed"] / 60
            cells.append(f"{encoder} encoder ({minutes:.0f} min of training): " + ", ".join(parts))
        return (
            "success in a trial's episodes 1 / 2 / 3 (k = 0 / 1 / 2; episode 2 on the held-out "
            "variants with its 95% Wilson interval): " + "; ".join(cells) + "."
        )

    return study_page("sensory-gridnav", "The sensory encoder on GridNav's re-wired sensors",
                      commands, headline)  # fmt: skip
