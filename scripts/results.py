#!/usr/bin/env python
"""Regenerate the README's headline numbers (``make results``), each page naming its command,
commit and wall-clock time.

python scripts/results.py                 # all: about three hours on a 2-core CPU machine
python scripts/results.py --only sine     # one job (--only may repeat); see JOBS
make results ONLY="main sine"             # the same through make (installs .venv first)

* ``main``: ``metaxm main tasks/gridnav.yaml`` -> ``docs/main-report.md`` (the transfer report);
* ``maml-pointnav``: ``metaxm train tasks/maml-pointnav.yaml`` -> ``docs/results/maml-pointnav.md``
  (pre- and post-adaptation return, mean of the last 10 meta-iterations of the training log);
* ``sine``: ``python examples/sine_maml.py --iterations 2000`` -> ``docs/results/sine-maml.md``;
* ``bench-maml``, ``bench-envs``: ``metaxm bench maml`` and ``metaxm bench envs --quick``;
* ``alignment``: ``metaxm pretrain tasks/gridnav.yaml`` (retrieval and probe R^2);
* ``ppo-baseline``: ``metaxm train tasks/ppo-gridnav.yaml`` on vector, pixels and text;
* ``rl2-hidden``: ``metaxm train tasks/rl2-gridnav-hidden.yaml`` and ``scripts/rl2_trials.py``
  (5M steps: about half an hour alone);
* ``rl2-rewire``: ``scripts/rl2_trials.py --rewire between|within`` on that run;
* ``language``: ``scripts/lang_paraphrases.py tasks/lang-ppo.yaml`` over 5 seeds;
* ``sensory-cartpole``: ``metaxm train tasks/sensory-cartpole.yaml`` (5M steps: about 35
  minutes) and ``scripts/sensory_cartpole.py`` (unpermuted vs re-wired, 100 episodes each);
* ``sensory-gridnav``: ``metaxm train tasks/sensory-gridnav.yaml`` with the sensory and with
  the MLP encoders (6M steps each: about 55 minutes together), and ``scripts/rl2_trials.py``
  on both;
* ``bench-sensory``: ``metaxm bench sensory``;
* ``selffit``: ``metaxm train ... --set algo=selffit`` from the ``main`` job's source agent
  (run ``main`` first), ``metaxm evaluate`` with ``zeroshot``, ``align`` and ``selffit``, and
  ``scripts/compare_strategies.py`` (reward-free adaptation against no adaptation);
* ``selfread``: ``metaxm evaluate`` of the ``main`` job's agents on its held-out modalities
  (the ``vector``, ``projected``, ``pixels`` and ``text`` variants and the ``audio`` family)
  with ``zeroshot``, ``translate`` and ``selfread`` (a reward-free, pair-free reading), and
  ``scripts/compare_strategies.py`` (selfread against no adaptation);
* ``rl2-reward-free``: the main job's ``rl2`` stage with ``agent.reward_input: false`` and 3M
  steps (run ``main`` first; about 14 minutes), ``metaxm evaluate`` beside the main job's source
  agent with ``zeroshot`` and ``rl2`` on its held-out modalities and on validation variants
  100-103, and ``scripts/compare_strategies.py``;
* ``rl2-every-family``: the same reward-free ``rl2`` trained on all four training families for
  6M steps, reading images by colour and sentences by word (run ``main`` first; about 40
  minutes to train and 5 to evaluate), evaluated the same way on the held-out modalities and
  on validation variants 100-103 of every family, and blind (``scripts/rl2_trials.py
  --blind``);
* ``rl2-channel-memory``: that reward-free ``rl2`` with each sensory neuron keeping its
  channel's statistics over the trial, on 6-episode trials with a new task each episode, 6M
  steps (run ``main`` first; about 35 minutes to train), evaluated the same way and on new
  tasks (``rl2-newtask``);
* ``rl2-family-out``: that ``rl2`` meta-trained on one vector family at a time (``vector``,
  then ``projected``; run ``main`` first; about 35 minutes each to train), measured on new
  tasks of the main job's held-out modalities and of validation variants, the other family
  one its meta-training never saw;
* ``rl2-memory-every-family``: that ``rl2`` trained on all four training families, reading
  images by colour and sentences by word (run ``main`` first; about 100 minutes to train),
  measured on new tasks of the held-out modalities and of validation variants of every family;
* ``permutation-case``: ``scripts/permutation_case.py`` (#15's constructed case: a pure
  permutation of a known ``vector`` variant fitted from one CartPole episode; about 2 minutes);
* ``ridge-prior``: ``scripts/ridge_prior.py`` on the ``main`` job's source agent (run ``main``
  first): the paired fit solved in closed form under a meta-learned prior (``priorfit``'s, one
  family at a time), against its start, least squares, ``align`` and ``translate`` on validation
  variants;
* ``one-episode-bound``: ``scripts/one_episode_bound.py`` (about 1 minute): the most any paired
  reading of k episodes reaches on vector and projected, from the families' own priors;
* ``reward-signal``: ``scripts/reward_signal.py`` on the ``main`` job (run ``main`` first; about
  15 seconds): the rewarded episodes among ``maml``'s k = 8 support episodes on each held-out
  modality, beside a random walk's;
* ``rl2-failures``: ``scripts/rl2_failures.py`` on ``rl2-memory-every-family``'s agent (run
  that first; about 25 seconds): its success on new tasks by the goal's distance and by variant;
* ``translate-priors``: ``scripts/translate_priors.py`` on the ``main`` job's source agent (run
  ``main`` first; about 2.5 minutes): ``translate`` on validation variants with its learned
  family priors, without them, and with the projected posterior's calibration moved;
* ``walls``: the main job's pretraining and source agent on GridNav with inner walls, then
  ``selfread`` and ``translate`` on validation variants (about 9 minutes).

Each page holds its headline number and the command's own printed summary.

Runs go to ``runs/results/<name>`` (an existing finished run is reused: delete it to rerun).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "runs" / "results"
METAXM = [sys.executable, "-m", "metaxm"]


def commit() -> str:
    """The commit the numbers come from (``+dirty`` when the tree has uncommitted changes)."""
    sha = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(["git", "diff", "--quiet", "HEAD"], cwd=ROOT).returncode != 0
    return (sha or "unknown") + ("+dirty" if dirty else "")


def run(command: list[str]) -> float:
    """Run ``command`` from the repository root; its wall-clock seconds."""
    print("$", " ".join(command), flush=True)
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True)
    return time.perf_counter() - start


STAMP: dict[str, str] = {}
"""``commit``: the commit the jobs run at, taken once when the script starts."""


def header(title: str, command: str, seconds: float) -> str:
    return (
        f"# {title}\n\n_Generated by `make results` (`{command}`) at commit {STAMP['commit']}, "
        f"{seconds:.0f} s wall-clock on this machine. Rerun the command to check it._\n\n"
    )


def main_job() -> Path:
    out = RUNS / "main"
    command = ["metaxm", "main", "tasks/gridnav.yaml", "--out", str(out.relative_to(ROOT))]
    seconds = run(METAXM + command[1:])
    report = (out / "report" / "report.md").read_text()
    body = report.split("\n", 1)[1].lstrip("\n")  # drop the report's own title
    page = ROOT / "docs" / "main-report.md"
    page.write_text(header("Transfer report", " ".join(command), seconds) + body)
    return page


def maml_pointnav() -> Path:
    out = RUNS / "maml-pointnav"
    command = ["metaxm", "train", "tasks/maml-pointnav.yaml", "--out", str(out.relative_to(ROOT))]
    seconds = run(METAXM + reusing(command)[1:])
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    last = rows[-10:]
    pre = sum(r["pre_return"] for r in last) / len(last)
    post = sum(r["post_return"] for r in last) / len(last)
    page = ROOT / "docs" / "results" / "maml-pointnav.md"
    page.parent.mkdir(exist_ok=True)
    page.write_text(
        header("MAML on PointNav", " ".join(command), seconds)
        + "| meta-iterations | env steps | pre-adaptation return | post-adaptation return |\n"
        + "|---|---|---|---|\n"
        + f"| last 10 of {len(rows)} (training log) | {rows[-1]['step']:,} | {pre:.1f} | "
        + f"**{post:.1f}** |\n\npytorch-maml-rl's MAML-TRPO reaches about -16 post-adaptation "
        + "after ~50 iterations (its README's figure); `docs/maml.md` has the set-up.\n"
    )
    return page


def sine() -> Path:
    sys.path.insert(0, str(ROOT / "examples"))
    from sine_maml import main as sine_main

    start = time.perf_counter()
    result = sine_main(iterations=2000, seed=0, progress=False)
    seconds = time.perf_counter() - start
    steps = (0, 1, 10)
    lines = ["| query MSE after steps | " + " | ".join(map(str, steps)) + " |", "|---|---|---|---|"]
    for name, values in result.items():
        lines.append(f"| {name} | " + " | ".join(f"{v:.3f}" for v in values) + " |")
    page = ROOT / "docs" / "results" / "sine-maml.md"
    page.parent.mkdir(exist_ok=True)
    command = "python examples/sine_maml.py --iterations 2000"
    page.write_text(header("MAML sine regression", command, seconds) + "\n".join(lines) + "\n")
    return page


def captured(command: list[str]) -> tuple[str, float]:
    """Run ``command`` from the repository root; its output (also echoed) and wall-clock."""
    print("$", " ".join(command), flush=True)
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    sys.stdout.write(proc.stdout)
    if proc.returncode:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"{' '.join(command)} failed with status {proc.returncode}")
    return proc.stdout, time.perf_counter() - start


def reusing(command: list[str]) -> list[str]:
    """``command`` with ``--resume`` added where it is a ``metaxm train`` or ``pretrain`` whose
    ``--out`` holds a run already (a finished one is reused, an interrupted one continued)."""
    if command[:2] not in (["metaxm", "train"], ["metaxm", "pretrain"]):
        return command
    if "--resume" in command or "--out" not in command:
        return command
    out = ROOT / command[command.index("--out") + 1]
    return [*command, "--resume"] if (out / "config.yaml").exists() else command


def study_page(
    name: str, title: str, commands: list[list[str]], headline: Callable[[], str]
) -> Path:
    """Run ``commands`` (``metaxm ...`` or ``python ...``), then write ``docs/results/NAME.md``:
    the commands, the commit, the wall-clock, ``headline()`` and the last command's output."""
    outputs, seconds = [], 0.0
    for i, command in enumerate(commands):
        command = commands[i] = reusing(command)  # decided now: an earlier command may make it
        argv = METAXM + command[1:] if command[0] == "metaxm" else [sys.executable, *command[1:]]
        out, took = captured(argv)
        outputs.append(out)
        seconds += took
    shown = " && ".join(" ".join(c) for c in commands)
    tail = "\n".join(outputs[-1].strip().splitlines()[-40:])
    page = ROOT / "docs" / "results" / f"{name}.md"
    page.parent.mkdir(exist_ok=True)
    page.write_text(header(title, shown, seconds) + headline() + f"\n\n```\n{tail}\n```\n")
    return page


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def bench_maml() -> Path:
    out = RUNS / "bench-maml.json"
    RUNS.mkdir(parents=True, exist_ok=True)

    def headline() -> str:
        d = json.loads(out.read_text())
        cases = ", ".join(
            f"{c['case']} {c['speedup_vs_higher']:.1f}x ({c['path']})" for c in d["cases"]
        )
        return (
            "metaxm's meta-gradient (the path each case's spec runs) vs `higher`: primary case "
            f"**{d['speedup_vs_higher']:.1f}x**; {cases}; largest gradient difference "
            f"{d['max_abs_grad_diff']:.1e} (the primary case's path vs `higher`)."
        )

    command = ["metaxm", "bench", "maml", "--json", rel(out)]
    return study_page("bench-maml", "MAML meta-gradient speed", [command], headline)


def bench_envs() -> Path:
    out = RUNS / "bench-envs.json"
    RUNS.mkdir(parents=True, exist_ok=True)

    def headline() -> str:
        rows = json.loads(out.read_text())
        top = max(r["batch"] for r in rows)
        ratios = [r["ratio"] for r in rows if r["batch"] == top]
        return (
            f"batched worlds vs gymnasium's `SyncVectorEnv` at {top:,} environments, every world x "
            f"family: **{min(ratios):,.0f}x to {max(ratios):,.0f}x** the steps/s."
        )

    command = ["metaxm", "bench", "envs", "--quick", "--json", rel(out)]
    return study_page("bench-envs", "Batched worlds speed", [command], headline)


def alignment() -> Path:
    out = RUNS / "align-gridnav"

    def headline() -> str:
        ev = json.loads((out / "representation.json").read_text())
        return (
            f"retrieval top-1, worst pair of training families: **{ev['top1_min']:.3f}**; "
            f"linear probe R^2, worst family: **{ev['probe_r2_min']:.3f}**."
        )

    command = ["metaxm", "pretrain", "tasks/gridnav.yaml", "--out", rel(out)]
    return study_page("alignment", "Cross-modal alignment", [command], headline)


def ppo_baseline() -> Path:
    families = ("vector", "pixels", "text")
    commands = [
        ["metaxm", "train", "tasks/ppo-gridnav.yaml", "--set", f"modalities.train={{{f}: 1}}",
         "--out", rel(RUNS / f"ppo-gridnav-{f}")]
        for f in families
    ]  # fmt: skip

    def headline() -> str:
        cells = []
        for f in families:
            ev = json.loads((RUNS / f"ppo-gridnav-{f}" / "eval.json").read_text())
            cells.append(f"{f} {ev['success']:.2f}")
        return "PPO from scratch, success of the deterministic policy: " + ", ".join(cells) + "."

    return study_page("ppo-baseline", "PPO from scratch", commands, headline)


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


def language() -> Path:
    out = RUNS / "lang-paraphrases"
    command = ["python", "scripts/lang_paraphrases.py", "tasks/lang-ppo.yaml", "--seeds", "0",
               "1", "2", "3", "4", "--out", rel(out)]  # fmt: skip

    def headline() -> str:
        rows = json.loads((out / "paraphrases.json").read_text())
        cells = []
        for encoder in dict.fromkeys(r["encoder"] for r in rows):
            mine = [r for r in rows if r["encoder"] == encoder]
            train = sum(r["train"]["success"] for r in mine) / len(mine)
            held = sum(r["heldout"]["success"] for r in mine) / len(mine)
            cells.append(f"{encoder} {train:.3f} -> **{held:.3f}**")
        return (
            "success on the training paraphrases -> on held-out ones, mean of "
            f"{len(rows) // max(len(cells), 1)} seeds: " + ", ".join(cells) + "."
        )

    return study_page("language", "Instruction encoders on held-out paraphrases", [command],
                      headline)  # fmt: skip


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


def bench_sensory() -> Path:
    out = RUNS / "bench-sensory.json"
    RUNS.mkdir(parents=True, exist_ok=True)

    def headline() -> str:
        rows = json.loads(out.read_text())["cases"]
        cells = [f"{r['case']} **{r['cost_cpu']:.2f}x**" for r in rows]
        return (
            "what the sensory encoder costs in RL^2 training, MLP-encoder steps/s over "
            "sensory-encoder steps/s in CPU time (target <= 3x): " + ", ".join(cells) + "."
        )

    command = ["metaxm", "bench", "sensory", "--json", rel(out)]
    return study_page("bench-sensory", "Sensory encoder speed", [command], headline)


def need_main(name: str, why: str) -> None:
    """Refuse in one line, naming ``why``, where the main job (its ``ppo`` run) has not run."""
    if not (RUNS / "main" / "ppo").is_dir():
        raise SystemExit(f"{name}: run the main job first (--only main): {why}")


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


def beside_main(job: Path, name: str, why: str) -> None:
    """Make ``job`` a folder of runs whose ``ppo`` is the main job's, beside the ``rl2`` run a
    study trains there; refuse in one line (naming ``why``) if the main job has not run."""
    need_main(name, why)
    job.mkdir(parents=True, exist_ok=True)
    if not (job / "ppo").exists():
        (job / "ppo").symlink_to(Path("..") / "main" / "ppo")


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
    name = "rl2-memory-every-family"
    job = RUNS / name
    beside_main(job, name, "it is measured beside its zeroshot agent")
    held_out, validation = RUNS / f"{name}-newtask", RUNS / f"{name}-validation"
    compared = RUNS / f"{name.replace('-', '_')}_vs_zeroshot.json"
    evaluate = ["metaxm", "evaluate", rel(job), "--spec", "tasks/gridnav.yaml", "--strategy",
                "zeroshot", "--strategy", "rl2-newtask"]  # fmt: skip
    commands = [
        rl2_train(MEMORY_EVERY_FAMILY, job / "rl2"),
        [*evaluate, "--out", rel(held_out)],
        [*evaluate, "--out", rel(validation),
         *[a for v in VALIDATION_EVERY for a in ("--modality", v)]],
        ["python", "scripts/compare_strategies.py", rel(held_out / "report.json"), "rl2-newtask",
         "zeroshot", "--json", rel(compared)],
    ]  # fmt: skip

    def headline() -> str:
        diffs = json.loads(compared.read_text())
        lines = [
            "RL^2 with `rl2-channel-memory`'s settings (the main job's `rl2` stage, the reward "
            "not read, each sensory neuron keeping its channel's statistics over 6-episode trials "
            "of new tasks) trained on all four training families, images read by colour and "
            "sentences by word (their channels keep their window alone), 12M steps (section 27's "
            "3M per family), measured on new tasks (`rl2-newtask`) of the main job's held-out "
            "modalities: IQM success over 5 seeds, episodes to 80% of source and from which it "
            "stays there [95% interval]; above `zeroshot`, mean over k >= 1 [95% interval]:",
            "",
        ]
        above = {mid: "; above zeroshot {point:+.2f} [{low:+.2f}, {high:+.2f}]".format(**d["mean"])
                 for mid, d in diffs.items()}  # fmt: skip
        lines += newtask_lines(held_out / "report.json", above)
        lines += validation_means(validation / "report.json", "rl2-newtask")
        return "\n".join(lines)

    title = "RL^2 with channel memory, reading every training family"
    return study_page(name, title, commands, headline)


def validation_means(report: Path, strategy: str) -> list[str]:
    """A line per family of ``report``: ``strategy``'s success at each k, the mean over its
    variants (named by their first and last seed) and evaluation seeds."""
    data = json.loads(report.read_text())
    curves: dict[str, list[list[float]]] = {}
    variants: dict[str, list[str]] = {}
    for mid, entry in data["modalities"].items():
        if strategy in entry["strategies"]:
            curves.setdefault(entry["family"], []).extend(
                entry["strategies"][strategy]["curves"]["success"]
            )
            variants.setdefault(entry["family"], []).append(mid.split(":")[1])
    return [
        f"- validation {family} {variants[family][0]}-{variants[family][-1]} (mean over variants "
        "and seeds): "
        + " / ".join(f"{sum(c[j] for c in rows) / len(rows):.2f}" for j in range(len(rows[0])))
        for family, rows in curves.items()
    ]


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


def permutation_case() -> Path:
    out = RUNS / "permutation-case"
    command = ["python", "scripts/permutation_case.py", "--out", rel(out)]

    def headline() -> str:
        errors = json.loads((out / "permutation-case.json").read_text())["errors"]
        mean = {k: sum(v) / len(v) for k, v in errors.items()}
        rows = ("metafit", "the same steps, not meta-learned", "align", "priorfit", "least squares")
        return (
            "a pure permutation of a known `vector` variant, fitted from one CartPole episode; "
            "latent error on query states over the source latents' mean square (0: recovered), "
            "mean of 8 permutations: " + ", ".join(f"{r} **{mean[r]:.2f}**" for r in rows) + "."
        )

    return study_page("permutation-case", "A pure permutation from one episode", [command],
                      headline)  # fmt: skip


def ridge_prior() -> Path:
    out = RUNS / "ridge-prior"
    command = ["python", "scripts/ridge_prior.py", rel(RUNS / "main" / "ppo"), "--seeds", "1", "2",
               "3", "4", "--out", rel(out)]  # fmt: skip

    def headline() -> str:
        rows = json.loads((out / "ridge-prior.json").read_text())["rows"]
        cells = []
        for family in ("vector", "projected", "pixels"):
            for fit in ("learned prior", "least squares", "align"):
                by_k = rows[f"{family}|{fit}"]
                mean = " / ".join(f"{sum(v) / len(v):.2f}" for v in by_k.values())
                cells.append(f"{family} {fit} {mean}")
        return (
            "success on validation variants at k = 1 / 2 / 4 (mean of 4 variants x 4 seeds): "
            + "; ".join(cells)
            + "."
        )

    return study_page("ridge-prior", "A meta-learned ridge prior for the paired fit", [command],
                      headline)  # fmt: skip


def one_episode_bound() -> Path:
    out = RUNS / "one-episode-bound"
    command = ["python", "scripts/one_episode_bound.py", "--draws", "2000", "--k", "1", "2", "4",
               "--variant", "vector:77882", "--variant", "projected:73849",
               "--out", rel(out)]  # fmt: skip

    def headline() -> str:
        table = json.loads((out / "one-episode-bound.json").read_text())
        cells = []
        for name, got in table["k=1"].items():  # "bias known": the strict bound on projected
            cells.append(f"{name}: " + ", ".join(f"{n} {m:.2f}" for n, (m, _) in got.items()))
        return (
            "the exact posterior over a new goal after k paired random-walk episodes, under the "
            "family's own variant prior (2,000 draws): how often its most probable goal is the "
            "true one (read), walking there succeeds (walk), and visiting goals in its order "
            "within one episode succeeds (search). At k = 1: "
            + "; ".join(cells)
            + " (k = 2 and 4 below)."
        )

    return study_page("one-episode-bound", "What k paired episodes can read", [command],
                      headline)  # fmt: skip


def reward_signal() -> Path:
    need_main("reward-signal", "it counts the rewards its maml stage's start collects")
    out = RUNS / "reward-signal"
    command = ["python", "scripts/reward_signal.py", rel(RUNS / "main"), "--episodes", "8",
               "--draws", "40", "--out", rel(out)]  # fmt: skip

    def headline() -> str:
        rows = json.loads((out / "reward-signal.json").read_text())["modalities"]
        got = ", ".join(f"{m} {r['maml']['rewarded_per_k']:.2f}" for m, r in rows.items())
        walk = next(iter(rows.values()))["random"]["rewarded_per_k"]
        return (
            "what maml's policy-gradient inner step has to learn from: of its 8 support episodes "
            "(40 draws), those its start (the policy before the step) ends on the goal: "
            + got
            + f"; a random walk, which reads nothing, reaches {walk:.2f}. Every other episode "
            "returns the same (the step costs of the whole horizon)."
        )

    return study_page("reward-signal", "The rewards a reward-only inner loop sees", [command],
                      headline)  # fmt: skip


def rl2_failures() -> Path:
    agent = RUNS / "rl2-memory-every-family" / "rl2"
    if not agent.is_dir():
        raise SystemExit("rl2-failures: run rl2-memory-every-family first: it plays its agent")
    out = RUNS / "rl2-failures.json"
    command = ["python", "scripts/rl2_failures.py", rel(agent), "--family", "vector", "--family",
               "projected", "--variants", "100-123", "--json", rel(out)]  # fmt: skip

    def headline() -> str:
        rows = json.loads(out.read_text())

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
        return (
            "`rl2-memory-every-family`'s agent on new tasks (validation variants 100-123, 64 "
            "trials of 6 episodes each, a new task every episode), success: " + "; ".join(parts)
        )

    return study_page("rl2-failures", "Where the reward-free RL^2 agent fails", [command],
                      headline)  # fmt: skip


def translate_priors() -> Path:
    need_main("translate-priors", "it measures translate with its agent")
    out = RUNS / "translate-priors"
    command = ["python", "scripts/translate_priors.py", rel(RUNS / "main"), "--trace",
               "projected:102", "--out", rel(out)]  # fmt: skip

    def headline() -> str:
        table = json.loads((out / "translate-priors.json").read_text())

        def at_k1(name: str, family: str) -> str:
            got = [c[1] for v, c in table[name].items() if v.startswith(family)]
            return " / ".join(f"{s:.2f}" for s in got)

        trace = table["trace projected:102"]
        moved = [n for n in table if n not in ("learned", "flat") and not n.startswith("trace")]
        best = max(moved, key=lambda n: sum(table[n][f"projected:{v}"][1] for v in (102, 103)))
        return (
            "`translate`'s success at k = 1 on validation variants 100-103, with the family "
            f"priors it learns from the training variants: vector {at_k1('learned', 'vector')}, "
            f"projected {at_k1('learned', 'projected')}; without them (`flat`): vector "
            f"{at_k1('flat', 'vector')}, projected {at_k1('flat', 'projected')}. The change of "
            f"the projected posterior's calibration that reads 102 and 103 best (`{best}`): "
            f"{at_k1(best, 'projected')} (every row below); of projected 102's failed episodes "
            f"at k = 1, {trace['stuck']} of {trace['failed']} end with the agent's reading of "
            f"itself stuck; their steps read the agent's cell right {trace['agent in failed']:.2f} "
            f"of the time ({trace['agent in successful']:.2f} in successful episodes) and the "
            f"goal right from the agent {trace['relative in failed']:.2f} "
            f"({trace['relative in successful']:.2f})."
        )

    return study_page("translate-priors", "What translate's learned priors give", [command],
                      headline)  # fmt: skip


JOBS: dict[str, Callable[[], Path]] = {
    "main": main_job,
    "maml-pointnav": maml_pointnav,
    "sine": sine,
    "bench-maml": bench_maml,
    "bench-envs": bench_envs,
    "alignment": alignment,
    "ppo-baseline": ppo_baseline,
    "rl2-hidden": rl2_hidden,
    "rl2-rewire": rl2_rewire,
    "language": language,
    "sensory-cartpole": sensory_cartpole,
    "sensory-gridnav": sensory_gridnav,
    "bench-sensory": bench_sensory,
    "selffit": selffit,
    "selfread": selfread,
    "rl2-reward-free": rl2_reward_free,
    "rl2-every-family": rl2_every_family,
    "rl2-channel-memory": rl2_channel_memory,
    "rl2-family-out": rl2_family_out,
    "rl2-memory-every-family": rl2_memory_every_family,
    "permutation-case": permutation_case,
    "ridge-prior": ridge_prior,
    "one-episode-bound": one_episode_bound,
    "reward-signal": reward_signal,
    "rl2-failures": rl2_failures,
    "translate-priors": translate_priors,
    "walls": walls,
}
"""Job name -> the function that runs it and writes its page."""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=list(JOBS), action="append", help="run only these")
    args = parser.parse_args()
    STAMP["commit"] = commit()
    for name in args.only or list(JOBS):
        print(f"{name}: wrote {JOBS[name]().relative_to(ROOT)}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
