"""The main job (``metaxm main``, ``make run``): meta-train every algorithm, then evaluate.

For a spec it (1) draws one state in every modality (``OUT/render.png``), (2) runs one stage
per entry of ``main.runs`` (``OUT/<name>/``), each with the spec plus that entry's overrides,
every stage starting from the ones it links to through ``{out}`` (in order, or side by side
with ``main.workers``: :mod:`metaxm.run.stages`), (3) evaluates
the trained agents on the held-out modalities (``OUT/report/``; begun on a worker the last
stages leave idle, :mod:`metaxm.run.early_eval`) and, optionally, (4)
benchmarks the batched worlds. The default spec's stages::

    pretrain   alignment of the training families' encoders and per-variant adapters
    ppo        the source policy on that latent (align.init_from: {out}/pretrain)
    maml       MAML started from the source agent (train.init_from: {out}/ppo)
    rl2        RL^2 with the sensory encoder, on its own (no link: beside the others)
    priorfit   the paired fit's prior, meta-learned from the source agent

A finished run (one with ``summary.json``) is kept, and an interrupted one is resumed from its
last checkpoint, so running the job again after a kill continues where it stopped.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from metaxm.config import apply_overrides
from metaxm.errors import ConfigError

if TYPE_CHECKING:
    from metaxm.spec import Spec

log = logging.getLogger(__name__)


def run_spec(spec: Spec, name: str, out: str | Path = "runs/main") -> Spec:
    """The spec of run ``name``: the main spec with ``main.runs[name]`` applied, ``{out}`` in
    a string value standing for the main job's output folder (e.g. ``train.init_from:
    "{out}/ppo"`` starts a run from the PPO run's agent)."""
    from metaxm.spec import spec_from_dict, spec_to_dict

    own = spec.main.runs[name]
    flat: dict[str, Any] = {}
    for key, value in (own if name == "pretrain" else {"algo": name, **own}).items():
        _flatten(spec, key, value, flat)
    overrides = {
        k: v.replace("{out}", str(out)) if isinstance(v, str) else v for k, v in flat.items()
    }
    try:
        items = [f"{k}={json.dumps(v)}" for k, v in overrides.items()]
    except (TypeError, ValueError) as err:  # a date, bytes, a set: not a spec value
        raise ConfigError(f"main.runs.{name}: a value is not plain data ({err})") from None
    try:
        return spec_from_dict(apply_overrides(spec_to_dict(spec), items))
    except ConfigError as err:
        raise ConfigError(f"main.runs.{name}: {err}") from None


def _flatten(spec: Spec, key: str, value: Any, into: dict[str, Any]) -> None:
    """``key: value`` as dotted overrides: a mapping given for a section (``train: {total_steps:
    128}``) sets the fields it names, as ``train.total_steps: 128`` does, rather than replacing
    the section and resetting every other field; a mapping-valued field (``modalities.train``)
    is kept whole."""
    node: Any = spec
    for part in key.split("."):
        node = getattr(node, part, None)
    if isinstance(value, dict) and dataclasses.is_dataclass(node):
        for sub, inner in value.items():
            _flatten(spec, f"{key}.{sub}", inner, into)
    else:
        into[key] = value


def run_main(spec: Spec, out: str | Path, echo: Callable[[str], None] = log.info) -> dict[str, Any]:
    """Run the main job of ``spec`` into ``out``; returns what it did, with timings.

    Args:
        spec: the task spec (its ``main`` section says what to run).
        out: the output folder.
        echo: where progress lines go (the CLI prints them).
    """
    from metaxm.run.rundir import OutputLock
    from metaxm.run.stages import check_finished

    out = Path(out)
    specs = {name: run_spec(spec, name, out) for name in spec.main.runs}  # errors before work
    _check_main_out(out, specs)
    check_finished(specs, out)  # a kept stage of another spec: refused before anything runs
    with OutputLock(out):  # one main job per folder; its runs lock their own folders
        return _run_main(spec, out, specs, echo)


def _check_main_out(out: Path, specs: dict[str, Spec]) -> None:
    """Refuse an output folder holding files but none of a main job's."""
    if not out.is_dir():
        return
    names = {p.name for p in out.iterdir()} - {".metaxm.lock"}
    run = sorted(names & {"config.yaml", "checkpoints"})
    if run:  # one run's folder (its report/ looks like a main job's)
        raise ConfigError(
            f"--out {out} holds a run ({', '.join(run)}), not a main job's stages; choose a "
            "new or empty folder"
        )
    ours = {"main.json", "render.png", "report", "bench_envs.json", "logs", *specs}
    if names and not names & ours:
        shown = ", ".join(sorted(names)[:3]) + (", ..." if len(names) > 3 else "")
        raise ConfigError(
            f"--out {out} holds files but no main job ({shown}); choose a new or empty folder"
        )


def _run_main(
    spec: Spec, out: Path, specs: dict[str, Spec], echo: Callable[[str], None]
) -> dict[str, Any]:
    """:func:`run_main` once it holds ``out``."""
    from metaxm.run.stages import run_stages

    timings: dict[str, float] = {}
    started = time.perf_counter()
    cfg = spec.main
    if cfg.render:
        from metaxm.render import render_spec

        t = time.perf_counter()
        echo(f"modalities drawn in {render_spec(spec, out / 'render.png')}")
        timings["render"] = time.perf_counter() - t
    early = None
    if cfg.evaluate and cfg.workers > 1:  # a worker the last stages leave idle measures curves
        from metaxm.run.early_eval import EarlyEvaluation

        early = EarlyEvaluation(spec, out)
    timings.update(run_stages(specs, cfg.links, out, cfg.workers, echo, early))
    report: dict[str, Any] = {}
    if cfg.evaluate:
        from metaxm.evaluate.loading import load_agents
        from metaxm.evaluate.report import write_report
        from metaxm.evaluate.runner import run_evaluation

        t = time.perf_counter()
        measured = early.stop() if early is not None else {}
        if measured:
            echo(f"evaluate: {len(measured)} curves measured beside the stages")
        agents = load_agents(out, spec)
        # every curve saved as it is measured; a rerun job keeps those of an evaluation killed
        # before its report (the same agents, spec, jobs and code: metaxm.evaluate.curve_log)
        folder = out / "report"
        resume = not (folder / "report.json").is_file()
        report = run_evaluation(agents, measured=measured, report_dir=folder, resume=resume)
        paths = write_report(report, out / "report")
        timings["evaluate"] = time.perf_counter() - t
        echo(report["headline"]["text"])
        echo(f"report: {paths['md']} ({timings['evaluate']:.0f} s)")
    if cfg.bench:
        from metaxm.bench.envs import bench_envs, missed_targets, write_json

        t = time.perf_counter()
        records = bench_envs(quick=True, device=spec.device)
        echo(f"env benchmark: {write_json(records, out / 'bench_envs.json')}")
        for line in missed_targets(records):
            echo(f"env benchmark: {line}")
        timings["bench"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - started
    (out / "main.json").write_text(
        json.dumps({"seconds": timings, "workers": cfg.workers}, indent=2) + "\n"
    )
    echo(f"main job: {timings['total']:.0f} s in all; outputs in {out}/")
    return {"seconds": timings, "report": report}
