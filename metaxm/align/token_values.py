"""Reading token ids as numbers: the ``translate`` learner's translator for token observations.

A text observation (:mod:`metaxm.modalities.text`) says a state's numbers in words at fixed
places: "the robot is in row two and column five . prize : row six , column three ."; a variant
ciphers the words, picks the templates and orders the clauses, so which id is which number, and
which place says what, are unknown. :class:`TokenValueTranslator` reads it as

    x_p = value[id at place p]            one value per token id, shared by every place
    source = x @ routing                  a linear map without intercept

and fits both from the pairs in closed form (:func:`fit_values`), with no gradient steps:

1. **Readable ids**: the ids seen at a place whose token changes over the pairs; every other id
   (the template's fixed words) reads 0, so no constant word can act as an offset.
2. **Values** (:func:`read_values`): a place whose token explains most of a source channel's
   variance gives each id there the channel's mean where it stands. The places that show the
   most ids go first: the agent's row and column change at every step of a random walk, so
   they give every number word the agent passes a value, in one scale.
3. **Routing**: least squares from the places' values to the source, without intercept. A
   channel it cannot explain (the source's noise channels) is not translated: it reads 0.

Why it reads the goal after two episodes: the goal's row and column are said with the same words
as the agent's, whose values the walk has taught; what two episodes still have to teach is only
the routing from the goal's two places, two numbers per source channel, which two goals pin
unless, measured from the grid's centre, they lie on one line through it. On validation text
variants 100-103 (``docs/transfer-studies.md`` section 11) success at k = 2 / 4 rose from
0.06 / 0.11 (an attention translator fitted by Adam) to 0.61 / 1.00.

Given the source's observations of drawn states (a
:class:`~metaxm.align.translation_context.TranslationContext`, which the ``translate`` learner
passes), two more things are read. A channel the routing spreads over several places (two
goals on one line through the centre move the goal's row and column places in proportion) is
read from the one place that fits it at the scale the agent's places show
(:func:`~metaxm.align.least_squares.single_readings`). And a number word no step of the pairs
said reads the one value the source's channel takes that no read word has
(:func:`unseen_value`; with two or more left, which is which cannot be told, and it reads 0).
On the same variants, seeds 1-4, success at k = 2 rose from 0.58-0.64 to 1.00
(``docs/transfer-studies.md`` section 12).

Given the family's training variants' pairs as well, one episode reads the goal
(``docs/transfer-studies.md`` section 13). A place is keyed by the word before it
(:func:`place_keys`: "row", "column" in the variant's cipher), and the translator learns which
channels are read with the same weight, in proportion, from places after the same word (the
goal's row as the agent's row: :func:`~metaxm.align.tied_readings.learn_ties`). After one
episode the goal's places never change, so a goal channel is read from the one other place
after its agent channel's word (:func:`~metaxm.align.tied_readings.tied_readings`), and a
number word said only there is valued through the tie (:func:`tied_values`). On validation
text 100-103, seeds 1-16, success at k = 1 rose from 0.31 to 0.81.

What it assumes: the numbers stand at the same places in every sentence. That holds for GridNav
without walls; with walls, a variant that says its wall clause ("a block is up .", "no block
around .", of different lengths) before a number shifts that number's place, and a layout-less
world's values ("minus two" against "two") shift the features after them, so the same number
is read at several places and the routing learns less from each. Nor does it read what a
sentence says by which clauses it has (the walls). On GridNav with walls, held-out text stalls
at about half of its source level (``docs/transfer-studies.md`` section 11).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor, nn

from metaxm.align.least_squares import fit_routing, pinned_groups, single_readings
from metaxm.align.tied_readings import learn_ties, tied_readings
from metaxm.align.translation_context import TranslationContext
from metaxm.align.word_search import WordSearch, place_keys

READING_SHARE = 0.5
"""A (place, channel) pair sets values only if the place explains this share of the channel."""
AGREEMENT = 0.1
"""A later reading must match the values already set to this relative error."""


def read_values(onehot: Tensor, source: Tensor, sources: Tensor | None = None) -> Tensor:
    """A value per readable id, from the channels the places' tokens explain.

    A place whose token explains :data:`READING_SHARE` of a channel's variance reads
    the channel's mean where each id stands there. The places that show the most ids go first
    (the agent's, which change at every step; a goal's place changes once an episode, and with
    k goals it explains any quantity that is constant within an episode); a later reading
    joins the values set so far only if, rescaled, it agrees with them on the ids they share
    (to :data:`AGREEMENT`). A reading with no id in common with them (a walk that said rows
    one to four and columns five to seven) is rescaled, where ``sources`` is given, by the
    ratio of the two channels' ranges there, with the sign under which every one of its values
    is a value the first channel takes and none is a value already set to another id
    (:func:`range_scale`); where both signs or neither do, it is left out.

    Args:
        onehot: (N, L, R) which readable id stands at each place of each row.
        source: (N, S) the source observations.
        sources: (M, S) the source's observations of states drawn from the world, or None.

    Returns:
        (R,) values, ids no reading reaches 0; (R,) bool, the ids a reading reached; and the
        channel of the first reading, whose units the values are in (-1: no reading).
    """
    counts = onehot.sum(0)  # (L, R)
    sums = torch.einsum("nlr,ns->lrs", onehot, source)
    means = sums / counts.clamp_min(1)[..., None]  # (L, R, S): channel mean where id r is at l
    centre = source.mean(0)
    total = (source - centre).pow(2).sum(0).clamp_min(1e-12)  # (S,)
    share = torch.einsum("lr,lrs->ls", counts, (means - centre).pow(2)) / total  # (L, S)
    shown = (counts > 0).sum(1)  # (L,) distinct ids at each place
    taken = [len(source[:, c].unique()) for c in range(source.shape[1])]  # values per channel
    order = sorted(
        (
            (min(int(shown[p]), taken[c]), int(shown[p]), float(share[p, c]), p, c)
            for p, c in (share >= READING_SHARE).nonzero().tolist()
        ),
        reverse=True,
    )
    values = torch.zeros(onehot.shape[2], dtype=source.dtype, device=source.device)
    known = torch.zeros_like(values, dtype=torch.bool)
    first = -1
    for *_, place, channel in order:
        seen = counts[place] > 0
        reading = means[place, :, channel]
        both = seen & known
        scale = 1.0
        if bool(known.any()):
            if not bool(both.any()):  # no id in common: the scale from the channels' ranges
                ranged = range_scale(reading[seen], values[known], sources, first, channel)
                if ranged is None:
                    continue
                scale = ranged
            else:
                scale = float((reading[both] * values[both]).sum() / reading[both].pow(2).sum())
                misfit = (reading[both] * scale - values[both]).norm() / values[both].norm()
                if not misfit <= AGREEMENT:
                    continue
        new = seen & ~known
        values[new] = reading[new] * scale
        known |= new
        first = channel if first < 0 else first
        if bool(known.all()):
            break
    return values, known, first


def range_scale(
    reading: Tensor, values: Tensor, sources: Tensor | None, first: int, channel: int
) -> float | None:
    """The scale that puts ``reading`` (channel ``channel``'s means at some ids) in the units of
    ``values`` (channel ``first``'s, set to other ids): the ratio of the two channels' largest
    absolute values over ``sources``, with the one sign under which every rescaled value is a
    value ``first`` takes there and none is in ``values`` (one word per number); None where
    there are no ``sources`` or not exactly one sign does."""
    if sources is None:
        return None
    sources = sources.double().to(reading.device)
    taken = sources[:, first].unique()
    size = float(taken.abs().max()) / float(sources[:, channel].abs().max().clamp_min(1e-12))
    tolerance = 1e-3 * float(taken.abs().max().clamp_min(1e-12))
    fits = []
    for sign in (1.0, -1.0):
        new = reading * sign * size
        on_values = bool(((new[:, None] - taken).abs().min(1).values <= tolerance).all())
        clash = values.numel() > 0 and bool(
            ((new[:, None] - values).abs().min(1).values <= tolerance).any()
        )
        if on_values and not clash:
            fits.append(sign * size)
    return fits[0] if len(fits) == 1 else None


def unseen_value(values: Tensor, taken: Tensor) -> float:
    """The value a number word the pairs never showed must have: the one value of ``taken``
    (a source channel's values, in the units of ``values``) that no read value matches, or 0
    where none or several are missing (then it cannot be told which)."""
    if taken.numel() == 0 or values.numel() == 0:
        return 0.0
    tolerance = 1e-3 * float(taken.abs().max().clamp_min(1e-12))
    missing = taken[(taken[:, None] - values[None, :]).abs().min(1).values > tolerance]
    return float(missing[0]) if missing.numel() == 1 else 0.0


def fit_values(
    ids: Tensor,
    source: Tensor,
    vocab: int,
    sources: Tensor | None = None,
    ties: dict[int, tuple[int, float]] | None = None,
) -> tuple[Tensor, Tensor]:
    """Each token id's value and the routing from the places' values to the source.

    Args:
        ids: (N, L) token ids of the target observations.
        source: (N, S) the source observations of the same states.
        vocab: the number of token ids.
        sources: (M, S) the source's observations of states drawn from the world; where given,
            an id the pairs never show (a number word no step said) reads the one value the
            read words leave out of what the first reading's channel takes there
            (:func:`unseen_value`).
        ties: with ``sources``, channels read with another's weights from the place after the
            same word (:func:`~metaxm.align.tied_readings.learn_ties`); a goal channel one
            episode leaves open is read from the goal's place after "row" as the agent's row is
            from the agent's.

    Returns:
        ``values`` (vocab,), 0 for an id seen only at places that never change (unless a tie
        values it: :func:`tied_values`), and
        ``routing`` (L, S); both float64.
    """
    source = source.double()
    moving = (ids != ids[:1]).any(0)  # (L,) places whose token changes over the pairs
    readable = torch.zeros(vocab, dtype=torch.bool, device=ids.device)
    readable[ids[:, moving].unique()] = True
    readable[0] = False  # padding
    values = torch.zeros(vocab, dtype=torch.float64, device=ids.device)
    if not bool(readable.any()):
        return values, torch.zeros(ids.shape[1], source.shape[1], dtype=torch.float64)
    onehot = nn.functional.one_hot(ids, vocab).double()[..., readable]  # (N, L, R)
    values[readable], known, first = read_values(onehot, source, sources)
    routing = fit_routing(values[ids], source)
    if sources is not None and first >= 0:
        sources = sources.double().to(ids.device)
        valued = torch.zeros(vocab, dtype=torch.bool, device=ids.device)
        valued[readable.nonzero().flatten()[known]] = True
        keys = place_keys(ids) if ties else None
        if keys is not None and tied_values(ids, source, values, valued, routing, ties, keys):
            routing = fit_routing(values[ids], source)  # the goal's places now read it
        unseen = torch.ones(vocab, dtype=torch.bool, device=ids.device)
        unseen[ids.unique()] = False
        unseen[0] = False  # padding
        taken = sources[:, first].unique()
        values[unseen] = unseen_value(values[valued], taken)
        ranges = sources.abs().amax(0)
        if keys is not None:
            routing = tied_readings(values[ids], source, routing, ties, 1, ranges, keys=keys)
        routing = single_readings(values[ids], source, routing, ranges)
    return values, routing


def tied_values(
    ids: Tensor,
    source: Tensor,
    values: Tensor,
    valued: Tensor,
    routing: Tensor,
    ties: dict[int, tuple[int, float]],
    keys: Tensor,
) -> bool:
    """Give a number word said only at the goal's place (never where the agent walked, so no
    reading reached it) its value from a tie, in place; True if any was given. Where a goal
    channel ``j`` tied to the agent's ``i`` (``ratio``) is constant over the pairs and one
    other place has the key of ``i``'s place, the word there is worth
    ``source_j / (ratio * weight_i)``.

    Args:
        ids: (N, L) token ids.
        source: (N, S) the source observations (float64).
        values, valued: (vocab,) each id's value and whether it has one; updated.
        routing: (L, S) the least-squares map.
        ties: :func:`~metaxm.align.tied_readings.learn_ties`'s.
        keys: (L,) :func:`place_keys`.
    """
    where = pinned_groups(routing)  # (S,) the one place each channel is read from, or -1
    given = False
    for j, (i, ratio) in ties.items():
        agent = int(where[i])
        constant = bool((source[:, j] == source[0, j]).all())
        if agent < 0 or not constant or keys[agent] < 0:
            continue
        places = [c for c in range(len(keys)) if c != agent and keys[c] == keys[agent]]
        if len(places) != 1 or not bool((ids[:, places[0]] == ids[0, places[0]]).all()):
            continue
        word = int(ids[0, places[0]])
        if not valued[word]:
            values[word] = source[0, j] / (ratio * routing[agent, i])
            valued[word] = given = True
    return given


class TokenValueTranslator(nn.Module):
    """Token ids (L,) -> the source's (S,): one value per id, shared by every place, routed
    linearly (see the module docstring); :meth:`start` fits it, and it has no parameters for
    gradient steps."""

    uses_context = True

    def __init__(self, space: gym.Space, out_dim: int, config: object = None) -> None:
        super().__init__()
        nvec = np.asarray(space.nvec).ravel()
        self.vocab = int(nvec.max())
        self.register_buffer("values", torch.zeros(self.vocab))
        self.register_buffer("routing", torch.zeros(nvec.size, out_dim))
        self.sources: Tensor | None = None
        self.ties: dict[int, tuple[int, float]] = {}
        self.words = WordSearch(self.vocab, out_dim)
        self.context: TranslationContext | None = None

    def prepare(self, context: TranslationContext) -> None:
        """Take the source's observations of drawn states, which tell the value of a number
        word the pairs never show and the scale at which a goal channel the pairs leave open is
        read (:func:`fit_values`); without them such a word reads 0, and such a channel is
        read as least squares spreads it. And learn, from the family's training variants'
        pairs, which channels are read with the same weights from places after the same word
        (:func:`~metaxm.align.tied_readings.learn_ties`)."""
        self.sources, self.context = context.sources, context
        if "token_ties" not in context.learned:  # once per context
            routings, keys = [], []
            for target, source in context.family_pairs:
                ids = target.long().flatten(1).cpu()
                routings.append(fit_values(ids, source.cpu(), self.vocab)[1])
                keys.append(place_keys(ids))
            context.learned["token_ties"] = learn_ties(routings, 1, keys)
        self.ties = context.learned["token_ties"]

    @torch.no_grad()
    def start(self, target: Tensor, source: Tensor) -> None:
        """Fit the values and the routing to ``target`` (N, L) ids and ``source`` (N, S)."""
        ids = target.long().flatten(1)
        values, routing = fit_values(ids, source, self.vocab, self.sources, self.ties)
        self.values.copy_(values)
        self.routing.copy_(routing)
        self.words.fit(ids, source, self.context)

    @torch.no_grad()
    def start_unpaired(self, obs: Tensor, actions: Tensor, first: Tensor, second: Tensor) -> bool:
        """Fit from the target's observations and the agent's actions alone (no reward, no
        pair): the word search read from the walk
        (:meth:`~metaxm.align.word_search.WordSearch.fit_unpaired`). True if it reads; False
        where the walk shows too little (then it reads 0)."""
        self.values.zero_()
        self.routing.zero_()
        ids = obs.long().flatten(1)
        return self.words.fit_unpaired(ids, actions, first, second, self.context)

    def begin(self) -> None:
        """New episodes start: the word search forgets the states it chose."""
        self.words.begin()

    def forward(self, obs: Tensor) -> Tensor:
        if bool(self.words.active):
            return self.words.choose(obs)
        return self.values[obs.long().flatten(1)] @ self.routing
