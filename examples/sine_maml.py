"""Sine-wave regression with MAML against a pretrained baseline (Finn et al. 2017, section 5.1).

A task is ``y = A sin(x - phi)`` with amplitude ``A ~ U[0.1, 5]``, phase ``phi ~ U[0, pi]`` and
inputs ``x ~ U[-5, 5]``; the model sees ``K = 10`` points of a new task and takes one gradient
step (lr 0.01) on them. The net is the paper's MLP, 1-40-40-1 with ReLU; the outer loop is Adam
(1e-3) over meta-batches of 25 tasks. ``metaxm.meta.MAML`` runs the learn2learn loop.

The baseline is the same net pretrained on all tasks' points at once (no inner loop), then
fine-tuned with the same SGD step. Both are scored on fixed held-out tasks: the mean squared
error on 100 query points per task after 0, 1 and 10 steps on the task's K support points.

Departures from the paper: fewer meta-iterations by default (the paper trains 70,000); the query
set of a meta-training task has K points, as in the paper's code.

    python examples/sine_maml.py --iterations 2000
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from tqdm import tqdm

from metaxm.meta import MAML

Batch = tuple[Tensor, Tensor, Tensor, Tensor]
"""Support inputs and targets, query inputs and targets, each (tasks, points, 1)."""


def sample_batch(tasks: int, shots: int, queries: int, gen: torch.Generator) -> Batch:
    """``tasks`` random sine tasks with ``shots`` support and ``queries`` query points each."""
    amp = torch.empty(tasks, 1, 1).uniform_(0.1, 5.0, generator=gen)
    phase = torch.empty(tasks, 1, 1).uniform_(0.0, math.pi, generator=gen)
    x = torch.empty(tasks, shots + queries, 1).uniform_(-5.0, 5.0, generator=gen)
    y = amp * torch.sin(x - phase)
    return x[:, :shots], y[:, :shots], x[:, shots:], y[:, shots:]


def make_net(hidden: int, seed: int) -> nn.Sequential:
    """The paper's regressor: 1-hidden-hidden-1, ReLU, initialised from ``seed``."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return nn.Sequential(
            nn.Linear(1, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, 1),
        )


def meta_train(
    net: nn.Module,
    iterations: int,
    meta_batch: int,
    shots: int,
    inner_lr: float,
    outer_lr: float,
    first_order: bool,
    gen: torch.Generator,
    progress: bool,
) -> None:
    """MAML: per task one SGD step on the support points, the query loss backpropagated."""
    maml = MAML(net, lr=inner_lr, first_order=first_order)
    opt = torch.optim.Adam(maml.parameters(), lr=outer_lr)
    for _ in tqdm(range(iterations), desc="MAML", disable=not progress):
        xs, ys, xq, yq = sample_batch(meta_batch, shots, shots, gen)
        for i in range(meta_batch):
            learner = maml.clone()
            learner.adapt(F.mse_loss(learner(xs[i]), ys[i]))
            (F.mse_loss(learner(xq[i]), yq[i]) / meta_batch).backward()
        opt.step()
        opt.zero_grad()


def pretrain(
    net: nn.Module,
    iterations: int,
    meta_batch: int,
    shots: int,
    outer_lr: float,
    gen: torch.Generator,
    progress: bool,
) -> None:
    """The baseline: regression on every point of the same task stream, no inner loop."""
    opt = torch.optim.Adam(net.parameters(), lr=outer_lr)
    for _ in tqdm(range(iterations), desc="baseline", disable=not progress):
        xs, ys, xq, yq = sample_batch(meta_batch, shots, shots, gen)
        loss = F.mse_loss(net(torch.cat([xs, xq], 1)), torch.cat([ys, yq], 1))
        opt.zero_grad()
        loss.backward()
        opt.step()


def evaluate(net: nn.Module, test: Batch, inner_lr: float, steps: Sequence[int]) -> list[float]:
    """Mean query MSE over the test tasks after each number of SGD steps in ``steps``."""
    xs, ys, xq, yq = test
    mse = torch.zeros(len(steps))
    maml = MAML(net, lr=inner_lr, first_order=True)
    for i in range(xs.shape[0]):
        learner = maml.clone()
        for n in range(max(steps) + 1):
            if n in steps:
                with torch.no_grad():
                    mse[steps.index(n)] += F.mse_loss(learner(xq[i]), yq[i])
            learner.adapt(F.mse_loss(learner(xs[i]), ys[i]))
    return (mse / xs.shape[0]).tolist()


def main(
    iterations: int = 2000,
    seed: int = 0,
    first_order: bool = False,
    meta_batch: int = 25,
    shots: int = 10,
    inner_lr: float = 0.01,
    outer_lr: float = 1e-3,
    hidden: int = 40,
    test_tasks: int = 100,
    steps: Sequence[int] = (0, 1, 10),
    progress: bool = True,
) -> dict[str, list[float]]:
    """Meta-train MAML and pretrain the baseline from one init; score both on held-out tasks.

    Returns:
        ``{"maml": [...], "baseline": [...]}``, the mean query MSE after each of ``steps``.
    """
    steps = list(steps)
    test = sample_batch(test_tasks, shots, 100, torch.Generator().manual_seed(10_000 + seed))
    maml_net, base_net = make_net(hidden, seed), make_net(hidden, seed)
    meta_train(
        maml_net,
        iterations,
        meta_batch,
        shots,
        inner_lr,
        outer_lr,
        first_order,
        torch.Generator().manual_seed(seed),
        progress,
    )
    pretrain(
        base_net,
        iterations,
        meta_batch,
        shots,
        outer_lr,
        torch.Generator().manual_seed(seed),
        progress,
    )
    results = {
        "maml": evaluate(maml_net, test, inner_lr, steps),
        "baseline": evaluate(base_net, test, inner_lr, steps),
    }
    name = "FOMAML" if first_order else "MAML"
    print(f"query MSE on {test_tasks} held-out tasks, K={shots}, inner lr {inner_lr}")
    print(f"{'steps':<10}" + "".join(f"{n:>9}" for n in steps))
    for label, key in ((name, "maml"), ("baseline", "baseline")):
        print(f"{label:<10}" + "".join(f"{v:>9.3f}" for v in results[key]))
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=2000, help="outer steps of each model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--first-order", action="store_true", help="FOMAML")
    parser.add_argument("--meta-batch", type=int, default=25, help="tasks per outer step")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    main(args.iterations, args.seed, args.first_order, args.meta_batch)
