"""Reading the walls beside the agent from a ``pixels`` image (a world with inner walls):
:class:`WallTiles`, what the ``pixels`` translator reads the source's wall channels with.

In a world with inner walls (GridNav's ``walls: true``) the source tells, for each move, whether
a wall stops it: a channel that takes one value where the cell the move leads to is a wall or
off the grid, another where it is not (:func:`~metaxm.align.action_readers.wall_answers`). A
colour's moment is linear in where its tiles are, but whether a cell is a wall is not: the
walls are many tiles of one colour, and their moment says nothing of the cells beside the
agent. So these channels are read by looking: the agent's centroid is an affine map of its
features (the variant's rotation, flip and tile size), each action's step moves it by one tile
to the cell the move leads to, and the colour of the pixel there says whether that cell stops
the move; a pixel off the image stops it too. Where the agent's colour is partly hidden (the
occluder), each wall channel reads its no-wall value.

From pairs (``translate``, :meth:`WallTiles.fit`) the map is fitted to the source's features,
and the colours that stop a move (the wall's, the padding's) are those the pairs show there
only where the source's channel tells a wall. From a walk alone (``selfread``,
:meth:`WallTiles.fit_walk`) each action's offset is how it moved the agent's centroid, and the
colours that stop a move are those seen there only before moves that did not move it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from metaxm.align.action_readers import context_answers, wall_channels
from metaxm.align.reading_set import FIT, SavedSizes

MOVES = 0.01
"""The least a feature's unit moves the agent's centroid, in image widths (a cell is a third of a
feature's unit, 3-4 pixels of 28: about 0.4)."""
WALL_SHARE = 0.99
"""A colour seen beside the agent stops the move where the source tells a wall on at least
this share of the pairs that show it there."""


class WallTiles(SavedSizes, nn.Module):
    """The source's wall channels read from an image (see the module docstring): :meth:`fit`
    from pairs, then call it on images (N, C, H, W) with the colours' pixel masks."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.register_buffer("active", torch.tensor(False))
        self.register_buffer("agent", torch.tensor(-1))  # the agent's colour (of the masks')
        self.register_buffer("whole", torch.tensor(0.0))  # its pixels where nothing hides it
        self.register_buffer("offsets", torch.zeros(0, 2))  # (W, 2) each channel's move, image
        self.register_buffer("stops", torch.zeros(0, channels))  # (P, C) colours that stop it
        # (3, W): each wall channel, its value where the move is stopped and where not
        self.register_buffer("values", torch.zeros(3, 0, dtype=torch.float64))

    @torch.no_grad()
    def fit(
        self,
        target: Tensor,
        moments: Tensor,
        counts: Tensor,
        coords: Tensor,
        source: Tensor,
        context: Any,
    ) -> bool:
        """Fit from the pairs' images ``target`` (N, C, H, W), their colours' summed pixel
        coordinates ``moments`` (N, K, 2) and pixel counts ``counts`` (N, K) over ``coords``
        (H * W, 2, centred), as the colour translator's ``read_colours`` gives them, and the
        source's observations ``source`` (N, S); the ``context`` gives the source's walls and
        each action's step. False (nothing read) where the source tells no walls or the
        agent's colour or the walls' colours are not found."""
        from metaxm.align.walk_features import feature_steps

        self.active.fill_(False)
        walls = source_walls(context)
        if walls is None:
            return False
        told = wall_channels(walls)
        moving = agent_features(context)
        features = (source.double().cpu() @ context.feature_map())[:, moving]  # (N, m)
        counts = counts.cpu()  # (N, K)
        centroids = moments.cpu().double() / counts.clamp_min(1)[..., None]
        agent, to_image = _agent_map(centroids, counts, features)
        if agent < 0:
            return False
        whole = counts[:, agent] == counts[counts[:, agent] > 0, agent].mode().values
        steps = feature_steps(context)[:, moving]  # (A, m)
        offsets = (steps[walls[0, told].long()] @ to_image[:-1]).float()  # (W, 2)
        colours = _beside(target[whole], centroids[whole, agent], offsets, coords)
        level = walls[1, told]
        stopped = (source.double().cpu()[whole][:, told] - level).abs() <= FIT * level.abs()
        stops = _stopping(colours, stopped)  # stopped: (N, W) the source tells a wall there
        return self._keep(agent, float(counts[whole, agent][0]), offsets, stops, walls)

    @torch.no_grad()
    def fit_walk(
        self,
        target: Tensor,
        match: Tensor,
        coords: Tensor,
        agent: int,
        moves: tuple[Tensor, Tensor, Tensor],
        context: Any,
    ) -> bool:
        """Fit from a walk's images alone (no pair, no reward; ``selfread``): ``target`` and
        ``coords`` as :meth:`fit` has them, the colours' pixel masks ``match`` (N, H * W, K),
        the agent's colour ``agent`` (the one that moves), and ``moves`` (actions (N,),
        transitions first -> second). Each wall
        channel's offset is how far its action moved the agent's centroid where it moved it;
        the colours that stop a move are those seen there only before moves that did not move
        it. False (nothing read) where the source tells no walls, or a wall channel's action
        never moved the agent."""
        self.active.fill_(False)
        walls = source_walls(context)
        if walls is None or agent < 0:
            return False
        actions, first, second = (t.cpu() for t in moves)
        counts = match[..., agent].sum(1).cpu()
        centre = (match[..., agent] @ coords).cpu().double()
        centre = centre / counts.clamp_min(1)[:, None]  # (N, 2)
        shown = counts[counts > 0]
        if not len(shown):
            return False
        full = float(shown.mode().values)
        both = (counts[first] == full) & (counts[second] == full)
        delta = centre[second] - centre[first]  # (M, 2)
        moved = delta.abs().amax(1) > 1e-6
        told = wall_channels(walls)
        offsets = []
        for a in walls[0, told].long().tolist():
            made = both & moved & (actions[first] == a)
            if not bool(made.any()):
                return False
            offsets.append(delta[made].median(0).values)
        offsets = torch.stack(offsets).float()  # (W, 2)
        acted = actions[first][both]
        which = (acted[:, None] == walls[0, told].long()).float().argmax(1)  # its channel
        at = _beside(target[first[both]], centre[first[both]], offsets, coords)  # (M, W, C)
        colours = at[torch.arange(len(which)), which][:, None, :]  # (M, 1, C)
        stops = _stopping(colours, ~moved[both][:, None])
        return self._keep(agent, full, offsets, stops, walls)

    def _keep(
        self, agent: int, whole: float, offsets: Tensor, stops: Tensor | None, walls: Tensor
    ) -> bool:
        """Keep a fit (see :meth:`fit`); False where no colour stops a move."""
        if stops is None:
            return False
        told = wall_channels(walls)
        device = self.active.device
        self.agent.fill_(agent)
        self.whole.fill_(whole)
        self.offsets, self.stops = offsets.to(device), stops.to(device)
        self.values = torch.stack((told.double(), walls[1, told], walls[2, told])).to(device)
        self.active.fill_(True)
        return True

    def forward(self, target: Tensor, match: Tensor, coords: Tensor) -> Tensor:
        """(N, W) the source's wall channels read from images ``target`` (N, C, H, W) with
        their colours' pixel masks ``match`` (N, H * W, K) over ``coords`` (H * W, 2)."""
        mask = match[..., int(self.agent)]  # (N, H * W)
        count = mask.sum(1)
        centre = (mask @ coords) / count.clamp_min(1)[:, None]  # (N, 2)
        colours = _beside(target, centre, self.offsets, coords)  # (N, W, C)
        stop = (colours[:, :, None, :] == self.stops).all(-1).any(-1)  # (N, W)
        stop = stop & (count == self.whole)[:, None]  # the agent (partly) hidden: no wall
        values = self.values.to(target.device)
        return torch.where(stop, values[1], values[2]).float()


def source_walls(context: Any) -> Tensor | None:
    """(3, S) the walls the source's channels tell (:func:`~metaxm.align.action_readers.
    source_answers`), computed once per context; None where they tell none (a world without
    inner walls) or the context has no moves or features."""
    if context is None or context.moves is None or context.features is None:
        return None
    walls = context_answers(context)[1]
    return walls if len(wall_channels(walls)) else None


def wall_features(context: Any) -> list[int]:
    """The features the source's wall channels tell (none without inner walls)."""
    walls = source_walls(context)
    if walls is None:
        return []
    told = wall_channels(walls)
    return sorted(set(context.feature_map()[told].abs().argmax(1).tolist()))


def agent_features(context: Any) -> list[int]:
    """The features some action moves, less the walls' (:func:`wall_features`)."""
    from metaxm.align.walk_features import moving_features

    walls = wall_features(context)
    return [f for f in moving_features(context) if f not in walls]


def _agent_map(centroids: Tensor, counts: Tensor, features: Tensor) -> tuple[int, Tensor]:
    """The colour whose centroid is an affine map of the agent's ``features`` (N, m) over the
    images that show it whole, and that map ((m + 1, 2), the last row the offset); (-1, _)
    where none is."""
    ones = torch.ones(len(features), 1, dtype=torch.float64)
    design = torch.cat((features, ones), 1)
    for k in range(counts.shape[1]):
        shown = counts[:, k] > 0
        if int(shown.sum()) <= design.shape[1]:
            continue
        whole = shown & (counts[:, k] == counts[shown, k].mode().values)
        x, y = design[whole], centroids[whole, k]
        if int(torch.linalg.matrix_rank(x)) < design.shape[1]:
            continue
        solution = torch.linalg.lstsq(x, y).solution
        # a colour that moves with the agent, not a static one (whose weights are rounding)
        moves = float(torch.linalg.svdvals(solution[:-1]).min()) > MOVES
        if moves and float((x @ solution - y).abs().max()) <= 1e-4:
            return k, solution
    return -1, torch.zeros(0)


def _beside(target: Tensor, centre: Tensor, offsets: Tensor, coords: Tensor) -> Tensor:
    """(N, W, C) the colour of the pixel at ``centre`` (N, 2) plus each of ``offsets`` (W, 2)
    in images ``target`` (N, C, H, W) whose pixels sit at ``coords`` (H * W, 2): -1 off the
    image (a move off it is stopped)."""
    n, c, h, w = target.shape
    device = target.device
    coords = coords.to(device)
    pixels = target.float().flatten(2).transpose(1, 2)  # (N, H * W, C)
    spot = centre.float().to(device)[:, None, :] + offsets.float().to(device)  # (N, W, 2)
    # the nearest pixel: coords are (x, y) / max(h, w), centred by the same offset
    step = (coords[1] - coords[0]).abs().amax()
    origin = coords[0]
    col = ((spot[..., 0] - origin[0]) / step).round().long()
    row = ((spot[..., 1] - origin[1]) / step).round().long()
    inside = (col >= 0) & (col < w) & (row >= 0) & (row < h)
    index = (row.clamp(0, h - 1) * w + col.clamp(0, w - 1)).flatten(1)  # (N, W)
    out = pixels.gather(1, index[..., None].expand(-1, -1, c))  # (N, W, C)
    return torch.where(inside[..., None], out, torch.full_like(out, -1.0))


def _stopping(colours: Tensor, stopped: Tensor) -> Tensor | None:
    """(P, C) the colours that stop a move: seen beside the agent where the source tells a wall,
    on at least :data:`WALL_SHARE` of the times they are seen there (off the image: -1
    included); None where no colour is seen there with a wall."""
    flat, wall = colours.flatten(0, 1), stopped.flatten()
    found = []
    for colour in flat[wall].unique(dim=0):
        at = (flat == colour).all(-1)
        if float(wall[at].double().mean()) >= WALL_SHARE:
            found.append(colour)
    return torch.stack(found) if found else None
