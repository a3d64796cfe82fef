"""LineNav: walk left or right along a line of ``length`` cells to the task's goal cell."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import gymnasium as gym
import torch
from torch import Tensor

from metaxm.config import bounded
from metaxm.envs import Scene, SceneInfo, TaskParams, World


@dataclass(frozen=True)
class LineNavConfig:
    """The ``world:`` section of a LineNav spec (every numeric field bounded).

    Attributes:
        name: the world's registry name.
        length: cells on the line.
        horizon: steps before an episode is truncated.
        step_cost: reward paid for each step that does not reach the goal.
    """

    name: Literal["linenav"] = "linenav"
    length: int = bounded(9, 3, 1000)
    horizon: int = bounded(20, 1, 10_000)
    step_cost: float = bounded(0.01, 0.0, 1.0)


class LineNav(World):
    """Batched LineNav. State: ``pos`` (B,) long; tasks: ``goal`` (B,) long. Actions: 0 left,
    1 right. The agent starts in the middle; reaching the goal gives +1 and ends the episode."""

    name = "linenav"

    def __init__(
        self,
        config: LineNavConfig,
        num_envs: int,
        device: torch.device | str = "cpu",
        seed: int = 0,
    ) -> None:
        super().__init__(num_envs, device, seed)
        self.config = config
        self.horizon = config.horizon
        self.action_space = gym.spaces.Discrete(2)
        self.scene_info = SceneInfo(feature_dim=2, feature_names=("agent", "goal"))
        self.pos = torch.zeros(num_envs, dtype=torch.long, device=self.device)
        self.set_tasks(self.sample_tasks(num_envs))
        self.reset()

    def sample_tasks(self, n: int, generator: torch.Generator | None = None) -> TaskParams:
        g = generator if generator is not None else self.generator
        start = self.config.length // 2
        # any cell but the start: draw from length - 1 cells and skip over the start
        goal = torch.randint(0, self.config.length - 1, (n,), generator=g, device=self.device)
        return {"goal": goal + (goal >= start).long()}

    def set_tasks(self, params: TaskParams, env_ids: Tensor | None = None) -> None:
        goal = params["goal"].to(self.device, torch.long)
        if env_ids is None:
            self.goal = goal.clone()
        else:
            self.goal[env_ids] = goal

    def task_params(self) -> TaskParams:
        return {"goal": self.goal.clone()}

    def reset(self, env_ids: Tensor | None = None) -> None:
        ids = self.all_ids() if env_ids is None else env_ids
        self.pos[ids] = self.config.length // 2
        self.t[ids] = 0

    def step(self, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        move = actions.long() * 2 - 1
        self.pos = (self.pos + move).clamp_(0, self.config.length - 1)
        self.t += 1
        at_goal = self.pos == self.goal
        reward = torch.where(at_goal, 1.0, -self.config.step_cost)
        return reward, at_goal, at_goal

    def scene(self) -> Scene:
        scale = 2.0 / (self.config.length - 1)
        features = torch.stack((self.pos, self.goal), 1).float() * scale - 1.0
        # no Layout: pixels draw the features as bars, and text reads them out
        return Scene(features=features)

    def oracle_action(self) -> Tensor:
        return (self.goal > self.pos).long()
