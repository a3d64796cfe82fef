"""The pixels family against a plain per-pixel reference renderer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from modality_scenes import SCENES

from metaxm.envs.base import Layout, Scene, SceneInfo
from metaxm.modalities import expand_params
from metaxm.modalities.pixels import (
    AGENT,
    GOAL,
    MIN_COLOR_DISTANCE,
    OCCLUDER,
    PADDING,
    WALL,
    PixelsFamily,
    image_size,
)

FAMILY = PixelsFamily()


def reference(classes: np.ndarray, params: dict[str, torch.Tensor], hidden: bool) -> np.ndarray:
    """Draw a (G, G) grid of cell classes pixel by pixel, following the module docstring."""
    g = classes.shape[0]
    s = 4 * g
    classes = classes.copy()
    if hidden:
        classes[params["occluder"][:-1].view(g, g).numpy()] = OCCLUDER
    k = int(params["dihedral"])
    shown = np.rot90(classes, k % 4)
    if k >= 4:
        shown = shown[:, ::-1]
    palette = params["palette"].numpy()
    t = int(params["tile"])
    offset = (s - t * g) // 2
    image = np.empty((s, s, 3), np.uint8)
    image[:] = palette[PADDING]
    for i in range(g):
        for j in range(g):
            y, x = offset + i * t, offset + j * t
            image[y : y + t, x : x + t] = palette[shown[i, j]]
    return image.transpose(2, 0, 1)


def layout_classes(scene: Scene, b: int) -> np.ndarray:
    layout = scene.layout
    g = layout.size
    classes = np.zeros((g, g), np.int64)
    if layout.walls is not None:
        classes[layout.walls[b].numpy()] = WALL
    if layout.goal is not None:
        classes[tuple(layout.goal[b].tolist())] = GOAL
    classes[tuple(layout.agent[b].tolist())] = AGENT
    return classes


@pytest.mark.parametrize("world", ["gridnav_walls", "gridnav_9", "pointnav"])
@pytest.mark.parametrize("hidden", [False, True])
def test_matches_the_reference_renderer(world: str, hidden: bool) -> None:
    scene, info = SCENES[world]()
    b = scene.batch_size
    for seed in range(12):
        params = FAMILY.variant(seed, info)
        if hidden and not params["occluder"].any():
            continue
        params["occlusion"] = torch.tensor(float(hidden))  # always or never shown
        obs = FAMILY.render(scene, expand_params(params, b, "cpu"), torch.Generator())
        for i in range(b):
            expected = reference(layout_classes(scene, i), params, hidden)
            np.testing.assert_array_equal(obs[i].numpy(), expected, err_msg=f"{seed=} {i=}")


def test_bar_chart_of_a_layout_less_scene() -> None:
    scene = Scene(features=torch.tensor([[-1.0, 1.0, 0.0]]))
    info = SceneInfo(feature_dim=3)
    assert image_size(info) == 32  # G = 8 for D <= 8
    params = FAMILY.variant(0, info)
    params["occlusion"] = torch.tensor(0.0)
    obs = FAMILY.render(scene, expand_params(params, 1, "cpu"), torch.Generator())
    # columns 0-2 show feature 0 (-1: tip on the bottom row), 3-5 feature 1 (1: full bar),
    # 6-7 feature 2 (0 -> level round(3.5) = 4: tip on row 3, body below)
    classes = np.zeros((8, 8), np.int64)
    classes[7, 0:3] = AGENT
    classes[0, 3:6] = AGENT
    classes[1:, 3:6] = WALL
    classes[3, 6:8] = AGENT
    classes[4:, 6:8] = WALL
    np.testing.assert_array_equal(obs[0].numpy(), reference(classes, params, hidden=False))


def test_variants_cover_tiles_transforms_and_occluders() -> None:
    info = SCENES["gridnav"]()[1]
    variants = [FAMILY.variant(seed, info) for seed in range(64)]
    assert {int(p["tile"]) for p in variants} == {3, 4}
    assert {int(p["dihedral"]) for p in variants} == set(range(8))
    with_occluder = [p for p in variants if p["occluder"].any()]
    assert 0 < len(with_occluder) < len(variants)
    for p in with_occluder:
        assert 1 <= int(p["occluder"].sum()) <= 4 and not bool(p["occluder"][-1])
        assert 0.25 <= float(p["occlusion"]) <= 0.75


def test_palettes_are_distinct() -> None:
    info = SCENES["gridnav"]()[1]
    for seed in range(32):
        colors = FAMILY.variant(seed, info)["palette"].float()
        dist = torch.cdist(colors, colors) + torch.eye(len(colors)) * 1e9
        assert float(dist.min()) >= MIN_COLOR_DISTANCE


def test_occluder_shows_on_about_its_rate_of_frames() -> None:
    scene, info = SCENES["gridnav"]()
    params = next(p for p in (FAMILY.variant(s, info) for s in range(100)) if p["occluder"].any())
    batch = 2000
    big = Scene(
        features=scene.features[:1].expand(batch, -1),
        layout=Layout(scene.layout.size, scene.layout.agent[:1].expand(batch, 2), None, None),
    )
    obs = FAMILY.render(big, expand_params(params, batch, "cpu"), torch.Generator().manual_seed(0))
    occluder = params["palette"][OCCLUDER]
    shown = (obs == occluder[:, None, None]).all(1).flatten(1).any(1).float().mean()
    assert abs(float(shown) - float(params["occlusion"])) < 0.05
