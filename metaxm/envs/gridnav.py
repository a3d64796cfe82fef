"""GridNav: discrete navigation to a goal on an N x N grid, batched.

Each environment's task is a goal cell and (optionally) a wall layout; every layout is
connected, so the goal is reachable from every start. An episode starts on a random free cell,
the agent moves up/down/left/right (a move into a wall or off the grid leaves it in place), gets
+1 and terminates on reaching the goal, and pays ``step_cost`` for every other step.

The shortest-path distance to the goal from every cell is computed once per task (a vectorised
Bellman-Ford relaxation), which gives the oracle policy and the optimal steps-to-goal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import gymnasium as gym
import torch
from torch import Tensor

from metaxm.config import bounded
from metaxm.envs.base import Layout, Scene, SceneInfo, TaskParams, World

# up, down, left, right as (d_row, d_col)
MOVES = ((-1, 0), (1, 0), (0, -1), (0, 1))


@dataclass(frozen=True)
class GridNavConfig:
    """GridNav parameters.

    Attributes:
        name: the world's registry name.
        size: N, the side of the grid.
        walls: whether tasks have random internal walls.
        wall_fraction: expected fraction of cells that are walls when ``walls`` is true.
        goal_visible: whether observations show the goal; when false the goal must be found
            from reward, as in the RL^2 paper's mazes.
        horizon: steps before an episode is truncated.
        step_cost: reward paid for each step that does not reach the goal.
        shaping: a potential-based shaping term (Ng, Harada & Russell 1999, with the
            shortest-path distance to the goal as the potential): each step also earns
            ``shaping`` times the distance it closed (+shaping for a step toward the goal,
            -shaping away, 0 into a wall), which leaves the optimal policies as they are. 0
            (the default): the sparse reward alone. A diagnostic of how much a learner's
            trouble is the reward's sparsity (``docs/transfer-studies.md`` section 51).
    """

    name: Literal["gridnav"] = "gridnav"
    size: int = bounded(7, 2, 64)
    walls: bool = False
    wall_fraction: float = bounded(0.15, 0, 0.6)  # below 0.6: __post_init__
    goal_visible: bool = True
    horizon: int = bounded(30, 1, 10000)
    step_cost: float = bounded(0.01, 0, 1)
    shaping: float = bounded(0.0, 0, 10)

    def __post_init__(self) -> None:
        if self.size < 2:
            raise ValueError(f"size must be >= 2, got {self.size}")
        if not 0.0 <= self.wall_fraction < 0.6:
            raise ValueError(f"wall_fraction must lie in [0, 0.6), got {self.wall_fraction}")
        if self.horizon < 1:
            raise ValueError(f"horizon must be >= 1, got {self.horizon}")


class GridNav(World):
    """Batched GridNav. State: ``pos`` (B, 2) long; tasks: ``goal`` (B, 2), ``walls`` (B, N, N)."""

    name = "gridnav"

    def __init__(
        self,
        config: GridNavConfig,
        num_envs: int,
        device: torch.device | str = "cpu",
        seed: int = 0,
    ) -> None:
        super().__init__(num_envs, device, seed)
        self.config = config
        n = config.size
        self.size = n
        self.horizon = config.horizon
        self.action_space = gym.spaces.Discrete(4)
        names = ["agent_row", "agent_col"]
        if config.goal_visible:
            names += ["goal_row", "goal_col"]
        if config.walls:
            names += ["wall_up", "wall_down", "wall_left", "wall_right"]
        self.scene_info = SceneInfo(
            feature_dim=len(names),
            layout_size=n,
            goal_visible=config.goal_visible,
            has_walls=config.walls,
            feature_names=tuple(names),
        )
        self._moves = torch.tensor(MOVES, device=self.device)
        self._scale = 2.0 / max(n - 1, 1)  # cell index -> [-1, 1]
        self._strides = torch.tensor([n, 1], device=self.device)  # (row, col) -> cell
        cells = torch.arange(n * n, device=self.device)
        self._cell_rc = torch.stack((cells // n, cells % n), 1)  # cell -> (row, col)
        # (row, col) -> cell of the padded grid, and the offsets of the four neighbours there
        self._padded_strides = torch.tensor([n + 2, 1], device=self.device)
        self._neighbours = torch.tensor(
            [(dr * (n + 2) + dc) + (n + 2) + 1 for dr, dc in MOVES], device=self.device
        )
        self.pos = torch.zeros(num_envs, 2, dtype=torch.long, device=self.device)
        self.set_tasks(self.sample_tasks(num_envs))
        self.reset()

    # ----------------------------------------------------------------------------- tasks
    def sample_tasks(self, n: int, generator: torch.Generator | None = None) -> TaskParams:
        g = generator if generator is not None else self.generator
        size = self.size
        walls = torch.zeros(n, size, size, dtype=torch.bool, device=self.device)
        goal = torch.randint(0, size, (n, 2), generator=g, device=self.device)
        if not self.config.walls:
            return {"goal": goal, "walls": walls}
        todo = torch.ones(n, dtype=torch.bool, device=self.device)
        while bool(todo.any()):
            k = int(todo.sum())
            w = (
                torch.rand(k, size, size, generator=g, device=self.device)
                < self.config.wall_fraction
            )
            gl = goal[todo]
            w[torch.arange(k, device=self.device), gl[:, 0], gl[:, 1]] = False
            dist = _distances(w, gl)
            ok = (dist < _INF) | w  # every free cell reaches the goal
            ok = ok.flatten(1).all(1)
            idx = todo.nonzero().squeeze(1)
            walls[idx[ok]] = w[ok]
            todo[idx[ok]] = False
        return {"goal": goal, "walls": walls}

    def set_tasks(self, params: TaskParams, env_ids: Tensor | None = None) -> None:
        goal = params["goal"].to(self.device, torch.long)
        walls = params.get("walls")
        if walls is None:
            walls = torch.zeros(goal.shape[0], self.size, self.size, dtype=torch.bool)
        walls = walls.to(self.device, torch.bool)
        if goal.shape[1:] != (2,) or walls.shape[1:] != (self.size, self.size):
            raise ValueError(
                f"GridNav tasks need goal (B, 2) and walls (B, {self.size}, {self.size}); "
                f"got {tuple(goal.shape)} and {tuple(walls.shape)}"
            )
        dist = _distances(walls, goal)
        if env_ids is None:
            self.goal, self.walls, self.dist = goal.clone(), walls.clone(), dist
        else:  # copied, not written in place: a scene taken before keeps its own task
            self.goal, self.walls = self.goal.clone(), self.walls.clone()
            self.goal[env_ids], self.walls[env_ids], self.dist[env_ids] = goal, walls, dist
        # walls with a blocked border, for neighbour look-ups: (B, N + 2, N + 2)
        self._padded = torch.nn.functional.pad(self.walls, (1, 1, 1, 1), value=True)
        # cached per task, so that step() and scene() do only per-step work
        self._padded_flat = self._padded.flatten(1)  # (B, (N + 2)^2)
        self._walls_flat = self.walls.flatten(1)  # (B, N^2)
        self._any_walls = bool(self.walls.any())
        self._goal_features = self.goal.float() * self._scale - 1.0  # (B, 2)
        self._goal_cell = (self.goal * self._strides).sum(1, keepdim=True)  # (B, 1)

    def task_params(self) -> TaskParams:
        return {"goal": self.goal.clone(), "walls": self.walls.clone()}

    # ----------------------------------------------------------------------------- dynamics
    def reset(self, env_ids: Tensor | None = None) -> None:
        ids = self.all_ids() if env_ids is None else env_ids
        k = ids.shape[0]
        if k == 0:
            return
        n = self.size
        # a uniformly random free cell that is not the goal: argmax of noise over allowed cells
        noise = torch.rand(k, n * n, generator=self.generator, device=self.device)
        noise.masked_fill_(self._walls_flat[ids], -1.0)
        noise.scatter_(1, self._goal_cell[ids], -1.0)
        self.pos[ids] = self._cell_rc[noise.argmax(1)]
        self.t[ids] = 0

    def step(self, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        n = self.size
        before = self.optimal_steps() if self.config.shaping else None
        new = (self.pos + self._moves[actions.long()]).clamp_(0, n - 1)
        if self._any_walls:
            cell = (new * self._strides).sum(1, keepdim=True)  # (B, 1)
            blocked = self._walls_flat.gather(1, cell)
            self.pos = torch.where(blocked, self.pos, new)
        else:  # nothing can block a move
            self.pos = new
        at_goal = (self.pos == self.goal).all(1)
        reward = torch.where(at_goal, 1.0, -self.config.step_cost)
        if before is not None:
            reward = reward + self.config.shaping * (before - self.optimal_steps())
        self.t += 1
        return reward, at_goal, at_goal

    def optimal_steps(self) -> Tensor:
        """(B,) long: the shortest number of steps from the current cells to the goals."""
        n = self.size
        return self.dist.flatten(1).gather(1, (self.pos[:, 0] * n + self.pos[:, 1])[:, None])[:, 0]

    def oracle_action(self) -> Tensor:
        padded_dist = torch.nn.functional.pad(self.dist, (1, 1, 1, 1), value=_INF)
        r, c = self.pos[:, 0] + 1, self.pos[:, 1] + 1
        b = self.all_ids()
        around = torch.stack([padded_dist[b, r + dr, c + dc] for dr, dc in MOVES], 1)
        return around.argmin(1)

    def reached(self, features: Tensor) -> Tensor | None:
        """The agent's two features within half a cell of the goal's; None when the goal is
        not among the features (``goal_visible: false``)."""
        if not self.config.goal_visible:
            return None
        gap = (features[..., :2] - features[..., 2:4]).abs()
        return (gap < 0.5 * self._scale).all(-1)

    # ----------------------------------------------------------------------------- rendering
    def scene(self) -> Scene:
        parts = [self.pos.float() * self._scale - 1.0]
        if self.config.goal_visible:
            parts.append(self._goal_features)
        if self.config.walls:
            # the padded grid's cells of the four neighbours, in MOVES order: (B, 4)
            cells = (self.pos * self._padded_strides).sum(1, keepdim=True) + self._neighbours
            around = self._padded_flat.gather(1, cells)
            parts.append(around.float() * 2.0 - 1.0)
        layout = Layout(
            size=self.size,
            agent=self.pos,
            goal=self.goal if self.config.goal_visible else None,
            walls=self.walls if self.config.walls else None,
        )
        return Scene(features=torch.cat(parts, 1), layout=layout)


_INF = 10_000


def _distances(walls: Tensor, goal: Tensor) -> Tensor:
    """(B, N, N) long shortest-path steps to ``goal`` avoiding ``walls``; ``_INF`` if unreachable.

    Bellman-Ford on the grid graph, vectorised over the batch: N * N relaxations bound the
    longest shortest path, and we stop as soon as nothing changes.
    """
    b, n, _ = walls.shape
    if not bool(walls.any()):  # an open grid: the Manhattan distance, no relaxation needed
        cells = torch.arange(n, device=walls.device)
        d_row = (cells.view(1, n, 1) - goal[:, 0].view(b, 1, 1)).abs()
        d_col = (cells.view(1, 1, n) - goal[:, 1].view(b, 1, 1)).abs()
        return d_row + d_col
    dist = torch.full((b, n, n), _INF, dtype=torch.long, device=walls.device)
    dist[torch.arange(b, device=walls.device), goal[:, 0], goal[:, 1]] = 0
    for _ in range(n * n):
        padded = torch.nn.functional.pad(dist, (1, 1, 1, 1), value=_INF)
        best = torch.stack(
            [
                padded[:, 2:, 1:-1],
                padded[:, :-2, 1:-1],
                padded[:, 1:-1, 2:],
                padded[:, 1:-1, :-2],
            ]
        ).amin(0)
        new = torch.where(walls, _INF, torch.minimum(dist, best + 1))
        if torch.equal(new, dist):
            break
        dist = new
    return dist
