"""The episode engine: one batched, masked loop that plays episodes in a TaskEnv.

Every place in metaxm that plays whole episodes (evaluation, the few-shot strategies, MAML's
support and query episodes, RL^2's trials, the paired steps of alignment) goes through
:func:`play`; they differ only in how they act and what they record::

    played = play(env, lambda obs: agent.head.mode(agent(obs, family)[0]))
    played.returns[:, 0], played.success[:, 0]   # each environment's first episode

``play`` resets ``env`` and steps all its environments together until each has finished
``episodes`` episodes (an environment that is done keeps stepping, masked out, so that the
batch keeps its shape and the actions keep being drawn for the whole batch), or for exactly
``steps`` steps. ``act(obs)`` returns the actions, or ``(actions, extras)`` with per-step
tensors to record (log-probabilities, values); ``observe(actions, rewards, dones)`` carries a
recurrent policy's inputs; ``record`` names what to keep of every step, stacked (T, B, ...):

* ``obs``, ``action``, ``reward``, ``terminated``, ``done`` and any key of ``extras``;
* ``alive``: the environment was still in its counted episodes before the step (the mask);
* ``count``: the episodes it had finished before the step;
* ``scene``: the world's state before the step (a list of :class:`~metaxm.envs.base.Scene`,
  for paired renders).

``after(step)`` sees every step as it happens (:class:`Step`), for what a caller tracks
itself (RL^2's shortest paths and the state it carries out of a trial); if it changes the
environments (a re-wired sensor), it returns their new observations, which the next step
acts on.

Training rollouts (:mod:`metaxm.rl.rollout`, :func:`metaxm.meta.trials.collect_trials`) run a
fixed number of steps across episode boundaries with auto-reset; they are not episodes in this
sense and keep their own loops.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

if TYPE_CHECKING:
    from metaxm.envs.task_env import TaskEnv

ActResult = Tensor | tuple[Tensor, dict[str, Tensor]]
STEP_KEYS = ("obs", "action", "reward", "terminated", "done", "alive", "count")


@dataclass
class Step:
    """One step of every environment, as :func:`play` hands it to ``after``.

    Attributes:
        obs: (B, ...) the observations acted on.
        action: (B, ...) the actions taken.
        reward: (B,) the rewards.
        terminated: (B,) bool.
        done: (B,) bool, terminated or truncated.
        info: the env's info of the step.
        alive: (B,) bool, still in its counted episodes before the step.
        count: (B,) long, the episodes each environment has finished, after the step.
    """

    obs: Tensor
    action: Tensor
    reward: Tensor
    terminated: Tensor
    done: Tensor
    info: dict[str, Tensor]
    alive: Tensor
    count: Tensor


@dataclass
class Played:
    """What :func:`play` returns.

    Attributes:
        returns: (B, E) the return of each environment's episodes (0 where one did not end).
        success: (B, E) bool.
        length: (B, E) long, steps (the horizon where an episode was cut).
        steps: the number of steps every environment took.
        record: ``{name: (T, B, ...)}`` of what ``record`` named (``scene``: a list of T).
    """

    returns: Tensor
    success: Tensor
    length: Tensor
    steps: int
    record: dict[str, Any] = field(default_factory=dict)


def play(
    env: TaskEnv,
    act: Callable[[Tensor], ActResult],
    episodes: int = 1,
    *,
    steps: int | None = None,
    record: Sequence[str] = (),
    observe: Callable[[Tensor, Tensor, Tensor], None] | None = None,
    after: Callable[[Step], Tensor | None] | None = None,
) -> Played:
    """Play ``episodes`` episodes in every environment of ``env`` (see the module docstring).

    Args:
        env: the environments; reset here.
        act: ``obs -> actions`` or ``obs -> (actions, extras)`` for the whole batch.
        episodes: E, the episodes each environment counts.
        steps: play exactly this many steps instead (episodes past E are not counted).
        record: what to keep of every step (see the module docstring).
        observe: ``observe(actions, rewards, dones)`` after every step.
        after: ``after(step)`` after every step; what it returns, if not None, replaces the
            next observations.
    """
    obs = env.reset()
    b, dev = env.num_envs, env.device
    returns = torch.zeros(b, episodes, device=dev)
    success = torch.zeros(b, episodes, dtype=torch.bool, device=dev)
    length = torch.zeros(b, episodes, dtype=torch.long, device=dev)
    count = torch.zeros(b, dtype=torch.long, device=dev)
    rows = torch.arange(b, device=dev)
    kept: dict[str, list[Any]] = {name: [] for name in record}
    taken = 0
    for _ in range(episodes * env.world.horizon if steps is None else steps):
        alive = count < episodes
        if "scene" in kept:
            kept["scene"].append(env.world.scene())
        out = act(obs)
        action, extras = out if isinstance(out, tuple) else (out, {})
        next_obs, reward, terminated, truncated, info = env.step(action)
        done = terminated | truncated
        if observe is not None:
            observe(action, reward, done)
        ended = done & alive
        col = count.clamp(max=episodes - 1)
        returns[rows, col] = torch.where(ended, info["episode_return"], returns[rows, col])
        success[rows, col] = torch.where(ended, info["success"], success[rows, col])
        length[rows, col] = torch.where(ended, info["episode_length"], length[rows, col])
        now = {"obs": obs, "action": action, "reward": reward, "terminated": terminated}
        now.update(done=done, alive=alive, count=count, **extras)
        for name in kept:
            if name != "scene":
                kept[name].append(now[name])
        count = count + done.long()
        taken += 1
        if after is not None:
            changed = after(Step(obs, action, reward, terminated, done, info, alive, count))
            next_obs = next_obs if changed is None else changed
        obs = next_obs
        if steps is None and bool((count >= episodes).all()):
            break
    stacked = {k: v if k == "scene" else torch.stack(v) for k, v in kept.items()}
    return Played(returns, success, length, taken, stacked)


def transitions(kept: Tensor, count: Tensor) -> tuple[Tensor, Tensor]:
    """The one-step transitions among the kept steps of a play: ``(first, second)`` (M,) each,
    positions in the kept steps flattened step-major (as ``x[kept]`` orders them), where step
    ``second`` follows step ``first`` in the same environment and the same episode.

    Args:
        kept: (T, B) bool, the steps kept (e.g. ``alive``).
        count: (T, B) long, the episodes each environment had finished before the step.
    """
    position = kept.flatten().cumsum(0).view_as(kept) - 1  # (T, B)
    linked = kept[:-1] & kept[1:] & (count[:-1] == count[1:])  # (T - 1, B)
    return position[:-1][linked], position[1:][linked]
