"""What a translator may know besides the k episodes' pairs: the source modality itself.

The source modality is the agent's own: its observations of any state the world can be in are
free to draw (they need no target observation), and so are the target family's training
variants, which the agent was trained on. A translator with ``uses_context`` gets both before
its fit (its ``prepare``), and neither uses the target variant:

* the source's possible observations: the candidates the ``projected`` family's
  :class:`~metaxm.align.sensor_posterior.SensorPosteriorTranslator` translates into, and the
  values and ranges by which the text and pixels translators read a number word no step said
  and a goal channel two goals leave undetermined
  (:func:`~metaxm.align.least_squares.single_readings`);
* paired renders of the family's training variants, from which the projected translator
  learns the prior scale of a sensor's offset, and the pixels and text translators which
  channels are read with the same weights from different colours or places
  (:func:`~metaxm.align.tied_readings.learn_ties`), and the vector translator the prior of
  a channel's gain;
* the world's test of success on scene features, by which the vector translator rules out a
  reading of the task (:mod:`~metaxm.align.reading_search`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import torch
from torch import Tensor

if TYPE_CHECKING:
    from metaxm.spec import Spec

CANDIDATE_STATES = 16384
"""States drawn from the world for the source's candidates (a 7 x 7 GridNav has 2,352 states,
which this many draws all cover but for about one in a thousand)."""
FAMILY_STATES = 256
"""Of those, the states each training variant of the target family is rendered in."""


@dataclass
class TranslationContext:
    """Attributes:
    sources: (M, S) the source modality's observations of ``M`` states drawn from the world.
    family_pairs: per training variant of the target's family, (its observations, the
        source's) of the same states; empty for a family the agent was not trained on.
    learned: what a translator learns from the two once, by name, for every later fit from
        this context (the projected translator's offset scale, the pixels and text
        translators' tied channels, the vector translator's gain prior).
    features: (M, F) the scene features of the same states; None where not drawn.
    reached: the world's :meth:`~metaxm.envs.base.World.reached` (features -> success), or
        None where the world cannot tell success from features.
    moves: the source's observations before and after one uniformly random action in each
        drawn state, with the actions ((M', S), (M',), (M', S); the steps that ended an
        episode left out): how the source's channels answer each action, what a reward-free
        reading matches the target's against (:func:`~metaxm.align.action_readers.action_readers`).
    """

    sources: Tensor
    family_pairs: list[tuple[Tensor, Tensor]] = field(default_factory=list)
    learned: dict[str, Any] = field(default_factory=dict)
    features: Tensor | None = None
    reached: Callable[[Tensor], Tensor] | None = None
    moves: tuple[Tensor, Tensor, Tensor] | None = None

    def feature_map(self) -> Tensor:
        """(S, F) float64 on the CPU: the least-squares map from a source observation to its
        scene features (exact for a vector source), fitted once per context on ``sources``
        and ``features``; what a search decodes a reading's state with."""
        if "feature_map" not in self.learned:
            from metaxm.align.least_squares import ridge

            sources, features = self.sources.double().cpu(), self.features.double().cpu()
            self.learned["feature_map"] = ridge(sources, features)
        return self.learned["feature_map"]

    def source_map(self) -> Tensor:
        """(F, S) float64 on the CPU: the least-squares map from scene features to the source
        observation (exact for a vector source), fitted once per context; what a reading of a
        target in the scene's features is rendered in the source with."""
        if "source_map" not in self.learned:
            from metaxm.align.least_squares import ridge

            sources, features = self.sources.double().cpu(), self.features.double().cpu()
            self.learned["source_map"] = ridge(features, sources)
        return self.learned["source_map"]


@torch.no_grad()
def translation_context(spec: Spec, family: str, seed: int = 0) -> TranslationContext:
    """The :class:`TranslationContext` of a translation of ``family`` under ``spec``: states
    drawn from ``seed``, rendered in the source (:func:`~metaxm.align.fewshot.default_source`)
    and in the family's training variants."""
    from metaxm.align.fewshot import default_source
    from metaxm.align.pairs import render_pairs, select_rows
    from metaxm.align.reading_set import world_test
    from metaxm.build import make_env
    from metaxm.sampler import TaskSampler

    source = default_source(spec)
    env = make_env(spec, source[0], source[1], num_envs=CANDIDATE_STATES, seed=seed)
    context = TranslationContext(env.reset())
    reached = world_test(env.world)
    if reached is not None:
        context.features, context.reached = env.world.scene().features, reached
    train = TaskSampler(spec).splits["train"].get(family, [])
    if train:
        scene = select_rows(env.world.scene(), slice(0, FAMILY_STATES))
        generator = torch.Generator(device=scene.features.device).manual_seed(seed)
        views = [(family, v) for v in train] + [source]
        pairs = render_pairs(scene, views, env.world.scene_info, generator)
        context.family_pairs = [(obs, pairs.obs[-1]) for obs in pairs.obs[:-1]]
    if isinstance(env.action_space, gym.spaces.Discrete):
        generator = torch.Generator(device=context.sources.device).manual_seed(seed + 1)
        actions = torch.randint(int(env.action_space.n), (CANDIDATE_STATES,), generator=generator,
                                device=context.sources.device)  # fmt: skip
        after, _, terminated, truncated, _ = env.step(actions)
        kept = ~(terminated | truncated)
        context.moves = (context.sources[kept], actions[kept], after[kept])
    return context
