"""Play a trained agent on a gymnasium env, one step at a time.

The evaluator plays batched :class:`~metaxm.envs.task_env.TaskEnv` episodes; :class:`Actor` is
the same agent for a single gymnasium env a user steps themselves, e.g. any env seen through
:class:`~metaxm.envs.wrappers.ModalityObservation`::

    agent, spec, algo, _ = load_agent("runs/sensory-cartpole")
    env = ModalityObservation(gymnasium.make("CartPole-v1"), "vector", variant=1_000_000)
    actor = Actor(agent, "vector")
    ret = actor.episode(env, seed=0)   # or step it yourself: actor.act(obs), actor.observe(r, done)

A recurrent (RL^2) agent carries its state across the episodes of a trial, as in training:
``observe`` hands the step's reward and end-of-episode flag to its next step, and
:meth:`Actor.new_trial` empties the state (a new task, or a new sensor read from scratch). A
feed-forward agent ignores both.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from metaxm.meta.trials import zero_actions
from metaxm.nn.agent import Agent
from metaxm.nn.distributions import CategoricalHead


class Actor:
    """A trained agent acting in one env, with the recurrent inputs it carries.

    An agent with per-variant adapters (``agent.adapters: variant``) reads through its family
    adapter here, as it reads a held-out variant: the env does not say which variant it shows.

    Args:
        agent: a loaded agent (:func:`metaxm.evaluate.loading.load_agent`).
        family: the modality family the env's observations come from.
        deterministic: act with the policy's mode; False samples it with ``generator``.
        generator: draws the sampled actions.
    """

    def __init__(
        self,
        agent: Agent,
        family: str,
        deterministic: bool = True,
        generator: torch.Generator | None = None,
    ) -> None:
        if family not in agent.families:
            raise ValueError(
                f"the agent cannot read {family!r}; it reads {', '.join(agent.families)}"
            )
        self.agent = agent
        self.family = family
        self.deterministic = deterministic
        self.generator = generator
        self.device = next(agent.parameters()).device
        self.new_trial()

    def new_trial(self) -> None:
        """Empty the recurrent state: what follows is read from scratch."""
        dev = self.device
        self._action = zero_actions(self.agent, 1, dev)
        self._reward = torch.zeros(1, device=dev)
        self._first = torch.ones(1, dtype=torch.bool, device=dev)
        self._hidden = self.agent.initial_state(1, dev) if self.agent.recurrent else None

    @torch.no_grad()
    def act(self, obs: Any) -> Any:
        """The action for one observation: an int (discrete) or an array (a Box)."""
        x = torch.as_tensor(np.asarray(obs), device=self.device).unsqueeze(0)
        if self.agent.recurrent:
            pd, _, self._hidden = self.agent.step(
                x, self.family, self._action, self._reward, self._first, self._hidden
            )
        else:
            pd = self.agent(x, self.family)[0]
        head = self.agent.head
        action = head.mode(pd) if self.deterministic else head.sample(pd, self.generator)
        self._action = action
        if isinstance(head, CategoricalHead):
            return int(action[0])
        return action[0].cpu().numpy()

    def episode(
        self, env: Any, seed: int | None = None, rewire: tuple[int, int] | None = None
    ) -> float:
        """Play one episode of ``env`` from ``env.reset(seed=seed)``; its return.

        The recurrent state carries on from the previous episode (call :meth:`new_trial` for a
        fresh one). ``rewire=(at, variant)``: after step ``at`` the sensor is re-wired with
        ``env.set_variant(variant)`` (a :class:`~metaxm.envs.wrappers.ModalityObservation`).
        """
        obs, _ = env.reset(seed=seed)
        total, t, done = 0.0, 0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(self.act(obs))
            done = bool(terminated or truncated)
            self.observe(reward, done)
            total, t = total + float(reward), t + 1
            if rewire is not None and t == rewire[0] and not done:
                obs = env.set_variant(rewire[1])
        return total

    def observe(self, reward: float, done: bool) -> None:
        """The reward of the last action, and whether its episode ended (terminated or
        truncated): the next observation is then an episode's first."""
        self._reward = torch.full((1,), float(reward), device=self.device)
        self._first = torch.full((1,), bool(done), device=self.device)
