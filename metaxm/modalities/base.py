"""The modality-family contract, the family registry, and :class:`Modality` (family + variant).

A *family* (``vector``, ``pixels``, ...) turns a batch of :class:`~metaxm.envs.base.Scene` into
observations. A *variant* of a family is fully determined by ``(family, variant seed)``: its
parameters (a permutation, a palette, a cipher, ...) are drawn from a generator seeded by both,
as a dict of tensors. Families render whole batches in which every row may use a different
variant: :meth:`Family.render` takes the parameters stacked along dimension 0 (one row per
environment), so tasks with different variants of one family step together.

Every variant of a family shares one observation space (dtype, shape, bounds), so the family's
encoder sees fixed shapes; what a variant may change is written in each family's docstring.

A user-defined family is a render function plus :func:`register`::

    def render(scene, params, generator):
        return scene.features.flip(1)              # (B, D)

    register("reversed", render, lambda info: Box(-1, 1, (info.feature_dim,), np.float32))
"""

from __future__ import annotations

import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import ClassVar

import gymnasium as gym
import torch
from torch import Tensor

from metaxm.envs.base import Scene, SceneInfo

VariantParams = dict[str, Tensor]
RenderFn = Callable[[Scene, VariantParams, torch.Generator], Tensor]
SpaceFn = Callable[[SceneInfo], gym.Space]
VariantFn = Callable[[torch.Generator, SceneInfo], VariantParams]


class Family(ABC):
    """A family of modalities. Subclasses set :attr:`name` and implement the three methods."""

    name: ClassVar[str]

    @abstractmethod
    def observation_space(self, info: SceneInfo) -> gym.Space:
        """The exact space every variant's observations lie in, for scenes described by ``info``."""

    @abstractmethod
    def variant_params(self, generator: torch.Generator, info: SceneInfo) -> VariantParams:
        """Draw one variant's parameters (CPU tensors) from ``generator``."""

    @abstractmethod
    def render(self, scene: Scene, params: VariantParams, generator: torch.Generator) -> Tensor:
        """Render ``scene`` (batch B) with per-row variant ``params`` (each (B, ...)).

        ``generator`` (on the scene's device) drives any observation noise.
        """

    def variant(self, seed: int, info: SceneInfo) -> VariantParams:
        """The parameters of variant ``seed``: the same seed always gives the same variant."""
        g = torch.Generator().manual_seed(variant_key(self.name, seed))
        return self.variant_params(g, info)

    def check_scene(self, info: SceneInfo) -> None:  # noqa: B027 (optional hook)
        """Raise ValueError if this family cannot render scenes described by ``info``."""


class FunctionFamily(Family):
    """A family made from plain functions (see :func:`register`)."""

    def __init__(self, name: str, render: RenderFn, space: SpaceFn, variant: VariantFn | None):
        self.name = name  # type: ignore[misc]
        self._render, self._space, self._variant = render, space, variant

    def observation_space(self, info: SceneInfo) -> gym.Space:
        return self._space(info)

    def variant_params(self, generator: torch.Generator, info: SceneInfo) -> VariantParams:
        return {} if self._variant is None else self._variant(generator, info)

    def render(self, scene: Scene, params: VariantParams, generator: torch.Generator) -> Tensor:
        return self._render(scene, params, generator)


FAMILIES: dict[str, Family] = {}


def register_family(family: Family, overwrite: bool = False) -> Family:
    """Add a :class:`Family` instance to the registry under ``family.name``."""
    if family.name in FAMILIES and not overwrite:
        raise ValueError(f"modality family {family.name!r} is already registered")
    FAMILIES[family.name] = family
    return family


def register(
    name: str,
    render: RenderFn,
    observation_space: SpaceFn | gym.Space,
    variant: VariantFn | None = None,
    overwrite: bool = False,
) -> Family:
    """Register a modality family from a render function.

    Args:
        name: the family's name, as used in task specs and ``gymnasium.make(..., modality=)``.
        render: ``render(scene, params, generator) -> (B, *shape)`` observations.
        observation_space: the space, or a function of the :class:`SceneInfo` returning it.
        variant: ``variant(generator, info) -> params`` drawing one variant's parameters;
            without it the family has a single variant.
        overwrite: replace an existing family of that name.
    """
    space_fn = observation_space if callable(observation_space) else lambda _: observation_space
    return register_family(FunctionFamily(name, render, space_fn, variant), overwrite=overwrite)


def get_family(name: str) -> Family:
    """The registered family ``name``; a one-line ValueError listing the families otherwise."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise ValueError(
            f"unknown modality family {name!r}; registered: {', '.join(sorted(FAMILIES))}"
        ) from None


def variant_key(family: str, seed: int) -> int:
    """The generator seed of variant ``seed`` of ``family`` (distinct across families)."""
    return (zlib.crc32(family.encode()) * 1_000_003 + int(seed)) % (2**63)


def stack_params(params: Sequence[VariantParams], device: torch.device | str) -> VariantParams:
    """Stack per-environment variant parameters into (B, ...) tensors on ``device``."""
    if not params or not params[0]:
        return {}
    return {k: torch.stack([p[k] for p in params]).to(device) for k in params[0]}


def expand_params(params: VariantParams, batch: int, device: torch.device | str) -> VariantParams:
    """One variant's parameters broadcast to ``batch`` rows without copying."""
    return {k: v.to(device).unsqueeze(0).expand(batch, *v.shape) for k, v in params.items()}


class Modality:
    """One variant of one family, bound to the scenes of one world.

    Args:
        family: a family name or instance.
        variant: the variant seed.
        info: what the scenes look like (``world.scene_info``).
    """

    def __init__(self, family: str | Family, variant: int, info: SceneInfo) -> None:
        self.family = get_family(family) if isinstance(family, str) else family
        self.family.check_scene(info)
        self.variant = int(variant)
        self.info = info
        self.params = self.family.variant(self.variant, info)
        self.observation_space = self.family.observation_space(info)

    def render(self, scene: Scene, generator: torch.Generator) -> Tensor:
        """Render a whole batch with this one variant."""
        params = expand_params(self.params, scene.batch_size, scene.features.device)
        return self.family.render(scene, params, generator)

    @property
    def id(self) -> str:
        """``family:variant``, the form the CLI takes (``--modality audio:7``)."""
        return f"{self.family.name}:{self.variant}"

    def __repr__(self) -> str:
        return f"Modality({self.id})"


def parse_modality_id(text: str) -> tuple[str, int]:
    """``"audio:7"`` -> ``("audio", 7)``; a one-line ValueError for anything else."""
    family, sep, seed = text.partition(":")
    if not sep or not seed.strip().lstrip("-").isdigit():
        raise ValueError(f"modality {text!r}: expected FAMILY:VARIANT, e.g. audio:7")
    get_family(family)
    if not 0 <= int(seed) < 2**62:
        raise ValueError(f"modality {text!r}: the variant must lie in 0 to 2**62 - 1")
    return family, int(seed)
