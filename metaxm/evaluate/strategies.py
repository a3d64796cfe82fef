"""Adaptation strategies: how an agent meets a held-out modality after k episodes of it.

Every strategy turns (trained agents, a target modality, budgets, a seed) into a few-shot
*curve*: return, success and steps measured on fresh episodes after k = budgets[i] episodes
of target-modality experience. The measurement is the same for all (:func:`measure`, the
policy's mode, ``evaluate.eval_episodes`` episodes with paired seeds) except ``rl2``, whose
adaptation *is* its stochastic behaviour within a trial.

==========  =============  =====================================================================
strategy    needs          what k episodes buy
==========  =============  =====================================================================
zeroshot    ppo agent      nothing: the pre-trained agent as it is (a flat curve)
finetune    ppo agent      PPO updates of every weight on the k episodes (``episodes.py``)
scratch     (nothing)      the same PPO from a freshly initialised agent, measured up to a cap
maml        maml agent     ``maml.inner_steps`` policy-gradient steps on the k episodes
rl2         rl2 agent      k episodes played in context (hidden state carried), then measured
align       ppo agent      the adapter (and, for a new family, the encoder) fitted to paired
                           renders of the states of k episodes, then the frozen policy
==========  =============  =====================================================================

A new strategy is a :class:`Strategy` subclass added to :data:`STRATEGIES`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Literal

from metaxm.evaluate.episodes import METRICS, Curve, measure, ppo_on_budget
from metaxm.nn.agent import Agent, build_agent

if TYPE_CHECKING:
    from metaxm.spec import Spec

AgentKind = Literal["ppo", "maml", "rl2"]


@dataclass
class Agents:
    """The trained agents an evaluation draws on, with the spec they were trained under.

    Attributes:
        spec: the task spec (world, splits, ``ppo`` and ``evaluate`` settings).
        by_kind: ``{"ppo": agent, "maml": agent, "rl2": agent}``, whichever exist.
        configs: per kind, the trained run's spec (holds e.g. its ``maml`` section).
    """

    spec: Spec
    by_kind: dict[str, Agent] = field(default_factory=dict)
    configs: dict[str, Spec] = field(default_factory=dict)


class Strategy(ABC):
    """One way of adapting to a target modality; see the module docstring."""

    name: ClassVar[str]
    needs: ClassVar[AgentKind | None]

    def applicable(self, agents: Agents) -> bool:
        return self.needs is None or self.needs in agents.by_kind

    @abstractmethod
    def curve(
        self, agents: Agents, family: str, variant: int, budgets: Sequence[int], seed: int
    ) -> Curve:
        """Performance after each budget: ``{"return": [...], "success": [...], "steps":
        [...], "episodes": [...]}`` (``episodes``: the experience actually used)."""


def _flat(result: dict[str, float], budgets: Sequence[int]) -> Curve:
    curve: Curve = {k: [result[k]] * len(budgets) for k in METRICS}
    curve["episodes"] = [0.0] * len(budgets)
    return curve


class ZeroShot(Strategy):
    name = "zeroshot"
    needs = "ppo"

    def curve(self, agents, family, variant, budgets, seed):  # noqa: D102
        spec = agents.spec
        agent = agents.by_kind["ppo"]
        n = spec.evaluate.eval_episodes
        return _flat(measure(agent, spec, family, variant, n, seed), budgets)


class FineTune(Strategy):
    name = "finetune"
    needs = "ppo"

    def curve(self, agents, family, variant, budgets, seed):  # noqa: D102
        spec = agents.spec
        return ppo_on_budget(
            agents.by_kind["ppo"], spec, family, variant, budgets, seed,
            spec.evaluate.eval_episodes,
        )  # fmt: skip


class Scratch(Strategy):
    name = "scratch"
    needs = None

    def curve(self, agents, family, variant, budgets, seed):  # noqa: D102
        spec = agents.spec
        fresh = build_agent(spec, seed=seed).to(spec.device)
        return ppo_on_budget(
            fresh, spec, family, variant, budgets, seed, spec.evaluate.eval_episodes
        )


STRATEGIES: dict[str, Strategy] = {s.name: s for s in (ZeroShot(), FineTune(), Scratch())}
"""Strategy name -> instance; ``evaluate.strategies`` picks from these."""


def scratch_budgets(budgets: Sequence[int], cap: int) -> list[int]:
    """The adapting budgets, then doubling up to ``cap``: where scratch is measured."""
    out = sorted(set(budgets))
    k = max(out[-1], 1)
    while k * 2 <= cap:
        k *= 2
        out.append(k)
    if out[-1] < cap:
        out.append(cap)
    return out
