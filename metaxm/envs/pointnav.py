"""PointNav: the 2-D navigation task of the MAML paper (Finn et al. 2017, sec. 5.3), batched.

A point starts at the origin and moves by a continuous action clipped to
[-max_action, max_action]^2; each task is a goal drawn uniformly from [-goal_range, goal_range]^2;
the reward is minus the distance to the goal after the move; an episode terminates when the
point is within ``success_radius`` of the goal in both coordinates (as in pytorch-maml-rl's
``2DNavigation-v0``) and is truncated at ``horizon`` steps.

Departure from the paper: positions are kept inside the arena [-1, 1]^2 (the paper's plane is
unbounded), so every rendering of the state is bounded. Goals lie well inside the arena, so an
agent that heads for its goal never meets the boundary.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from metaxm.config import bounded
from metaxm.envs.base import Layout, Scene, SceneInfo, TaskParams, World


@dataclass(frozen=True)
class PointNavConfig:
    """PointNav parameters.

    Attributes:
        name: the world's registry name.
        goal_visible: whether observations show the goal; false in the MAML paper's version.
        horizon: steps before an episode is truncated.
        max_action: the bound on each coordinate of a move.
        goal_range: goals are uniform in [-goal_range, goal_range]^2.
        success_radius: the episode ends when both coordinates are this close to the goal.
        layout_size: the grid resolution at which pixels and text see positions.
    """

    name: Literal["pointnav"] = "pointnav"
    goal_visible: bool = True
    horizon: int = bounded(100, 1, 10000)
    max_action: float = bounded(0.1, 1e-06, 10)
    goal_range: float = bounded(0.5, 0, 1)  # above 0: __post_init__
    success_radius: float = bounded(0.01, 1e-06, 100)
    layout_size: int = bounded(11, 2, 256)

    def __post_init__(self) -> None:
        if not 0.0 < self.goal_range <= 1.0:
            raise ValueError(f"goal_range must lie in (0, 1], got {self.goal_range}")
        if self.horizon < 1 or self.layout_size < 2:
            raise ValueError("horizon must be >= 1 and layout_size >= 2")


class PointNav(World):
    """Batched PointNav. State: ``pos`` (B, 2) float; tasks: ``goal`` (B, 2) float."""

    name = "pointnav"

    def __init__(
        self,
        config: PointNavConfig,
        num_envs: int,
        device: torch.device | str = "cpu",
        seed: int = 0,
    ) -> None:
        super().__init__(num_envs, device, seed)
        self.config = config
        self.horizon = config.horizon
        a = config.max_action
        self.action_space = gym.spaces.Box(-a, a, (2,), np.float32)
        names = ["agent_x", "agent_y"] + (["goal_x", "goal_y"] if config.goal_visible else [])
        self.scene_info = SceneInfo(
            feature_dim=len(names),
            layout_size=config.layout_size,
            goal_visible=config.goal_visible,
            has_walls=False,
            feature_names=tuple(names),
        )
        self.pos = torch.zeros(num_envs, 2, device=self.device)
        self.set_tasks(self.sample_tasks(num_envs))
        self.reset()

    def sample_tasks(self, n: int, generator: torch.Generator | None = None) -> TaskParams:
        g = generator if generator is not None else self.generator
        u = torch.rand(n, 2, generator=g, device=self.device)
        return {"goal": (2.0 * u - 1.0) * self.config.goal_range}

    def set_tasks(self, params: TaskParams, env_ids: Tensor | None = None) -> None:
        goal = params["goal"].to(self.device, torch.float32)
        if goal.shape[1:] != (2,):
            raise ValueError(f"PointNav tasks need goal (B, 2); got {tuple(goal.shape)}")
        if env_ids is None:
            self.goal = goal.clone()
        else:
            self.goal[env_ids] = goal
        self._goal_cell = self._cell(self.goal)  # cached: scene() only places the agent

    def _cell(self, xy: Tensor) -> Tensor:
        """(B, 2) long (row, col) of positions on the ``layout_size`` grid."""
        g = self.config.layout_size
        bins = ((xy + 1.0) * 0.5 * g).long().clamp_(0, g - 1)
        return torch.stack((g - 1 - bins[:, 1], bins[:, 0]), 1)  # row counts down from +y

    def task_params(self) -> TaskParams:
        return {"goal": self.goal.clone()}

    def reset(self, env_ids: Tensor | None = None) -> None:
        if env_ids is None:
            self.pos.zero_()
            self.t.zero_()
        else:
            self.pos[env_ids] = 0.0
            self.t[env_ids] = 0

    def step(self, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        a = self.config.max_action
        self.pos = (self.pos + actions.float().clamp(-a, a)).clamp_(-1.0, 1.0)
        delta = self.pos - self.goal
        reward = -delta.norm(dim=1)
        reached = (delta.abs() < self.config.success_radius).all(1)
        self.t += 1
        return reward, reached, reached

    def oracle_action(self) -> Tensor:
        """Straight towards the goal at full speed (per coordinate), the reference policy."""
        a = self.config.max_action
        return (self.goal - self.pos).clamp(-a, a)

    def scene(self) -> Scene:
        parts = [self.pos] + ([self.goal] if self.config.goal_visible else [])
        layout = Layout(
            size=self.config.layout_size,
            agent=self._cell(self.pos),
            goal=self._goal_cell if self.config.goal_visible else None,
            walls=None,
        )
        return Scene(features=torch.cat(parts, 1), layout=layout)
