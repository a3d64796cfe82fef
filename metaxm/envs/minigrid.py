"""MiniGrid and BabyAI levels as a metaxm :class:`World` (the optional extra ``minigrid``).

The gymnasium package ``minigrid`` (``pip install metaxm[minigrid]``) is imported when a world is
built, not when this module is imported. :class:`MiniGrid` holds B instances of one level
(``env_id``, e.g. ``BabyAI-GoToObjS6-v1`` or ``MiniGrid-GoToObject-6x6-N2-v0``) and steps them
**in a Python loop**: MiniGrid is not batched, so this world is not tensor-stepped like GridNav
(about 3,000 environment steps per second per core, against millions for GridNav). After every
step and reset the observations are copied into tensors, and :meth:`MiniGrid.scene` returns them
as a :class:`MiniGridScene`:

- ``view``: (B, V, V, 3) uint8, MiniGrid's symbolic egocentric grid exactly as
  ``obs["image"]`` holds it ((object, colour, state) per cell, indexed [x, y], the agent at
  [V // 2, V - 1] looking up), rendered by the ``minigrid_symbolic`` and ``minigrid_rgb``
  families (:mod:`metaxm.modalities.minigrid`);
- ``features``: (B, 8) in [-1, 1], a privileged state vector (agent column and row, the
  direction as a one-hot of 4, the target's column and row) and a :class:`Layout` of the full
  grid (walls, agent, target), so every built-in family (vector, pixels, text, ...) renders
  MiniGrid scenes too. The target is the object a GoTo mission names (BabyAI's
  ``instrs.desc.obj_poss[0]``, MiniGrid's ``target_pos``, or a ``Goal`` tile); a level without
  one gets the agent's own cell.

The mission strings are data: :meth:`MiniGrid.instructions` (one string per environment).

Actions: ``Discrete(len(config.actions))``, the named MiniGrid actions in the order given;
by default ``left, right, forward``, all a BabyAI GoTo level needs (its success is facing the
target). MiniGrid's ``GoToObject`` levels reward the ``done`` action next to the target: add
``done`` for them.

Tasks are data: ``{"seed": (B,) long}``. Episode j of a task is the level reset with seed
``episode_seed(seed, j)`` (episode 0 with ``seed`` itself, so it equals
``gymnasium.make(env_id).reset(seed=seed)``); with ``layout: per_task`` every episode reuses
``seed`` (the same room, start and target each time, as an RL^2 trial may want). Reward and
termination are MiniGrid's own (``1 - 0.9 * steps / max_steps`` on success, else 0);
success is a positive reward.

Checkpoints hold only tensors, so resuming a run restarts the episodes that were in progress
(the Python environments cannot be saved); everything else resumes exactly.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from metaxm.config import bounded
from metaxm.envs.base import Layout, Scene, SceneInfo, World
from metaxm.envs.seeded import SeededTasks, episode_seed

ActionName = Literal["left", "right", "forward", "pickup", "drop", "toggle", "done"]
ACTION_IDS: dict[str, int] = {
    "left": 0,
    "right": 1,
    "forward": 2,
    "pickup": 3,
    "drop": 4,
    "toggle": 5,
    "done": 6,
}
"""MiniGrid's ``Actions`` enum, by name."""

FEATURE_NAMES = ("agent_col", "agent_row", "dir_east", "dir_south", "dir_west", "dir_north")
FEATURE_NAMES += ("target_col", "target_row")
# direction -> (dx, dy), MiniGrid's DIR_TO_VEC: east, south, west, north
DIR_TO_VEC = ((1, 0), (0, 1), (-1, 0), (0, -1))


def import_minigrid() -> Any:
    """Import the ``minigrid`` package (registering its env ids) or say how to install it."""
    try:
        import minigrid
    except ImportError:
        raise ImportError(
            "the minigrid world needs the minigrid package: pip install metaxm[minigrid]"
        ) from None
    return minigrid


@dataclass(frozen=True)
class MiniGridConfig:
    """A MiniGrid or BabyAI level.

    Attributes:
        name: the world's registry name.
        env_id: the gymnasium id of the level (``minigrid`` registers them).
        actions: the MiniGrid actions the agent may take, in this order (the action space is
            ``Discrete(len(actions))``).
        max_steps: the level's step limit (its ``max_steps`` argument); None keeps the level's
            own. It is the world's horizon.
        layout: ``per_episode`` draws a new room for every episode of a task (from the task's
            seed and the episode's index); ``per_task`` replays the task's room every episode.
    """

    name: Literal["minigrid"] = "minigrid"
    env_id: str = "BabyAI-GoToObjS6-v1"
    actions: tuple[ActionName, ...] = ("left", "right", "forward")
    max_steps: int | None = bounded(None, 1, 100000)
    layout: Literal["per_episode", "per_task"] = "per_episode"

    def __post_init__(self) -> None:
        if not self.actions or len(set(self.actions)) != len(self.actions):
            raise ValueError(f"actions must be distinct and non-empty, got {self.actions}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {self.max_steps}")


@dataclass(frozen=True)
class MiniGridSceneInfo(SceneInfo):
    """:class:`SceneInfo` of MiniGrid scenes, which also carry the egocentric view.

    Attributes:
        view_size: V, the side of the agent's egocentric view (MiniGrid's ``agent_view_size``).
    """

    view_size: int = 7


@dataclass(frozen=True)
class MiniGridScene(Scene):
    """A :class:`Scene` plus MiniGrid's symbolic egocentric view.

    Attributes:
        view: (B, V, V, 3) uint8, ``obs["image"]`` of every environment.
    """

    view: Tensor | None = None


class MiniGrid(SeededTasks, World):
    """B MiniGrid environments of one level, stepped in a Python loop (see the module docstring).

    Args:
        config: the level and its settings.
        num_envs: B.
        device: where the observation tensors live.
        seed: seeds :attr:`generator` (task seeds are drawn from it).
    """

    name = "minigrid"
    python_loop = True

    def __init__(
        self,
        config: MiniGridConfig,
        num_envs: int,
        device: torch.device | str = "cpu",
        seed: int = 0,
    ) -> None:
        super().__init__(num_envs, device, seed)
        import_minigrid()
        from minigrid.minigrid_env import MiniGridEnv

        self.config = config
        kwargs = {} if config.max_steps is None else {"max_steps": config.max_steps}
        # the bare environments: gymnasium's checking wrappers would only slow the loop down
        make = gym.make(config.env_id, disable_env_checker=True).unwrapped
        if not isinstance(make, MiniGridEnv):
            raise ValueError(
                f"env_id {config.env_id!r} is not a MiniGrid level (it makes a "
                f"{type(make).__name__}); for any other gymnasium env use world: {{name: gym}}"
            )
        self.envs = [
            gym.make(config.env_id, disable_env_checker=True, **kwargs).unwrapped
            for _ in range(num_envs)
        ]
        self.action_space = gym.spaces.Discrete(len(config.actions))
        self._action_ids = [ACTION_IDS[a] for a in config.actions]
        first = self.envs[0]
        first.reset(seed=0)
        self.horizon = int(first.max_steps)
        self.grid_width, self.grid_height = int(first.width), int(first.height)
        size = max(self.grid_width, self.grid_height)
        v = int(first.agent_view_size)
        self.scene_info = MiniGridSceneInfo(
            feature_dim=len(FEATURE_NAMES),
            layout_size=size,
            goal_visible=True,
            has_walls=True,
            feature_names=FEATURE_NAMES,
            view_size=v,
        )
        b = num_envs
        self._view = np.zeros((b, v, v, 3), dtype=np.uint8)
        self._agent = np.zeros((b, 2), dtype=np.int64)  # (x, y)
        self._dir = np.zeros(b, dtype=np.int64)
        self._target = np.zeros((b, 2), dtype=np.int64)  # (x, y)
        self._walls = np.ones((b, size, size), dtype=bool)  # [row = y, col = x], padded
        self._missions = [""] * b
        self.init_seeded_tasks()

    # ----------------------------------------------------------------------------- tasks
    def instructions(self) -> list[str]:
        """The mission string of every environment's current episode (B strings)."""
        return list(self._missions)

    # ----------------------------------------------------------------------------- dynamics
    def _start(self, ids: list[int]) -> None:
        per_task = self.config.layout == "per_task"
        seeds, episodes = self.task_seed.tolist(), self.episode.tolist()
        for i in ids:
            seed = seeds[i] if per_task else episode_seed(seeds[i], episodes[i])
            obs, _ = self.envs[i].reset(seed=seed)
            self._read(i, obs)
            self._read_walls(i)
            self._stepped[i] = False
        if ids:
            self.t[torch.as_tensor(ids, dtype=torch.long, device=self.device)] = 0

    def step(self, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        names = [self._action_ids[a] for a in actions.reshape(-1).tolist()]
        reward = np.zeros(self.num_envs, dtype=np.float32)
        terminated = np.zeros(self.num_envs, dtype=bool)
        for i, (env, action) in enumerate(zip(self.envs, names)):
            obs, r, term, _, _ = env.step(action)
            reward[i], terminated[i] = r, term
            self._read(i, obs)
        self._stepped[:] = True
        self.t += 1
        reward_t = torch.as_tensor(reward, device=self.device)
        return reward_t, torch.as_tensor(terminated, device=self.device), reward_t > 0

    def _read(self, i: int, obs: dict[str, Any]) -> None:
        env = self.envs[i]
        self._view[i] = obs["image"]
        self._agent[i] = env.agent_pos
        self._dir[i] = env.agent_dir
        self._missions[i] = obs["mission"]

    def _read_walls(self, i: int) -> None:
        """Walls and the target are fixed within an episode: read them once, at its start."""
        env = self.envs[i]
        grid = env.grid
        walls = self._walls[i]
        walls[:] = True
        for y in range(self.grid_height):
            for x in range(self.grid_width):
                cell = grid.get(x, y)
                walls[y, x] = cell is not None and cell.type == "wall"
        self._target[i] = _target(env)

    # ----------------------------------------------------------------------------- oracle
    def oracle_action(self) -> Tensor:
        """The first action of a shortest path to facing the target (``done`` there, if allowed).

        Breadth-first search over (cell, direction) with the world's turn and move actions,
        through cells an agent may enter; an environment whose target cannot be faced gets
        action 0.
        """
        acts = [self._oracle_one(i) for i in range(self.num_envs)]
        return torch.tensor(acts, dtype=torch.long, device=self.device)

    def _oracle_one(self, i: int) -> int:
        env = self.envs[i]
        target = (int(self._target[i, 0]), int(self._target[i, 1]))
        start = (int(env.agent_pos[0]), int(env.agent_pos[1]), int(env.agent_dir))
        moves = {name: k for k, name in enumerate(self.config.actions)}

        def front(s: tuple[int, int, int]) -> tuple[int, int]:
            dx, dy = DIR_TO_VEC[s[2]]
            return s[0] + dx, s[1] + dy

        if front(start) == target:
            return moves.get("done", 0)
        first: dict[tuple[int, int, int], int] = {start: -1}
        queue = deque([start])
        while queue:
            s = queue.popleft()
            nexts = []
            if "left" in moves:
                nexts.append(("left", (s[0], s[1], (s[2] - 1) % 4)))
            if "right" in moves:
                nexts.append(("right", (s[0], s[1], (s[2] + 1) % 4)))
            fx, fy = front(s)
            if "forward" in moves and (fx, fy) != target:
                cell = env.grid.get(fx, fy)
                if cell is None or cell.can_overlap():
                    nexts.append(("forward", (fx, fy, s[2])))
            for name, n in nexts:
                if n in first:
                    continue
                first[n] = moves[name] if first[s] == -1 else first[s]
                if front(n) == target:
                    return first[n]
                queue.append(n)
        return 0

    # ----------------------------------------------------------------------------- rendering
    def scene(self) -> MiniGridScene:
        w, h = self.grid_width, self.grid_height
        agent = torch.as_tensor(self._agent, device=self.device)  # (B, 2) as (x, y)
        target = torch.as_tensor(self._target, device=self.device)
        scale = torch.tensor([2.0 / max(w - 1, 1), 2.0 / max(h - 1, 1)], device=self.device)
        direction = torch.nn.functional.one_hot(torch.as_tensor(self._dir), 4).to(self.device)
        features = torch.cat(
            (agent * scale - 1.0, direction.float() * 2.0 - 1.0, target * scale - 1.0), 1
        ).float()
        layout = Layout(
            size=self.scene_info.layout_size or max(w, h),
            agent=agent.flip(1),  # (row, col)
            goal=target.flip(1),
            walls=torch.as_tensor(self._walls.copy(), device=self.device),
        )
        view = torch.as_tensor(self._view.copy(), device=self.device)
        return MiniGridScene(features=features, layout=layout, view=view)


def _target(env: Any) -> tuple[int, int]:
    """(x, y) of the object the mission names, else a Goal tile, else the agent's cell."""
    instrs = getattr(env, "instrs", None)
    desc = getattr(instrs, "desc", None)
    poss = getattr(desc, "obj_poss", None)
    if poss:
        return int(poss[0][0]), int(poss[0][1])
    target = getattr(env, "target_pos", None)
    if target is not None:
        return int(target[0]), int(target[1])
    for y in range(env.height):
        for x in range(env.width):
            cell = env.grid.get(x, y)
            if cell is not None and cell.type == "goal":
                return x, y
    return int(env.agent_pos[0]), int(env.agent_pos[1])
