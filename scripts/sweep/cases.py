"""The bad-input sweep's cases, by category: YAML attacks, ``--set`` forms, numeric fields and
real runs at their edges, spec mutations, ``--out`` paths, checkpoints and command flags."""

from __future__ import annotations

from pathlib import Path

import yaml

from sweep.core import MARKER, REPO, Case, bad
from sweep.fixtures import (
    copy_run,
    damaged,
    fixtures_of,
    out_files,
    payload_file,
    run_importing_a_module,
    write,
)

TINY = "{fx}/tiny.yaml"


CHECK = ["--out", "{dir}/out", "--check"]


OUT = bad.out_paths("{dir}/paths")  # made in each case's folder by out_files


def yaml_cases() -> list[Case]:
    """Spec files that attack the YAML reader (``--check``; a few as real runs and ``main``)."""
    tiny_text = yaml.safe_dump(bad.TINY, sort_keys=False)
    quick = {"billion laughs", "recursive alias", "non-UTF-8 byte", "duplicate top-level section",
             "python tag os.system"}  # fmt: skip
    cases = []
    for name, data in bad.yaml_attacks(Path("{marker}"), tiny_text).items():

        def setup(case_dir: Path, data: bytes = data) -> None:
            marker = str(fixtures_of(case_dir) / MARKER).encode()
            (case_dir / "spec.yaml").write_bytes(data.replace(b"{marker}", marker))

        spec = "{dir}/spec.yaml"
        cases.append(Case("yaml", name, ["train", spec, *CHECK], setup=setup, quick=name in quick))
        if name in ("billion laughs", "billion laughs inside main.runs", "python tag os.system"):
            cases += [
                Case("yaml", f"{name} (train)", ["train", spec, "--out", "{dir}/out"], setup=setup),
                Case("yaml", f"{name} (main)", ["main", spec, "--out", "{dir}/out"], setup=setup,
                     timeout=120),
            ]  # fmt: skip
    bom = b"\xef\xbb\xbf" + tiny_text.encode()
    # fmt: off
    cases += [
        Case("yaml", "50 MB spec", ["train", "{dir}/spec.yaml", *CHECK],
             setup=write("spec.yaml", lambda p: bad.big_spec(p, 50)), timeout=120, quick=True),
        Case("yaml", "2 MB spec", ["train", "{dir}/spec.yaml", *CHECK],
             setup=write("spec.yaml", lambda p: bad.big_spec(p, 2))),
        Case("yaml", "spec is /dev/zero", ["train", "/dev/zero", *CHECK]),
        Case("yaml", "spec is /proc/self/status", ["train", "/proc/self/status", *CHECK]),
        Case("yaml", "spec is a folder", ["train", "{dir}", *CHECK]),
        Case("yaml", "no such spec", ["train", "{dir}/missing.yaml", *CHECK]),
        Case("yaml", "UTF-8 BOM (control)", ["train", "{dir}/spec.yaml", *CHECK],
             setup=write("spec.yaml", bom), absurd=False, valid=True),
        Case("yaml", "empty file, all defaults (control)", ["train", "{dir}/spec.yaml", *CHECK],
             setup=write("spec.yaml", b""), absurd=False, valid=True),
        Case("yaml", "the TINY spec (control)", ["train", TINY, *CHECK], absurd=False,
             valid=True, quick=True),
    ]
    # fmt: on
    return cases


def set_cases() -> list[Case]:
    """``--set`` values and keys, and the issue's silent acceptances, through ``--check`` (a few
    through real runs and ``main``, where a check that comes too late would show)."""
    import torch

    laughs = bad.billion_laughs()
    # fmt: off
    absurd = [
        ("billion laughs as --set", f"log.project={laughs}"),
        ("billion laughs as a main.runs --set", f"main.runs.ppo={laughs}"),
        ("100 KB value", "log.project=" + "x" * 100_000),
        ("anchor and alias in a value", "ppo={lr: &a 0.1, ent_coef: *a}"),
        ("ppo.lr=1e6", "ppo.lr=1e6"), ("ppo.lr=1e309 (inf)", "ppo.lr=1e309"),
        ("ppo.lr=nan (a string)", "ppo.lr=nan"), ("seed of 5000 digits", "seed=" + "9" * 5000),
        ("no '='", "ppo.lr"), ("empty key", "=1"), ("key '.'", ".=1"),
        ("double dot", "ppo..lr=1"), ("a key under a number", "ppo.lr.x=1"),
        ("section as a number", "ppo=3"), ("section as a list", "ppo=[1]"),
        ("world null", "world=null"), ("mixed-type keys", "ppo={1: 2, x: 3}"),
        ("an int key in main.runs", "main.runs.ppo={1: 2}"),
        ("an int key in modalities", "modalities.train={1: 1}"), ("a unicode key", "été=1"),
        ("unknown world", "world={name: garbage}"),
        ("minigrid unknown env_id", "world={name: minigrid, env_id: garbage}"),
        ("minigrid without actions", "world={name: minigrid, actions: []}"),
        ("gym unknown env_id", "world={name: gym, env_id: garbage}"),
        ("unknown strategy in evaluate.strategies", "evaluate.strategies=[garbage]"),
        ("device garbage", "device=garbage"), ("device ''", "device=''"),
        ("device meta", "device=meta"),
        ("train.init_from missing", "train.init_from={dir}/missing"),
        ("align.init_from missing", "align.init_from={dir}/missing"),
        ("log.mode garbage", "log.mode=garbage"),
        ("main.runs unknown stage", "main.runs={garbage: {}}"),
        ("main.runs.ppo total_steps -1", "main.runs.ppo={train.total_steps: -1}"),
        ("main.runs.maml total_steps nan", "main.runs.maml={train.total_steps: .nan}"),
        ("main.runs.ppo adapters -1", "main.runs.ppo={agent.adapters: -1}"),
        ("main.runs link to a later stage", "main.runs.ppo={align.init_from: '{out}/maml'}"),
        ("main.runs value a date", "main.runs.ppo={seed: 2024-01-01}"),
        ("main.runs value bytes", "main.runs.ppo={log.project: !!binary aGVsbG8=}"),
        ("evaluate.eval_episodes=1e12", "evaluate.eval_episodes=1e12"),
        ("align.fit_lr=1e12", "align.fit_lr=1e12"), ("maml.inner_lr=-1", "maml.inner_lr=-1"),
        ("ppo.target_kl=nan", "ppo.target_kl=.nan"),
        ("agent.init_log_std=nan", "agent.init_log_std=.nan"),
        ("held-out family that cannot render", "modalities.heldout_families={minigrid_rgb: 1}"),
        ("no training family", "modalities.train={}"),
        ("held-out variant of no training family", "modalities.heldout_variants={audio: 1}"),
        ("evaluate.budgets decreasing", "evaluate.budgets=[4, 2]"),
    ]
    if not torch.cuda.is_available():
        absurd.append(("device cuda without CUDA", "device=cuda"))
    fine = [
        ("ppo.lr=1e-3", "ppo.lr=1e-3"), ("ppo.lr=1.0e-3", "ppo.lr=1.0e-3"),
        ("ppo.lr=1E-3", "ppo.lr=1E-3"), ("another world", "world={name: pointnav}"),
        ("main.runs emptied", "main.runs={}"), ("a quoted '1e6'", "log.project='1e6'"),
    ]
    quick = {"billion laughs as --set", "mixed-type keys", "minigrid unknown env_id",
             "unknown strategy in evaluate.strategies", "ppo.lr=1e-3"}
    cases = [Case("set", n, ["train", TINY, *CHECK, "--set", v], quick=n in quick)
             for n, v in absurd]
    cases += [Case("set", n, ["train", TINY, *CHECK, "--set", v], absurd=False, valid=True,
                   quick=n in quick) for n, v in fine]
    run = ["--out", "{dir}/out"]
    cases += [
        Case("set", "ppo=null (all defaults: either is fine)",
             ["train", TINY, *CHECK, "--set", "ppo=null"], absurd=False),
        Case("set", "modalities=null (all defaults: either is fine)",
             ["train", TINY, *CHECK, "--set", "modalities=null"], absurd=False),
        Case("set", "seed=1e6 (a float for an int: a refusal is fine)",
             ["train", TINY, *CHECK, "--set", "seed=1e6"], absurd=False),
        Case("set", "a key, then a key under it", ["train", TINY, *CHECK, "--set", "x=1",
             "--set", "x.y=2"]),
        Case("set", "pretrain --check of a one-family spec",
             ["pretrain", "{fx}/one-family.yaml", *CHECK]),
        Case("set", "pretrain of a one-family spec", ["pretrain", "{fx}/one-family.yaml", *run]),
        Case("set", "train.init_from missing (train)",
             ["train", TINY, *run, "--set", "train.init_from={dir}/missing"]),
        Case("set", "device garbage (train)", ["train", TINY, *run, "--set", "device=garbage"]),
        Case("set", "unknown strategy in evaluate.strategies (main)",
             ["main", TINY, *run, "--set", "evaluate.strategies=[garbage]"], timeout=180),
        Case("set", "main.runs.ppo total_steps -1 (main)",
             ["main", TINY, *run, "--set", "main.runs.ppo={train.total_steps: -1}"], timeout=180),
    ]
    # fmt: on
    return cases


QUICK_NUMERIC = {
    ("ppo.lr", "nan"), ("ppo.lr", "inf"), ("agent.hidden", "1e9"), ("world.size<gridnav>", "1e30"),
    ("evaluate.seeds", "0"), ("train.total_steps", "-1"), ("maml.inner_lr", "-1"),
    ("ppo.target_kl", "nan"),
}  # fmt: skip
"""The (field, probe) pairs of the numeric sweep that ``--quick`` runs."""


def numeric_cases() -> list[Case]:
    """Every numeric field at every probe (``--check``), switched to its world first."""
    cases = []
    for key in bad.numeric_keys():
        where = f"{key.key}<{key.world}>" if key.world else key.key
        for probe in bad.NUMERIC_PROBES:
            argv = ["train", TINY, *CHECK]
            for item in [*bad.world_sets(key), f"{key.key}={bad.probe_text(key, probe)}"]:
                argv += ["--set", item]
            cases.append(Case("numeric", f"{where}={probe}", argv, absurd=bad.is_absurd(
                key.key, probe), quick=(where, probe) in QUICK_NUMERIC))  # fmt: skip
    for world in sorted({k.world for k in bad.numeric_keys() if k.world}):
        argv = ["train", TINY, *CHECK, "--set", f"world={{name: {world}}}"]
        cases.append(Case("numeric", f"world {world} (control)", argv, absurd=False, valid=True))
    return cases


def numeric_run_cases() -> list[Case]:
    """Real short runs at the edges of the ranges: accepting is fine; a traceback, a hang or a
    many-line error is not."""
    # fmt: off
    runs = [
        ("ppo.lr=1", ["ppo.lr=1"]),
        ("ppo.lr=1 without gradient clipping", ["ppo.lr=1", "ppo.max_grad_norm=1000000"]),
        ("maml.inner_lr=100", ["algo=maml", "maml.inner_lr=100"]),
        ("world.horizon=10000", ["world.horizon=10000"]),
        ("train.num_envs=65536", ["train.num_envs=65536", "train.total_steps=1"]),
        ("ppo.num_steps=100000 (100,000 steps, not 256)",
         ["ppo.num_steps=100000", "train.num_envs=1"]),
        ("agent.hidden=8192 x 32 layers", ["agent.hidden=8192", "agent.layers=32"]),
        ("loss_limit=1, stop on divergence", ["train.loss_limit=1",
                                              "train.stop_on_divergence=true"]),
        ("train.total_steps=1", ["train.total_steps=1"]),
        ("ppo.num_minibatches=65536", ["ppo.num_minibatches=65536"]),
        ("align.batch_size=65536 (pretrain)", ["align.batch_size=65536",
                                               "align.pretrain_updates=1"]),
    ]
    # fmt: on
    cases = []
    for name, sets in runs:
        argv = ["pretrain" if "pretrain" in name else "train", TINY, "--out", "{dir}/out"]
        for item in sets:
            argv += ["--set", item]
        cases.append(Case("numeric-run", name, argv, absurd=False, may_write=("out",),
                          timeout=300, quick=name == "ppo.lr=1"))  # fmt: skip
    return cases


def mutation_cases() -> list[Case]:
    """``tasks/gridnav.yaml`` changed once: each key deleted, each number at -1 and NaN, each
    section repeated, an anchor and alias on each section."""
    text = (REPO / "tasks" / "gridnav.yaml").read_text()
    spec = ["train", "{dir}/spec.yaml", *CHECK]
    cases = []

    def paths(d: dict, prefix: tuple = ()) -> list[tuple]:
        return [p for k, v in d.items() for p in [(*prefix, k),
                *(paths(v, (*prefix, k)) if isinstance(v, dict) else [])]]  # fmt: skip

    for path in paths(yaml.safe_load(text)):
        dotted = ".".join(map(str, path))
        field_key = str(path[-1]) if path[:2] == ("main", "runs") else dotted
        for what, value in (("deleted", None), ("-1", -1), ("nan", float("nan"))):
            data = yaml.safe_load(text)
            node = data
            for part in path[:-1]:
                node = node[part]
            old = node[path[-1]]
            if what == "deleted":
                del node[path[-1]]
            elif isinstance(old, bool) or not isinstance(old, (int, float)):
                continue
            else:
                node[path[-1]] = value
            body = yaml.safe_dump(data, sort_keys=False).encode()
            absurd = what != "deleted" and bad.is_absurd(field_key, what)
            quick = dotted == "main.runs.ppo.train.total_steps" and what != "deleted"
            cases.append(Case("mutation", f"{dotted} {what}", spec, setup=write("spec.yaml", body),
                              absurd=absurd, quick=quick))  # fmt: skip
    lines = text.splitlines()
    tops = [i for i, ln in enumerate(lines) if ln[:1].isalpha()]
    for j, i in enumerate(tops):
        end = tops[j + 1] if j + 1 < len(tops) else len(lines)
        section = lines[i].split(":")[0]
        repeated = "\n".join(lines + lines[i:end]) + "\n"
        cases.append(Case("mutation", f"{section} repeated", spec,
                          setup=write("spec.yaml", repeated.encode())))  # fmt: skip
        if lines[i].rstrip().endswith(":"):
            anchored = [*lines[:i], lines[i].rstrip() + " &s", *lines[i + 1 :], "extra: *s"]
            cases.append(Case("mutation", f"{section} anchored and aliased", spec,
                              setup=write("spec.yaml", "\n".join(anchored).encode())))  # fmt: skip
    gridnav = str(REPO / "tasks" / "gridnav.yaml")
    cases.append(Case("mutation", "tasks/gridnav.yaml (control)", ["train", gridnav, *CHECK],
                      absurd=False, valid=True))  # fmt: skip
    return cases


def out_cases() -> list[Case]:
    """``--out`` paths of every command that writes (real runs: a wrong acceptance writes)."""
    adapt = ["adapt", "{fx}/ppo", "--modality", "vector:1", "--strategy", "zeroshot"]
    cases = []
    folders = {n: p for n, p in OUT.items() if n != "root"}  # see bad.OUT_PATHS
    for command in ("train", "pretrain", "main"):
        for name, path in folders.items():
            quick = command == "train" and name in ("empty", "existing file")
            cases.append(Case("out", f"{command} --out {name}", [command, TINY, "--out", path],
                              setup=out_files, timeout=120, quick=quick))  # fmt: skip
        cases.append(Case("out", f"{command} into a finished run", [command, TINY, "--out",
                          "{dir}/run"], setup=copy_run("ppo"), timeout=120))  # fmt: skip
    for name in ("empty", "blank", "root", "current folder", "nested under a file", "/proc"):
        cases += [
            Case("out", f"adapt --out {name}", [*adapt, "--out", OUT[name]], setup=out_files,
                 quick=name == "empty"),
            Case("out", f"render --out {name}", ["render", TINY, "--out", OUT[name]],
                 setup=out_files),
        ]  # fmt: skip
    for name in ("empty", "blank", "existing file", "nested under a file",
                 "folder with metrics.jsonl", "folder of other files", "/dev/null"):  # fmt: skip
        cases.append(Case("out", f"evaluate --out {name}", ["evaluate", "{fx}/ppo", "--out",
                          OUT[name]], setup=out_files, timeout=120))  # fmt: skip
    # fmt: off
    cases += [
        Case("out", "train --resume --out a folder of other files",
             ["train", TINY, "--out", OUT["folder of other files"], "--resume"], setup=out_files),
        Case("out", "train --resume --out a missing folder",
             ["train", TINY, "--out", "{dir}/missing", "--resume"]),
        Case("out", "train --resume of another spec's run",
             ["train", TINY, "--out", "{dir}/run", "--resume", "--set", "seed=4"],
             setup=copy_run("ppo")),
        Case("out", "adapt --out an existing file (overwritten, as -o does)",
             [*adapt, "--out", OUT["existing file"]], setup=out_files, absurd=False,
             may_write=("paths/a_file.txt",)),
    ]
    # fmt: on
    return cases


def checkpoint_cases() -> list[Case]:
    """Damaged, foreign and malicious checkpoints through every loader."""
    resume = ["train", TINY, "--out", "{dir}/run", "--resume"]
    adapt = ["--modality", "vector:1", "--strategy", "zeroshot", "--out", "{dir}/r.json"]
    fresh = ["train", TINY, "--out", "{dir}/out", "--set"]
    cases = []
    for how in ("flip", "truncate", "zero", "garbage", "no-sidecar", "payload"):
        # fmt: off
        cases += [
            Case("checkpoints", f"--resume, newest {how}", resume, setup=damaged("ppo", how),
                 quick=how in ("flip", "payload")),
            Case("checkpoints", f"evaluate, newest {how}",
                 ["evaluate", "{dir}/run", "--out", "{dir}/report"], setup=damaged("ppo", how)),
            Case("checkpoints", f"adapt, newest {how}", ["adapt", "{dir}/run", *adapt],
                 setup=damaged("ppo", how)),
            Case("checkpoints", f"train.init_from, newest {how}",
                 [*fresh, "train.init_from={dir}/run"], setup=damaged("ppo", how)),
            Case("checkpoints", f"align.init_from, pretraining's newest {how}",
                 [*fresh, "align.init_from={dir}/run"], setup=damaged("pretrain", how)),
            Case("checkpoints", f"pretrain --resume, newest {how}",
                 ["pretrain", TINY, "--out", "{dir}/run", "--resume"],
                 setup=damaged("pretrain", how)),
        ]
        # fmt: on
    for other, name in (("maml", "another algorithm"), ("ppo_h32", "another agent size"),
                        ("pretrain", "pretraining")):  # fmt: skip
        setup = damaged("ppo", f"foreign-{other}")
        cases.append(Case("checkpoints", f"--resume with {name}'s checkpoint", resume,
                          setup=setup, quick=other == "maml"))  # fmt: skip
    # fmt: off
    cases += [
        Case("checkpoints", "pretrain --resume with a PPO checkpoint",
             ["pretrain", TINY, "--out", "{dir}/run", "--resume"],
             setup=damaged("pretrain", "foreign-ppo")),
        Case("checkpoints", "--resume-last-good past a flipped newest (control)",
             [*resume, "--resume-last-good"], setup=damaged("ppo", "flip"), absurd=False,
             valid=True, may_write=("run",), timeout=120),
        Case("checkpoints", "--resume-last-good with every checkpoint flipped",
             [*resume, "--resume-last-good"], setup=damaged("ppo", "flip", every=True)),
        Case("checkpoints", "evaluate a pretraining run",
             ["evaluate", "{fx}/pretrain", "--out", "{dir}/report"], quick=True),
        Case("checkpoints", "adapt a pretraining run", ["adapt", "{fx}/pretrain", *adapt]),
        Case("checkpoints", "adapt a MAML run by zeroshot", ["adapt", "{fx}/maml", *adapt]),
        Case("checkpoints", "train.init_from a pretraining run (its matching parts: fine)",
             [*fresh, "train.init_from={fx}/pretrain"], absurd=False, may_write=("out",)),
        Case("checkpoints", "align.init_from a PPO run (its encoders: fine)",
             [*fresh, "align.init_from={fx}/ppo"], absurd=False, may_write=("out",)),
        Case("checkpoints", "evaluate a plain pickle with a checksum",
             ["evaluate", "{dir}/x.pkl", "--out", "{dir}/report"],
             setup=payload_file("x.pkl", torch_format=False)),
        Case("checkpoints", "adapt a torch payload with a checksum",
             ["adapt", "{dir}/x.pt", *adapt], setup=payload_file("x.pt"), quick=True),
        Case("checkpoints", "evaluate, in its folder, a run whose spec imports a module there",
             ["evaluate", "run", "--out", "report"], setup=run_importing_a_module),
        Case("checkpoints", "adapt, in its folder, a run whose spec imports a module there",
             ["adapt", "run", *adapt], setup=run_importing_a_module),
        Case("checkpoints", "train.init_from a torch payload with a checksum",
             [*fresh, "train.init_from={dir}/x.pt"], setup=payload_file("x.pt")),
    ]
    # fmt: on
    return cases


def flag_cases() -> list[Case]:
    """The flags of adapt, evaluate, render and bench, and the parser's own errors."""
    adapt = ["adapt", "{fx}/ppo", "--out", "{dir}/r.json"]
    vz = ["--modality", "vector:1", "--strategy", "zeroshot"]
    ev = ["evaluate", "{fx}/ppo", "--out", "{dir}/report"]
    big = str(10**23)
    # fmt: off
    rows = [
        ("adapt --episodes -1", [*adapt, *vz, "--episodes=-1"]),
        ("adapt --modality garbage", [*adapt, "--modality", "garbage", "--strategy", "zeroshot"]),
        ("adapt --modality of an unknown family", [*adapt, *vz, "--modality", "garbage:1"]),
        ("adapt --modality the agent cannot read", [*adapt, *vz, "--modality", "audio:1"]),
        ("adapt --modality with a huge variant", [*adapt, *vz, "--modality", f"vector:{big}"]),
        ("adapt --seed huge", [*adapt, *vz, f"--seed={big}"]),
        ("adapt --strategy garbage", [*adapt, *vz, "--strategy", "garbage"]),
        ("adapt --strategy maml of a PPO run", [*adapt, *vz, "--strategy", "maml"]),
        ("adapt --strategy finetune --episodes 1e9",
         [*adapt, *vz, "--strategy", "finetune", "--episodes=1000000000"]),
        ("adapt --device garbage", [*adapt, *vz, "--device", "garbage"]),
        ("adapt a missing checkpoint", ["adapt", "{dir}/missing.pt", *vz]),
        ("evaluate --seeds 0", [*ev, "--seeds", "0"]),
        ("evaluate --seeds -1", [*ev, "--seeds", "-1"]),
        ("evaluate --seeds 2**31", [*ev, "--seeds", str(2**31)]),
        ("evaluate --seeds 1e6", [*ev, "--seeds", "1000000"]),
        ("evaluate --strategy garbage", [*ev, "--strategy", "garbage"]),
        ("evaluate --set evaluate.workers=0", [*ev, "--set", "evaluate.workers=0"]),
        ("evaluate --set evaluate.seeds=1e6", [*ev, "--set", "evaluate.seeds=1000000"]),
        ("evaluate --spec missing", [*ev, "--spec", "{dir}/missing.yaml"]),
        ("evaluate --device garbage", [*ev, "--device", "garbage"]),
        ("evaluate a missing run", ["evaluate", "{dir}/missing", "--out", "{dir}/report"]),
        ("evaluate --add-family garbage", [*ev, "--add-family", "garbage"]),
        ("evaluate --add-family of a family it reads", [*ev, "--add-family", "vector"]),
        ("adapt --out the run's own summary.json",
         ["adapt", "{fx}/ppo", *vz, "--out", "{fx}/ppo/summary.json"]),
        ("render --variants 0", ["render", TINY, "--out", "{dir}/r.png", "--variants=0"]),
        ("render --out r.txt", ["render", TINY, "--out", "{dir}/r.txt"]),
        ("render --variants 1e23", ["render", TINY, "--out", "{dir}/r.png", f"--variants={big}"]),
        ("render --set world.size=1000",
         ["render", TINY, "--out", "{dir}/r.png", "--set", "world.size=1000"]),
        ("bench envs --threads 0", ["bench", "envs", "--quick", "--threads", "0"]),
        ("bench envs --worlds garbage", ["bench", "envs", "--quick", "--worlds", "garbage"]),
        ("bench envs --families garbage", ["bench", "envs", "--quick", "--families", "garbage"]),
        ("bench envs --batches 0", ["bench", "envs", "--quick", "--batches=0"]),
        ("bench envs --variant -1", ["bench", "envs", "--quick", "--variant=-1"]),
        ("bench envs --json ''", ["bench", "envs", "--quick", "--json", ""]),
        ("bench maml --threads 0", ["bench", "maml", "--quick", "--threads", "0"]),
        ("bench maml --worlds gym", ["bench", "maml", "--quick", "--worlds", "gym"]),
        ("bench garbage", ["bench", "garbage"]),
        ("no command", []),
        ("an unknown command", ["garbage"]),
        ("train without --out", ["train", TINY]),
    ]
    quick = {"adapt --modality with a huge variant", "evaluate --seeds 2**31",
             "evaluate --strategy garbage", "bench envs --worlds garbage"}
    cases = [Case("flags", n, a, quick=n in quick, timeout=90) for n, a in rows]
    cases.append(Case("flags", "adapt --episodes 1e23 by zeroshot (it takes none: fine)",
                      [*adapt, *vz, f"--episodes={big}"], absurd=False, may_write=("r.json",)))
    # fmt: on
    return cases
