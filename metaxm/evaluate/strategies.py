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
metafit     metafit run    the meta-learned paired fit (learned start and per-parameter rates)
                           on the same pairs, then the frozen policy
==========  =============  =====================================================================

Each strategy's ``data`` names what it consumes of the k episodes; the report prints it.

A new strategy is a :class:`Strategy` subclass added to :data:`STRATEGIES`.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Literal

from metaxm.evaluate.episodes import METRICS, Curve, measure, ppo_on_budget, target_env
from metaxm.nn.agent import Agent, build_agent

if TYPE_CHECKING:
    from metaxm.spec import Spec

AgentKind = Literal["ppo", "maml", "rl2", "metafit"]
DataNeed = Literal["observations", "rewards", "paired"]


@dataclass
class Agents:
    """The trained agents an evaluation draws on, with the spec they were trained under.

    Attributes:
        spec: the task spec (world, splits, ``ppo`` and ``evaluate`` settings).
        by_kind: ``{"ppo": agent, "maml": agent, "rl2": agent}``, whichever exist.
        configs: per kind, the trained run's spec (holds e.g. its ``maml`` section).
        extras: per kind, other trained state (MAML's learned inner rates ``inner_lrs``).
    """

    spec: Spec
    by_kind: dict[str, Agent] = field(default_factory=dict)
    configs: dict[str, Spec] = field(default_factory=dict)
    extras: dict[str, dict] = field(default_factory=dict)


class Strategy(ABC):
    """One way of adapting to a target modality; see the module docstring.

    ``data`` says what of the k episodes the strategy consumes (the report prints it beside
    every number, so a fair comparison can be told from an unfair one): ``observations``
    (target-modality observations), ``rewards``, ``paired`` (the source modality's render of
    every target step).
    """

    name: ClassVar[str]
    needs: ClassVar[AgentKind | None]
    data: ClassVar[tuple[DataNeed, ...]]
    trains_encoder: ClassVar[bool] = False
    """It trains the target family's encoder, so it can read a family the agent was built
    without (``metaxm adapt --add-family`` gives the agent a fresh encoder for it)."""

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
    data = ()

    def curve(self, agents, family, variant, budgets, seed):  # noqa: D102
        spec = agents.spec
        agent = agents.by_kind["ppo"]
        n = spec.evaluate.eval_episodes
        return _flat(measure(agent, spec, family, variant, n, seed), budgets)


class FineTune(Strategy):
    name = "finetune"
    needs = "ppo"
    trains_encoder = True
    data = ("observations", "rewards")

    def curve(self, agents, family, variant, budgets, seed):  # noqa: D102
        spec = agents.spec
        return ppo_on_budget(
            agents.by_kind["ppo"], spec, family, variant, budgets, seed,
            spec.evaluate.eval_episodes, lr=spec.evaluate.finetune_lr,
        )  # fmt: skip


class Scratch(Strategy):
    name = "scratch"
    needs = None
    trains_encoder = True
    data = ("observations", "rewards")

    def curve(self, agents, family, variant, budgets, seed):  # noqa: D102
        spec = agents.spec
        fresh = build_agent(spec, seed=seed).to(spec.device)
        return ppo_on_budget(
            fresh, spec, family, variant, budgets, seed, spec.evaluate.eval_episodes
        )


def _new_family(agents: Agents, family: str) -> bool:
    return family not in agents.spec.modalities.train


class MAML(Strategy):
    """``maml.inner_steps`` policy-gradient steps from the meta-learned initialisation; budget
    k is split evenly over the steps (each on fresh episodes of random tasks in the target
    modality). A family never trained on adapts its encoder too (``adapter+encoder``)."""

    name = "maml"
    needs = "maml"
    data = ("observations", "rewards")

    def curve(self, agents, family, variant, budgets, seed):  # noqa: D102
        import dataclasses

        import torch

        from metaxm.meta.maml import adapt_in_env

        agent = agents.by_kind["maml"]
        run_spec = agents.configs.get("maml", agents.spec)
        cfg = run_spec.maml
        if _new_family(agents, family) and cfg.adapt == "adapter":
            cfg = dataclasses.replace(cfg, adapt="adapter+encoder")
        lrs = agents.extras.get("maml", {}).get("inner_lrs")
        spec = agents.spec
        curve: Curve = {k: [] for k in (*METRICS, "episodes")}
        for k in budgets:
            params = None
            used = 0
            if k > 0:
                steps = min(cfg.inner_steps, k)
                per_step = k // steps
                env = target_env(spec, family, variant, per_step, seed + 11)
                gen = torch.Generator(spec.device).manual_seed(seed + 12)
                adapted = adapt_in_env(agent, env, family, 1, cfg, gen, steps, lrs)
                params = {n: v[0] for n, v in adapted.params.items()}
                used = steps * per_step
            r = measure(agent, spec, family, variant, spec.evaluate.eval_episodes, seed, params)
            for m in METRICS:
                curve[m].append(r[m])
            curve["episodes"].append(float(used))
        return curve


class RL2(Strategy):
    """One trial of ``max(budgets) + 1`` episodes per evaluation environment, hidden state
    carried: performance after k episodes is that of episode k + 1 (sampled actions, since the
    agent explores in context)."""

    name = "rl2"
    needs = "rl2"
    data = ("observations", "rewards")

    def curve(self, agents, family, variant, budgets, seed):  # noqa: D102
        from metaxm.meta.trials import run_trial

        spec = agents.spec
        res = run_trial(
            agents.by_kind["rl2"], spec.world, family, variant,
            episodes=max(budgets) + 1, num_trials=spec.evaluate.eval_episodes, seed=seed,
        )  # fmt: skip
        per_episode = res.curve()
        per_episode["steps"] = per_episode.pop("length")
        curve: Curve = {m: [per_episode[m][k] for k in budgets] for m in METRICS}
        curve["episodes"] = [float(k) for k in budgets]
        return curve


def _paired_fit_curve(agent, spec, family, variant, budgets, seed, fit) -> Curve:
    """The curve of a paired fit: after k whole episodes the agent played in the target
    modality (every step rendered in the source modality too), ``fit(pairs)`` gives the
    parameters the frozen policy is measured with."""
    import torch

    from metaxm.align.fewshot import default_source
    from metaxm.align.pairs import render_pairs
    from metaxm.evaluate.episodes import visited_scenes

    source = default_source(spec)
    curve: Curve = {k: [] for k in (*METRICS, "episodes", "paired_steps")}
    for k in budgets:
        params, steps = None, 0
        if k > 0:
            env = target_env(spec, family, variant, k, seed + 21)
            gen = torch.Generator(spec.device).manual_seed(seed + 22)
            scene = visited_scenes(agent, env, family, gen)
            pairs = render_pairs(scene, [(family, variant), source], env.world.scene_info, gen)
            params = fit(pairs)
            steps = scene.batch_size
        r = measure(agent, spec, family, variant, spec.evaluate.eval_episodes, seed, params)
        for m in METRICS:
            curve[m].append(r[m])
        curve["episodes"].append(float(k))
        curve["paired_steps"].append(float(steps))
    return curve


class Align(Strategy):
    """The adapter (and, for a new family or with ``align.fit_subset: adapter+encoder``, the
    encoder) fitted so target latents meet a known modality's latents on the states of k whole
    episodes the agent played in the target modality (every step a paired step), then the
    frozen policy."""

    name = "align"
    needs = "ppo"
    trains_encoder = True
    data = ("observations", "paired")

    def curve(self, agents, family, variant, budgets, seed):  # noqa: D102
        from metaxm.align.fewshot import default_source, fit_adapter, fit_subset, source_params

        agent, spec = agents.by_kind["ppo"], agents.spec
        subset = fit_subset(spec, family)
        own = source_params(agent, default_source(spec))

        def fit(pairs):
            return fit_adapter(agent, pairs, spec.align, subset, seed, own).params

        return _paired_fit_curve(agent, spec, family, variant, budgets, seed, fit)


class MetaFitStrategy(Strategy):
    """The meta-learned paired fit (:mod:`metaxm.align.metafit`): from the learned start,
    ``align.meta_steps`` steps at the learned per-parameter rates on the paired renders of k
    whole episodes (the same episodes and pairs as ``align``'s), then the frozen policy. A
    family the meta-training never saw (a held-out family) has no learned start: its curve is
    ``align``'s hand-set fit, on the same agent."""

    name = "metafit"
    needs = "metafit"
    trains_encoder = True
    data = ("observations", "paired")

    def curve(self, agents, family, variant, budgets, seed):  # noqa: D102
        from metaxm.align.fewshot import default_source, source_params
        from metaxm.align.metafit import MetaFit

        agent, spec = agents.by_kind["metafit"], agents.spec
        run_spec = agents.configs.get("metafit", spec)
        learned = MetaFit.from_state(agents.extras["metafit"]["metafit"], run_spec.align)
        if family not in learned.init:  # no learned start: the hand-set fit (see the docstring)
            with_agent = dataclasses.replace(agents, by_kind={**agents.by_kind, "ppo": agent})
            return STRATEGIES["align"].curve(with_agent, family, variant, budgets, seed)
        own = source_params(agent, default_source(spec))

        def fit(pairs):
            return learned.fit(agent, pairs, own)

        return _paired_fit_curve(agent, spec, family, variant, budgets, seed, fit)


STRATEGIES: dict[str, Strategy] = {
    s.name: s
    for s in (ZeroShot(), MAML(), RL2(), Align(), MetaFitStrategy(), FineTune(), Scratch())
}
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
