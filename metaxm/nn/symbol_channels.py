"""Images and sentences as channels for the sensory encoder: a few channels for every symbol.

Selected with ``agent.encoder: sensory`` and ``agent.sensory_images: colours`` (RGB images, the
``pixels`` family) or ``agent.sensory_text: words`` (token ids, the ``text`` family). An
observation is read as a set of *symbols* at *places*: an image's colours (exact RGB values) at
its pixels, a sentence's token ids at its word positions. Each symbol present gives a group of
channels: where it lies (the mean of its places' coordinates: column and row of an image from -1
at the left or top edge to 1 at the right or bottom, a word's position in the sentence from -1
at the start to 1 at the end of the sentence's L slots) and its share of the places (of the
pixels; of the sentence's words). The shared sensory neurons
(:class:`~metaxm.nn.sensory.SensoryEncoder`) read them as they read a vector's channels.

That makes a new variant a re-wiring the neurons were built for:

- ``pixels``: a variant changes the palette (which colour is the agent's, the goal's, the
  walls'), the tile size (the same cells, drawn larger or smaller about the centre) and one of
  the 8 dihedral transforms of the grid. A colour's channels do not depend on which colour it
  is, the order of the colours is lost in the pooling, and a dihedral transform permutes and
  re-signs each colour's two coordinates. Which colour is the agent is what the neurons find out
  from the window: its coordinates answer the actions.
- ``text``: a variant ciphers the token ids, picks synonyms and templates and orders the
  clauses. A word's channels do not depend on its id; what they carry is where a word stands
  and how often it is said: a number word said twice is the agent's row or column equal to the
  goal's, and a wall clause comes and goes at the grid's edges. They do not carry which number
  a word is; that, where it is learned at all, is learned in context.

A symbol keeps its channels over a window by its identity: step t's window holds, for each
symbol present at t, that symbol's channels at each of the last K steps (zero where it was
absent). The memory carries each of the last K - 1 steps' symbols (as integers, exact in the
memory's float type) and channels, so the windows of a whole rollout are built at once, as
:class:`~metaxm.nn.sensory.SensoryChannels` builds a vector's.

An observation with more than ``symbols`` distinct symbols keeps those with the smallest ids.
The ``pixels`` family draws at most 6 colours (background, wall, goal, agent, padding, occluder)
and one more per coloured object; a ``text`` sentence of GridNav says at most 15 distinct words.

With ``agent.sensory_memory: trial`` (:mod:`metaxm.nn.channel_stats`) a vector family's neurons
also read their channel's statistics over the trial. A symbol's channels move between slots as
symbols come and go, so they keep no per-channel sums: their statistic rows are zero, and a
symbol family is read from its window alone beside channel families that remember.
"""

from __future__ import annotations

import gymnasium as gym
import torch
from torch import Tensor, nn

from metaxm.nn.channel_stats import ChannelStats
from metaxm.nn.sensory import SensoryChannels

MAX_COLOURS = 8
"""The most colours of an image that get channels."""
MAX_WORDS = 16
"""The most distinct words of a sentence that get channels."""


def is_image(space: gym.Space) -> bool:
    """``space`` is an RGB image box (3, H, W) of 0-255 values, which colour channels read."""
    return (
        isinstance(space, gym.spaces.Box)
        and len(space.shape) == 3
        and space.shape[0] == 3
        and float(space.low.min()) >= 0
        and float(space.high.max()) <= 255
    )


def is_sentence(space: gym.Space) -> bool:
    """``space`` is a sequence of token ids (1-D ``MultiDiscrete``, 0 the padding), which word
    channels read."""
    return isinstance(space, gym.spaces.MultiDiscrete) and len(space.shape) == 1


def symbol_table(
    symbols: Tensor, where: Tensor, slots: int, dtype: torch.dtype = torch.float32
) -> tuple[Tensor, Tensor]:
    """The distinct symbols of each observation and their channels.

    Args:
        symbols: (N, P) long, the symbol at each of P places, >= 0; -1 where there is none.
        where: (P, D) the coordinates of the places.
        slots: M, the most symbols kept per observation (the smallest).
        dtype: the floating type of what it returns.

    Returns:
        keys (N, M): each symbol plus 1, ascending, 0 for an empty slot; and values (N, M,
        D + 1): the mean coordinates of its places and its share of the observation's places
        that hold a symbol (0 for an empty slot).
    """
    n, p = symbols.shape
    ordered, order = symbols.sort(1)
    held = ordered >= 0
    new = held.clone()
    new[:, 1:] &= ordered[:, 1:] != ordered[:, :-1]
    slot = torch.where(held, (new.long().cumsum(1) - 1).clamp(max=slots), slots)  # M: dropped
    d = where.shape[1]
    placed = torch.cat((where.to(dtype), where.new_ones(p, 1, dtype=dtype)), 1)[order]
    sums = torch.zeros(n, slots + 1, d + 1, device=symbols.device, dtype=dtype)
    sums.scatter_add_(1, slot[..., None].expand(-1, -1, d + 1), placed)
    count = sums[:, :slots, d:]
    total = held.sum(1, keepdim=True).clamp(min=1)[..., None].to(dtype)
    values = torch.cat((sums[:, :slots, :d] / count.clamp(min=1), count / total), 2)
    keys = torch.zeros(n, slots + 1, dtype=torch.long, device=symbols.device)
    keys.scatter_reduce_(1, slot, ordered + 1, "amax")
    return keys[:, :slots].to(dtype), values


def colour_table(
    images: Tensor, colours: int = MAX_COLOURS, dtype: torch.dtype = torch.float32
) -> tuple[Tensor, Tensor]:
    """images (N, 3, H, W) of RGB values 0-255 (any dtype holding whole numbers) -> their colours
    (``R * 2**16 + G * 2**8 + B``, plus 1; exact in float32) and channels (mean column, mean
    row, share of the pixels), as :func:`symbol_table`."""
    _, _, h, w = images.shape
    rgb = images.round().long() if images.is_floating_point() else images.long()
    symbols = (rgb[:, 0] * 65536 + rgb[:, 1] * 256 + rgb[:, 2]).flatten(1)
    column = (torch.arange(w, device=images.device, dtype=dtype) + 0.5) * (2 / w) - 1
    row = (torch.arange(h, device=images.device, dtype=dtype) + 0.5) * (2 / h) - 1
    where = torch.stack((column.repeat(h), row.repeat_interleave(w)), 1)
    return symbol_table(symbols, where, colours, dtype)


def word_table(
    tokens: Tensor, words: int = MAX_WORDS, dtype: torch.dtype = torch.float32
) -> tuple[Tensor, Tensor]:
    """tokens (N, L) ids, 0 the padding -> their words and channels (mean position in the L
    slots, share of the sentence's words), as :func:`symbol_table`."""
    length = tokens.shape[1]
    ids = tokens.round().long() if tokens.is_floating_point() else tokens.long()
    position = (torch.arange(length, device=tokens.device, dtype=dtype) + 0.5) * (2 / length) - 1
    return symbol_table(torch.where(ids > 0, ids, -1), position[:, None], words, dtype)


class SymbolChannels(SensoryChannels):
    """A family's symbol channels for the shared sensory encoder (see the module); like
    :class:`~metaxm.nn.sensory.SensoryChannels` it has no parameters.

    Args:
        window: K, the steps each neuron sees (``agent.sensory_window``).
        action_dim: the width of the previous-action encoding.
        symbols: M, the most symbols of an observation that get channels.
        group: the channels of a symbol (its coordinates and its share).
        trial: the shared encoder reads trial statistics (``agent.sensory_memory: trial``):
            the windows get its statistic rows, zero (see the module).
        scaled: with ``trial``, the statistics include the scaled value (one more zero row).
    """

    def __init__(
        self,
        window: int,
        action_dim: int,
        symbols: int,
        group: int,
        trial: bool = False,
        scaled: bool = False,
    ) -> None:
        nn.Module.__init__(self)
        self.symbols = symbols
        self.group = group
        self.channels = group * symbols
        self.window = window
        self.action_dim = action_dim
        self.scale = 1.0
        self.stats = None  # symbols change slots from step to step: no per-channel trial sums
        self.zero_rows = ChannelStats(0, action_dim, scaled).features if trial else 0

    def table(self, obs: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        """obs (N, *shape) -> keys (N, M) and values (N, M, group), as :func:`symbol_table`."""
        raise NotImplementedError

    @property
    def step_width(self) -> int:
        """What one step adds to the memory: its symbols, their channels, the previous action."""
        return (1 + self.group) * self.symbols + self.action_dim

    def windows(
        self,
        obs: Tensor,
        prev_action: Tensor,
        reset: Tensor | None,
        memory: Tensor,
        first: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """As :meth:`SensoryChannels.windows`: windows (T, B, K, group * M + A), each symbol of
        step t with its channels at every step of t's window (with ``trial``, then S zero
        rows: (T, B, K + S, group * M + A))."""
        t, b = obs.shape[:2]
        m = self.symbols
        keys, values = self.table(obs.flatten(0, 1), memory.dtype)
        current = torch.cat((keys, values.flatten(1)), 1).unflatten(0, (t, b))
        current = torch.cat((current, prev_action.to(memory.dtype)), -1)
        steps, after = self.step_windows(current, reset, memory)
        then = steps[..., :m]  # (T, B, K, M) the symbols of each entry of the window
        now = then[:, :, -1:]  # (T, B, 1, M) the symbols of the window's own step
        same = (then[..., None, :] == now[..., None]) & (now[..., None] > 0)  # (T, B, K, M, M)
        values = steps[..., m : (1 + self.group) * m].unflatten(-1, (m, self.group))
        grouped = torch.einsum("tbkmn,tbknv->tbkmv", same.to(values.dtype), values)
        windows = torch.cat((grouped.flatten(-2), steps[..., (1 + self.group) * m :]), -1)
        if self.zero_rows:
            windows = torch.cat(
                (windows, windows.new_zeros(t, b, self.zero_rows, windows.shape[-1])), 2
            )
        return windows, after


class ColourChannels(SymbolChannels):
    """An RGB image family (:func:`is_image`) read as three channels per colour."""

    def __init__(
        self,
        space: gym.Space,
        window: int,
        action_dim: int,
        colours: int = MAX_COLOURS,
        trial: bool = False,
        scaled: bool = False,
    ) -> None:
        if not is_image(space):
            raise ValueError(f"colour channels read RGB images (3, H, W) of 0-255, not {space}")
        super().__init__(window, action_dim, colours, group=3, trial=trial, scaled=scaled)

    def table(self, obs: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        return colour_table(obs, self.symbols, dtype)


class WordChannels(SymbolChannels):
    """A token-id family (:func:`is_sentence`) read as two channels per distinct word."""

    def __init__(
        self,
        space: gym.Space,
        window: int,
        action_dim: int,
        words: int = MAX_WORDS,
        trial: bool = False,
        scaled: bool = False,
    ) -> None:
        if not is_sentence(space):
            raise ValueError(f"word channels read 1-D sequences of token ids, not {space}")
        super().__init__(window, action_dim, words, group=2, trial=trial, scaled=scaled)

    def table(self, obs: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        return word_table(obs, self.symbols, dtype)
