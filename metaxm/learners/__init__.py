"""Learners: adapt a trained agent to a new modality with ``adapt(env, episodes=k)``.

See :mod:`metaxm.learners.base` for the shape, and each learner for how it spends the k
episodes: :class:`MAML` (policy-gradient steps from a meta-learned start), :class:`RL2` (in
context), :class:`Align` (a paired fit of the modality's encoder and adapter),
:class:`Translate` (a translator from the new modality into the source modality, fitted on the
same pairs), :class:`MetaFit` (the meta-learned paired fit), :class:`PriorFit` (the same
pairs solved in closed form under a meta-learned prior), :class:`SelfFit` (the
meta-learned reward-free, pair-free fit) and :class:`SelfRead` (a reward-free, pair-free
reading of a new modality from its observations and the agent's actions, searched within the
episode).
"""

from __future__ import annotations

from metaxm.learners.align import Align, MetaFit
from metaxm.learners.base import DataNeed, Learner
from metaxm.learners.maml import MAML
from metaxm.learners.policy import AdaptedPolicy
from metaxm.learners.priorfit import PriorFit
from metaxm.learners.rl2 import RL2
from metaxm.learners.selffit import SelfFit
from metaxm.learners.selfread import SelfRead
from metaxm.learners.translate import Translate

LEARNERS: dict[str, type[Learner]] = {
    c.name: c for c in (MAML, RL2, Align, Translate, MetaFit, PriorFit, SelfFit, SelfRead)
}
"""Learner name -> class."""

__all__ = [
    "LEARNERS", "AdaptedPolicy", "Align", "DataNeed", "Learner", "MAML", "MetaFit", "PriorFit",
    "RL2", "SelfFit", "SelfRead", "Translate",
]  # fmt: skip
