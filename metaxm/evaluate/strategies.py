"""Adaptation strategies: how an agent meets a held-out modality after k episodes of it.

Every strategy turns (trained agents, a target modality, budgets, a seed) into a few-shot
*curve*: return, success and steps measured on fresh episodes after k = budgets[i] episodes
of target-modality experience. The measurement is the same for all (:func:`measure`, the
policy's mode, ``evaluate.eval_episodes`` episodes with paired seeds) except ``rl2``, whose
adaptation *is* its stochastic behaviour within a trial.

===========  =============  =====================================================================
strategy     needs          what k episodes buy
===========  =============  =====================================================================
zeroshot     ppo agent      nothing: the pre-trained agent as it is (a flat curve)
finetune     ppo agent      PPO updates of every weight on the k episodes (``episodes.py``)
scratch      (nothing)      the same PPO from a freshly initialised agent, measured up to a cap
                            (a feed-forward one: with ``agent.encoder: sensory``, whose memory
                            PPO cannot carry, it reads through the per-family encoders)
maml         maml agent     ``maml.inner_steps`` policy-gradient steps on the k episodes
rl2          rl2 agent      k episodes played in context (hidden state carried), then measured
rl2-blind    rl2 agent      a control: ``rl2``'s trials with every observation zeroed
rl2-newtask  rl2 agent      a control: ``rl2``'s trials with a new task in every episode
align        ppo agent      the adapter (and, for a new family, the encoder) fitted to paired
                            renders of the states of k episodes, then the frozen policy
metafit      metafit run    the meta-learned paired fit (learned start and per-parameter rates)
                            on the same pairs, then the frozen policy
priorfit     priorfit run   the same pairs solved in closed form for a linear map into the source
                            modality, under a meta-learned prior (a vector family's own, or the
                            one for any family); not token ids
selffit      selffit run    the meta-learned reward-free fit: inverse dynamics on the target's
                            observations and the agent's actions alone, then the frozen policy
translate    ppo agent      a translator into the source modality fitted on ``align``'s pairs;
                            readings the pairs leave open searched within the measured episode
selfread     ppo agent      a re-wired vector, image, sensor bank or sentence read from the
                            target's observations and the agent's actions alone, its open
                            readings searched the same way
===========  =============  =====================================================================

Each strategy's ``data`` names what it consumes of the k episodes, ``in_episode`` what its
policy learns within a measured episode besides, and ``meta_learned`` what it learned for
adapting over training tasks before it meets the target (empty: hand-set steps, closed forms
or searches); the report prints all three.

A new strategy is a :class:`Strategy` subclass added to :data:`STRATEGIES`; one that reads some
families only says why it cannot read the others in :meth:`Strategy.cannot_read`.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Literal

from metaxm.evaluate.episodes import METRICS, Curve, measure, ppo_on_budget, target_env
from metaxm.learners import AdaptedPolicy, DataNeed, Learner
from metaxm.nn.agent import Agent, build_agent

if TYPE_CHECKING:
    from metaxm.spec import Spec

AgentKind = Literal["ppo", "maml", "rl2", "metafit", "selffit", "priorfit"]


@dataclass
class Agents:
    """The trained agents an evaluation draws on, with the spec they were trained under.

    Attributes:
        spec: the task spec (world, splits, ``ppo`` and ``evaluate`` settings).
        by_kind: ``{"ppo": agent, "maml": agent, "rl2": agent}``, whichever exist.
        configs: per kind, the trained run's spec (holds e.g. its ``maml`` section).
        learners: per learner name, the learner of the agent it adapts, holding what was
            learned about adapting (MAML's inner rates, the meta-learned fit's start):
            ``align``, ``translate`` and ``selfread`` (the ``ppo`` agent), ``maml``, ``rl2``,
            ``metafit``, ``selffit``, ``priorfit``, and a plugin's (:mod:`metaxm.learners`,
            :func:`~metaxm.evaluate.loading.learners`).
        checkpoints: per kind, the SHA-256 of the checkpoint it was loaded from (what ties a
            saved curve to its agent: :mod:`metaxm.evaluate.curve_log`).
    """

    spec: Spec
    by_kind: dict[str, Agent] = field(default_factory=dict)
    configs: dict[str, Spec] = field(default_factory=dict)
    learners: dict[str, Learner] = field(default_factory=dict)
    checkpoints: dict[str, str] = field(default_factory=dict)


class Strategy(ABC):
    """One way of adapting to a target modality; see the module docstring.

    ``data`` says what of the k episodes the strategy consumes (the report prints it beside
    every number, so a fair comparison can be told from an unfair one): ``observations``
    (target-modality observations), ``rewards``, ``paired`` (the source modality's render of
    every target step), ``ends`` (where its episodes ended, named for a strategy that reads no
    reward: in GridNav only the goal ends an episode before its horizon, so an end carries
    the success bit).
    """

    name: ClassVar[str]
    needs: ClassVar[AgentKind | None]
    data: ClassVar[tuple[DataNeed, ...]]
    learner: ClassVar[str | None] = None
    """The key of its learner in ``Agents.learners``; None for the baselines, which give a
    curve but no policy (:meth:`policy`)."""
    in_episode: ClassVar[str] = ""
    """What the adapted policy learns within a measured episode besides ``data`` (the report
    prints it); empty for a policy that learns nothing there."""
    same_task: ClassVar[bool] = False
    """Its measured episode keeps the task its k episodes showed (an RL^2 trial), where every
    other strategy is measured on fresh tasks: the report marks its rows."""
    meta_learned: ClassVar[str] = ""
    """What it learned for adapting, over training tasks, before it meets the target (the
    report prints it); empty for a strategy that adapts with hand-set steps, a closed form or a
    search only (the agent's own training, shared by all, is not counted)."""
    control: ClassVar[str] = ""
    """What it controls for, where it is a control rather than a way to adapt (the report
    prints it, and it is never the headline's best strategy); empty for a strategy."""
    may_read_nothing: ClassVar[bool] = False
    """Its k episodes may show too little to read the target from, and then the agent meets
    the target as it is: its curve counts where (``read``: 1 where it read, 0 where it read
    nothing, and at k = 0), and the report says how often."""
    trains_encoder: ClassVar[bool] = False
    """It can read a family the agent was built without: it trains the new encoder, or reads
    the family through a map or translator of its own (``metaxm adapt --add-family`` gives the
    agent a fresh encoder for it)."""

    def data_of(self, agents: Agents) -> tuple[DataNeed, ...]:
        """What it consumes of the k episodes with these agents: :attr:`data` (``rl2``
        overrides it for an agent that does not read rewards)."""
        return self.data

    def cannot_read(self, agents: Agents, family: str) -> str | None:
        """Why the strategy cannot adapt to ``family`` (the evaluator does not measure it on
        such a modality, and the report says why), or None where it can: its agent was built
        with an encoder for the family (a stage of the main job may train on fewer families
        than the spec evaluates), and, for ``selfread``, a reader exists."""
        agent = agents.by_kind.get(self.needs) if self.needs is not None else None
        if agent is not None and family not in agent.families:
            return (
                f"the {self.needs} agent was trained without the {family} family "
                f"(it reads {', '.join(agent.families)})"
            )
        return None

    def applicable(self, agents: Agents) -> bool:
        return self.unavailable(agents) is None

    def unavailable(self, agents: Agents) -> str | None:
        """Why the strategy cannot run on ``agents`` (the evaluator skips it and says so), or
        None where it can."""
        if self.needs is not None and self.needs not in agents.by_kind:
            return f"no trained {self.needs} agent"
        return None

    @abstractmethod
    def curve(
        self, agents: Agents, family: str, variant: int, budgets: Sequence[int], seed: int
    ) -> Curve:
        """Performance after each budget: ``{"return": [...], "success": [...], "steps":
        [...], "episodes": [...]}`` (``episodes``: the experience actually used)."""

    def policy(self, agents: Agents, family: str, variant: int, k: int, seed: int) -> AdaptedPolicy:
        """The adapted policy the curve measures at budget ``k`` with ``seed`` (a learner's
        strategies; ``metaxm adapt --save-policy`` saves it).

        Raises:
            ValueError: the strategy has no learner (``zeroshot``, ``finetune``, ``scratch``).
        """
        raise ValueError(f"{self.name} has no learner: it gives a curve, not a policy to save")


class LearnerStrategy(Strategy):
    """A learner's strategy: at every budget, :meth:`policy` (the learner's adaptation), then
    the policy's mode measured on fresh episodes (:func:`measure`).

    A new learner's strategy sets ``name``, ``needs`` (the run kind it adapts), ``learner``
    (its name in :data:`metaxm.learners.LEARNERS`) and ``data``; :meth:`policy` walks its k
    episodes (:meth:`walked`, their tasks drawn from ``seed +`` :attr:`offset`) unless it
    spends them otherwise.
    """

    offset: ClassVar[int] = 41
    """Where a strategy's target tasks are drawn from, past the measured episodes' ``seed``
    (each built-in strategy has its own)."""

    def policy(self, agents, family, variant, k, seed):  # noqa: D102
        return self.walked(agents, family, variant, k, seed, self.offset)

    def unadapted(self, agents: Agents, family: str, variant: int) -> AdaptedPolicy:
        """The policy at k = 0: the learner's agent as it is."""
        env = target_env(agents.spec, family, variant, 1, 0)
        return agents.learners[self.learner].adapt(env, 0)

    def walked(
        self, agents: Agents, family: str, variant: int, k: int, seed: int, offset: int, **kw
    ) -> AdaptedPolicy:
        """The learner's ``adapt`` on k episodes of a fresh target env (its tasks drawn from
        ``seed + offset``, the adaptation seeded by ``seed + offset + 1``); k = 0: as it is."""
        if k == 0:
            return self.unadapted(agents, family, variant)
        env = target_env(agents.spec, family, variant, k, seed + offset)
        return agents.learners[self.learner].adapt(env, k, seed + offset + 1, **kw)

    def curve(self, agents, family, variant, budgets, seed):  # noqa: D102
        spec = agents.spec
        extra = ("paired_steps",) if "paired" in self.data else ()
        extra += ("read",) if self.may_read_nothing else ()
        curve: Curve = {k: [] for k in (*METRICS, "episodes", *extra)}
        for k in budgets:
            policy = self.policy(agents, family, variant, k, seed)
            own = policy.distribution if policy.translator is not None else None
            policy.begin()
            r = measure(policy.agent, spec, family, variant, spec.evaluate.eval_episodes, seed,
                        policy.params, own, policy.observe if own else None)  # fmt: skip
            for m in METRICS:
                curve[m].append(r[m])
            curve["episodes"].append(float(policy.episodes))
            if "paired_steps" in extra:
                curve["paired_steps"].append(float(policy.paired_steps))
            if "read" in extra:
                curve["read"].append(float(k > 0 and policy.translator is not None))
        return curve


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
        if spec.agent.encoder == "sensory":  # PPO trains feed-forward agents only
            from metaxm.spec import replace

            spec = replace(spec, agent=dataclasses.replace(spec.agent, encoder="family"))
        fresh = build_agent(spec, seed=seed).to(spec.device)
        return ppo_on_budget(
            fresh, spec, family, variant, budgets, seed, spec.evaluate.eval_episodes
        )


class MAML(LearnerStrategy):
    """The :class:`metaxm.learners.MAML` learner on the ``maml`` run's agent: ``maml.inner_steps``
    policy-gradient steps from the meta-learned initialisation; budget k is split evenly over
    the steps (each on fresh episodes of random tasks in the target modality)."""

    name = "maml"
    needs = "maml"
    learner = "maml"
    data = ("observations", "rewards")
    meta_learned = (
        "the start of its inner steps (what maml.adapt names: the adapter by default) and, "
        "with maml.meta_sgd, their rates, by MAML over training tasks"
    )

    def policy(self, agents, family, variant, k, seed):  # noqa: D102
        if k == 0:
            return self.unadapted(agents, family, variant)
        learner = agents.learners[self.learner]
        steps = min(learner.config_for(family).inner_steps, k)
        env = target_env(agents.spec, family, variant, k // steps, seed + 11)
        return learner.adapt(env, steps * (k // steps), seed + 12)


class RL2(Strategy):
    """The :class:`metaxm.learners.RL2` learner: one trial of ``max(budgets) + 1`` episodes per
    evaluation environment, hidden state carried: performance after k episodes is that of
    episode k + 1 (sampled actions, since the agent explores in context). Its saved policy
    (:meth:`policy`) is one trial's state after k episodes."""

    name = "rl2"
    needs = "rl2"
    learner = "rl2"
    data = ("observations", "rewards")
    same_task = True
    meta_learned = "the recurrent policy that adapts in context, by RL^2 over multi-episode trials"
    in_episode = (
        "the task of its k episodes, which the measured episode keeps (one trial, one goal: what "
        "it found of the goal counts; the other strategies are measured on fresh tasks)"
    )
    blind: ClassVar[bool] = False
    """Its trials see zeros instead of every observation (the control :class:`RL2Blind`)."""
    new_tasks: ClassVar[bool] = False
    """Every episode of its trials after the first has a new task (:class:`RL2NewTask`)."""

    def data_of(self, agents: Agents) -> tuple[DataNeed, ...]:
        """No rewards where the ``rl2`` agent does not read them (``agent.reward_input:
        false``): it adapts in context from observations, its actions and episode ends."""
        agent = agents.by_kind.get("rl2")
        if agent is not None and not agent.config.reward_input:
            return ("observations", "ends")
        return self.data

    def curve(self, agents, family, variant, budgets, seed):  # noqa: D102
        n = agents.spec.evaluate.eval_episodes
        learner = agents.learners["rl2"]
        res = learner.trial(
            family, variant, max(budgets) + 1, n, seed, blind=self.blind, new_tasks=self.new_tasks
        )
        per_episode = res.curve()
        per_episode["steps"] = per_episode.pop("length")
        curve: Curve = {m: [per_episode[m][k] for k in budgets] for m in METRICS}
        curve["episodes"] = [float(k) for k in budgets]
        return curve

    def policy(self, agents, family, variant, k, seed):  # noqa: D102
        env = target_env(agents.spec, family, variant, 1, seed)
        return agents.learners[self.learner].adapt(env, k, seed + 1)


class RL2Control(RL2):
    """A control of ``rl2``: its trials played another way, a curve but no policy to save."""

    learner = None
    in_episode = ""

    def policy(self, agents, family, variant, k, seed):  # noqa: D102
        return Strategy.policy(self, agents, family, variant, k, seed)


class RL2Blind(RL2Control):
    """``rl2``'s trials with every observation zeroed (the same agent, seeds and episodes): what
    the ``rl2`` agent reaches without reading the modality, from the rewards it reads, where
    episodes end and a search; ``rl2``'s rise above it is what it reads
    (:func:`metaxm.meta.trial_eval.run_trials` with ``blind``)."""

    name = "rl2-blind"
    blind = True
    data = ("rewards",)
    meta_learned = ""
    in_episode = RL2.in_episode  # its trials keep their task, as rl2's do
    control = (
        "rl2 with every observation zeroed (it reads rewards and episode ends): what it reaches "
        "without reading the modality"
    )

    def data_of(self, agents: Agents) -> tuple[DataNeed, ...]:  # noqa: D102
        agent = agents.by_kind.get("rl2")
        return ("ends",) if agent is not None and not agent.config.reward_input else self.data


class RL2NewTask(RL2Control):
    """``rl2``'s trials with a new task in every episode after the first (the same agent, seeds
    and variant): what its k episodes teach of the modality, measured, as every other strategy
    is, on a task they did not show; ``rl2``'s margin over it is what the trial found of its
    one task (:func:`metaxm.meta.trial_eval.run_trial` with ``new_tasks``)."""

    name = "rl2-newtask"
    new_tasks = True
    same_task = False
    control = (
        "rl2 with a new task in every episode (the variant kept): what its k episodes teach of "
        "the modality, measured on tasks they did not show"
    )


class Align(LearnerStrategy):
    """The :class:`metaxm.learners.Align` learner on the ``ppo`` agent: the adapter (and, for a
    new family or with ``align.fit_subset: adapter+encoder``, the encoder) fitted so target
    latents meet a known modality's latents on the states of k whole episodes the agent played
    in the target modality (every step a paired step), then the frozen policy."""

    name = "align"
    needs = "ppo"
    learner = "align"
    trains_encoder = True
    data = ("observations", "paired")

    def policy(self, agents, family, variant, k, seed):  # noqa: D102
        return self.walked(agents, family, variant, k, seed, 21, fit_seed=seed)


class Translate(Align):
    """The :class:`metaxm.learners.Translate` learner on the ``ppo`` agent: on ``align``'s
    episodes and pairs, a translator fitted from the target modality's observations to the
    source modality's; the agent reads the translation with the source's encoder and adapter,
    then the frozen policy."""

    name = "translate"
    learner = "translate"
    trains_encoder = True  # it reads a family the agent was built without (by its translator)
    in_episode = (
        "where one reading of the task is left open, the cells it stood on while the episode "
        "went on (no reward, no pair: that the episode had not ended)"
    )

    def unavailable(self, agents: Agents) -> str | None:  # noqa: D102
        why = super().unavailable(agents)
        if why is not None:
            return why
        from metaxm.align.translate import cannot_translate

        return cannot_translate(agents.by_kind[self.needs], agents.spec)


class MetaFitStrategy(Align):
    """The :class:`metaxm.learners.MetaFit` learner: from the learned start,
    ``align.meta_steps`` steps at the learned per-parameter rates on the paired renders of k
    whole episodes (the same episodes and pairs as ``align``'s), then the frozen policy. A
    family the meta-training never saw (a held-out family) has no learned start: it gets
    ``align``'s hand-set fit, on the same agent."""

    name = "metafit"
    needs = "metafit"
    learner = "metafit"
    meta_learned = (
        "the fit's start and per-parameter rates, through its steps over fresh variants of "
        "each training family"
    )


class PriorFitStrategy(Translate):
    """The :class:`metaxm.learners.PriorFit` learner: on ``translate``'s episodes and pairs, the
    linear map into the source modality most probable under the family's meta-learned prior,
    read by the source's encoder and adapter; nothing searched within the measured episode. A
    family without a prior of its own (never trained on, or an image) is read under the prior
    for any family; token ids, or any family where the run has no such prior, are not
    measured."""

    name = "priorfit"
    needs = "priorfit"
    learner = "priorfit"
    in_episode = ""
    meta_learned = (
        "the Gaussian prior of its map (mean and per-entry precisions), through the exact "
        "solve over fresh variants of each vector family; for a family with no prior of its "
        "own, one precision per source channel, learned on the same tasks (a spectrogram's "
        "frames read under one shared code where the pairs prefer it: set by hand)"
    )
    trains_encoder = True  # it reads a family the agent was built without (the prior for any)

    def cannot_read(self, agents, family):  # noqa: D102
        why = super().cannot_read(agents, family)
        return why or agents.learners[self.learner].cannot_read(family)


class SelfFit(LearnerStrategy):
    """The :class:`metaxm.learners.SelfFit` learner: from the learned start, ``align.meta_steps``
    steps of inverse dynamics at the learned rates on the observations and actions of k whole
    episodes the agent played in the target modality, then the frozen policy. A family the
    meta-training never saw gets a hand-set fit of the same loss (its encoder is new)."""

    name = "selffit"
    needs = "selffit"
    learner = "selffit"
    trains_encoder = True
    data = ("observations",)
    meta_learned = (
        "the fit's start, per-parameter rates and inverse-dynamics head, through its steps over "
        "fresh variants of each training family"
    )

    def policy(self, agents, family, variant, k, seed):  # noqa: D102
        return self.walked(agents, family, variant, k, seed, 21)


class SelfRead(Translate):
    """The :class:`metaxm.learners.SelfRead` learner on the ``ppo`` agent: a re-wired vector,
    image, sensor bank or sentence read from the observations of k random-walk episodes and the
    agent's actions alone (no reward, no pair), what is left open searched within the measured
    episode."""

    name = "selfread"
    may_read_nothing = True
    learner = "selfread"
    data = ("observations", "ends")
    in_episode = (
        "where one reading of the task is left open, the cells it stood on while the episode "
        "went on, and before that the cells its k episodes' walk stood on while they went on "
        "and the cell a walk episode's last move led to where it ended before its horizon "
        "(no reward, no pair: whether an episode had ended); where inner walls, or an axis "
        "the walk never moved along, leave one open, how its observations answered the "
        "actions it took"
    )

    def cannot_read(self, agents, family):  # noqa: D102
        from metaxm.learners.selfread import cannot_read

        return super().cannot_read(agents, family) or cannot_read(family, agents.spec)

    def policy(self, agents, family, variant, k, seed):  # noqa: D102
        return self.walked(agents, family, variant, k, seed, 31)


STRATEGIES: dict[str, Strategy] = {
    s.name: s
    for s in (
        ZeroShot(), MAML(), RL2(), RL2Blind(), RL2NewTask(), Align(), Translate(),
        MetaFitStrategy(), PriorFitStrategy(), SelfFit(), SelfRead(), FineTune(), Scratch(),
    )
}  # fmt: skip
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
