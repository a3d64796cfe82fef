"""Reading a palette image by where each colour is: the ``translate`` learner's translator for
the ``pixels`` family.

A ``pixels`` observation (:mod:`metaxm.modalities.pixels`) paints every grid cell in one exact
palette colour (background, wall, goal, agent, padding, occluder), with a variant's palette,
tile size and one of the 8 rotations or flips of the grid. :class:`ColourMomentTranslator`
reads it as

    m_c = sum of the centred (x, y) of the pixels of colour c     two numbers per colour
    source = m @ routing                                          a linear map, no intercept

The colours are those of the pairs' images, most frequent first, without the most frequent (the
background, which is what the others leave, so its moment would repeat theirs). A colour's
moment is its pixel count times its centroid; for one cell of it, the tile's area times the
cell's centre, which a rotation, a flip and the tile size move linearly, and which is 0 at the
grid's centre, as the source's features are. So the agent's moment reads the agent's row and
column exactly from the steps of a walk, and the goal's, constant in an episode, is pinned by
two goals as a re-wired vector's channel is (the vector translator's least squares without
intercept). The routing is fitted in closed form (:func:`~metaxm.align.least_squares.fit_routing`);
there are no gradient steps.

A channel least squares leaves open is read in two more ways, given the ``translate`` learner's
:class:`~metaxm.align.translation_context.TranslationContext`. The goal's channels are open
after one episode (the goal colour never moves, so it is left out of the least squares, where
its constant moment would act as an offset) and after two goals on one line through the grid's
centre (which move the goal colour's two moments in proportion).

1. **Tied channels** (:mod:`~metaxm.align.tied_readings`). In the family's training variants
   the goal's row is read from the goal colour with the weights, in proportion, that the
   agent's row is read with from the agent colour (one rotation, flip and tile size for the
   whole image); :meth:`ColourMomentTranslator.prepare` learns these ties from their pairs. An
   open goal channel is then read with its agent channel's weights from the one colour whose
   moments fit the goal's channels over the pairs. This reads a goal after one episode
   wherever it is, the grid's centre included, since the walk pins the agent's weights.
2. **One moment at the agent's scale** (:func:`~metaxm.align.least_squares.single_readings`,
   from the source's observations of drawn states), where no tie reads it (a family without
   training variants): a goal on the centre's row or column or on a diagonal through it is
   left unread, since which moment is which, or its sign, cannot be told from its values.

What it assumes, and the reason it is the ``pixels`` family's only: exact colours (a rendered
photograph, with noise or anti-aliasing, would give every pixel its own colour). Other images
get :class:`~metaxm.align.translate.KeypointTranslator`, which learns its colour reader.
"""

from __future__ import annotations

import gymnasium as gym
import torch
from torch import Tensor, nn

from metaxm.align.least_squares import fit_routing, single_readings
from metaxm.align.tied_readings import learn_ties, tied_readings
from metaxm.align.translation_context import TranslationContext
from metaxm.align.wall_tiles import WallTiles, agent_features, source_walls

MAX_COLOURS = 8
"""Colours read (after the background); the rarer ones of a busier image read nothing."""


class ColourMomentTranslator(nn.Module):
    """An image (C, H, W) of exact colours -> (S,): each colour's first moment, routed linearly
    (see the module docstring); :meth:`start` fits it, and it has no parameters for gradient
    steps."""

    uses_context = True

    def __init__(self, space: gym.Space, out_dim: int, config: object = None) -> None:
        super().__init__()
        c, h, w = space.shape
        ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        coords = torch.stack((xs.flatten(), ys.flatten()), 1) / max(h, w)  # (H * W, 2)
        self.register_buffer("coords", coords, persistent=False)
        self.register_buffer("centre", torch.zeros(2))
        self.register_buffer("colours", torch.full((MAX_COLOURS, c), -1.0))  # -1: no colour
        self.register_buffer("routing", torch.zeros(2 * MAX_COLOURS, out_dim))
        self.walls = WallTiles(c)  # the source's wall channels, read by looking (inner walls)
        self.space, self.out_dim = space, out_dim
        self.sources: Tensor | None = None
        self.context: TranslationContext | None = None
        self.ties: dict[int, tuple[int, float]] = {}

    def prepare(self, context: TranslationContext) -> None:
        """Take the source's observations of drawn states, whose ranges give the scale of a
        channel the pairs leave undetermined
        (:func:`~metaxm.align.least_squares.single_readings`), and learn which channels the
        family reads with the same weights from different colours (the goal's and the agent's,
        :func:`~metaxm.align.tied_readings.learn_ties`) from its training variants' pairs."""
        self.sources, self.context = context.sources, context
        if "colour_ties" not in context.learned:  # once per context: 8 fits of 256 pairs
            routings = []
            for target, source in context.family_pairs:
                fitted = ColourMomentTranslator(self.space, self.out_dim)
                fitted.context = context  # inner walls: their colour left out of the routing
                fitted.start(target.cpu(), source.cpu())
                routings.append(fitted.routing)
            context.learned["colour_ties"] = learn_ties(routings, 2)
        self.ties = context.learned["colour_ties"]

    def moments(self, obs: Tensor, match: Tensor | None = None) -> Tensor:
        """(N, C, H, W) -> (N, 2 * MAX_COLOURS): each colour's summed centred coordinates
        (``match``: the colours' pixel masks, :meth:`_match`, where already taken)."""
        match = self._match(obs) if match is None else match
        return (match.transpose(1, 2) @ (self.coords - self.centre)).flatten(1)

    def _match(self, obs: Tensor) -> Tensor:
        pixels = obs.float().flatten(2).transpose(1, 2)  # (N, H * W, C)
        return (pixels[:, :, None, :] == self.colours).all(-1).float()  # (N, H * W, K)

    def read_colours(self, target: Tensor) -> tuple[Tensor, Tensor]:
        """Take the colours of ``target`` (N, C, H, W) and the grid's centre; return each
        colour's moment in each image (N, K, 2) and its pixel count (N, K)."""
        pixels = target.flatten(2).transpose(1, 2).float()  # (N, H * W, C)
        colours, counts = _palette(pixels.flatten(0, 1))
        order = counts.argsort(descending=True)
        # the grid's centre: the middle of where the background ever shows
        ground = (pixels == colours[order[0]]).all(-1).any(0)  # (H * W,)
        where = self.coords[ground]
        self.centre.copy_((where.amin(0) + where.amax(0)) / 2)
        order = order[1 : MAX_COLOURS + 1]  # the background left out
        self.colours.fill_(-1.0)
        self.colours[: order.numel()] = colours[order]
        match = self._match(target)  # (N, H * W, K)
        return match.transpose(1, 2) @ (self.coords - self.centre), match.sum(1)

    @torch.no_grad()
    def start(self, target: Tensor, source: Tensor) -> None:
        """Fit the colours and the routing to ``target`` (N, C, H, W) and ``source`` (N, S)."""
        moments, counts = self.read_colours(target)  # (N, K, 2), (N, K)
        centroids = moments / counts.clamp_min(1)[..., None]
        shown = counts > 0
        low = centroids.masked_fill(~shown[..., None], float("inf")).amin(0)
        high = centroids.masked_fill(~shown[..., None], float("-inf")).amax(0)
        static = ((high - low).abs() < 1e-6).all(1) | ~shown.any(0)  # (K,) never moves
        # a world with inner walls: the source's wall channels are read by looking, and the
        # walls' colour (more than one tile, moving from episode to episode) is left out of
        # the routing, and of the rows' test below, which its count would fail across episodes
        walled = torch.zeros_like(static)
        if source_walls(self.context) is not None and self.walls.fit(
            target, moments, counts, self.coords - self.centre, source, self.context
        ):
            walled = (counts.amax(0) > self.walls.whole.to(counts)) & ~static
            moments = moments.masked_fill(walled[:, None], 0.0)
        # rows where a colour shows more or less of itself than usual (the occluder painted
        # over it, or the agent stands on the goal) do not follow the linear map: left out
        modal = counts.mode(0).values  # (K,)
        whole = ((counts == modal) | static | walled).all(1)
        x, y = moments[whole], source[whole]
        moving = x.masked_fill(static[:, None], 0.0).flatten(1)  # a static colour: no offset
        routing = fit_routing(moving, y)
        if self.sources is not None:
            ranges = self.sources.abs().amax(0)
            # a channel least squares could not read from the moving colours (the goal's, after
            # one episode or two goals on a line through the centre): with the weights of the
            # channel it is tied to, from the one colour that fits; else from one moment at
            # the agent's scale, a static colour's too
            real = self.colours[:, 0] >= 0
            routing = tied_readings(x.flatten(1), y, routing, self.ties, 2, ranges, real)
            routing = single_readings(x.flatten(1), y, routing, ranges)
        else:
            self.colours[static] = -1.0  # read as no colour from now on
        self.routing.copy_(routing)

    @torch.no_grad()
    def start_unpaired(self, obs: Tensor, actions: Tensor, first: Tensor, second: Tensor) -> bool:
        """Fit from the target's observations and the agent's actions alone (no reward, no
        pair): the map from the colours' moments to the scene's features read from how they
        answer the actions (:func:`~metaxm.align.colour_walk.colour_reader`), rendered in the
        source. True if it reads; False where the walk shows too little (then it reads 0)."""
        from metaxm.align.colour_walk import colour_reader

        self.routing.zero_()
        self.walls.active.fill_(False)  # not read from the actions (yet)
        context = self.context
        if context is None or context.reached is None or context.moves is None:
            return False
        reader = colour_reader(self, obs, actions, first, second, context)
        if reader is None:
            return False
        self.routing.copy_(reader @ context.source_map())
        if source_walls(context) is not None:  # inner walls: read by looking, from the walk
            # the agent's colour: the one that moves with the agent's features
            moved = reader[:, agent_features(context)].abs().sum(1).view(-1, 2).sum(1)
            agent = int(moved.argmax()) if bool(moved.gt(0).any()) else -1
            self.walls.fit_walk(obs, self._match(obs), self.coords - self.centre, agent,
                                (actions, first, second), context)  # fmt: skip
        return True

    def forward(self, obs: Tensor) -> Tensor:
        match = self._match(obs)
        out = self.moments(obs, match) @ self.routing
        if bool(self.walls.active):
            channels = self.walls.values[0].long()
            out[:, channels] = self.walls(obs, match, self.coords - self.centre)
        return out


def _palette(pixels: Tensor) -> tuple[Tensor, Tensor]:
    """(P, C) pixels of 8-bit channels -> their distinct colours (K, C), in the order of
    ``unique(dim=0)``, and each one's count (K,); through one integer per colour, which
    ``unique`` sorts about 35 times faster than rows."""
    weights = 256 ** torch.arange(pixels.shape[1] - 1, -1, -1, device=pixels.device)
    codes, counts = (pixels.long() @ weights).unique(return_counts=True)
    digits = codes[:, None] // weights % 256
    return digits.to(pixels.dtype), counts
