"""GridNavLang: GridNav with coloured objects, where an instruction names the goal.

An N x N grid holds K objects of K different colours (``objects``, one per colour of
:data:`~metaxm.envs.instructions.COLORS`, at distinct cells). Each task picks one of them as the
target and a paraphrase template; the goal is *told*, not shown: every observation family shows
the agent and all K objects, and the instruction (``"walk to the blue tile"``) reaches the agent
through the instruction channel (``Scene.instruction``, see :mod:`metaxm.envs.instructions`).
Reaching the target gives +1 and ends the episode; every other step, stepping on other objects
included, costs ``step_cost``.

Task parameters: ``objects`` (B, K, 2) long cells, ``target`` (B,) long colour index,
``template`` (B,) long index into :data:`~metaxm.envs.instructions.TEMPLATES`, drawn from the
config's paraphrase split (``train`` by default; ``heldout`` for paraphrases training never saw).

Features (for the ``vector``, ``projected`` and ``audio`` families): the agent's (row, col), then
each object's (row, col) in colour order, scaled to [-1, 1]; an object's colour is its place in
the vector, the way a pixel shows it by its hue and text by its name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from metaxm.config import bounded
from metaxm.envs.base import Layout, Scene, SceneInfo, TaskParams
from metaxm.envs.gridnav import GridNav, GridNavConfig
from metaxm.envs.instructions import COLOR_NAMES, decode, instruction_info, sentence_table
from metaxm.envs.instructions import template_ids as paraphrase_ids


@dataclass(frozen=True)
class GridNavLangConfig:
    """GridNavLang parameters.

    Attributes:
        name: the world's registry name.
        size: N, the side of the grid.
        objects: K, the coloured objects (at most the number of colours).
        paraphrases: the templates tasks draw from: ``train`` (training paraphrases),
            ``heldout`` (paraphrases never drawn in training) or ``all``.
        horizon: steps before an episode is truncated.
        step_cost: reward paid for each step that does not reach the target.
    """

    name: Literal["gridnav_lang"] = "gridnav_lang"
    size: int = bounded(5, 2, 64)
    objects: int = bounded(4, 2, 4)  # one colour each (COLOR_NAMES)
    paraphrases: Literal["train", "heldout", "all"] = "train"
    horizon: int = bounded(20, 1, 10000)
    step_cost: float = bounded(0.01, 0, 1)

    def __post_init__(self) -> None:
        if not 2 <= self.objects <= len(COLOR_NAMES):
            raise ValueError(f"objects must lie in [2, {len(COLOR_NAMES)}], got {self.objects}")
        if self.objects >= self.size * self.size:
            raise ValueError(f"{self.objects} objects do not fit a {self.size}x{self.size} grid")

    @property
    def grid(self) -> GridNavConfig:
        """The underlying GridNav: no walls, goal hidden from the observation."""
        return GridNavConfig(
            size=self.size, walls=False, goal_visible=False, horizon=self.horizon,
            step_cost=self.step_cost,
        )  # fmt: skip


class GridNavLang(GridNav):
    """Batched GridNavLang (see the module docstring). ``instructions()`` are the sentences."""

    name = "gridnav_lang"

    def __init__(
        self,
        config: GridNavLangConfig,
        num_envs: int,
        device: torch.device | str = "cpu",
        seed: int = 0,
    ) -> None:
        self.lang_config = config
        self.num_objects = k = config.objects
        dev = torch.device(device)
        self._pool = torch.tensor(paraphrase_ids(config.paraphrases), device=dev)
        self._sentences = sentence_table(k).to(dev)  # (templates, K, L)
        super().__init__(config.grid, num_envs, device, seed)
        names = ["agent_row", "agent_col"]
        for color in COLOR_NAMES[:k]:
            names += [f"{color}_row", f"{color}_col"]
        self.scene_info = SceneInfo(
            feature_dim=len(names),
            layout_size=config.size,
            goal_visible=False,
            has_walls=False,
            feature_names=tuple(names),
            num_objects=k,
            instruction=instruction_info(k),
        )

    # ----------------------------------------------------------------------------- tasks
    def sample_tasks(self, n: int, generator: torch.Generator | None = None) -> TaskParams:
        g = generator if generator is not None else self.generator
        size, k = self.size, self.num_objects
        # K distinct cells: the first K of a random permutation of the cells
        noise = torch.rand(n, size * size, generator=g, device=self.device)
        cells = noise.argsort(1)[:, :k]  # (n, K)
        objects = torch.stack((cells // size, cells % size), 2)
        target = torch.randint(0, k, (n,), generator=g, device=self.device)
        pick = torch.randint(0, self._pool.shape[0], (n,), generator=g, device=self.device)
        return {"objects": objects, "target": target, "template": self._pool[pick]}

    def set_tasks(self, params: TaskParams, env_ids: Tensor | None = None) -> None:
        objects = params["objects"].to(self.device, torch.long)
        target = params["target"].to(self.device, torch.long).reshape(-1)
        template = params["template"].to(self.device, torch.long).reshape(-1)
        if objects.shape[1:] != (self.num_objects, 2):
            raise ValueError(
                f"GridNavLang tasks need objects (B, {self.num_objects}, 2); "
                f"got {tuple(objects.shape)}"
            )
        rows = torch.arange(objects.shape[0], device=self.device)
        goal = objects[rows, target]  # (B, 2)
        ids = self._sentences[template, target]  # (B, L)
        if env_ids is None:
            self.objects, self.target, self.template = objects.clone(), target, template
            self.instruction_ids = ids
        else:  # what scenes hold is copied, not written in place: a scene keeps its own task
            self.objects, self.instruction_ids = self.objects.clone(), self.instruction_ids.clone()
            self.objects[env_ids], self.target[env_ids] = objects, target
            self.template[env_ids], self.instruction_ids[env_ids] = template, ids
        walls = torch.zeros(goal.shape[0], self.size, self.size, dtype=torch.bool)
        super().set_tasks({"goal": goal, "walls": walls}, env_ids)
        self._object_features = self.objects.flatten(1).float() * self._scale - 1.0  # (B, 2K)

    def task_params(self) -> TaskParams:
        return {
            "objects": self.objects.clone(),
            "target": self.target.clone(),
            "template": self.template.clone(),
        }

    def instructions(self) -> list[str]:
        """Every environment's current instruction, as a sentence."""
        return decode(self.instruction_ids)

    # ----------------------------------------------------------------------------- rendering
    def scene(self) -> Scene:
        features = torch.cat((self.pos.float() * self._scale - 1.0, self._object_features), 1)
        layout = Layout(size=self.size, agent=self.pos, goal=None, walls=None, objects=self.objects)
        return Scene(features=features, layout=layout, instruction=self.instruction_ids)
