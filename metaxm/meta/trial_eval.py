"""Few-shot evaluation of a recurrent agent: trials of K episodes played without gradients.

:func:`run_trial` builds environments for one modality and runs one trial of K episodes in
each; :func:`run_trials` does the same on a given TaskEnv. The agent adapts without gradients,
so one trial of K episodes gives the whole few-shot curve: episode k (0-based) is played after
k episodes of experience of that task and modality::

    res = run_trial(agent, spec.world, "audio", 7, episodes=8, num_trials=64, seed=1)
    res.curve()["success"]  # [8]: success after 0, 1, ..., 7 episodes of target experience
    res.returns             # (64, 8) per trial and episode

An agent trained on trials of ``rl2.episodes_per_trial`` episodes runs on with the state it
has when asked for more, which measures how far in-context adaptation extends past the trained
trial length. :class:`Rewire` changes the sensor's wiring during a trial. Training-side trials
(collecting and replaying them) are :mod:`metaxm.meta.trials`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

from metaxm.build import make_env
from metaxm.envs import TaskParams
from metaxm.envs.play import Step, play
from metaxm.envs.task_env import TaskEnv
from metaxm.meta.trials import TrialState, row_mask, visit_cells
from metaxm.nn.agent import Agent


@dataclass
class TrialResult:
    """Per-episode results of B trials of K episodes each, every tensor (B, K).

    Episode index k (0-based) of a trial was played after k episodes of experience of that
    task and modality, so the column means are the few-shot curve for k = 0 .. K-1.

    Attributes:
        returns: the episode returns.
        success: whether the episode succeeded.
        length: its steps (the horizon where it was cut).
        optimal: the world's shortest number of steps to the goal from the episode's start
            (``World.optimal_steps``), or -1 where the world has none.
        final_state: each trial's carried inputs (``hidden``, ``prev_action``,
            ``prev_reward``, ``first``) at the end of its K-th episode, (B, ...) each; what an
            adapted RL^2 policy continues from (:class:`metaxm.learners.RL2`).
        goal_cell: with ``run_trials(layout=True)``: the episode's goal as a layout cell
            (``row * size + col``), -1 where the layout shows no goal; None otherwise.
        cells: with ``layout=True``: the distinct layout cells the episode stood on before
            its last step, its start included (how far a failed episode searched); None
            otherwise.
    """

    returns: Tensor
    success: Tensor
    length: Tensor
    optimal: Tensor
    final_state: dict[str, Tensor] | None = None
    goal_cell: Tensor | None = None
    cells: Tensor | None = None

    def curve(self) -> dict[str, list[float]]:
        """Means over trials per episode index: ``{"return": [K], "success": [K], ...}``."""
        out = {
            "return": self.returns.double().mean(0).tolist(),
            "success": self.success.double().mean(0).tolist(),
            "length": self.length.double().mean(0).tolist(),
        }
        if bool((self.optimal >= 0).all()):
            out["optimal"] = self.optimal.double().mean(0).tolist()
        return out

    @classmethod
    def concat(cls, results: Sequence[TrialResult]) -> TrialResult:
        """The trials of several results, one after the other."""
        per_episode = ("returns", "success", "length", "optimal")
        out = cls(*(torch.cat([getattr(r, name) for r in results]) for name in per_episode))
        for name in ("goal_cell", "cells"):  # kept where every result has them
            if all(getattr(r, name) is not None for r in results):
                setattr(out, name, torch.cat([getattr(r, name) for r in results]))
        return out

    def summary(self, prefix: str = "") -> dict[str, float]:
        """The curve flattened to ``{prefix + "<key>/ep<k>": mean}`` (k 1-based)."""
        return {
            f"{prefix}{key}/ep{i + 1}": v
            for key, values in self.curve().items()
            for i, v in enumerate(values)
        }


@dataclass(frozen=True)
class Rewire:
    """Re-wire the sensor during a trial: each environment's variant is re-drawn from
    ``variants`` (the task is kept), so that reading the new wiring and remembering the task
    can be told apart (``studies/in_context.py``, ``scripts/rl2_trials.py --rewire``).

    Attributes:
        when: ``between``: as every episode but the last ends, before the next one's first
            observation; ``within``: at step ``at`` of every episode, mid-episode.
        variants: the pool a new variant is drawn from (a draw may repeat the current one).
        at: the step of ``within``.
        seed: seeds the draws.
    """

    when: Literal["between", "within"]
    variants: tuple[int, ...]
    at: int = 3
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.variants:
            raise ValueError("Rewire needs a pool of variants to draw from")
        if self.at < 1:
            raise ValueError(f"Rewire.at must be >= 1, got {self.at}")

    def switch(
        self, env: TaskEnv, step: Step, episodes: int, gen: torch.Generator
    ) -> Tensor | None:
        """Re-wire the environments due at this step; their new observations, or None."""
        if self.when == "between":
            due = step.done & (step.count < episodes)
        else:
            due = ~step.done & (env.episode_length == self.at) & step.alive
        ids = due.nonzero().squeeze(1)
        if ids.numel() == 0:
            return None
        draw = torch.randint(len(self.variants), (ids.numel(),), generator=gen)
        env.set_env_variants(ids, [self.variants[i] for i in draw.tolist()])
        return env.observe()


class _LayoutLog:
    """Each episode's goal cell and the layout cells it stood on, for ``run_trials(layout=True)``.

    Read from the world's scene after every step; an episode's coverage is the cells it stood on
    before its last step (the step that ends it lands where the next episode's reset moves it
    away from).
    """

    def __init__(self, env: TaskEnv, episodes: int) -> None:
        b, dev = env.num_envs, env.device
        self.world, self.episodes = env.world, episodes
        self.rows = torch.arange(b, device=dev)
        self.goal = torch.full((b, episodes), -1, dtype=torch.long, device=dev)
        self.cells = torch.full((b, episodes), -1, dtype=torch.long, device=dev)
        self.covered: Tensor | None = None  # (B, cells): the cells each episode has stood on

    def _visit(self, scene: Any, covered: Tensor | None) -> Tensor:
        return visit_cells(scene, covered, self.rows, "run_trials(layout=True)")

    @staticmethod
    def _goal(scene: Any) -> Tensor:
        """Every environment's goal as a layout cell (-1 where the layout shows none)."""
        layout = scene.layout
        if layout.goal is None:
            return torch.full_like(layout.agent[:, 0], -1)
        return layout.goal[:, 0] * layout.size + layout.goal[:, 1]

    def start(self) -> None:
        """At the trial's first observation."""
        scene = self.world.scene()
        self.covered = self._visit(scene, None)
        self.goal[:, 0] = self._goal(scene)

    def after(self, step: Step) -> None:
        """After every step: close the episodes that ended, open the ones that start."""
        assert self.covered is not None, "start() comes first"
        scene = self.world.scene()
        rows, k = self.rows, self.episodes
        ended = step.done & step.alive
        last = (step.count - 1).clamp(0, k - 1)  # the index of the episode that ended
        self.cells[rows, last] = torch.where(ended, self.covered.sum(1), self.cells[rows, last])
        starts = step.done & (step.count < k)
        col = step.count.clamp(max=k - 1)
        self.goal[rows, col] = torch.where(starts, self._goal(scene), self.goal[rows, col])
        self.covered = self._visit(scene, self.covered & ~step.done.unsqueeze(1))


@torch.no_grad()
def run_trials(
    agent: Agent,
    env: TaskEnv,
    family: str,
    episodes: int,
    deterministic: bool = False,
    generator: torch.Generator | None = None,
    rewire: Rewire | None = None,
    blind: bool = False,
    layout: bool = False,
) -> TrialResult:
    """Run one trial of ``episodes`` episodes in every environment of ``env``, keeping tasks.

    The environments are reset here and keep the tasks and variants they hold; the hidden state
    starts at zero and is carried across the episodes (adaptation without gradients).

    Args:
        agent: a recurrent agent that reads ``family``.
        env: the environments (B trials at once).
        family: the family name.
        episodes: K, the episodes per trial.
        deterministic: act with the policy's mode instead of sampling it.
        generator: draws the actions when sampling.
        rewire: change the trials' variants during them (:class:`Rewire`); None keeps them.
        blind: the agent sees zeros instead of every observation (it still knows when an
            episode ends, and the reward where it reads it): what it achieves without reading
            the modality, a control for what it reads.
        layout: also record each episode's goal cell and the cells it stood on
            (``TrialResult.goal_cell`` and ``.cells``; worlds whose scenes have a layout).
    """
    b, dev = env.num_envs, env.device
    rewire_gen = None if rewire is None else torch.Generator().manual_seed(rewire.seed)
    rows = torch.arange(b, device=dev)
    optimal = torch.full((b, episodes), -1, dtype=torch.long, device=dev)
    optimal_steps = getattr(env.world, "optimal_steps", None)
    carry: dict[str, Tensor] = {}  # the inputs of the next step; the first act sets them
    final: dict[str, Tensor] = {}
    log = _LayoutLog(env, episodes) if layout else None

    def act(obs: Tensor) -> Tensor:
        if blind:
            obs = torch.zeros_like(obs)
        if not carry:  # a fresh trial, right after play's reset
            start = TrialState.start(agent, obs)
            carry.update(hidden=start.hidden, prev_action=start.prev_action,
                         prev_reward=start.prev_reward, first=start.first)  # fmt: skip
            final.update(carry)
            if optimal_steps is not None:
                optimal[:, 0] = optimal_steps()
            if log is not None:
                log.start()
        pd, _, carry["hidden"] = agent.step(
            obs, family, carry["prev_action"], carry["prev_reward"], carry["first"],
            carry["hidden"],
        )  # fmt: skip
        return agent.head.mode(pd) if deterministic else agent.head.sample(pd, generator)

    def observe(action: Tensor, reward: Tensor, done: Tensor) -> None:
        carry.update(prev_action=action, prev_reward=reward, first=done)

    def after(step: Step) -> Tensor | None:
        episode = step.count
        if optimal_steps is not None:
            starts = step.done & (episode < episodes)
            col = episode.clamp(max=episodes - 1)
            optimal[rows, col] = torch.where(starts, optimal_steps(), optimal[rows, col])
        if log is not None:
            log.after(step)
        ended = step.done & step.alive & (episode == episodes)  # the K-th episode ended
        for key, value in carry.items():
            final[key] = torch.where(row_mask(ended, value), value, final[key])
        return None if rewire is None else rewire.switch(env, step, episodes, rewire_gen)

    played = play(env, act, episodes, observe=observe, after=after)
    result = TrialResult(played.returns, played.success, played.length, optimal, final)
    if log is not None:
        result.goal_cell, result.cells = log.goal, log.cells
    return result


def run_trial(
    agent: Agent,
    world: Any,
    family: str,
    variant: int | Sequence[int],
    tasks: TaskParams | None = None,
    episodes: int = 2,
    num_trials: int | None = None,
    seed: int = 0,
    deterministic: bool = False,
    rewire: Rewire | None = None,
    blind: bool = False,
    new_tasks: bool = False,
    layout: bool = False,
) -> TrialResult:
    """Few-shot evaluation of a recurrent agent on one modality: K episodes in context.

    Builds ``num_trials`` environments of ``world`` seen through ``family`` and runs one trial
    of ``episodes`` episodes in each (:func:`run_trials`). Row b of the result is trial b; its
    column k is the episode played after k episodes of experience, so one call with K episodes
    gives the whole few-shot curve k = 0 .. K-1. ::

        res = run_trial(agent, spec.world, "audio", 7, episodes=8, num_trials=64)
        res.curve()["success"]  # [8] success rate after 0, 1, ..., 7 episodes

    Args:
        agent: a recurrent agent with an encoder for ``family`` (``Agent.add_family`` adds one).
        world: a registered world's config (e.g. ``spec.world``).
        family: the modality family.
        variant: the variant seed of every trial, or one per trial.
        tasks: per-trial world task parameters; default: drawn from the world with ``seed``.
        episodes: K.
        num_trials: B; default: the number of variants or task rows given, else 1.
        seed: seeds the world (tasks, starts), the observation noise and the actions.
        deterministic: act with the policy's mode instead of sampling it.
        rewire: change the trials' variants during them (:class:`Rewire`).
        blind: the agent sees zeros instead of the observations (:func:`run_trials`).
        new_tasks: every episode after the first starts on a new task drawn from the world
            (the variant kept; ``TaskEnv.resample_tasks``), so that what the trial teaches
            of the modality is told apart from what it found of the task.
        layout: also record each episode's goal cell and the cells it stood on
            (:func:`run_trials`).
    """
    if num_trials is None:
        if not isinstance(variant, int):
            num_trials = len(variant)
        elif tasks is not None:
            num_trials = int(next(iter(tasks.values())).shape[0])
        else:
            num_trials = 1
    device = next(agent.parameters()).device
    env = make_env(
        world, family, variant, num_envs=num_trials, seed=seed, device=device, tasks=tasks,
        resample_tasks=new_tasks,
    )  # fmt: skip
    gen = torch.Generator(device).manual_seed(seed + 1)
    return run_trials(agent, env, family, episodes, deterministic, gen, rewire, blind, layout)
