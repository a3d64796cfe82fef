"""Evaluation on fresh episodes: a policy and the world's oracle on the very same episodes.

Every environment of a fresh :class:`~metaxm.envs.task_env.TaskEnv` plays exactly one episode;
the statistics are over those first episodes. Built from the same seed, two TaskEnvs present
identical tasks, start states and observation noise (the policy's actions draw on none of
those generators), which is what makes a policy's return comparable with the oracle's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from metaxm.build import make_env
from metaxm.envs import has_oracle
from metaxm.envs.play import play
from metaxm.envs.task_env import TaskEnv
from metaxm.nn.agent import Agent

if TYPE_CHECKING:
    from metaxm.spec import Spec

ActFn = Callable[[TaskEnv, Tensor], Tensor]


def fresh_env(spec: Spec, family: str, variants: Sequence[int], seed: int) -> TaskEnv:
    """``len(variants)`` environments of the spec's world with fresh tasks drawn from ``seed``."""
    return make_env(spec, family, variants, seed=seed)


@torch.no_grad()
def run_episodes(
    env: TaskEnv, act: ActFn, observe: Callable[[Tensor, Tensor, Tensor], None] | None = None
) -> dict[str, Tensor]:
    """Play one episode in every environment of ``env``.

    Args:
        env: the environments (reset here).
        act: ``act(env, obs) -> actions`` for the whole batch.
        observe: ``observe(actions, rewards, dones)`` after every step, for a policy that
            carries state from step to step (a recurrent one).

    Returns:
        per-environment ``return`` (B,), ``success`` (B,) bool and ``length`` (B,) of the first
        episode.
    """
    played = play(env, lambda obs: act(env, obs), observe=observe)
    return {"return": played.returns[:, 0], "success": played.success[:, 0],
            "length": played.length[:, 0]}  # fmt: skip


def policy_act(
    agent: Agent, family: str, deterministic: bool, generator: torch.Generator | None = None
) -> ActFn:
    """The agent's policy as an :data:`ActFn`: its mode, or a sample drawn from ``generator``."""

    def act(env: TaskEnv, obs: Tensor) -> Tensor:
        pd = agent(obs, family, variants=env.variant_ids())[0]
        return agent.head.mode(pd) if deterministic else agent.head.sample(pd, generator)

    return act


def oracle_act(env: TaskEnv, obs: Tensor) -> Tensor:
    """The world's reference policy (it reads the true state, not the observation)."""
    return env.world.oracle_action()


def summarize(results: dict[str, Tensor], prefix: str = "") -> dict[str, float]:
    """Means of :func:`run_episodes`' results as ``{prefix + key: float}``."""
    return {f"{prefix}{k}": float(v.double().mean()) for k, v in results.items()}


def evaluate_agent(
    agent: Agent,
    spec: Spec,
    variants: dict[str, list[int]],
    episodes: int,
    seed: int,
) -> dict[str, float]:
    """Deterministic and sampled policy, and the oracle, on the same fresh episodes.

    Args:
        agent: a feed-forward agent.
        spec: gives the world.
        variants: ``{family: variant seeds}``; the episodes cycle through each family's seeds.
        episodes: episodes per family.
        seed: seeds the fresh episodes (use one that training never used).

    Returns:
        ``return``, ``success``, ``length`` of the deterministic policy (the mode of pi),
        ``sampled_*`` of the stochastic policy and ``oracle_*`` of the world's oracle, averaged
        over families; with several families also ``<key>/<family>``.
    """
    was_training = agent.training
    agent.eval()
    per_family: dict[str, dict[str, float]] = {}
    for i, (family, seeds) in enumerate(variants.items()):
        rows = [seeds[j % len(seeds)] for j in range(episodes)]
        s = seed + 1000 * i
        gen = torch.Generator(spec.device).manual_seed(s + 17)
        out = summarize(
            run_episodes(fresh_env(spec, family, rows, s), policy_act(agent, family, True))
        )
        out.update(
            summarize(
                run_episodes(
                    fresh_env(spec, family, rows, s), policy_act(agent, family, False, gen)
                ),
                "sampled_",
            )
        )
        if has_oracle(spec.world):
            oracle = run_episodes(fresh_env(spec, family, rows, s), oracle_act)
            out.update(summarize(oracle, "oracle_"))
        per_family[family] = out
    agent.train(was_training)
    keys = next(iter(per_family.values())).keys()
    result = {k: sum(r[k] for r in per_family.values()) / len(per_family) for k in keys}
    if len(per_family) > 1:
        for family, r in per_family.items():
            result.update({f"{k}/{family}": v for k, v in r.items()})
    result["episodes"] = float(episodes)
    return result
