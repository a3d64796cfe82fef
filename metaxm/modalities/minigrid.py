"""MiniGrid's own observations as modality families: its symbolic grid and its RGB view.

Both render the egocentric view a :class:`~metaxm.envs.minigrid.MiniGridScene` carries
(MiniGrid's ``obs["image"]``: (object, colour, state) ids per cell of the V x V view in front of
the agent), so they show the same information in two forms; they render MiniGrid scenes only
(world ``minigrid``). Images are drawn with rows = y, columns = x, the agent at the bottom
centre looking up, as MiniGrid draws its agent's point of view.

``minigrid_symbolic``: uint8 (20, V, V), a one-hot plane per object type (11), colour (6) and
door state (3) — the id grid in the form convolutional encoders take. What a variant changes:
a permutation of the object planes, of the colour planes and of the state planes (an id
permutation of the symbolic grid).

``minigrid_rgb``: uint8 (3, V * RGB_TILE, V * RGB_TILE), MiniGrid's agent-POV render
(``env.get_pov_render``) drawn from the grid with MiniGrid's own tiles at ``RGB_TILE`` pixels,
with one difference: cells the agent cannot see are black (the symbolic grid marks them
unseen), where MiniGrid draws their hidden content unhighlighted. What a variant changes: a
permutation of MiniGrid's six colours (a red ball shows in another colour; the walls' grey
too), a permutation of the RGB channels, and which channels are inverted (255 - x). Variant 0
is not special: the identity is :func:`pov_image`.

The tile table is drawn once per tile size by MiniGrid's renderer (``Grid.render_tile``), so
rendering is one gather; building it needs the ``minigrid`` package.
"""

from __future__ import annotations

from functools import lru_cache

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from metaxm.envs.base import Scene, SceneInfo
from metaxm.envs.minigrid import MiniGridScene, MiniGridSceneInfo, import_minigrid
from metaxm.modalities.base import Family, VariantParams

NUM_OBJECTS, NUM_COLORS, NUM_STATES = 11, 6, 3
"""MiniGrid's OBJECT_TO_IDX, COLOR_TO_IDX and door STATE_TO_IDX sizes."""
NUM_PLANES = NUM_OBJECTS + NUM_COLORS + NUM_STATES
NUM_CODES = NUM_OBJECTS * NUM_COLORS * NUM_STATES
RGB_TILE = 4
"""Pixels per cell of ``minigrid_rgb`` (MiniGrid draws 32): a 7 x 7 view is 28 x 28 pixels."""
UNSEEN = 0


def _check(name: str, info: SceneInfo) -> None:
    if not isinstance(info, MiniGridSceneInfo):
        raise ValueError(f"{name} renders MiniGrid scenes only (world: minigrid)")


def _view(scene: Scene, name: str) -> Tensor:
    if not isinstance(scene, MiniGridScene) or scene.view is None:
        raise ValueError(f"{name} renders MiniGrid scenes only (world: minigrid)")
    return scene.view


class MiniGridSymbolicFamily(Family):
    """One-hot planes of MiniGrid's symbolic grid (see the module docstring)."""

    name = "minigrid_symbolic"

    def check_scene(self, info: SceneInfo) -> None:
        _check(self.name, info)

    def observation_space(self, info: SceneInfo) -> gym.Space:
        _check(self.name, info)
        v = info.view_size  # type: ignore[attr-defined]
        return gym.spaces.Box(0, 1, (NUM_PLANES, v, v), np.uint8)

    def variant_params(self, generator: torch.Generator, info: SceneInfo) -> VariantParams:
        return {
            "object": torch.randperm(NUM_OBJECTS, generator=generator),
            "color": NUM_OBJECTS + torch.randperm(NUM_COLORS, generator=generator),
            "state": NUM_OBJECTS + NUM_COLORS + torch.randperm(NUM_STATES, generator=generator),
        }

    def render(self, scene: Scene, params: VariantParams, generator: torch.Generator) -> Tensor:
        view = _view(scene, self.name).long()  # (B, V[x], V[y], 3)
        b, v = view.shape[0], view.shape[1]
        view = view.transpose(1, 2).reshape(b, v * v, 3)  # row-major over (y, x)
        out = torch.zeros(b, NUM_PLANES, v * v, dtype=torch.uint8, device=view.device)
        for k, key in enumerate(("object", "color", "state")):
            plane = params[key].gather(1, view[:, :, k])  # (B, V * V)
            out.scatter_(1, plane[:, None, :], 1)
        return out.view(b, NUM_PLANES, v, v)


class MiniGridRGBFamily(Family):
    """MiniGrid's agent-POV image at ``RGB_TILE`` pixels per cell (see the module docstring)."""

    name = "minigrid_rgb"

    def check_scene(self, info: SceneInfo) -> None:
        _check(self.name, info)

    def observation_space(self, info: SceneInfo) -> gym.Space:
        _check(self.name, info)
        s = info.view_size * RGB_TILE  # type: ignore[attr-defined]
        return gym.spaces.Box(0, 255, (3, s, s), np.uint8)

    def variant_params(self, generator: torch.Generator, info: SceneInfo) -> VariantParams:
        return {
            "color": torch.randperm(NUM_COLORS, generator=generator),
            "channels": torch.randperm(3, generator=generator),
            "invert": torch.randint(0, 2, (3,), generator=generator).bool(),
        }

    def render(self, scene: Scene, params: VariantParams, generator: torch.Generator) -> Tensor:
        view = _view(scene, self.name).long()
        color = params["color"].gather(1, view[..., 1].flatten(1)).view_as(view[..., 1])
        image = pov_image(torch.stack((view[..., 0], color, view[..., 2]), -1), RGB_TILE)
        b, _, s, _ = image.shape
        image = image.gather(1, params["channels"][:, :, None, None].expand(b, 3, s, s))
        return torch.where(params["invert"][:, :, None, None], 255 - image, image)


def pov_image(view: Tensor, tile: int) -> Tensor:
    """MiniGrid's agent-POV render of symbolic views, unseen cells black.

    Args:
        view: (B, V, V, 3) integer (object, colour, state) ids, indexed [x, y] as MiniGrid's
            ``obs["image"]``.
        tile: pixels per cell.

    Returns:
        (B, 3, V * tile, V * tile) uint8, rows = y.
    """
    b, v = view.shape[0], view.shape[1]
    tiles, agent_tiles = tile_tables(tile)
    tiles, agent_tiles = tiles.to(view.device), agent_tiles.to(view.device)
    code = (view[..., 0] * NUM_COLORS + view[..., 1]) * NUM_STATES + view[..., 2]  # (B, V, V)
    cells = tiles[code]  # (B, V[x], V[y], tile[py], tile[px], 3)
    # the agent is drawn over its own cell, at the bottom centre, facing up (MiniGrid's POV)
    cells[:, v // 2, v - 1] = agent_tiles[code[:, v // 2, v - 1]]
    return cells.permute(0, 5, 2, 3, 1, 4).reshape(b, 3, v * tile, v * tile)


@lru_cache(maxsize=4)
def tile_tables(tile: int) -> tuple[Tensor, Tensor]:
    """MiniGrid's tiles for every (object, colour, state) id, as seen by the agent.

    Returns:
        ``(tiles, agent_tiles)``, each (NUM_CODES, tile, tile, 3) uint8: the highlighted tile
        of a visible cell (black for ``unseen``), and the same with the agent drawn on it
        facing up. Ids MiniGrid cannot decode are black.
    """
    import_minigrid()
    from minigrid.core.grid import Grid
    from minigrid.core.world_object import WorldObj

    tiles = np.zeros((NUM_CODES, tile, tile, 3), dtype=np.uint8)
    agent_tiles = np.zeros_like(tiles)
    for obj in range(NUM_OBJECTS):
        for color in range(NUM_COLORS):
            for state in range(NUM_STATES):
                code = (obj * NUM_COLORS + color) * NUM_STATES + state
                if obj == UNSEEN:
                    continue
                try:
                    cell = WorldObj.decode(obj, color, state)
                except (AssertionError, KeyError):  # pragma: no cover (every id decodes today)
                    continue
                tiles[code] = Grid.render_tile(cell, highlight=True, tile_size=tile)
                agent_tiles[code] = Grid.render_tile(
                    cell, agent_dir=3, highlight=True, tile_size=tile
                )
    return torch.from_numpy(tiles), torch.from_numpy(agent_tiles)
