"""TaskSampler: draws tasks = (world parameters, modality family, variant seed) from a split.

Variant seeds are assigned once per spec: for each family a generator seeded by (spec seed,
family) permutes a pool of ``VARIANT_POOL`` seeds; ``train`` takes the first ones and
``heldout_variants`` the next, so held-out variants can never occur in training. A held-out
family takes the first seeds of the same permutation (it has no training variants to avoid;
an evaluation that moves a trained family there is refused,
:func:`metaxm.evaluate.loading.check_splits`).

World parameters (a goal, a wall layout) are drawn fresh for every task from the world's own
task distribution; what is held out is the modality, not the goal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from metaxm.envs import TaskParams, make_world
from metaxm.modalities.base import variant_key
from metaxm.spec import SPLITS, Spec, Split

VARIANT_POOL = 100_000

FRESH_SEED_BASE = 1_000_000_007
"""Fresh variant seeds (a meta-learner's tasks with ``variants: fresh``, the meta-learned fits'
tasks) start here, far above the ``VARIANT_POOL`` seeds the splits draw..."""
FRESH_SEEDS = 2**30
"""...and are drawn uniformly from the ``FRESH_SEEDS`` seeds from there."""


def fresh_variant_seed(generator: torch.Generator) -> int:
    """A variant seed no split holds, drawn from ``generator`` (see :data:`FRESH_SEED_BASE`)."""
    return FRESH_SEED_BASE + int(torch.randint(0, FRESH_SEEDS, (), generator=generator))


@dataclass(frozen=True)
class Task:
    """One task: world parameters shown through one modality variant.

    Attributes:
        family: the modality family.
        variant: the variant seed.
        params: the world's task parameters, unbatched (e.g. ``goal`` of shape (2,)).
    """

    family: str
    variant: int
    params: TaskParams

    @property
    def modality_id(self) -> str:
        return f"{self.family}:{self.variant}"


class TaskSampler:
    """Seeded, reproducible draws of tasks from the splits of a :class:`Spec`.

    Args:
        spec: the task spec.
        seed: seeds the draws of :meth:`sample` (defaults to the spec's seed).
    """

    def __init__(self, spec: Spec, seed: int | None = None) -> None:
        self.spec = spec
        self.generator = torch.Generator().manual_seed(spec.seed if seed is None else seed)
        self._world = make_world(spec.world, num_envs=1, seed=spec.seed)
        self.splits: dict[Split, dict[str, list[int]]] = {s: {} for s in SPLITS}
        m = spec.modalities
        for family, n_train in m.train.items():
            pool = self._pool(family)
            n_held = m.heldout_variants.get(family, 0)
            self.splits["train"][family] = pool[:n_train]
            if n_held:
                self.splits["heldout_variants"][family] = pool[n_train : n_train + n_held]
        for family, n in m.heldout_families.items():
            self.splits["heldout_families"][family] = self._pool(family)[:n]

    def _pool(self, family: str) -> list[int]:
        g = torch.Generator().manual_seed(variant_key(family, self.spec.seed))
        return torch.randperm(VARIANT_POOL, generator=g).tolist()

    def modalities(self, split: Split) -> list[tuple[str, int]]:
        """Every (family, variant seed) of ``split``, in a fixed order."""
        return [(f, v) for f, seeds in self.splits[split].items() for v in seeds]

    def families(self, split: Split) -> list[str]:
        return list(self.splits[split])

    def world_params(self, n: int, generator: torch.Generator | None = None) -> TaskParams:
        """``n`` rows of world task parameters, batched."""
        return self._world.sample_tasks(n, generator or self.generator)

    def sample(
        self,
        split: Split,
        n: int,
        families: Sequence[str] | None = None,
        generator: torch.Generator | None = None,
        fresh: bool = False,
    ) -> list[Task]:
        """Draw ``n`` tasks from ``split``: a family uniformly, then one of its variants uniformly.

        Args:
            split: which split to draw modalities from.
            n: the number of tasks.
            families: restrict to these families of the split.
            generator: the source of randomness (the sampler's own by default).
            fresh: show each task through a new variant of its family instead, one no split
                holds (:func:`fresh_variant_seed`), as a held-out variant is new.
        """
        g = generator or self.generator
        pool = self.splits[split]
        names = list(families) if families is not None else list(pool)
        missing = [f for f in names if f not in pool]
        if not names or missing:
            raise ValueError(
                f"split {split!r} has no variants of {missing or 'any family'}; "
                f"it holds: {', '.join(pool) or 'nothing'}"
            )
        fam_idx = torch.randint(0, len(names), (n,), generator=g).tolist()
        params = self.world_params(n, g)
        tasks = []
        for i, fi in enumerate(fam_idx):
            seeds = pool[names[fi]]
            if fresh:
                v = fresh_variant_seed(g)
            else:
                v = seeds[int(torch.randint(0, len(seeds), (1,), generator=g))]
            tasks.append(Task(names[fi], v, {k: t[i] for k, t in params.items()}))
        return tasks


def batch_params(tasks: Sequence[Task], repeat: int = 1) -> TaskParams:
    """Stack the world parameters of ``tasks``, each repeated ``repeat`` times (task-major)."""
    keys = tasks[0].params.keys()
    return {k: torch.stack([t.params[k] for t in tasks]).repeat_interleave(repeat, 0) for k in keys}
