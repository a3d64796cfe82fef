"""Scenes for the modality tests: every kind of world a family must render (a helper module)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from metaxm.envs import (
    GridNav,
    GridNavConfig,
    GridNavLang,
    GridNavLangConfig,
    PointNav,
    PointNavConfig,
)
from metaxm.envs.base import Layout, Scene, SceneInfo

BATCH = 6


def _gridnav(**kwargs: object) -> Callable[[], tuple[Scene, SceneInfo]]:
    def make() -> tuple[Scene, SceneInfo]:
        world = GridNav(GridNavConfig(**kwargs), BATCH, seed=3)  # type: ignore[arg-type]
        return world.scene(), world.scene_info

    return make


def _gridnav_lang() -> tuple[Scene, SceneInfo]:
    """Coloured objects and an instruction (the families draw the objects; the instruction is
    not theirs to render)."""
    world = GridNavLang(GridNavLangConfig(size=6, objects=4), BATCH, seed=3)
    return world.scene(), world.scene_info


def _pointnav() -> tuple[Scene, SceneInfo]:
    world = PointNav(PointNavConfig(), BATCH, seed=3)
    g = torch.Generator().manual_seed(1)
    for _ in range(5):  # move away from the shared start
        world.step((torch.rand(BATCH, 2, generator=g) * 2.0 - 1.0) * 0.1)
    return world.scene(), world.scene_info


def _pointnav_hidden() -> tuple[Scene, SceneInfo]:
    world = PointNav(PointNavConfig(goal_visible=False), BATCH, seed=4)
    world.step(torch.full((BATCH, 2), 0.05))
    return world.scene(), world.scene_info


def _features() -> tuple[Scene, SceneInfo]:
    """A layout-less scene, as a wrapped gymnasium env (CartPole-like, D = 5) produces."""
    g = torch.Generator().manual_seed(2)
    features = torch.rand(BATCH, 5, generator=g) * 2.0 - 1.0
    features[0] = torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0])  # the extremes, exactly
    return Scene(features=features), SceneInfo(feature_dim=5)


SCENES: dict[str, Callable[[], tuple[Scene, SceneInfo]]] = {
    "gridnav": _gridnav(),
    "gridnav_walls": _gridnav(walls=True),
    "gridnav_walls_hidden_goal": _gridnav(walls=True, goal_visible=False),
    "gridnav_9": _gridnav(size=9, walls=True, wall_fraction=0.3),
    "gridnav_lang": _gridnav_lang,
    "pointnav": _pointnav,
    "pointnav_hidden_goal": _pointnav_hidden,
    "features": _features,
}


def row(scene: Scene, i: int) -> Scene:
    """Scene row ``i`` alone, as a batch of one."""
    layout = scene.layout
    if layout is None:
        return Scene(features=scene.features[i : i + 1])

    def pick(t: torch.Tensor | None) -> torch.Tensor | None:
        return None if t is None else t[i : i + 1]

    return Scene(
        features=scene.features[i : i + 1],
        layout=Layout(
            layout.size,
            layout.agent[i : i + 1],
            pick(layout.goal),
            pick(layout.walls),
            pick(layout.objects),
        ),  # fmt: skip
        instruction=pick(scene.instruction),
    )
