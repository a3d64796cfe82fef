"""Reading a sentence's number words as the scene's features, and searching the words that
k episodes leave unsaid: the text translator's readings in a world with features (GridNav).

A text variant ciphers the words and re-orders the clauses, but every number of the scene is
said by one word at one place of the sentence, and a number word is the same word wherever it
stands (rows and columns share them). Given the source modality's features of each paired step
(the translation context's feature map, exact for a vector source), :func:`read_words` reads:

1. **Places.** A place whose word changes over the pairs reads the one feature whose values
   are in one-to-one correspondence with its words (the agent's row and column, which a walk
   changes). A feature constant over the pairs (the goal's, after one episode) is read at the
   one other place after the same word (its *key*, :func:`place_keys`) as a feature the
   family's training variants always say after that same word (:func:`word_ties`: the goal's
   row after "row", as the agent's).
2. **Words.** Each word said at a feature's place is worth that feature's value there: one value
   per word, one word per value, in the features' units, so no scale has to be matched
   between readings (what left :func:`~metaxm.align.token_values.read_values` unsure after a
   walk of three steps).

A word the pairs never said is one of the values no said word has, which one unknown.
:class:`WordSearch` keeps them all: at every step each unsaid word in the sentence takes each
free value (one value per word), and the reading closest to the state it chose one step before
is chosen. That follows the agent's own position step by step (walking from a said row onto an
unsaid one, the word is worth the next row), and since no two words share a value it moves a
guessed goal off the values the walk has since heard. It reads the sentence alone: no
reward, no pair, and no world test (a wrong goal is never stood on in its own words). The
state it reads is rendered in the source modality by the least-squares map from features to
source observations.
"""

from __future__ import annotations

import itertools
from typing import Any

import torch
from torch import Tensor, nn

from metaxm.align.reading_set import SavedSizes, column_levels

SNAP = 0.25
"""A decoded feature lies within this share of its levels' spacing of one of them."""


def place_keys(ids: Tensor) -> Tensor:
    """(L,) long: the id before each place where it is the same in every row of ``ids``
    (N, L) (the word a template says before a number: "row", "column"), else -1."""
    before = torch.cat((ids.new_full((ids.shape[0], 1), -1), ids[:, :-1]), 1)
    return torch.where((before == before[:1]).all(0), before[0], torch.full_like(before[0], -1))


def snapped(source: Tensor, decode: Tensor, levels: list[Tensor]) -> Tensor | None:
    """(N, F) the features of ``source`` (N, S) through ``decode`` (S, F), each on its nearest
    level; None where one lies off every level by more than :data:`SNAP` of their spacing."""
    feats = source.double().cpu() @ decode
    out = torch.empty_like(feats)
    for f, values in enumerate(levels):
        gap, which = (feats[:, f, None] - values).abs().min(1)
        spacing = float((values[1:] - values[:-1]).min()) if len(values) > 1 else 1.0
        if float(gap.max()) > SNAP * spacing:
            return None
        out[:, f] = values[which]
    return out


def one_to_one(a: Tensor, b: Tensor) -> bool:
    """Whether the rows' pairs ``(a_n, b_n)`` pair each value of ``a`` with one of ``b`` and
    each value of ``b`` with one of ``a``."""
    pairs = torch.stack((a.double(), b.double()), 1).unique(dim=0)
    return len(pairs) == len(a.unique()) == len(b.unique())


def moving_places(ids: Tensor, feats: Tensor) -> dict[int, int]:
    """``{feature: place}`` for each feature that changes over the rows and is read, one to
    one, by exactly one place of ``ids`` (N, L)."""
    moving = (ids != ids[:1]).any(0).nonzero().flatten().tolist()
    out = {}
    for f in range(feats.shape[1]):
        if bool((feats[:, f] == feats[0, f]).all()):
            continue
        found = [p for p in moving if one_to_one(ids[:, p], feats[:, f])]
        if len(found) == 1:
            out[f] = found[0]
    return out


def word_ties(pairs: list[tuple[Tensor, Tensor]], decode: Tensor, levels: list[Tensor]) -> dict:
    """``{f: [g, ...]}``: feature ``f`` is said after the same word as feature ``g`` in every
    one of the family's training variants (``pairs``: their token ids and the source's
    observations of the same drawn states); empty where a variant does not say every feature
    at a place of its own."""
    ties: dict[int, set[int]] | None = None
    for target, source in pairs:
        ids, feats = target.long().flatten(1).cpu(), snapped(source, decode, levels)
        places = moving_places(ids, feats) if feats is not None else {}
        if len(places) < len(levels):
            return {}
        keys = place_keys(ids)
        found = {
            f: {g for g, q in places.items() if g != f and keys[q] == keys[p] >= 0}
            for f, p in places.items()
        }
        ties = found if ties is None else {f: ties[f] & found[f] for f in ties}
    return {f: sorted(g) for f, g in (ties or {}).items() if g}


def tied_places(
    places: dict[int, int], keys: Tensor, ties: dict[int, list[int]], features: int
) -> dict[int, int] | None:
    """``places`` (feature -> place, the features the walk moved) with every other feature's
    place: the one other place after the word (``keys``: :func:`place_keys`) a feature it is
    tied to stands after (:func:`word_ties`); None where a feature has none."""
    places = dict(places)
    for f in range(features):
        for g in ties.get(f, []) if f not in places else []:
            if g not in places or keys[places[g]] < 0:
                continue
            taken = set(places.values())
            same = [p for p in range(len(keys)) if keys[p] == keys[places[g]] and p not in taken]
            if len(same) == 1:
                places[f] = same[0]
                break
        if f not in places:
            return None
    return places


def read_words(
    ids: Tensor, feats: Tensor, ties: dict[int, list[int]]
) -> tuple[list[int], dict[int, float]] | None:
    """Each feature's place and each said number word's value (see the module docstring),
    from ``ids`` (N, L) and the features ``feats`` (N, F) of the same steps; None where a
    feature has no place or a word would have two values (or a value two words)."""
    places = tied_places(moving_places(ids, feats), place_keys(ids), ties, feats.shape[1])
    if places is None:
        return None
    values: dict[int, float] = {}
    for f, p in places.items():
        for word, value in zip(ids[:, p].tolist(), feats[:, f].tolist(), strict=True):
            if values.setdefault(word, value) != value:
                return None
    if len(set(values.values())) != len(values):
        return None
    return [places[f] for f in range(feats.shape[1])], values


class WordSearch(SavedSizes, nn.Module):
    """Token ids (L,) -> the source's (S,) through the scene's features, searching the values
    of the number words the pairs never said (see the module docstring). :meth:`fit` reads the
    pairs; :meth:`begin` forgets the states chosen before."""

    def __init__(self, vocab: int, out_dim: int) -> None:
        super().__init__()
        self.register_buffer("active", torch.tensor(False))
        self.register_buffer("places", torch.zeros(0, dtype=torch.long))  # (F,)
        self.register_buffer("value", torch.full((vocab,), float("nan"), dtype=torch.float64))
        self.register_buffer("free", torch.zeros(0, dtype=torch.float64))  # (U,) unsaid values
        self.register_buffer("render", torch.zeros(0, out_dim, dtype=torch.float64))  # (F, S)
        self.last: Tensor | None = None

    @torch.no_grad()
    def fit(self, ids: Tensor, source: Tensor, context: Any) -> bool:
        """Read ``ids`` (N, L) against ``source`` (N, S) with ``context``'s feature map, levels
        and training variants (their word ties, learned once per context); True if it reads
        (else it is inactive and the translator reads as before)."""
        self.active.fill_(False)
        levels = None if context is None or context.features is None else column_levels(
            context.features)  # fmt: skip
        if levels is None:
            return False
        feats = snapped(source, context.feature_map(), levels)
        read = None if feats is None else read_words(ids.cpu(), feats, self.ties(context, levels))
        return read is not None and self.keep(*read, levels, context)

    @torch.no_grad()
    def fit_unpaired(
        self, ids: Tensor, actions: Tensor, first: Tensor, second: Tensor, context: Any
    ) -> bool:
        """Read ``ids`` (N, L) from the agent's ``actions`` and the transitions ``first`` ->
        ``second`` alone, no pair (:func:`~metaxm.align.word_walk.walk_words`); True if it
        reads (else it is inactive)."""
        from metaxm.align.word_walk import walk_words

        self.active.fill_(False)
        levels = None if context is None or context.features is None else column_levels(
            context.features)  # fmt: skip
        if levels is None or context.moves is None or context.reached is None:
            return False
        read = walk_words(ids.cpu(), actions.cpu(), first.cpu(), second.cpu(), context, levels,
                          self.ties(context, levels))  # fmt: skip
        return read is not None and self.keep(*read, levels, context)

    @staticmethod
    def ties(context: Any, levels: list[Tensor]) -> dict[int, list[int]]:
        """:func:`word_ties` of ``context``'s training variants, learned once per context."""
        if "word_ties" not in context.learned:
            decode = context.feature_map()
            context.learned["word_ties"] = word_ties(context.family_pairs, decode, levels)
        return context.learned["word_ties"]

    def keep(
        self, places: list[int], values: dict[int, float], levels: list[Tensor], context: Any
    ) -> bool:
        """Read each feature at its place of ``places``, each word of ``values`` at its value,
        every other word at every value no word of ``values`` has; True (active)."""
        said = torch.tensor(sorted(values.values()), dtype=torch.float64)
        every = torch.cat([levels[f] for f in range(len(places))]).unique()
        device = self.value.device
        self.places = torch.tensor(places, device=device)
        self.value.fill_(float("nan"))
        self.value[list(values)] = torch.tensor(list(values.values()), dtype=torch.float64,
                                                device=device)  # fmt: skip
        unsaid = (every[:, None] - said).abs().min(1).values > 1e-9 if len(said) else every == every
        self.free = every[unsaid].to(device)
        self.render = context.source_map().to(device)
        self.begin()
        self.active.fill_(True)
        return True

    def begin(self) -> None:
        """New episodes start: no state was chosen before."""
        self.last = None

    def readings(self, words: Tensor) -> Tensor:
        """(R, F) the features of every reading of one sentence's number words ``words``
        (F,)."""
        known = self.value[words]
        unsaid = sorted(set(words[known.isnan()].tolist()))
        free = self.free.tolist()
        options = (
            list(itertools.permutations(free, len(unsaid))) if len(unsaid) <= len(free) else []
        )
        options = options or [(0.0,) * len(unsaid)]  # more unsaid words than values: read 0
        feats = known.expand(len(options), -1).clone()
        for r, chosen in enumerate(options):
            guess = dict(zip(unsaid, chosen, strict=True))
            for f, word in enumerate(words.tolist()):
                if word in guess:
                    feats[r, f] = guess[word]
        return feats

    def choose(self, ids: Tensor) -> Tensor:
        """(B, S) the source observation of each row's reading closest to the state it chose
        one step before (the first listed where none was)."""
        words = ids.long().flatten(1)[:, self.places]  # (B, F)
        if self.last is not None and len(self.last) != len(words):
            self.last = None
        chosen = []
        for b, row in enumerate(words):
            feats = self.readings(row)
            best = 0 if self.last is None else int((feats - self.last[b]).pow(2).sum(1).argmin())
            chosen.append(feats[best])
        self.last = torch.stack(chosen)
        return (self.last @ self.render).float()
