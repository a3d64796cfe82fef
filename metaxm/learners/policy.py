"""AdaptedPolicy: what a learner's ``adapt`` returns, a policy that can act and be saved.

A feed-forward policy is the trained agent with the adapted parameters swapped in (``params``,
a subset of its weights, run through ``torch.func.functional_call``; the agent itself is not
changed). A recurrent (RL^2) policy is the agent with the state it carried out of the k
episodes: its hidden state and previous action, reward and done flag, one row per environment
of the adaptation; :meth:`AdaptedPolicy.observe` carries it on after every step::

    obs = env.reset()
    for _ in range(env.world.horizon):
        action = policy.act(obs)
        obs, reward, terminated, truncated, _ = env.step(action)
        policy.observe(action, reward, terminated | truncated)

``save`` writes the spec, the agent with the adapted weights in place and the carried state
to one file (with a checksum beside it); ``AdaptedPolicy.load`` builds it back.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor
from torch.func import functional_call

from metaxm.errors import CheckpointError

if TYPE_CHECKING:
    from metaxm.nn.agent import Agent
    from metaxm.spec import Spec

FORMAT = "metaxm-policy/1"


class AdaptedPolicy:
    """A policy adapted to one modality.

    Attributes:
        agent: the trained agent (not modified).
        spec: its spec.
        family: the modality family it was adapted to.
        variant: the variant.
        params: the adapted parameters (a subset of the agent's), or None for the agent's own.
        episodes: the episodes of experience the adaptation actually used.
        paired_steps: the paired steps a paired fit used (0 for the other learners).
        carry: a recurrent policy's state (``hidden``, ``prev_action``, ``prev_reward``,
            ``first``), one row per environment; None for a feed-forward one.
        learner: the name of the learner that made it.
        translator: a ``translate`` policy's translator (:mod:`metaxm.align.translate`), which
            turns an observation into one of family ``reads``, what the agent then reads (with
            ``params``, the source variant's adapter); None for the other learners.
        reads: the family the agent reads a translated observation as.
    """

    def __init__(
        self,
        agent: Agent,
        spec: Spec,
        family: str,
        variant: int,
        params: Mapping[str, Tensor] | None = None,
        episodes: int = 0,
        carry: dict[str, Tensor] | None = None,
        learner: str = "",
    ) -> None:
        self.agent = agent
        self.spec = spec
        self.family = family
        self.variant = variant
        self.params = None if params is None else dict(params)
        self.episodes = episodes
        self.carry = carry
        self.learner = learner
        self.paired_steps = 0
        self.translator: torch.nn.Module | None = None
        self.reads: str | None = None

    def __repr__(self) -> str:
        reads = f", reads={self.reads!r}" if self.reads else ""
        return (
            f"AdaptedPolicy(learner={self.learner!r}, family={self.family!r}, "
            f"variant={self.variant}, episodes={self.episodes}{reads})"
        )

    # ------------------------------------------------------------------ acting
    def distribution(self, obs: Tensor) -> Tensor:
        """The policy's distribution parameters for ``obs`` (B, ...); a recurrent policy also
        advances its hidden state (call :meth:`observe` after stepping)."""
        if self.carry is None:
            family = self.family
            if self.translator is not None and self.reads is not None:
                obs, family = self.translator(obs), self.reads
            if self.params is None:
                return self.agent(obs, family)[0]
            return functional_call(self.agent, self.params, (obs, family))[0]
        c = self.carry
        if c["hidden"].shape[0] != obs.shape[0]:
            raise ValueError(
                f"this recurrent policy carries {c['hidden'].shape[0]} environments' state; "
                f"got {obs.shape[0]} observations"
            )
        pd, _, c["hidden"] = self.agent.step(
            obs, self.family, c["prev_action"], c["prev_reward"], c["first"], c["hidden"]
        )
        return pd

    def begin(self) -> None:
        """New episodes start: a translator that searches readings of the task within an
        episode forgets those it ruled out (:mod:`metaxm.align.reading_search`)."""
        begin = getattr(self.translator, "begin", None)
        if callable(begin):
            begin()

    @torch.no_grad()
    def act(
        self, obs: Tensor, deterministic: bool = True, generator: torch.Generator | None = None
    ) -> Tensor:
        """Actions for ``obs``, a batch (B, *shape; a numpy array is taken too): the policy's
        mode, or a sample drawn with ``generator``."""
        device = next(self.agent.parameters()).device
        obs = torch.as_tensor(obs, device=device)
        shape = tuple(self.agent.observation_spaces[self.family].shape)
        if self.agent.instruction is None and tuple(obs.shape[1:]) != shape:
            raise ValueError(
                f"act takes a batch of {self.family} observations, (B, *{shape}); got shape "
                f"{tuple(obs.shape)} (one observation: obs[None])"
            )
        pd = self.distribution(obs)
        head = self.agent.head
        return head.mode(pd) if deterministic else head.sample(pd, generator)

    def observe(self, action: Tensor, reward: Tensor, done: Tensor) -> None:
        """Carry a recurrent policy's inputs to the next step, and tell a translator that
        tracks the episode the action it took and where an episode ended
        (:mod:`metaxm.align.sensor_track`); a no-op for a feed-forward policy without one."""
        if self.carry is not None:
            self.carry.update(prev_action=action, prev_reward=reward, first=done)
        observe = getattr(self.translator, "observe", None)
        if callable(observe):
            observe(action, done)

    @torch.no_grad()
    def evaluate(self, env: Any, deterministic: bool = True) -> dict[str, float]:
        """Mean ``return``, ``success`` and ``steps`` of one episode in every environment of
        ``env`` (a :func:`metaxm.make_env` env of the policy's modality). The policy is left
        as it was: a recurrent policy's carried state is put back after the episode, so two
        calls measure the same policy. The env keeps its tasks, so on the env it adapted on it
        is measured on the tasks it adapted to; a fresh ``make_env`` measures it on others."""
        from metaxm.learners.base import check_task_env
        from metaxm.rl.evaluate import run_episodes, summarize

        check_task_env(env, "AdaptedPolicy.evaluate")
        if env.family.name != self.family:
            raise ValueError(
                f"this policy acts on {self.family} observations (adapted to "
                f"{self.family}:{self.variant}); env renders {env.family.name}"
            )

        def act(_env: Any, obs: Tensor) -> Tensor:
            return self.act(obs, deterministic)

        kept = None if self.carry is None else {k: _copy(v) for k, v in self.carry.items()}
        self.begin()
        try:
            out = summarize(run_episodes(env, act, self.observe))
        finally:
            if kept is not None:
                self.carry = kept
        return {"return": out["return"], "success": out["success"], "steps": out["length"]}

    # ------------------------------------------------------------------ saving
    def weights(self) -> dict[str, Tensor]:
        """The agent's state dict with the adapted parameters in place."""
        state = {k: v.detach().clone() for k, v in self.agent.state_dict().items()}
        for name, value in (self.params or {}).items():
            state[name] = value.detach().clone()
        return state

    def save(self, path: str | Path) -> Path:
        """Write the policy to ``path`` (atomically, with a checksum file beside it)."""
        from metaxm.run.checkpoint import save_checkpoint
        from metaxm.spec import replace, spec_to_dict, with_heldout_families

        spec = replace(self.spec, agent=self.agent.config)  # an RL^2 agent's core is a GRU
        m = spec.modalities
        known = {*m.train, *m.heldout_variants, *m.heldout_families}
        # the families agent.add_family gave it: the spec the agent is rebuilt from names them
        spec = with_heldout_families(spec, [f for f in self.agent.families if f not in known])

        payload = {
            "format": FORMAT,
            "learner": self.learner,
            "family": self.family,
            "variant": self.variant,
            "episodes": self.episodes,
            "spec": spec_to_dict(spec),
            "agent": self.weights(),
            "adapted": None if self.params is None else list(self.params),
            "carry": None if self.carry is None else {k: v.clone() for k, v in self.carry.items()},
            "translator": None
            if self.translator is None
            else {"reads": self.reads, "state": self.translator.state_dict()},
        }
        return save_checkpoint(path, payload)

    @classmethod
    def load(cls, path: str | Path, device: str | None = None) -> AdaptedPolicy:
        """A policy :meth:`save` wrote.

        Raises:
            CheckpointError: not a saved policy, corrupt, or weights that do not fit its spec.
        """
        from metaxm.build import make_agent
        from metaxm.run.checkpoint import load_checkpoint, state_dict_error
        from metaxm.run.device import resolve_device
        from metaxm.spec import replace, spec_from_dict

        if device is not None:
            resolve_device(device)  # a device this machine lacks: one line, not "corrupt"
        state = load_checkpoint(path, map_location=device or "cpu")
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise CheckpointError(f"{path}: not a saved policy (AdaptedPolicy.save writes one)")
        spec = spec_from_dict(state["spec"], saved=True)
        if device is not None:
            spec = replace(spec, device=device)
        agent = make_agent(spec).to(spec.device)  # an RL^2 agent with its probes
        try:
            agent.load_state_dict(state["agent"])
        except RuntimeError as err:
            raise CheckpointError(
                f"{path}: the weights do not fit the spec ({state_dict_error(err)})"
            ) from None
        agent.eval()
        own = dict(agent.named_parameters())
        adapted = state.get("adapted")
        policy = cls(
            agent,
            spec,
            state["family"],
            int(state["variant"]),
            params=None if adapted is None else {n: own[n].detach() for n in adapted},
            episodes=int(state["episodes"]),
            carry=state["carry"],
            learner=str(state["learner"]),
        )
        translated = state.get("translator")
        if translated is not None:
            policy.translator, policy.reads = _translator(path, spec, policy, translated)
        return policy


def _translator(
    path: str | Path, spec: Spec, policy: AdaptedPolicy, saved: dict[str, Any]
) -> tuple[torch.nn.Module, str]:
    """The translator a translating policy saved, built again by its learner
    (:meth:`~metaxm.learners.translate.Translate.blank_translator`); one that searches readings
    of the task gets the world's test of success back (``attach``)."""
    from metaxm.align.translate import source_width
    from metaxm.build import make_env
    from metaxm.learners import LEARNERS, Translate
    from metaxm.nn.agent import observation_spaces
    from metaxm.run.checkpoint import state_dict_error

    family = policy.family

    reads = str(saved["reads"])
    spaces = observation_spaces(spec, [family, reads])
    width = source_width(reads, spaces[reads])
    learner = LEARNERS.get(policy.learner)
    builder = learner if isinstance(learner, type) and issubclass(learner, Translate) else Translate
    translator = builder.blank_translator(family, spaces[family], width, spec).to(spec.device)
    try:
        translator.load_state_dict(saved["state"])
    except RuntimeError as err:
        raise CheckpointError(
            f"{path}: the translator does not fit the spec ({state_dict_error(err)})"
        ) from None
    attach = getattr(translator, "attach", None)
    if callable(attach):
        attach(make_env(spec, family, policy.variant, num_envs=1).world)
    return translator.eval(), reads


def _copy(value: Any) -> Any:
    return value.clone() if isinstance(value, Tensor) else value
