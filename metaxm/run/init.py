"""Starting a run's agent from earlier runs: ``align.init_from`` and ``train.init_from``.

The run loop calls :func:`initialise_agent` before a fresh run's first update, for every
trainer alike, and writes what it returns to ``RUNDIR/init.json``, so a run says which stage
it started from. :func:`init_agent_from` copies another run's agent part by part (a family's
encoder, a family's adapter, the token encoder, the core) where every parameter of the part
matches in name and shape.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from metaxm.errors import CheckpointError
from metaxm.run.checkpoint import load_checkpoint, resolve_checkpoint

if TYPE_CHECKING:
    from metaxm.spec import Spec

log = logging.getLogger(__name__)


def initialise_agent(agent: Any, spec: Spec) -> dict[str, dict[str, Any]]:
    """Start a fresh run's agent from earlier runs: ``align.init_from`` (a pretraining run's
    encoders and adapters, :func:`metaxm.align.pretrain.load_pretrained`), then
    ``train.init_from`` (any run's matching parts, :func:`init_agent_from`).

    Returns:
        per setting used, ``{"source": path, "parameters": count, "names": [...]}``: what
        ``RUNDIR/init.json`` records, so a run says which stage it started from.
    """
    done: dict[str, dict[str, Any]] = {}
    if spec.align.init_from:
        from metaxm.align.pretrain import load_pretrained

        names = load_pretrained(agent, spec.align.init_from)
        done["align.init_from"] = {"source": str(spec.align.init_from), "names": names}
    if spec.train.init_from:
        names = init_agent_from(agent, spec.train.init_from)
        done["train.init_from"] = {"source": str(spec.train.init_from), "names": names}
    for key, record in done.items():
        record["parameters"] = len(record["names"])
        log.info("%s: %d parameters from %s", key, record["parameters"], record["source"])
    return done


def init_agent_from(agent: torch.nn.Module, source: str | Path) -> list[str]:
    """Copy into ``agent`` every part of the agent in ``source`` (a run directory or a
    checkpoint) whose parameters all match in name and shape (see ``TrainConfig.init_from``);
    returns the names copied.

    Raises:
        CheckpointError: no checkpoint, an unsafe or corrupt one, or nothing in it matches.
    """
    path = resolve_checkpoint(source)
    state = load_checkpoint(path, map_location=next(agent.parameters()).device)
    weights = state.get("trainer", {}).get("agent") or {}
    own = agent.state_dict()

    def part(name: str) -> str:  # encoders.<family>, adapters.<family>, token_encoder, core
        head, _, rest = name.partition(".")
        return f"{head}.{rest.partition('.')[0]}" if head in ("encoders", "adapters") else head

    fits = {k for k, v in weights.items() if k in own and own[k].shape == v.shape}
    whole = {part(k) for k in own} - {part(k) for k in own if k not in fits}
    names = [k for k in own if k in fits and part(k) in whole]
    if not names:
        raise CheckpointError(f"{path}: no agent parameter matches this run's agent")
    agent.load_state_dict({k: weights[k] for k in names}, strict=False)
    return names
