"""The ``text`` family: token ids of a templated English description of the scene.

Scenes with a layout are described clause by clause, numbers as words, rows and columns counted
from one at the top left::

    you are at row three column five . the goal is at row one column two .
    wall to the north . wall to the east .

The goal clause appears when the goal is visible; the wall clauses when the world has walls (a
clause per blocked side, the grid's edge counting as a wall, as in GridNav's features, or a
"no wall nearby" clause); an object clause per coloured object when the layout has objects
(``the red square is at row two column four .``, after the other clauses, in a per-variant
order). Object scenes use :data:`OBJECT_VOCAB_SIZE` ids (the colour words come last), every
other scene :data:`VOCAB_SIZE`, so their variants are those of a vocabulary without colours.
Scenes without a layout (a wrapped gymnasium env) list their features,
each quantised to an integer in [-``LEVELS``, ``LEVELS``]: ``feature one is minus two .
feature two is zero .`` (-1 reads "minus nine", 1 reads "nine").

Observations: int64 token ids, ``MultiDiscrete([VOCAB_SIZE] * L)`` with ``L =``
:func:`sequence_length` ``(info)``, the words packed to the left and padded with token 0.
:func:`decode` turns a variant's tokens back into the sentence.

What a variant changes: the template of each kind of clause (three each), the synonyms (you /
the agent / the player / the robot, goal / target / exit / prize, row and column / line and
column / y and x, compass / above-below / up-down directions, ...), the order of the clauses
(and of the wall sides, and of the features), and a cipher: a permutation of the non-pad ids.

Rendering is gathers only: a variant compiles its templates into fixed slot tensors (a literal
id, or a column of the per-scene value table such as "the agent's row in words", and a
condition such as "a wall to the north"); a render fills the slots, drops the unmet and empty
ones by packing the words to the left, and applies the cipher.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from metaxm.envs.base import Scene, SceneInfo
from metaxm.envs.instructions import COLOR_NAMES
from metaxm.modalities.base import Family, VariantParams

LEVELS = 9
"""Layout-less features are spoken as integers in [-LEVELS, LEVELS]."""
MAX_NUMBER = 99
"""The largest number spoken (grid sides and feature counts beyond it cannot be described)."""

_UNITS = (  # noqa: SIM905 (a list of number words reads best as one line of words)
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()  # noqa: SIM905

SYNONYMS: dict[str, tuple[dict[str, str], ...]] = {
    "agent": (
        {"is": "you are", "noun": "you"},
        {"is": "the agent is", "noun": "agent"},
        {"is": "the player is", "noun": "player"},
        {"is": "the robot is", "noun": "robot"},
    ),
    "goal": (
        {"is": "the goal is", "noun": "goal"},
        {"is": "the target is", "noun": "target"},
        {"is": "the exit is", "noun": "exit"},
        {"is": "the prize is", "noun": "prize"},
    ),
    "wall": ({"noun": "wall"}, {"noun": "block"}, {"noun": "barrier"}, {"noun": "rock"}),
    "axis": (
        {"row": "row", "col": "column"},
        {"row": "line", "col": "column"},
        {"row": "y", "col": "x"},
    ),
    "dir": (
        {"n": "to the north", "s": "to the south", "w": "to the west", "e": "to the east"},
        {"n": "above", "s": "below", "w": "to the left", "e": "to the right"},
        {"n": "up", "s": "down", "w": "left", "e": "right"},
    ),
    "feature": ({"noun": "feature"}, {"noun": "sensor"}, {"noun": "input"}, {"noun": "channel"}),
}
"""Synonym groups: a variant picks one entry per group; templates name ``{group.form}``."""

AGENT_TEMPLATES = (
    "{agent.is} at {axis.row} {ar} {axis.col} {ac} .",
    "{agent.is} in {axis.row} {ar} and {axis.col} {ac} .",
    "{agent.noun} : {axis.col} {ac} , {axis.row} {ar} .",
)
GOAL_TEMPLATES = (
    "{goal.is} at {axis.row} {gr} {axis.col} {gc} .",
    "{goal.noun} : {axis.row} {gr} , {axis.col} {gc} .",
    "{goal.is} in {axis.col} {gc} and {axis.row} {gr} .",
)
# (a blocked side, where {side} is one of n, s, w, e; no blocked side)
WALL_TEMPLATES = (
    ("{wall.noun} {dir.side} .", "no {wall.noun} nearby ."),
    ("there is a {wall.noun} {dir.side} .", "there is no {wall.noun} nearby ."),
    ("a {wall.noun} is {dir.side} .", "no {wall.noun} around ."),
)
FEATURE_TEMPLATES = (
    "{feature.noun} {index} is {value} .",
    "{feature.noun} {index} : {value} ,",
    "{feature.noun} {index} reads {value} .",
)
OBJECT_TEMPLATES = (
    "the {color} square is at {axis.row} {or} {axis.col} {oc} .",
    "{color} square : {axis.row} {or} , {axis.col} {oc} .",
    "a {color} square is in {axis.col} {oc} and {axis.row} {or} .",
)
"""Object clauses (scenes with coloured objects); ``{color}`` is the object's colour name."""
TEMPLATES: dict[str, tuple[str, ...] | tuple[tuple[str, str], ...]] = {
    "agent": AGENT_TEMPLATES,
    "goal": GOAL_TEMPLATES,
    "wall": WALL_TEMPLATES,
    "feature": FEATURE_TEMPLATES,
}
SIDES = ("n", "s", "w", "e")  # the order of GridNav's moves: up, down, left, right

# per-scene value slots: two words per number (the second may be empty); slot 0 is always pad;
# object k's row and column follow at _OBJECT_SLOTS + 4 k and _OBJECT_SLOTS + 4 k + 2
_NUMBER_SLOTS = {"ar": 1, "ac": 3, "gr": 5, "gc": 7}
_OBJECT_SLOTS = 9
# conditions: 0 always, 1 + side for a blocked side, 5 for no blocked side
_ALWAYS, _NO_WALL = 0, 5


def _vocabulary() -> tuple[str, ...]:
    words = ["<pad>", *_UNITS, *_TENS, "minus"]
    texts = [*AGENT_TEMPLATES, *GOAL_TEMPLATES, *FEATURE_TEMPLATES]
    texts += [t for pair in WALL_TEMPLATES for t in pair]
    texts += [v for group in SYNONYMS.values() for entry in group for v in entry.values()]
    for text in texts:
        for word in text.split():
            if not word.startswith("{") and word not in words:
                words.append(word)
    return tuple(words)


def _object_words(words: tuple[str, ...]) -> tuple[str, ...]:
    new: list[str] = []
    for word in [*COLOR_NAMES, *(w for t in OBJECT_TEMPLATES for w in t.split())]:
        if not word.startswith("{") and word not in words and word not in new:
            new.append(word)
    return tuple(new)


VOCAB_SIZE = len(_vocabulary())
"""The ids of scenes without objects."""
VOCAB = _vocabulary() + _object_words(_vocabulary())
"""Token id -> word; id 0 is padding; the words of object clauses come after VOCAB_SIZE."""
OBJECT_VOCAB_SIZE = len(VOCAB)
"""The ids of scenes with coloured objects."""
_ID = {w: i for i, w in enumerate(VOCAB)}


def number_words(n: int) -> tuple[str, ...]:
    """``n`` in words, one or two of them: 7 -> ("seven",), 42 -> ("forty", "two")."""
    if not 0 <= n <= MAX_NUMBER:
        raise ValueError(f"can only speak numbers in [0, {MAX_NUMBER}], got {n}")
    if n < 20:
        return (_UNITS[n],)
    return (_TENS[n // 10 - 2],) + ((_UNITS[n % 10],) if n % 10 else ())


# (MAX_NUMBER + 1, 2) long: the token ids of every number, padded with 0
NUMBER_TOKENS = torch.tensor(
    [[_ID[w] for w in number_words(n)] + [0] * (2 - len(number_words(n))) for n in range(100)]
)
_MINUS = _ID["minus"]


def sequence_length(info: SceneInfo) -> int:
    """L, the number of tokens of every observation for scenes described by ``info``."""
    if info.layout_size is None:
        return info.feature_dim * _longest(FEATURE_TEMPLATES)
    length = _longest(AGENT_TEMPLATES)
    if info.goal_visible:
        length += _longest(GOAL_TEMPLATES)
    if info.has_walls:
        length += len(SIDES) * _longest([t for t, _ in WALL_TEMPLATES])
        length += _longest([t for _, t in WALL_TEMPLATES])
    return length + info.num_objects * _longest(OBJECT_TEMPLATES)


def vocab_size(info: SceneInfo) -> int:
    """The token ids of scenes described by ``info``: colour words only where there are objects."""
    return OBJECT_VOCAB_SIZE if info.num_objects else VOCAB_SIZE


class TextFamily(Family):
    """Templated descriptions as token ids (see the module docstring)."""

    name = "text"

    def check_scene(self, info: SceneInfo) -> None:
        if info.layout_size is not None and info.layout_size > MAX_NUMBER:
            raise ValueError(f"text counts rows up to {MAX_NUMBER}; got {info.layout_size}")
        if info.layout_size is None and info.feature_dim > MAX_NUMBER:
            raise ValueError(f"text counts features up to {MAX_NUMBER}; got {info.feature_dim}")

    def observation_space(self, info: SceneInfo) -> gym.Space:
        return gym.spaces.MultiDiscrete(
            np.full(sequence_length(info), vocab_size(info), dtype=np.int64), dtype=np.int64
        )

    def variant_params(self, generator: torch.Generator, info: SceneInfo) -> VariantParams:
        def pick(n: int) -> int:
            return int(torch.randint(0, n, (), generator=generator))

        synonyms = {group: pick(len(entries)) for group, entries in SYNONYMS.items()}
        templates = {kind: pick(len(TEMPLATES[kind])) for kind in TEMPLATES}
        sides = tuple(torch.randperm(len(SIDES), generator=generator).tolist())
        n = info.feature_dim if info.layout_size is None else 1 + info.goal_visible + info.has_walls
        order = tuple(torch.randperm(n, generator=generator).tolist())
        cipher = torch.cat(
            (
                torch.zeros(1, dtype=torch.long),
                1 + torch.randperm(VOCAB_SIZE - 1, generator=generator),
            )
        )
        objects: tuple[int, ...] = ()
        object_template = 0
        if info.num_objects:  # drawn last, so the draws above are those of any other world
            extra = OBJECT_VOCAB_SIZE - VOCAB_SIZE
            cipher = torch.cat((cipher, VOCAB_SIZE + torch.randperm(extra, generator=generator)))
            object_template = pick(len(OBJECT_TEMPLATES))
            objects = tuple(torch.randperm(info.num_objects, generator=generator).tolist())
        variant = TextVariant(synonyms, templates, order, sides, cipher, object_template, objects)
        return variant.compile(info)

    def render(self, scene: Scene, params: VariantParams, generator: torch.Generator) -> Tensor:
        values, conds = _scene_tables(scene)  # (B, K) long, (B, C) bool or None
        tokens = values.gather(1, params["value"]).add_(params["literal"])  # (B, L)
        if conds is not None:
            tokens.mul_(conds.gather(1, params["cond"]))
        # pack the words to the left: word k of a row goes to slot k, pads to a dump slot L
        b, length = tokens.shape
        kept = tokens != 0
        target = kept.cumsum(1).sub_(1).masked_fill_(~kept, length)
        packed = tokens.new_zeros(b, length + 1).scatter_(1, target, tokens)[:, :length]
        return params["cipher"].gather(1, packed)

    def decode(self, tokens: Tensor, params: VariantParams) -> list[str]:
        """See :func:`decode`."""
        return decode(tokens, params)


@dataclass(frozen=True)
class TextVariant:
    """The choices that make one text variant; :meth:`compile` turns them into its parameters.

    Attributes:
        synonyms: the entry of each :data:`SYNONYMS` group.
        templates: the template of each kind of clause (``agent``, ``goal``, ``wall``,
            ``feature``), an index into :data:`TEMPLATES`.
        order: the order of the clauses: a permutation of the features (layout-less scenes),
            or of (agent, goal when visible, walls when present).
        sides: the order of the wall clauses, a permutation of (north, south, west, east).
        cipher: (VOCAB_SIZE,) plain id -> observed id with 0 -> 0; None for no cipher. For
            object scenes (OBJECT_VOCAB_SIZE,); a shorter one leaves the colour words as they are.
        object_template: the template of the object clauses, an index into OBJECT_TEMPLATES.
        objects: the order of the object clauses, a permutation of the objects (empty: in
            colour order).
    """

    synonyms: dict[str, int]
    templates: dict[str, int]
    order: tuple[int, ...]
    sides: tuple[int, ...] = (0, 1, 2, 3)
    cipher: Tensor | None = None
    object_template: int = 0
    objects: tuple[int, ...] = ()

    def compile(self, info: SceneInfo) -> VariantParams:
        """The variant's slot tensors for scenes described by ``info``."""
        words = {group: SYNONYMS[group][i] for group, i in self.synonyms.items()}
        template = {kind: TEMPLATES[kind][i] for kind, i in self.templates.items()}
        if info.layout_size is None:
            feature = template["feature"]
            units = [
                _compile(feature, words, {"index": i, "value": i}) for i in range(info.feature_dim)
            ]
        else:
            units = [_compile(template["agent"], words)]
            if info.goal_visible:
                units.append(_compile(template["goal"], words))
            if info.has_walls:
                wall, no_wall = template["wall"]
                block = [_compile(wall, words, {"side": s}, cond=1 + s) for s in self.sides]
                units.append(sum(block, []) + _compile(no_wall, words, cond=_NO_WALL))
        if sorted(self.order) != list(range(len(units))):
            raise ValueError(
                f"order must be a permutation of range({len(units)}), got {self.order}"
            )
        slots = sum((units[i] for i in self.order), [])
        template_o = OBJECT_TEMPLATES[self.object_template]
        for k in self.objects or range(info.num_objects):
            slots += _compile(template_o, words, {"object": k})
        slots += [(0, 0, _ALWAYS)] * (sequence_length(info) - len(slots))
        literal, value, cond = torch.tensor(slots, dtype=torch.long).T
        size = vocab_size(info)
        cipher = torch.arange(size) if self.cipher is None else self.cipher
        cipher = torch.cat((cipher, torch.arange(cipher.shape[0], size)))  # colour words as is
        return {
            "literal": literal,  # (L,) word id, 0 where the slot takes a value
            "value": value,  # (L,) column of the per-scene value table (0: none)
            "cond": cond,  # (L,) column of the per-scene condition table (0: always)
            "cipher": cipher,  # (VOCAB_SIZE,) plain id -> observed id, 0 -> 0
        }


def decode(tokens: Tensor, params: VariantParams) -> list[str]:
    """The sentences behind token ids rendered by one variant.

    Args:
        tokens: (L,) or (N, L) token ids.
        params: that variant's parameters, unstacked (as from ``TextFamily().variant(...)``)
            or stacked one row per token row.

    Returns:
        One sentence per row, the words joined by spaces, padding dropped.
    """
    tokens = tokens.reshape(-1, tokens.shape[-1]).long().cpu()
    cipher = params["cipher"].cpu()
    cipher = cipher.expand(tokens.shape[0], cipher.shape[-1]) if cipher.dim() == 1 else cipher
    plain = cipher.argsort(1).gather(1, tokens)  # observed id -> plain id
    return [" ".join(VOCAB[i] for i in row if i != 0) for row in plain.tolist()]


def _scene_tables(scene: Scene) -> tuple[Tensor, Tensor | None]:
    """The per-scene value table (B, K) of word ids and condition table (B, C) of booleans.

    The condition table is None when every clause is unconditional (no walls).
    """
    device = scene.features.device
    numbers = _numbers(device)
    layout = scene.layout
    b = scene.batch_size
    if layout is None:
        d = scene.features.shape[1]
        q = (scene.features.clamp(-1.0, 1.0) * LEVELS).round_().long()  # (B, D)
        values = torch.zeros(b, 1 + 2 * d, dtype=torch.long, device=device)
        pairs = values[:, 1:].view(b, d, 2)  # (sign, magnitude) per feature
        pairs[:, :, 0] = (q < 0).long() * _MINUS
        pairs[:, :, 1] = numbers[:, 0].index_select(0, q.abs_().view(-1)).view(b, d)
        return values, None
    goal = layout.goal if layout.goal is not None else layout.agent
    cells = torch.cat((layout.agent, goal), 1) + 1  # (B, 4): counted from one
    words = numbers.index_select(0, cells.view(-1)).view(b, 8)  # two slots per number
    values = torch.cat((words.new_zeros(b, 1), words), 1)  # (B, 9)
    if layout.objects is not None:  # (B, K, 2) cells -> (B, 4 K) words after column 8
        k = layout.objects.shape[1]
        spoken = numbers.index_select(0, (layout.objects + 1).view(-1)).view(b, 4 * k)
        values = torch.cat((values, spoken), 1)
    if layout.walls is None:
        return values, None
    g = layout.size
    padded = torch.nn.functional.pad(layout.walls, (1, 1, 1, 1), value=True).view(b, -1)
    at = (layout.agent[:, 0] + 1) * (g + 2) + layout.agent[:, 1] + 1  # (B,)
    steps = torch.tensor([-(g + 2), g + 2, -1, 1], device=device)  # up, down, left, right
    blocked = padded.gather(1, at[:, None] + steps)  # (B, 4)
    free = ~blocked.any(1, keepdim=True)
    return values, torch.cat((torch.ones_like(free), blocked, free), 1)  # always, 4 sides, none


_NUMBERS: dict[torch.device, Tensor] = {}


def _numbers(device: torch.device) -> Tensor:
    """NUMBER_TOKENS on ``device`` (cached, so a GPU render does not copy it every step)."""
    if device not in _NUMBERS:
        _NUMBERS[device] = NUMBER_TOKENS.to(device)
    return _NUMBERS[device]


def _compile(
    template: str,
    words: dict[str, dict[str, str]],
    fill: dict[str, int] | None = None,
    cond: int = _ALWAYS,
) -> list[tuple[int, int, int]]:
    """A template as (literal id, value column, condition column) slots.

    ``words`` holds the variant's chosen synonyms; ``fill`` the clause's side ("side": 0-3) or
    feature ("index" and "value": the feature's position). Numbers take two slots (the second
    possibly empty) so every variant of a clause has a bounded length.
    """
    fill = fill or {}
    slots: list[tuple[int, int, int]] = []
    for token in template.split():
        if not token.startswith("{"):
            slots.append((_ID[token], 0, cond))
            continue
        name = token[1:-1]
        if name in _NUMBER_SLOTS:
            slots += [(0, _NUMBER_SLOTS[name], cond), (0, _NUMBER_SLOTS[name] + 1, cond)]
        elif name in ("or", "oc"):
            column = _OBJECT_SLOTS + 4 * fill["object"] + (2 if name == "oc" else 0)
            slots += [(0, column, cond), (0, column + 1, cond)]
        elif name == "color":
            slots.append((_ID[COLOR_NAMES[fill["object"]]], 0, cond))
        elif name == "index":
            slots += [(_ID[w], 0, cond) for w in number_words(fill["index"] + 1)]
        elif name == "value":
            slots += [(0, 1 + 2 * fill["value"], cond), (0, 2 + 2 * fill["value"], cond)]
        else:
            group, form = name.split(".")
            form = SIDES[fill["side"]] if form == "side" else form
            slots += [(_ID[w], 0, cond) for w in words[group][form].split()]
    return slots


def _longest(templates: list[str] | tuple[str, ...]) -> int:
    """The most slots any variant of these templates can take."""

    def width(token: str) -> int:
        if not token.startswith("{"):
            return 1
        name = token[1:-1]
        if name in _NUMBER_SLOTS or name in ("index", "value", "or", "oc"):
            return 2
        if name == "color":
            return 1
        group, form = name.split(".")
        forms = SIDES if form == "side" else (form,)
        return max(len(e[f].split()) for e in SYNONYMS[group] for f in forms)

    return max(sum(width(t) for t in template.split()) for template in templates)
