"""``make results`` jobs on how the reward-free RL^2 agent reads a goal's channel: where its
failures lie on the grid, how they move with the goal channel's gain, and the agent trained to
read each channel on the scale of its own values (``docs/transfer-studies.md`` section 45)."""

from __future__ import annotations

import json
from pathlib import Path

from studies.results.page import RUNS, rel, study_page
from studies.results.reward_free import every_family_study, failure_lines
from studies.results.rl2_stage import MEMORY_EVERY_FAMILY

GAINS = (1.0, 0.5, 2.0)
"""The goal channels' gains the counterfactuals play: the middle of the vector family's range
(log-uniform on 0.5-2) and its two ends."""


def gain_commands(agent: Path, stem: str) -> tuple[list[list[str]], list[tuple[str, Path]]]:
    """``scripts/rl2_failures.py`` on ``agent``: vector and projected as they come, then vector
    with both goal channels at each of :data:`GAINS`; the commands, and each one's label and
    JSON."""
    failures = ["python", "scripts/rl2_failures.py", rel(agent), "--variants", "100-123"]
    out = [("as drawn", RUNS / f"{stem}.json")]
    commands = [[*failures, "--family", "vector", "--family", "projected", "--json",
                 rel(out[0][1])]]  # fmt: skip
    for g in GAINS:
        out.append((f"goal gain {g:g}", RUNS / f"{stem}-goal{g:g}.json"))
        commands.append([*failures, "--family", "vector", "--gain", f"goal_row={g:g}", "--gain",
                         f"goal_col={g:g}", "--json", rel(out[-1][1])])  # fmt: skip
    return commands, out


def ring_lines(out: list[tuple[str, Path]]) -> list[str]:
    """A line per run and family: success by the goal's ring, ring 2 over the trial, and the
    cells a failed episode stood on."""
    lines = []
    for label, path in out:
        for family, f in json.loads(path.read_text()).items():
            rings = ", ".join(f"{r}: {p:.2f}" for r, (p, _) in f["by_ring"].items())
            middle = " / ".join(f"{x:.2f}" for x in f["ring_by_episode"].get("2", []))
            cells = f["failed_cells"]
            searched = "no episode failed" if cells is None else (
                f"a failed episode stood on {cells:.1f} distinct cells"
            )  # fmt: skip
            lines.append(
                f"- {family}, {label}: {min(f['by_episode']):.2f}-{max(f['by_episode']):.2f} "
                f"over the trial; by the goal's ring (0 the centre, 3 the border) {rings}; ring "
                f"2 over the trial {middle}; {searched}"
            )
    return lines


def rl2_goal_gain() -> Path:
    """Where ``rl2-memory-every-family``'s agent fails on the grid, and its failures with the
    goal's channels at gain 1, 0.5 and 2 in every vector variant, beside pixels and text."""
    agent = RUNS / "rl2-memory-every-family" / "rl2"
    if not agent.is_dir():
        raise SystemExit("rl2-goal-gain: run rl2-memory-every-family first: it plays its agent")
    commands, out = gain_commands(agent, "rl2-goal-gain")
    out.append(("as drawn", RUNS / "rl2-goal-gain-pixels-text.json"))
    commands.append(["python", "scripts/rl2_failures.py", rel(agent), "--variants", "100-123",
                     "--family", "pixels", "--family", "text", "--json",
                     rel(out[-1][1])])  # fmt: skip

    def headline() -> str:
        return "\n".join([
            "`rl2-memory-every-family`'s agent on new tasks (validation variants 100-123, 64 "
            "trials of 6 episodes each, a new task every episode), success, with every vector "
            "variant's goal channels as drawn and at gain 1, 0.5 and 2 (their signs kept):",
            "",
            *ring_lines(out),
        ])  # fmt: skip

    return study_page("rl2-goal-gain", "How the reward-free RL^2 agent reads a goal's channel",
                      commands, headline)  # fmt: skip


def scaled_value_study(seed: int = 0) -> Path:
    """``rl2-memory-every-family``'s agent trained with ``agent.sensory_scaled`` (each neuron
    also reads its channel's value over the trial's root mean square of it) at training
    ``seed``, measured the same way, with ``rl2-goal-gain``'s counterfactuals on it."""
    name = "rl2-scaled-value" + (f"-seed{seed}" if seed else "")
    controls, out = gain_commands(RUNS / name / "rl2", f"{name}-failures")

    def where_it_fails() -> list[str]:
        rows = json.loads(out[0][1].read_text())
        return ["", "Where it fails (`scripts/rl2_failures.py`, as `rl2-failures`): "
                + failure_lines(rows), "", *ring_lines(out)]  # fmt: skip

    return every_family_study(
        name, "RL^2 with channel memory, reading every family, each value on its trial's scale"
        + (f" (training seed {seed})" if seed else ""),
        {**MEMORY_EVERY_FAMILY, "agent.sensory_scaled": True, **({"seed": seed} if seed else {})},
        ", each sensory neuron also reading its channel's value divided by the root mean square "
        "of its values over the trial (`agent.sensory_scaled`)"
        + (f", training seed {seed}" if seed else ""),
        controls, where_it_fails,
    )  # fmt: skip


def rl2_scaled_value() -> Path:
    """:func:`scaled_value_study` at training seed 0 (section 46)."""
    return scaled_value_study(0)


def rl2_scaled_value_seed1() -> Path:
    """:func:`scaled_value_study` at training seed 1."""
    return scaled_value_study(1)


def rl2_scaled_value_seed2() -> Path:
    """:func:`scaled_value_study` at training seed 2."""
    return scaled_value_study(2)
