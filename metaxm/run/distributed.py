"""torch.distributed glue for ``torchrun --nproc_per_node=N -m metaxm train SPEC ...``.

How a run is split: the ranks share out the spec's *training families*. Every trainer keeps one
environment batch per family (PPO and RL^2: ``train.num_envs`` environments; MAML: the family's
share of ``maml.meta_batch`` tasks), each with its own seeded streams of randomness (world,
render, actions). Rank ``r`` of ``N`` collects the families ``families[r::N]``, so the ranks
collect disjoint slices of the global batch whose union is exactly what one process collects.
Every rank builds the same agent from the same seed (and rank 0's parameters are broadcast on
top, for safety); after each backward pass the gradients are summed over the ranks
(:func:`all_reduce_gradients`) before clipping and the optimizer step, so every rank applies
the same update and a run on N processes equals the run on one up to the order of float sums.
Rank 0 logs and checkpoints; per-family state (environments, generators) is gathered to it
(:func:`gather_dict`), and every rank restores its own part on ``--resume``.

What is not split: one family's batch (a family is the unit, so there are at most as many
ranks as training families, and the load is only as balanced as the families' costs) and the
final evaluation (rank 0 alone). With a single process (no ``WORLD_SIZE`` or ``WORLD_SIZE=1``)
every helper here is a no-op.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import Tensor

from metaxm.errors import ConfigError
from metaxm.trainer_checks import FITS

T = TypeVar("T")

SUMMED = ("episodes",)
"""Metric bases summed over ranks (counts of this rank's own episodes); see
:func:`merge_metrics`."""


@dataclass(frozen=True)
class DistContext:
    """What :func:`setup` did.

    Attributes:
        rank: this process's rank (0 without torch.distributed).
        world_size: the number of processes (1 without torch.distributed).
        owned: whether :func:`setup` created the process group (and :func:`teardown` ends it).
    """

    rank: int = 0
    world_size: int = 1
    owned: bool = False


def active() -> bool:
    """Whether this process is one of several in an initialised process group."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank (0 when not distributed)."""
    return dist.get_rank() if active() else 0


def world_size() -> int:
    """The number of processes (1 when not distributed)."""
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    """Whether this process logs and writes files (rank 0)."""
    return rank() == 0


def setup(device: str, timeout_s: float = 600.0) -> DistContext:
    """Join torchrun's process group when ``WORLD_SIZE`` > 1 (gloo on CPU, nccl on CUDA).

    torchrun sets ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and
    ``MASTER_PORT``; with ``device: cuda`` each process uses the GPU ``LOCAL_RANK``. A process
    group created by the caller (e.g. a test) is used as it is and left to the caller.
    """
    if dist.is_available() and dist.is_initialized():
        return DistContext(dist.get_rank(), dist.get_world_size(), owned=False)
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return DistContext()
    if not dist.is_available():
        raise ConfigError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    cuda = torch.device(device).type == "cuda"
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(
        backend="nccl" if cuda else "gloo", timeout=datetime.timedelta(seconds=timeout_s)
    )
    return DistContext(dist.get_rank(), dist.get_world_size(), owned=True)


def teardown(context: DistContext) -> None:
    """End the process group if :func:`setup` created it."""
    if context.owned and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    """Wait for every rank (no-op when not distributed)."""
    if active():
        dist.barrier()


def local_families(families: Sequence[str]) -> list[str]:
    """The training families this rank collects: ``families[rank::world_size]``."""
    return list(families[rank() :: world_size()])


UNSPLIT_ALGOS = FITS
"""Trainers that fit on every family themselves, with no :func:`local_families` share-out."""


def check_spec(spec: Any, families: Sequence[str]) -> None:
    """Refuse what a distributed run cannot split (one line each, naming the setting).

    Raises:
        ConfigError: more ranks than training families, the alignment auxiliary loss, or
            a trainer that does not share out its families (``metafit``, ``selffit``,
            ``priorfit``: every rank would repeat the whole run).
    """
    n = world_size()
    if n <= 1:
        return
    if spec.algo in UNSPLIT_ALGOS:
        raise ConfigError(
            f"algo: {spec.algo} does not share its work out under torchrun (every rank would "
            "repeat the whole run); run it as one process, metaxm train SPEC"
        )
    if n > len(families):
        raise ConfigError(
            f"torchrun: {n} processes but only {len(families)} training families "
            f"({', '.join(families)}); ranks share out whole families, so use at most "
            f"--nproc_per_node={len(families)} (in total over all nodes)"
        )
    if spec.align.weight > 0:
        raise ConfigError(
            "align.weight > 0 is not supported under torchrun yet (the auxiliary loss draws "
            "its own batch on every rank); set align.weight=0 or run one process"
        )


def broadcast_parameters(tensors: Iterable[Tensor]) -> None:
    """Overwrite every rank's tensors with rank 0's (in place)."""
    if not active():
        return
    with torch.no_grad():
        for t in tensors:
            dist.broadcast(t.data, src=0)


def all_reduce_gradients(params: Iterable[Tensor]) -> None:
    """Sum the gradients of ``params`` over the ranks, in place, as one flat buffer.

    A parameter without a gradient on this rank (a family's encoder that only another rank
    used) takes part as zeros and gets the sum, so every rank ends with the same gradients; one
    that no rank used keeps ``grad = None``, as in a single process.
    """
    if not active():
        return
    params = [p for p in params if p.requires_grad]
    if not params:
        return
    grads = [(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params]
    used = torch.tensor([float(p.grad is not None) for p in params], device=grads[0].device)
    flat = torch.cat([*grads, used.to(grads[0].dtype)])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    offset = 0
    used = flat[-len(params) :].tolist()
    for i, p in enumerate(params):
        n = p.numel()
        # a parameter no rank used keeps no gradient, as in one process (Adam then skips it)
        p.grad = flat[offset : offset + n].view_as(p).clone() if used[i] > 0 else None
        offset += n


def all_reduce_sum(values: dict[str, float]) -> dict[str, float]:
    """Sum a dict of floats over the ranks (every rank must pass the same keys)."""
    if not active() or not values:
        return dict(values)
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=_comm_device())
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return dict(zip(keys, t.tolist(), strict=True))


def _comm_device() -> torch.device:
    """Where a tensor must live to cross ranks: nccl moves only CUDA tensors."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())  # nccl: CUDA by definition
    return torch.device("cpu")


def all_gather(obj: T) -> list[T]:
    """Every rank's ``obj`` (picklable), in rank order; ``[obj]`` when not distributed."""
    if not active():
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, _to_cpu(obj))
    return out


def gather_dict(local: dict[str, Any]) -> dict[str, Any]:
    """The union of every rank's ``local`` dict (keys are disjoint: per-family state)."""
    if not active():
        return local
    merged: dict[str, Any] = {}
    for part in all_gather(local):
        merged.update(part)
    return merged


def merge_metrics(per_rank: list[dict[str, float]]) -> dict[str, float]:
    """One record from every rank's metrics of the same update.

    ``episodes...`` counts are summed; a key whose base ends in
    ``return``, ``success`` or ``length`` is averaged weighted by its ``episodes<suffix>``
    (``return/vector`` by ``episodes/vector``, ``post_return`` by ``episodes``); anything else
    (losses, already equal on every rank after the all-reduce, and timings) is averaged over
    the ranks that report it.
    """
    if len(per_rank) == 1:
        return dict(per_rank[0])
    sums: dict[str, float] = {}
    weights: dict[str, float] = {}
    for metrics in per_rank:
        for key, value in metrics.items():
            base, sep, suffix = key.partition("/")
            weight = 1.0
            if base in SUMMED:
                weight = 0.0
            elif base.endswith(("return", "success", "length")):
                weight = metrics.get(f"episodes{sep}{suffix}", metrics.get("episodes", 1.0))
            if weight == 0.0:
                sums[key] = sums.get(key, 0.0) + (value if base in SUMMED else 0.0)
                weights.setdefault(key, 0.0)
                continue
            sums[key] = sums.get(key, 0.0) + weight * value
            weights[key] = weights.get(key, 0.0) + weight
    out: dict[str, float] = {}
    for key, total in sums.items():
        w = weights[key]
        if key.partition("/")[0] in SUMMED:
            out[key] = total
        elif w > 0:
            out[key] = total / w
    return out


def _to_cpu(obj: Any) -> Any:
    """``obj`` with every tensor moved to the CPU (what crosses ranks and goes to disk)."""
    if isinstance(obj, Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


__all__ = [
    "DistContext",
    "active",
    "all_gather",
    "all_reduce_gradients",
    "all_reduce_sum",
    "barrier",
    "broadcast_parameters",
    "check_spec",
    "gather_dict",
    "is_main",
    "local_families",
    "merge_metrics",
    "rank",
    "setup",
    "teardown",
    "world_size",
]
