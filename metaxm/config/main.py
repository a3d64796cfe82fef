"""MainConfig: the ``main:`` section of a spec (what the main job runs; :mod:`metaxm.pipeline`)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

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
            ``ppo``, ``maml``, ``rl2``, ``metafit``, ``selffit`` (``metaxm train`` with that
            ``algo``). The evaluator finds the agents by name.
        evaluate: evaluate the runs on the held-out modalities into ``OUT/report``.
        bench: run ``metaxm bench envs --quick`` into ``OUT/bench_envs.json``.
        render: draw one state in every modality into ``OUT/render.png``.
    """

    runs: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {"ppo": {"algo": "ppo"}, "maml": {"algo": "maml"}}
    )
    evaluate: bool = True
    bench: bool = False
    render: bool = True

    def __post_init__(self) -> None:
        order = list(self.runs)
        for i, (name, overrides) in enumerate(self.runs.items()):
            for key, value in overrides.items():
                link = re.search(r"\{out\}/([^/\s]+)", value) if isinstance(value, str) else None
                if link and link.group(1) not in order[:i]:
                    stage = link.group(1)
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
                taken = [
                    k for k in ("algo", "align.init_from", "train.init_from") if k in overrides
                ]
                if taken:
                    raise ValueError(
                        f"runs.pretrain: alignment pretraining starts afresh and takes no "
                        f"{taken[0]}"
                    )
                continue
            if overrides.get("algo", name) != name:
                raise ValueError(f"runs.{name}: algo must be {name!r}, got {overrides['algo']!r}")
