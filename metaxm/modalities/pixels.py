"""The ``pixels`` family: a small RGB image of the scene, one tile per grid cell.

Scenes with a layout are drawn on their G x G grid: every cell is background, wall, goal,
coloured object or agent (the agent is drawn over the goal and objects). Object k is drawn in
the fixed colour ``COLORS[k]`` of :mod:`metaxm.envs.instructions` in every variant, so that "red"
means red whatever the palette (the palette then keeps its distance from the object colours).
Scenes without a layout (a wrapped gymnasium env) are
drawn as a bar chart on a G x G grid with ``G = max(BAR_GRID, D)``: the grid's columns are
shared out among the D features in order, and a feature's columns hold a bar whose top cell
(drawn in the agent colour) sits at the feature's value quantised to G levels (-1 at the bottom
row, 1 at the top row), with the cells below it in the wall colour.

Observations: uint8, shape (3, S, S) with ``S = 4 * G``, channel first, in [0, 255].

What a variant changes:

- the palette: background, wall, goal, agent, padding and occluder colours, any two at least
  ``MIN_COLOR_DISTANCE`` apart in RGB;
- the tile size, 3 or 4 pixels: the 3G or 4G pixel content is centred in the S x S image and the
  rest is padding colour;
- one of the 8 dihedral transforms of the grid (rotations by quarter turns, with or without a
  flip);
- occlusion: a fixed rectangle of 1 or 2 by 1 or 2 cells that is painted over in the occluder
  colour on a variant-fixed fraction (``MIN_OCCLUSION`` to ``MAX_OCCLUSION``) of frames, drawn
  from the render generator; a quarter of the variants have no occluder.

Rendering is gathers only. Every image row is a run of 32-bit words of 4 pixels, and a word
covers at most two cells (tiles are 3 or 4 pixels wide), so a variant precomputes, for each
word of each grid row, the two source cells it shows and a table of the word's value for every
pair of cell classes. A render then builds a class per source cell, gathers the words of the
G + 1 distinct image rows (the G grid rows and a padding row) and copies whole rows into place.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from metaxm.envs.base import Scene, SceneInfo
from metaxm.envs.instructions import COLORS
from metaxm.modalities.base import Family, VariantParams

TILE_PIXELS = 4
"""S = TILE_PIXELS * G: the image fits the largest tile size."""
TILE_SIZES = (3, 4)
BAR_GRID = 8
"""The smallest bar-chart grid for layout-less scenes."""
MIN_COLOR_DISTANCE = 80.0
MIN_OCCLUSION = 0.25
MAX_OCCLUSION = 0.75
NO_OCCLUDER_PROB = 0.25

# cell classes, in palette order
BACKGROUND, WALL, GOAL, AGENT, PADDING, OCCLUDER = range(6)
NUM_CLASSES = 6


def grid_size(info: SceneInfo) -> int:
    """G, the side of the grid drawn for scenes described by ``info``."""
    if info.layout_size is not None:
        return info.layout_size
    return max(BAR_GRID, info.feature_dim)


def image_size(info: SceneInfo) -> int:
    """S, the side of the image (``4 * G``)."""
    return TILE_PIXELS * grid_size(info)


class PixelsFamily(Family):
    """Tile images of the grid (see the module docstring)."""

    name = "pixels"

    def observation_space(self, info: SceneInfo) -> gym.Space:
        s = image_size(info)
        return gym.spaces.Box(0, 255, (3, s, s), np.uint8)

    def variant_params(self, generator: torch.Generator, info: SceneInfo) -> VariantParams:
        g = grid_size(info)
        s = TILE_PIXELS * g
        palette = _palette(generator, info.num_objects)  # (NUM_CLASSES + objects, 3) uint8
        n = palette.shape[0]
        tile = TILE_SIZES[int(torch.randint(0, len(TILE_SIZES), (), generator=generator))]
        dihedral = int(torch.randint(0, 8, (), generator=generator))
        occluder, occlusion = _occluder(generator, g)

        # pixel -> display cell along one axis (g = padding); square and centred, so rows and
        # columns share it
        x = torch.arange(s)
        offset = (s - tile * g) // 2
        inside = (x >= offset) & (x < offset + tile * g)
        axis = torch.where(inside, (x - offset).div(tile, rounding_mode="floor"), g)  # (S,)

        # display cell (i, j), padding row/column included -> source class index (g * g = pad)
        src = torch.arange(g * g).view(g, g).rot90(dihedral % 4)
        if dihedral >= 4:
            src = src.flip(1)
        disp = torch.full((g + 1, g + 1), g * g, dtype=torch.long)
        disp[:g, :g] = src

        # words of 4 pixels: the cells under a word's first and last pixel (at most two differ)
        words = axis.view(s // 4, 4)  # (W, 4)
        first, last = words[:, 0], words[:, 3]
        src_a = disp[:, first]  # (G + 1, W)
        src_b = disp[:, last]
        from_a = words == first[:, None]  # (W, 4) which pixels show the first cell

        # table[c, w, a, b]: the word for classes a (first cell) and b (last cell), channel c
        col_a = palette.T[:, None, :, None, None].expand(3, s // 4, n, n, 4)
        col_b = palette.T[:, None, None, :, None].expand(3, s // 4, n, n, 4)
        table = torch.where(from_a[None, :, None, None, :], col_a, col_b).contiguous()
        table = table.view(torch.int32).reshape(3, -1)  # 4 bytes -> one word
        base = torch.arange(s // 4) * n * n  # (W,)
        return {
            "src_a": src_a.reshape(-1),  # (H * W,) with H = G + 1 image rows, W words
            "src_b": src_b.reshape(-1),
            "base": base.repeat(g + 1),  # (H * W,)
            "table": table,  # (3, W * n**2) int32, n = NUM_CLASSES + objects
            # (3 * S,) int32: the word row shown by image row y of channel c, c * H + row(y)
            "rows": (torch.arange(3)[:, None] * (g + 1) + axis).view(-1).int(),
            "occluder": occluder,  # (G * G + 1,) bool over source cells
            "occlusion": occlusion,  # () probability that the occluder shows in a frame
            # what the tables were made from, for display and tests
            "palette": palette,  # (n, 3) uint8
            "tile": torch.tensor(tile),
            "dihedral": torch.tensor(dihedral),  # rot90 by dihedral % 4, then flip columns if >= 4
        }

    def render(self, scene: Scene, params: VariantParams, generator: torch.Generator) -> Tensor:
        classes = cell_classes(scene)  # (B, G * G + 1)
        b = classes.shape[0]
        device = classes.device
        hide = torch.rand(b, generator=generator, device=device) < params["occlusion"]
        classes.masked_fill_(hide[:, None] & params["occluder"], OCCLUDER)
        n = params["palette"].shape[1]  # classes, objects included
        key = classes.gather(1, params["src_a"]).mul_(n)  # (B, H * W)
        key.add_(classes.gather(1, params["src_b"])).add_(params["base"])
        words = params["table"].gather(2, key[:, None, :].expand(b, 3, key.shape[1]))
        s = params["rows"].shape[1] // 3
        h = key.shape[1] // (s // 4)
        offsets = torch.arange(0, b * 3 * h, 3 * h, dtype=torch.int32, device=device)
        rows = (offsets[:, None] + params["rows"]).view(-1)  # (B * 3 * S,) int32
        image = words.view(b * 3 * h, s // 4).index_select(0, rows)  # (B * 3 * S, W) int32
        return image.view(torch.uint8).view(b, 3, s, s)


def cell_classes(scene: Scene) -> Tensor:
    """(B, G * G + 1) long: the class of every source cell, row-major, then the padding class."""
    layout = scene.layout
    if layout is None:
        return _bar_classes(scene.features)
    b, g = layout.agent.shape[0], layout.size
    classes = torch.empty(b, g * g + 1, dtype=torch.long, device=layout.agent.device)
    if layout.walls is None:
        classes[:, : g * g] = BACKGROUND
    else:
        classes[:, : g * g].copy_(layout.walls.reshape(b, g * g))  # WALL == 1
    classes[:, g * g] = PADDING
    if layout.goal is not None:
        goal = layout.goal[:, 0] * g + layout.goal[:, 1]
        classes.scatter_(1, goal[:, None], GOAL)
    if layout.objects is not None:  # object k in class NUM_CLASSES + k
        cells = layout.objects[:, :, 0] * g + layout.objects[:, :, 1]  # (B, K)
        kinds = torch.arange(NUM_CLASSES, NUM_CLASSES + cells.shape[1], device=cells.device)
        classes.scatter_(1, cells, kinds.expand_as(cells))
    agent = layout.agent[:, 0] * g + layout.agent[:, 1]
    return classes.scatter_(1, agent[:, None], AGENT)


def _bar_classes(features: Tensor) -> Tensor:
    """Bar-chart cell classes for layout-less scenes (see the module docstring)."""
    b, d = features.shape
    g = max(BAR_GRID, d)
    device = features.device
    level = ((features.clamp(-1.0, 1.0) + 1.0) * (0.5 * (g - 1))).round_().long()  # (B, D)
    column = torch.arange(g, device=device) * d // g  # (G,) the feature each column shows
    level = level[:, column]  # (B, G)
    # bars[r, q]: the class of row r in a column at level q (its top is row g - 1 - q)
    r = torch.arange(g, device=device)[:, None]
    top = (g - 1) - torch.arange(g, device=device)  # (G,) by level
    bars = torch.where(r > top, WALL, torch.where(r == top, AGENT, BACKGROUND))  # (G, G)
    index = level[:, None, :].expand(b, g, g)
    classes = bars.expand(b, g, g).gather(2, index).view(b, g * g)  # (B, G * G) row-major
    return torch.cat((classes, classes.new_full((b, 1), PADDING)), 1)


def _palette(generator: torch.Generator, objects: int = 0) -> Tensor:
    """NUM_CLASSES colours, pairwise at least MIN_COLOR_DISTANCE apart (rejection sampling), then
    the ``objects`` fixed object colours, which the drawn ones also keep that distance from.

    Without objects the draws are those of a palette before objects existed, so every variant of
    the other worlds is unchanged."""
    fixed = torch.tensor([rgb for _, rgb in COLORS[:objects]], dtype=torch.float32).view(-1, 3)
    for _ in range(10_000):
        colors = torch.randint(0, 256, (NUM_CLASSES, 3), generator=generator)
        dist = torch.cdist(colors.float(), colors.float())
        dist.fill_diagonal_(float("inf"))
        if objects:
            dist = torch.cat((dist, torch.cdist(colors.float(), fixed)), 1)
        if float(dist.min()) >= MIN_COLOR_DISTANCE:
            return torch.cat((colors.float(), fixed)).to(torch.uint8)
    raise RuntimeError("could not draw a palette of distinct colours")  # pragma: no cover


def _occluder(generator: torch.Generator, g: int) -> tuple[Tensor, Tensor]:
    """A variant's occluder: (G * G + 1,) bool mask over source cells, and its frame rate."""
    mask = torch.zeros(g, g, dtype=torch.bool)
    u = torch.rand(2, generator=generator)
    h, w = (torch.randint(1, 3, (2,), generator=generator)).tolist()
    r = int(torch.randint(0, g - h + 1, (), generator=generator))
    c = int(torch.randint(0, g - w + 1, (), generator=generator))
    if float(u[0]) < NO_OCCLUDER_PROB:
        return torch.zeros(g * g + 1, dtype=torch.bool), torch.zeros(())
    mask[r : r + h, c : c + w] = True
    rate = MIN_OCCLUSION + float(u[1]) * (MAX_OCCLUSION - MIN_OCCLUSION)
    return torch.cat((mask.flatten(), torch.zeros(1, dtype=torch.bool))), torch.tensor(rate)
