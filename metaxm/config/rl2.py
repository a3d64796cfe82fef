"""RL2Config: the ``rl2:`` section of a spec (trial settings of :mod:`metaxm.meta.rl2`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from metaxm.config import bounded


@dataclass(frozen=True)
class RL2Config:
    """RL^2 settings (the ``rl2:`` section of a spec); PPO's come from ``ppo:``, where
    ``ppo.num_steps`` is the rollout chunk and so the truncation length of backpropagation
    through time, and ``ppo.num_minibatches`` splits the environments (whole sequences).

    Attributes:
        episodes_per_trial: n, episodes of one task and modality variant per trial; the hidden
            state is carried across them and zeroed between trials.
        eval_episodes_per_trial: K of the trials of the final evaluation (null: n); K > n
            measures how far the in-context adaptation extends past the trained trial length.
        variants: what each training trial is shown through: a variant of the ``split`` (the
            spec's ``train`` split), or a ``fresh`` one no split holds, drawn anew for every
            trial, so the agent must read each wiring in context as it must a held-out one.
        episode_tasks: ``trial``: every episode of a trial keeps the trial's task (the goal it
            found is there again: RL^2's trials); ``new``: every episode after the first draws
            a new task (the variant kept), so what a trial can carry is its reading of the
            modality, not the goal, as the evaluator's ``rl2-newtask`` measures it. The final
            evaluation's trials follow it.
        state_probe: the weight of an auxiliary loss that trains a linear probe on the core's
            hidden state to predict the world's true state features at every step (the agent
            and, in GridNav, the goal, which stays put within a trial), in squared error; 0
            (the default) builds no probe. Privileged information in training only: acting
            never reads the probe, and nothing of the true state reaches the agent's inputs.
        state_probe_lags: with the probe, it also predicts the true state L steps earlier in
            the same trial for each L given (where that step lies in the same rollout chunk),
            so the core must hold where the trial has been, not only where it is.
        state_probe_visited: with the probe, a second linear probe also predicts which cells
            of the world's layout the trial has stood on so far (binary cross-entropy averaged
            over cells, the same weight): the memory a search that goes on into the next
            episode needs. Worlds whose scenes have a layout (GridNav, MiniGrid).
        coverage_bonus: in training only, a reward added for every step onto a layout cell the
            episode has not stood on before: shaping toward searching when the goal was
            misread. Below GridNav's ``step_cost`` it leaves the shortest path to a known goal
            the best (every step of it is onto a new cell, so each still costs the difference),
            and a step back onto an old cell costs the whole ``step_cost``. The agent's
            previous-reward input, its logged return and every evaluation see the world's
            reward alone. 0 (the default) adds nothing. Worlds whose scenes have a layout and
            whose steps cost (GridNav); refused elsewhere, and at or above the step cost.

    The weight of the alignment auxiliary loss is the ``align`` section's ``weight``.
    """

    episodes_per_trial: int = bounded(2, 1, 1000)
    eval_episodes_per_trial: int | None = bounded(None, 1, 1000)
    variants: Literal["split", "fresh"] = "split"
    episode_tasks: Literal["trial", "new"] = "trial"
    state_probe: float = bounded(0.0, 0.0, 100.0)
    state_probe_lags: tuple[int, ...] = bounded((), 1, 4096)
    state_probe_visited: bool = False
    coverage_bonus: float = bounded(0.0, 0.0, 1.0)

    def __post_init__(self) -> None:
        if (self.state_probe_lags or self.state_probe_visited) and not self.state_probe > 0:
            what = "state_probe_lags" if self.state_probe_lags else "state_probe_visited"
            raise ValueError(f"{what} needs the probe: set rl2.state_probe > 0")
        if self.episodes_per_trial < 1:
            raise ValueError(f"episodes_per_trial must be >= 1, got {self.episodes_per_trial}")
        if self.eval_episodes_per_trial is not None and self.eval_episodes_per_trial < 1:
            raise ValueError(
                f"eval_episodes_per_trial must be >= 1 or null, got {self.eval_episodes_per_trial}"
            )

    @property
    def eval_episodes(self) -> int:
        return self.eval_episodes_per_trial or self.episodes_per_trial
