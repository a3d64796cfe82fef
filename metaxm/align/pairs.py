"""Paired renders: one batch of world states seen through two or more modalities.

Paired data is free in metaxm: a world state is a tensor row, and every modality family renders
any state, so the same B states can be drawn as vectors, pixels, text, ... at once. A
:class:`PairedBatch` holds those renders side by side (row ``i`` of every view shows state
``i``); the alignment losses (:mod:`metaxm.align.losses`) pull the latents of a row together
and push the other rows away.

:class:`PairedSampler` draws such batches for training: B random states of a world (random
tasks, random start cells, optionally a few random steps), rendered in ``views`` families, each
row in a variant drawn from that family's pool (normally the spec's training variants), so
that every family's encoder and adapter learn to be invariant to its variants.
:func:`render_pairs` renders given states (e.g. states an agent visited) in fixed variants; the
few-shot fits (:mod:`metaxm.align.fewshot`) use it.

State identity: :func:`state_ids` numbers the distinct states of a batch (rows with equal
features); losses can use it to avoid treating a duplicate of the positive as a negative, and
retrieval counts a retrieved duplicate as correct.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import torch
from torch import Tensor

from metaxm.envs import make_world
from metaxm.envs.base import Layout, Scene, SceneInfo
from metaxm.envs.instructions import with_instruction
from metaxm.modalities.base import VariantParams, get_family, stack_params

if TYPE_CHECKING:
    from metaxm.sampler import Split
    from metaxm.spec import Spec


@dataclass(frozen=True)
class PairedBatch:
    """B states rendered in V views (V >= 2).

    Attributes:
        scene: the B states.
        families: the family of each view.
        obs: each view's observations, (B, *observation shape of its family).
        variants: each view's variant seed per row, (B,) long.
        state_ids: (B,) long, equal for rows that show the same state (:func:`state_ids`).
    """

    scene: Scene
    families: tuple[str, ...]
    obs: tuple[Tensor, ...]
    variants: tuple[Tensor, ...]
    state_ids: Tensor

    @property
    def batch_size(self) -> int:
        return self.scene.batch_size

    @property
    def num_views(self) -> int:
        return len(self.families)


def state_ids(scene: Scene) -> Tensor:
    """(B,) long ids of the distinct states of ``scene``: rows with equal features share one.

    Exact for discrete worlds (GridNav's features are grid coordinates); in continuous worlds
    every state is its own class.
    """
    return torch.unique(scene.features, dim=0, return_inverse=True)[1]


class VariantTable:
    """The parameters of a pool of variants of one family, stacked once for fast rendering.

    Args:
        family: the family name.
        variants: the pool's variant seeds.
        info: the scenes' description (``world.scene_info``).
        device: where the stacked parameters live.
    """

    def __init__(
        self, family: str, variants: Sequence[int], info: SceneInfo, device: torch.device | str
    ) -> None:
        if not variants:
            raise ValueError(f"family {family!r}: the variant pool is empty")
        self.family = get_family(family)
        self.family.check_scene(info)
        self.seeds = torch.tensor([int(v) for v in variants], dtype=torch.long, device=device)
        self.table = stack_params([self.family.variant(int(v), info) for v in variants], device)

    def __len__(self) -> int:
        return self.seeds.shape[0]

    def params(self, index: Tensor) -> VariantParams:
        """Per-row parameters of the variants at ``index`` (B,) in the pool."""
        return {k: v[index] for k, v in self.table.items()}

    def render(self, scene: Scene, index: Tensor, generator: torch.Generator) -> Tensor:
        """Render ``scene`` with row ``i`` in pool variant ``index[i]``."""
        obs = self.family.render(scene, self.params(index), generator)
        return with_instruction(obs, scene)  # an instruction world's observations carry it


def render_pairs(
    scene: Scene,
    modalities: Sequence[tuple[str, int]],
    info: SceneInfo,
    generator: torch.Generator,
) -> PairedBatch:
    """Render the states of ``scene`` in each of the fixed ``(family, variant)`` modalities.

    Args:
        scene: B states (e.g. the states an agent visited).
        modalities: two or more ``(family, variant seed)``.
        info: the world's scene description.
        generator: drives observation noise (on the scene's device).
    """
    if len(modalities) < 2:
        raise ValueError(f"a paired batch needs >= 2 modalities, got {list(modalities)}")
    device = scene.features.device
    index = torch.zeros(scene.batch_size, dtype=torch.long, device=device)
    obs, variants = [], []
    for family, variant in modalities:
        table = VariantTable(family, [variant], info, device)
        obs.append(table.render(scene, index, generator))
        variants.append(table.seeds[index])
    families = tuple(f for f, _ in modalities)
    return PairedBatch(scene, families, tuple(obs), tuple(variants), state_ids(scene))


def select_rows(scene: Scene, index: Tensor | slice) -> Scene:
    """The rows ``index`` of a scene (features, layout and a subclass's extra tensors alike)."""
    lay = scene.layout
    layout = None
    if lay is not None:
        goal = None if lay.goal is None else lay.goal[index]
        walls = None if lay.walls is None else lay.walls[index]
        objects = None if lay.objects is None else lay.objects[index]
        layout = Layout(lay.size, lay.agent[index], goal, walls, objects)
    extra = {k: None if v is None else v[index] for k, v in _extra_fields(scene).items()}
    return dataclasses.replace(scene, features=scene.features[index], layout=layout, **extra)


def concat_scenes(scenes: Sequence[Scene]) -> Scene:
    """Stack the rows of several scenes (of one world) into one scene."""
    first = scenes[0]
    features = torch.cat([s.features for s in scenes])
    extra = {
        k: None if v is None else torch.cat([getattr(s, k) for s in scenes])
        for k, v in _extra_fields(first).items()
    }
    if first.layout is None:
        return dataclasses.replace(first, features=features, layout=None, **extra)

    def cat(name: str) -> Tensor | None:
        parts = [getattr(s.layout, name) for s in scenes]
        return None if parts[0] is None else torch.cat(parts)

    layout = Layout(first.layout.size, cat("agent"), cat("goal"), cat("walls"), cat("objects"))
    return dataclasses.replace(first, features=features, layout=layout, **extra)


def _extra_fields(scene: Scene) -> dict[str, Tensor | None]:
    """The (B, ...) tensors a Scene subclass adds (e.g. MiniGrid's ``view``)."""
    base = {"features", "layout"}
    return {f.name: getattr(scene, f.name) for f in dataclasses.fields(scene) if f.name not in base}


class PairedSampler:
    """Draws :class:`PairedBatch` es of random world states in random training modalities.

    Each call of :meth:`sample` gives every one of the ``batch_size`` environments of its own
    world a fresh task and a fresh start state (the world's reset distribution, then
    ``random_steps`` uniformly random actions), picks ``views`` distinct families of the pool
    (all of them when ``views`` is 0; families repeat only when ``views`` exceeds the pool), and
    renders each row in a variant drawn uniformly from that family's pool.

    Args:
        world: the world's config (``spec.world``).
        pool: ``{family: variant seeds}`` to draw views from, e.g. the spec's training split.
        batch_size: B, states per batch.
        views: modalities per state (0: every family of the pool).
        random_steps: random actions taken after the reset.
        seed: seeds every draw (tasks, start states, families, variants, actions, noise).
        device: where states and renders live.
    """

    def __init__(
        self,
        world: Any,
        pool: Mapping[str, Sequence[int]],
        batch_size: int,
        views: int = 2,
        random_steps: int = 0,
        seed: int = 0,
        device: torch.device | str = "cpu",
    ) -> None:
        if batch_size < 2:
            raise ValueError(f"batch_size must be >= 2, got {batch_size}")
        if not pool:
            raise ValueError("the modality pool is empty")
        self.device = torch.device(device)
        self.world = make_world(world, batch_size, device=self.device, seed=seed + 1)
        self.info = self.world.scene_info
        self.batch_size = batch_size
        self.views = len(pool) if views == 0 else views
        if self.views < 2:
            raise ValueError(f"views must be 0 or >= 2, got {views}")
        self.random_steps = random_steps
        self.tables = {f: VariantTable(f, list(v), self.info, self.device) for f, v in pool.items()}
        self.generator = torch.Generator(self.device).manual_seed(seed)
        self.render_generator = torch.Generator(self.device).manual_seed(seed + 7919)

    @classmethod
    def from_spec(
        cls,
        spec: Spec,
        split: Split = "train",
        batch_size: int | None = None,
        views: int | None = None,
        seed: int = 0,
    ) -> PairedSampler:
        """A sampler over the variants of ``split`` of ``spec`` (``align`` section defaults)."""
        from metaxm.sampler import TaskSampler

        cfg = spec.align
        pool = TaskSampler(spec).splits[split]
        return cls(
            spec.world, pool, cfg.batch_size if batch_size is None else batch_size,
            cfg.views if views is None else views, cfg.random_steps, seed, spec.device,
        )  # fmt: skip

    @property
    def families(self) -> list[str]:
        return list(self.tables)

    def sample_states(self) -> Scene:
        """B fresh random states (see the class docstring)."""
        w, g = self.world, self.generator
        w.set_tasks(w.sample_tasks(self.batch_size, g))
        w.reset()
        for _ in range(self.random_steps):
            w.step(_random_actions(w.action_space, self.batch_size, g, self.device))
        return w.scene()

    def sample(self, families: Sequence[str] | None = None) -> PairedBatch:
        """A paired batch of fresh states; ``families`` fixes the views' families."""
        scene = self.sample_states()
        names = list(families) if families is not None else self._choose_families()
        obs, variants = [], []
        for f in names:
            table = self.tables[f]
            index = torch.randint(
                0, len(table), (self.batch_size,), generator=self.generator, device=self.device
            )
            obs.append(table.render(scene, index, self.render_generator))
            variants.append(table.seeds[index])
        return PairedBatch(scene, tuple(names), tuple(obs), tuple(variants), state_ids(scene))

    def _choose_families(self) -> list[str]:
        names = self.families
        chosen: list[str] = []
        while len(chosen) < self.views:
            perm = torch.randperm(len(names), generator=self.generator, device=self.device)
            chosen += [names[i] for i in perm.tolist()][: self.views - len(chosen)]
        return chosen

    def state_dict(self) -> dict[str, Tensor]:
        """The generators' states (the world is re-drawn from them at every batch)."""
        return {
            "generator": self.generator.get_state(),
            "render_generator": self.render_generator.get_state(),
            "world_generator": self.world.generator.get_state(),
        }

    def load_state_dict(self, state: Mapping[str, Tensor]) -> None:
        self.generator.set_state(state["generator"])
        self.render_generator.set_state(state["render_generator"])
        self.world.generator.set_state(state["world_generator"])


def _random_actions(
    space: gym.Space, n: int, generator: torch.Generator, device: torch.device
) -> Tensor:
    """``n`` uniformly random actions of a ``Discrete`` or ``Box`` action space."""
    if isinstance(space, gym.spaces.Discrete):
        return torch.randint(0, int(space.n), (n,), generator=generator, device=device)
    if isinstance(space, gym.spaces.Box):
        low = torch.as_tensor(space.low, dtype=torch.float32, device=device)
        high = torch.as_tensor(space.high, dtype=torch.float32, device=device)
        u = torch.rand((n, *space.shape), generator=generator, device=device)
        return low + u * (high - low)
    raise ValueError(f"random actions need a Discrete or Box action space, got {space}")
