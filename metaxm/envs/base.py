"""The batched-world contract and the :class:`Scene` that modalities render.

A :class:`World` holds the latent states of ``num_envs`` environments as torch tensors and steps
all of them with tensor operations: no Python loop over environments. Task parameters (a goal, a
wall layout) are data, one row per environment, set with :meth:`World.set_tasks`; a world never
resets on its own (:class:`metaxm.envs.task_env.TaskEnv` does the auto-reset).

A world never renders observations itself. It describes its state as a :class:`Scene`, and a
modality family (``metaxm.modalities``) turns scenes into observations. Adding a world means
subclassing :class:`World`, giving it a frozen config dataclass, and registering both with
:func:`metaxm.envs.register_world`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import gymnasium as gym
import torch
from torch import Tensor

TaskParams = dict[str, Tensor]
"""Per-environment task parameters: each tensor has the environment batch as dimension 0."""


@dataclass(frozen=True)
class Layout:
    """Positions on a ``size`` x ``size`` grid, for families that draw a scene (pixels, text).

    Attributes:
        size: the grid's side G (GridNav's N; PointNav's rasterisation resolution).
        agent: (B, 2) long, the agent's (row, col).
        goal: (B, 2) long, the goal's (row, col); None when the goal is hidden.
        walls: (B, G, G) bool; None when the world has no walls.
        objects: (B, K, 2) long, the (row, col) of K coloured objects, object k in colour k of
            :data:`metaxm.envs.instructions.COLORS`; None when the world has none.
    """

    size: int
    agent: Tensor
    goal: Tensor | None
    walls: Tensor | None
    objects: Tensor | None = None


@dataclass(frozen=True)
class Scene:
    """A batch of world states in the world-independent form modalities render.

    Attributes:
        features: (B, D) float32 in [-1, 1], the canonical state vector. Every family can render
            from it alone, which is how a modality applies to any gymnasium env.
        layout: the grid positions, when the state is a scene with an agent and a goal.
        instruction: (B, L) long token ids of each environment's instruction (0 = padding) in
            the vocabulary of :attr:`SceneInfo.instruction`; None when the world gives none.

    A world may subclass it to carry more (B, ...) tensors for its own families (e.g.
    :class:`metaxm.envs.minigrid.MiniGridScene`); code that selects or stacks rows keeps them.
    """

    features: Tensor
    layout: Layout | None = None
    instruction: Tensor | None = None

    @property
    def batch_size(self) -> int:
        return self.features.shape[0]


@dataclass(frozen=True)
class SceneInfo:
    """Static facts about the scenes a world produces; families size their spaces from it.

    Attributes:
        feature_dim: D, the width of :attr:`Scene.features`.
        layout_size: G when scenes carry a :class:`Layout`, else None.
        goal_visible: whether layouts include the goal.
        has_walls: whether layouts include walls.
        feature_names: a short name per feature (used by ``metaxm render``).
        num_objects: K, the coloured objects of a layout (0: none).
        instruction: the instruction channel's format when the world gives instructions.
    """

    feature_dim: int
    layout_size: int | None = None
    goal_visible: bool = True
    has_walls: bool = False
    feature_names: tuple[str, ...] = ()
    num_objects: int = 0
    instruction: InstructionInfo | None = None


@dataclass(frozen=True)
class InstructionInfo:
    """The format of a world's instructions (see :mod:`metaxm.envs.instructions`).

    Attributes:
        length: L, the token ids per instruction (padded with 0).
        vocab: token id -> word; id 0 is padding. At most 256 words, so ids fit any dtype an
            observation has (uint8 pixels included).
        sentences: every instruction the world can give, so encoders can embed them up front.
    """

    length: int
    vocab: tuple[str, ...]
    sentences: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 1 < len(self.vocab) <= 256 or self.length < 1:
            raise ValueError(
                f"an instruction vocabulary needs 2 to 256 words and length >= 1, got "
                f"{len(self.vocab)} words and length {self.length}"
            )


class World(ABC):
    """A batch of ``num_envs`` environments of one kind, stepped together.

    Subclasses set :attr:`name`, :attr:`action_space` and :attr:`scene_info` in ``__init__`` and
    implement the abstract methods. All randomness comes from :attr:`generator`.

    Args:
        num_envs: B, the batch size.
        device: where the state tensors live.
        seed: seeds :attr:`generator`.
    """

    name: ClassVar[str]
    python_loop: ClassVar[bool] = False
    """True for a world that steps its environments one by one in Python (an adapter of an
    unbatched env, such as MiniGrid); ``metaxm bench envs`` times such worlds only when named."""
    has_oracle: ClassVar[bool] = True
    """False for a world without a reference policy (an arbitrary gymnasium env): reports then
    show no oracle, and oracle-relative thresholds fall back to the source agent's."""
    action_space: gym.Space
    scene_info: SceneInfo
    horizon: int

    def __init__(self, num_envs: int, device: torch.device | str = "cpu", seed: int = 0) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.num_envs = num_envs
        self.device = torch.device(device)
        self.generator = torch.Generator(self.device).manual_seed(seed)
        self.t = torch.zeros(num_envs, dtype=torch.long, device=self.device)

    @abstractmethod
    def sample_tasks(self, n: int, generator: torch.Generator | None = None) -> TaskParams:
        """Draw ``n`` task parameter rows (on :attr:`device`) from the world's task distribution."""

    @abstractmethod
    def set_tasks(self, params: TaskParams, env_ids: Tensor | None = None) -> None:
        """Assign task parameters to environments (all when ``env_ids`` is None)."""

    @abstractmethod
    def task_params(self) -> TaskParams:
        """The current task parameters of every environment (copies, (B, ...) each)."""

    @abstractmethod
    def reset(self, env_ids: Tensor | None = None) -> None:
        """Start new episodes in the given environments (all when None), keeping their tasks."""

    @abstractmethod
    def step(self, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Advance every environment one step.

        Args:
            actions: (B,) long for discrete worlds, (B, A) float for continuous ones.

        Returns:
            reward (B,) float32, terminated (B,) bool, success (B,) bool. Truncation at the
            horizon is read from :meth:`truncated`.
        """

    @abstractmethod
    def scene(self) -> Scene:
        """The current states as a :class:`Scene`: a snapshot, rendered perhaps much later, so
        the world must not write into a tensor it hands out here (copy before writing)."""

    @abstractmethod
    def oracle_action(self) -> Tensor:
        """The action of a reference policy that knows the task (for sanity baselines)."""

    def reached(self, features: Tensor) -> Tensor | None:
        """(..., D) scene features -> (...) bool: a state with these features would end its
        episode with success (GridNav: the agent on the goal's cell); None where the world
        cannot tell from the features (the default). A ``translate`` fit that is left with
        several readings of the task uses it to rule a reading out when the episode goes on
        where that reading says it had ended (:mod:`metaxm.align.reading_search`)."""
        return None

    def truncated(self) -> Tensor:
        """(B,) bool: episodes that have reached the horizon."""
        return self.t >= self.horizon

    def all_ids(self) -> Tensor:
        return torch.arange(self.num_envs, device=self.device)
