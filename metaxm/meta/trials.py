"""Trials: n episodes of one task and one modality variant, the recurrent state carried across.

A *trial* (Duan et al. 2016, "RL^2: Fast Reinforcement Learning via Slow Reinforcement
Learning", arXiv:1611.02779, section 2.2) is a sequence of episodes of one MDP during which a
recurrent agent keeps its hidden state: what it learned in episode 1 (here: how to read a
modality variant it has not seen, where a hidden goal is) is still there in episode 2. This
module runs trials in batches; :mod:`metaxm.meta.rl2` trains on them.

Trial bookkeeping. Every environment of a family's :class:`~metaxm.envs.task_env.TaskEnv` runs
its own trial, asynchronously: episodes end at different steps (a goal reached early), so each
environment counts its finished episodes, and when it finishes its n-th one it gets a new task
and variant (:meth:`TaskEnv.set_env_tasks`) and its hidden state is zeroed, while its neighbours
go on. No step is wasted waiting for the slowest trial of a batch.

The recurrent input at step t is the observation's latent, the previous action ``a_{t-1}``,
the previous reward ``r_{t-1}`` and the done flag ``d_{t-1}`` (true when the observation is
the first of an episode), as in the paper's Figure 1. At a trial's first step the previous
action and reward are zero and the done flag is true, like at any episode start.

The few-shot API for evaluation (:func:`~metaxm.meta.trial_eval.run_trial`, one trial of K
episodes per environment, and its :class:`~metaxm.meta.trial_eval.TrialResult`) is in
:mod:`metaxm.meta.trial_eval`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from metaxm.envs import TaskParams, World
from metaxm.envs.task_env import TaskEnv
from metaxm.nn.agent import Agent
from metaxm.nn.distributions import CategoricalHead
from metaxm.sampler import FRESH_SEED_BASE, FRESH_SEEDS


def zero_actions(agent: Agent, batch: int, device: torch.device | str) -> Tensor:
    """The "previous action" before a trial's first step: 0 (discrete) or zeros (B, A)."""
    if isinstance(agent.head, CategoricalHead):
        return torch.zeros(batch, dtype=torch.long, device=device)
    return torch.zeros(batch, agent.head.action_dim, device=device)


class TrialTasks:
    """Draws what a new trial is about: a fresh world task and a variant of the family.

    Args:
        world: the world whose task distribution is drawn from (its ``sample_tasks``).
        variants: the variant seeds to choose from uniformly (e.g. a family's training split).
        generator: the source of randomness (on the world's device).
        fresh: draw each trial's variant anew instead, a seed no split holds
            (:data:`metaxm.sampler.FRESH_SEED_BASE` on), as a held-out variant is new.
    """

    def __init__(
        self, world: World, variants: Sequence[int], generator: torch.Generator, fresh: bool = False
    ) -> None:
        if not variants and not fresh:
            raise ValueError("TrialTasks needs at least one variant seed")
        self.world = world
        self.variants = [int(v) for v in variants]
        self.generator = generator
        self.fresh = fresh

    def draw(self, k: int) -> tuple[TaskParams, list[int]]:
        """``k`` rows of task parameters and ``k`` variant seeds."""
        tasks = self.world.sample_tasks(k, self.generator)
        n = FRESH_SEEDS if self.fresh else len(self.variants)
        idx = torch.randint(
            0, n, (k,), generator=self.generator, device=self.generator.device
        )  # on the generator's device: a CUDA generator cannot draw a CPU tensor
        if self.fresh:
            return tasks, [FRESH_SEED_BASE + i for i in idx.tolist()]
        return tasks, [self.variants[i] for i in idx.tolist()]


@dataclass
class TrialState:
    """Where the B environments of one family stand in their trials: the carried inputs.

    Attributes:
        obs: (B, ...) the current observations.
        hidden: (B, H) the recurrent state before the next step.
        prev_action: (B,) or (B, A) the previous action (zero at a trial's start).
        prev_reward: (B,) the previous reward (zero at a trial's start).
        first: (B,) bool, the observation is the first of an episode (the done flag input).
        new_trial: (B,) bool, the next step is a trial's first (its hidden state was zeroed).
        episode: (B,) long, the index of the current episode inside the trial (0-based).
        visited: (B, cells) bool, the layout cells the trial has stood on before this step;
            kept only for ``rl2.state_probe_visited`` (None otherwise).
        covered: (B, cells) bool, the layout cells the episode has stood on before this step;
            kept only for ``rl2.coverage_bonus`` (None otherwise).
    """

    obs: Tensor
    hidden: Tensor
    prev_action: Tensor
    prev_reward: Tensor
    first: Tensor
    new_trial: Tensor
    episode: Tensor
    visited: Tensor | None = None
    covered: Tensor | None = None

    @classmethod
    def start(cls, agent: Agent, obs: Tensor) -> TrialState:
        """Every environment at the first step of a fresh trial."""
        b, dev = obs.shape[0], obs.device
        ones = torch.ones(b, dtype=torch.bool, device=dev)
        return cls(
            obs=obs,
            hidden=agent.initial_state(b, dev),
            prev_action=zero_actions(agent, b, dev),
            prev_reward=torch.zeros(b, device=dev),
            first=ones,
            new_trial=ones.clone(),
            episode=torch.zeros(b, dtype=torch.long, device=dev),
        )

    def state_dict(self) -> dict[str, Tensor]:
        fields = {k: getattr(self, k) for k in self.__dataclass_fields__}
        return {k: v.clone() for k, v in fields.items() if v is not None}

    @classmethod
    def from_state_dict(cls, state: dict[str, Tensor], device: torch.device | str) -> TrialState:
        return cls(**{k: v.to(device) for k, v in state.items() if k in cls.__dataclass_fields__})


def start_trials(agent: Agent, env: TaskEnv, tasks: TrialTasks) -> TrialState:
    """Give every environment of ``env`` a new trial (task and variant) and reset it."""
    params, variants = tasks.draw(env.num_envs)
    env.set_tasks(params, variants)
    return TrialState.start(agent, env.reset())


class TrialStats:
    """Sums over finished episodes by their index inside the trial (tensors, no syncs per step).

    Args:
        episodes: n, the episodes per trial.
        device: where the sums live.
    """

    def __init__(self, episodes: int, device: torch.device | str = "cpu") -> None:
        self.episodes = episodes
        z = torch.zeros(episodes, dtype=torch.float64, device=device)
        self.count, self.return_sum, self.success_sum, self.length_sum = (z.clone() for _ in "1234")

    def add(self, done: Tensor, episode: Tensor, info: dict[str, Tensor]) -> None:
        """Count the episodes that ended (``done``), at their index ``episode`` (B,)."""
        d = done.double()
        idx = episode.clamp(max=self.episodes - 1)
        self.count.index_add_(0, idx, d)
        self.return_sum.index_add_(0, idx, info["episode_return"].double() * d)
        self.success_sum.index_add_(0, idx, info["success"].double() * d)
        self.length_sum.index_add_(0, idx, info["episode_length"].double() * d)

    def merge(self, other: TrialStats) -> None:
        for k in ("count", "return_sum", "success_sum", "length_sum"):
            getattr(self, k).add_(getattr(other, k))

    def summary(self, suffix: str = "") -> dict[str, float]:
        """``episodes``, ``return``, ``success``, ``length`` over all episodes and, per index k
        (1-based), ``<key>/ep<k>``; every key ends with ``suffix`` (e.g. ``"/vector"``).

        The keys fit :class:`~metaxm.run.loop.MetricWindow`: ``return/ep2/vector`` is weighted
        by ``episodes/ep2/vector``.
        """
        count = self.count.tolist()
        sums = {k: getattr(self, f"{k}_sum").tolist() for k in ("return", "success", "length")}
        out: dict[str, float] = {}
        groups: list[tuple[str, list[int]]] = [("", list(range(self.episodes)))]
        groups += [(f"/ep{i + 1}", [i]) for i in range(self.episodes)]
        for tag, rows in groups:
            n = sum(count[i] for i in rows)
            out[f"episodes{tag}{suffix}"] = n
            if n > 0:
                for k, s in sums.items():
                    out[f"{k}{tag}{suffix}"] = sum(s[i] for i in rows) / n
        return out


@dataclass
class TrialRollout:
    """T steps of B environments' trials, each tensor (T, B, ...), and what the replay needs.

    Attributes:
        obs: the observations the actions were taken in.
        prev_actions: the previous actions fed to the core.
        prev_rewards: the previous rewards fed to the core.
        first: the done flags fed to the core (the observation starts an episode).
        reset: the hidden state was zeroed before this step (a trial starts here).
        actions: the actions taken.
        logprobs: their log-probabilities under the acting policy.
        values: the value estimates.
        rewards: the rewards received.
        trial_end: the step ended a trial (its n-th episode): the return's horizon.
        next_values: the value of the state each step reached (ignored where a trial ended).
        hidden: (B, H) the hidden state before the first step, where the replay starts.
        state: the world's true state features of each step's observation (T, B, D), recorded
            only for ``rl2.state_probe``'s auxiliary loss; None otherwise.
        visited: (T, B, cells) bool, the layout cells the trial has stood on up to and
            including each step's, for ``rl2.state_probe_visited``; None otherwise.
        windows: (T, B, K, C + A) the sensory encoder's windows of every step, where they hold
            no parameter (:func:`with_windows`): the replay reads them instead of computing
            them again in every epoch; None otherwise.
    """

    obs: Tensor
    prev_actions: Tensor
    prev_rewards: Tensor
    first: Tensor
    reset: Tensor
    actions: Tensor
    logprobs: Tensor
    values: Tensor
    rewards: Tensor
    trial_end: Tensor
    next_values: Tensor
    hidden: Tensor
    state: Tensor | None = None
    visited: Tensor | None = None
    windows: Tensor | None = None

    def columns(self, idx: Tensor) -> TrialRollout:
        """The rollout of environments ``idx`` only."""
        parts = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "hidden"}
        parts = {k: None if v is None else v[:, idx] for k, v in parts.items()}
        return TrialRollout(**parts, hidden=self.hidden[idx])


@torch.no_grad()
def collect_trials(
    agent: Agent,
    env: TaskEnv,
    family: str,
    state: TrialState,
    steps: int,
    episodes_per_trial: int,
    tasks: TrialTasks,
    generator: torch.Generator,
    stats: TrialStats,
    record_state: bool = False,
    record_visited: bool = False,
    coverage_bonus: float = 0.0,
) -> tuple[TrialRollout, TrialState]:
    """Run the stochastic recurrent policy for ``steps`` steps in every environment of ``env``.

    Environments whose trial ends get a new task and variant from ``tasks`` and a zero hidden
    state (see the module docstring).

    Args:
        agent: a recurrent agent (``core: gru``).
        env: the family's TaskEnv.
        family: the family name.
        state: where the trials stand (from :func:`start_trials` or the previous call).
        steps: T.
        episodes_per_trial: n.
        tasks: draws new trials.
        generator: draws the actions.
        stats: accumulates finished episodes by their index in the trial.
        record_state: also record the world's true state features of every observation
            (``TrialRollout.state``).
        record_visited: also record the layout cells each trial has stood on
            (``TrialRollout.visited``; worlds whose scenes have a layout).
        coverage_bonus: add this to the reward the rollout records for every step onto a
            layout cell the episode has not stood on before (not for a step that ends the
            episode); the agent's previous-reward input and ``stats`` keep the world's reward.

    Returns:
        the rollout and the state after its last step.
    """
    s = state
    buf: dict[str, list[Tensor]] = {k: [] for k in TrialRollout.__dataclass_fields__}
    hidden0 = s.hidden
    rows = torch.arange(env.num_envs, device=env.device)
    visited, covered = s.visited, (s.covered if coverage_bonus else None)
    for _ in range(steps):
        if record_state or record_visited or coverage_bonus:  # the scene s.obs was rendered from
            scene = env.world.scene()
            if record_state:
                buf["state"].append(scene.features)
            if record_visited:
                visited = visit_cells(scene, visited, rows)
                buf["visited"].append(visited)
            if coverage_bonus:
                covered = visit_cells(scene, covered, rows, "rl2.coverage_bonus")
        pd, value, hidden = agent.step(
            s.obs, family, s.prev_action, s.prev_reward, s.first, s.hidden
        )
        action = agent.head.sample(pd, generator)
        obs, reward, terminated, truncated, info = env.step(action)
        done = terminated | truncated
        stats.add(done, s.episode, info)
        shaped = reward
        if covered is not None and coverage_bonus:  # stepped onto a cell new to the episode
            onto = layout_cells(env.world.scene(), "rl2.coverage_bonus")
            fresh = ~covered[rows, onto] & ~done
            shaped = reward + coverage_bonus * fresh
            covered = covered & ~done.unsqueeze(1)
        episode = s.episode + done.long()
        trial_end = episode >= episodes_per_trial
        for k, v in (
            ("obs", s.obs), ("prev_actions", s.prev_action), ("prev_rewards", s.prev_reward),
            ("first", s.first), ("reset", s.new_trial), ("actions", action),
            ("logprobs", agent.head.log_prob(pd, action)), ("values", value),
            ("rewards", shaped), ("trial_end", trial_end),
        ):  # fmt: skip
            buf[k].append(v)
        ids = trial_end.nonzero().squeeze(1)
        if ids.numel():
            params, variants = tasks.draw(ids.shape[0])
            env.set_env_tasks(ids, params, variants)
            obs = env.observe()  # the new trials' first observations
        keep = ~trial_end
        s = TrialState(
            obs=obs,
            hidden=hidden * keep.unsqueeze(1),
            prev_action=torch.where(row_mask(keep, action), action, torch.zeros_like(action)),
            prev_reward=reward * keep,
            first=done,
            new_trial=trial_end,
            episode=episode * keep,
            visited=None if visited is None else visited & keep.unsqueeze(1),
            covered=covered,
        )
        visited = s.visited
    last_value = agent.step(s.obs, family, s.prev_action, s.prev_reward, s.first, s.hidden)[1]
    out = {k: torch.stack(v) for k, v in buf.items() if v}
    following = torch.cat((out["values"][1:], last_value[None]))
    out["next_values"] = torch.where(out["trial_end"], 0.0, following)
    return TrialRollout(**out, hidden=hidden0), s


def visit_cells(
    scene: Any, visited: Tensor | None, rows: Tensor, what: str = "rl2.state_probe_visited"
) -> Tensor:
    """The visited maps (B, cells) with each environment's current layout cell added."""
    cells = layout_cells(scene, what)
    if visited is None:
        size = scene.layout.size
        visited = torch.zeros(len(rows), size**2, dtype=torch.bool, device=rows.device)
    visited = visited.clone()
    visited[rows, cells] = True
    return visited


def layout_cells(scene: Any, what: str) -> Tensor:
    """(B,) long, each environment's layout cell (row * size + col); ``what`` names the
    setting that needs it when the world's scenes have no layout."""
    layout = scene.layout
    if layout is None or layout.agent is None:
        raise ValueError(f"{what} needs a world whose scenes have a layout")
    return layout.agent[:, 0] * layout.size + layout.agent[:, 1]


def replay(agent: Agent, family: str, rollout: TrialRollout) -> tuple[Tensor, Tensor]:
    """Recompute the policy and value along a rollout with the current parameters.

    Returns:
        pd (T, B, pd_dim) and value (T, B), the core's heads on :func:`replay_hidden`.
    """
    return agent.core.heads(replay_hidden(agent, family, rollout))


def replay_hidden(agent: Agent, family: str, rollout: TrialRollout) -> Tensor:
    """The core's hidden state after every step of a rollout, with the current parameters.

    The hidden state starts from the stored ``rollout.hidden`` and is zeroed where a trial
    starts: truncated backpropagation through time over the rollout's T steps.

    For speed the recurrence runs as one ``torch.gru`` call (the C++ loop of ``torch.nn.GRU``)
    with the weights of the agent's :class:`~metaxm.nn.core.GRUCore`, whose cell has
    ``torch.nn.GRUCell``'s gate layout: each environment's column is cut into segments at
    trial starts, the segments are padded into one batch, each starting from its own state (the
    stored one, or zero), and the outputs are gathered back to (T, B). This is the same function
    as stepping ``agent.core.step`` (tests check it against the acting policy) at about a third
    of the cost of a Python loop over T.

    Returns:
        (T, B, H): the state each step's policy and value read.
    """
    core = agent.core
    t, b = rollout.obs.shape[:2]
    hidden, memory = agent.split_state(rollout.hidden)  # the GRU's, the sensory encoder's
    z = agent.latents(
        rollout.obs,
        family,
        rollout.prev_actions,
        rollout.reset,
        memory,
        rollout.windows,
        first=rollout.first,
    )[0]
    extra = core.extra_inputs(rollout.prev_rewards, rollout.first)  # as acting reads them
    x = torch.cat((z, agent.head.encode(rollout.prev_actions), extra), -1)  # (T, B, in), as core
    # segments in env-major order: one starts at t = 0 and wherever a trial starts
    starts = rollout.reset.clone()
    starts[0] = True
    starts = starts.t().reshape(-1)  # (B * T,)
    seg = starts.long().cumsum(0) - 1  # the segment of each step
    first_step = starts.nonzero().squeeze(1)  # (S,) the flat index of each segment's start
    pos = torch.arange(b * t, device=x.device) - first_step[seg]  # the step inside its segment
    padded = x.new_zeros(int(pos.max()) + 1, first_step.shape[0], x.shape[-1])  # (L, S, in)
    padded[pos, seg] = x.transpose(0, 1).reshape(b * t, -1)
    h0 = x.new_zeros(first_step.shape[0], core.hidden_dim)
    h0[seg[torch.arange(b, device=x.device) * t]] = hidden * (~rollout.reset[0, :, None])
    weights = [core.ih.weight, core.hh.weight, core.ih.bias, core.hh.bias]
    out, _ = torch.gru(padded, h0[None], weights, True, 1, 0.0, False, False, False)
    return out[pos, seg].reshape(b, t, -1).transpose(0, 1)  # (T, B, H)


def with_windows(agent: Agent, family: str, rollout: TrialRollout) -> TrialRollout:
    """``rollout`` holding its sensory windows (:meth:`~metaxm.nn.agent.Agent.sensory_windows`),
    where they hold no parameter, so that its replays in every PPO epoch read them instead of
    computing them again; the same rollout otherwise."""
    memory = agent.split_state(rollout.hidden)[1]
    windows = agent.sensory_windows(
        rollout.obs, family, rollout.prev_actions, rollout.reset, memory, rollout.first
    )
    return rollout if windows is None else dataclasses.replace(rollout, windows=windows)


def row_mask(mask: Tensor, like: Tensor) -> Tensor:
    """(B,) mask broadcastable against ``like`` (B,) or (B, A)."""
    return mask.view(-1, *([1] * (like.dim() - 1)))
