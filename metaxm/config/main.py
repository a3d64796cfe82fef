"""MainConfig: the ``main:`` section of a spec (what the main job runs; :mod:`metaxm.pipeline`)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from metaxm.config import bounded

RUN_NAMES = ("pretrain", "ppo", "maml", "rl2", "metafit", "selffit", "priorfit")
"""The stages ``main.runs`` may name: ``pretrain`` is alignment pretraining
(:func:`metaxm.align.pretrain.pretrain`), the others ``metaxm train`` with that ``algo``."""


@dataclass(frozen=True)
class MainConfig:
    """The ``main:`` section of a spec: what the main job trains and measures.

    Attributes:
        runs: ``{run name: {dotted key: value}}``; each run trains the spec with these
            overrides (typically ``train.total_steps``) into ``OUT/<run name>``, in this
            order; ``{out}`` in a value stands for OUT, so a later stage starts from an
            earlier one (``align.init_from: "{out}/pretrain"``, ``train.init_from:
            "{out}/ppo"``); a link to a stage listed later is refused. The names are the stages
            of :data:`RUN_NAMES`: ``pretrain`` (alignment pretraining, ``metaxm pretrain``),
            ``ppo``, ``maml``, ``rl2``, ``metafit``, ``selffit``, ``priorfit`` (``metaxm
            train`` with that ``algo``). The evaluator finds the agents by name.
        workers: how many stages train at once, each in a process of its own with the spec's
            ``train.threads``; a stage starts as soon as the stages it links to through
            ``{out}`` are finished (:mod:`metaxm.run.stages`). 1 runs them one after another
            in this process, in the listed order. Every stage seeds itself, so its outputs do
            not depend on this.
        evaluate: evaluate the runs on the held-out modalities into ``OUT/report``.
        bench: run ``metaxm bench envs --quick`` into ``OUT/bench_envs.json``.
        render: draw one state in every modality into ``OUT/render.png``.
    """

    runs: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {"ppo": {"algo": "ppo"}, "maml": {"algo": "maml"}}
    )
    workers: int = bounded(1, 1, 64)
    evaluate: bool = True
    bench: bool = False
    render: bool = True

    def __post_init__(self) -> None:
        if not self.runs:
            raise ValueError(f"runs: empty; name at least one stage ({', '.join(RUN_NAMES)})")
        order = list(self.runs)
        for i, (name, overrides) in enumerate(self.runs.items()):
            for key, stage in _links(overrides):
                if stage not in order[:i]:
                    if stage == name:
                        where = "as this stage"
                    elif stage in order:
                        where = "after it"
                    else:
                        where = "not at all"
                    raise ValueError(
                        f"runs.{name}: {key} starts from {{out}}/{stage}, a stage that runs "
                        f"{where}; list {stage} before {name}"
                    )
            if name not in RUN_NAMES:
                raise ValueError(
                    f"runs.{name}: run names are {', '.join(RUN_NAMES)} (one per stage)"
                )
            if name == "pretrain":
                dotted = _dotted(overrides)
                taken = [k for k in ("algo", "align.init_from", "train.init_from") if k in dotted]
                if taken:
                    raise ValueError(
                        f"runs.pretrain: alignment pretraining starts afresh and takes no "
                        f"{taken[0]}"
                    )
                continue
            if overrides.get("algo", name) != name:
                raise ValueError(f"runs.{name}: algo must be {name!r}, got {overrides['algo']!r}")

    @property
    def links(self) -> dict[str, set[str]]:
        """Per stage of :attr:`runs`, the stages it starts from (its ``{out}/<stage>`` links)."""
        return {name: {stage for _, stage in _links(o)} for name, o in self.runs.items()}


def _dotted(overrides: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``overrides`` with nested mappings as dotted keys (``train: {init_from: x}`` ->
    ``train.init_from: x``), as :func:`metaxm.pipeline.run_spec` applies a section's mapping."""
    flat: dict[str, Any] = {}
    for key, value in overrides.items():
        if isinstance(value, dict):
            flat.update(_dotted(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _links(overrides: dict[str, Any]) -> list[tuple[str, str]]:
    """``(key, stage)`` for every value of ``overrides`` that names ``{out}/<stage>``."""
    found = []
    for key, value in _dotted(overrides).items():
        link = re.search(r"\{out\}/([^/\s]+)", value) if isinstance(value, str) else None
        if link:
            found.append((key, link.group(1)))
    return found
