"""Experience counted in episodes: measuring a policy, and PPO on an episode budget.

The evaluator's x-axis is *episodes of target-modality experience*, so the baselines that learn
by PPO (``finetune``, ``scratch``) collect whole episodes: every environment of a batch plays
exactly one episode (steps after its end are masked out), and each PPO update uses the
episodes gathered since the last measured budget. One update per budget step, with the
spec's ``ppo`` hyper-parameters (epochs, minibatches, clipping), is a plain fine-tuning
schedule; past ``max_batch`` episodes a budget step is split into several updates.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor
from torch.func import functional_call

from metaxm.align.fewshot import Actor
from metaxm.align.pairs import concat_scenes, select_rows
from metaxm.build import make_env
from metaxm.envs.base import Scene
from metaxm.envs.play import play
from metaxm.envs.task_env import TaskEnv
from metaxm.nn.agent import Agent
from metaxm.rl.gae import compute_gae
from metaxm.rl.ppo import Batch, ppo_update

if TYPE_CHECKING:
    from metaxm.spec import Spec

Params = Mapping[str, Tensor]
Curve = dict[str, list[float]]
METRICS = ("return", "success", "steps")


def target_env(spec: Spec, family: str, variant: int, n: int, seed: int) -> TaskEnv:
    """``n`` environments of the spec's world, all showing modality ``family:variant``, with
    tasks drawn from ``seed``."""
    return make_env(spec, family, variant, num_envs=n, seed=seed)


def policy(
    agent: Agent, family: str, params: Params | None = None, variants: Tensor | None = None
) -> Callable[[Tensor], Tensor]:
    """obs -> policy distribution parameters, with ``params`` (a subset) swapped in if given.

    ``variants`` (B,): the rows' variant seeds; an agent with per-variant adapters uses its own
    adapter for a training variant (held-out variants go through the family adapter)."""
    kwargs = {"variants": variants}
    if params is None:
        return lambda obs: agent(obs, family, **kwargs)[0]
    return lambda obs: functional_call(agent, dict(params), (obs, family), kwargs)[0]


@torch.no_grad()
def measure(
    agent: Agent,
    spec: Spec,
    family: str,
    variant: int,
    episodes: int,
    seed: int,
    params: Params | None = None,
    distribution: Callable[[Tensor], Tensor] | None = None,
    observe: Callable[[Tensor, Tensor, Tensor], None] | None = None,
) -> dict[str, float]:
    """Mean return, success and steps of the policy's mode on ``episodes`` fresh episodes.

    The policy is the agent with ``params`` swapped in, or ``distribution`` (obs -> the
    policy's distribution parameters) where given, e.g. an adapted policy's own; ``observe``
    (actions, rewards, dones), where given, is told every step (an adapted policy's own, so
    that a translator that tracks the episode sees the actions it led to).

    ``steps`` is the episode length, the horizon for episodes that never reach the goal. The
    same ``seed`` gives the same tasks, starts and observation noise, so measurements of one
    agent at different budgets are paired.
    """
    env = target_env(spec, family, variant, episodes, seed)
    pi = distribution or policy(agent, family, params, env.variant_ids())
    played = play(env, lambda obs: agent.head.mode(pi(obs)), observe=observe)
    out = {"return": played.returns, "success": played.success, "steps": played.length}
    return {k: float(v[:, 0].float().mean()) for k, v in out.items()}


@torch.no_grad()
def play_episodes(
    agent: Agent, env: TaskEnv, family: str, generator: torch.Generator, gamma: float, lam: float
) -> tuple[Batch, dict[str, float]]:
    """One episode of the agent's stochastic policy in every environment of ``env``.

    Every episode is whole, so GAE needs no bootstrap at its end; an episode cut by the
    horizon is treated as terminal there (a departure from the PPO trainer, which bootstraps
    truncations, kept because these batches are tiny and end where the horizon ends anyway).

    Returns:
        the PPO batch of every valid step and the episodes' mean ``return`` and ``success``.
    """
    head = agent.head

    def act(obs: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        pd, value = agent(obs, family)
        action = head.sample(pd, generator)
        return action, {"logprobs": head.log_prob(pd, action), "values": value}

    played = play(env, act, record=("obs", "action", "logprobs", "values", "reward", "done",
                                    "alive"))  # fmt: skip
    r = dict(played.record)  # (T, B, ...)
    r["actions"], r["rewards"], r["valid"] = r.pop("action"), r.pop("reward"), r.pop("alive")
    r["done"] = r["done"] | ~r["valid"]
    next_values = torch.cat((r["values"][1:], torch.zeros_like(r["values"][:1])))
    adv, returns = compute_gae(
        r["rewards"], r["values"], next_values, r["done"], r["done"], gamma, lam
    )
    m = r["valid"]
    batch = Batch(
        obs=r["obs"][m], actions=r["actions"][m], logprobs=r["logprobs"][m],
        values=r["values"][m], advantages=adv[m], returns=returns[m],
    )  # fmt: skip
    ret, succ = played.returns[:, 0], played.success[:, 0].float()
    return batch, {"return": float(ret.mean()), "success": float(succ.mean())}


@torch.no_grad()
def visited_scenes(
    agent: Agent, env: TaskEnv, family: str, generator: torch.Generator, explore: float = 0.0
) -> Scene:
    """The states of one episode of the agent's stochastic policy in every environment of
    ``env``, every step of every episode (and nothing after an episode's end), as one Scene;
    with ``explore``, each action is a uniformly random one with that probability."""
    actor = Actor(agent, family, env.num_envs, explore=explore)
    played = play(
        env, lambda obs: actor.act(obs, generator), record=("scene", "alive"),
        observe=actor.observe,
    )  # fmt: skip
    alive = played.record["alive"]
    scenes = [select_rows(s, alive[t].nonzero().squeeze(1)) for t, s in enumerate(
        played.record["scene"])]  # fmt: skip
    return concat_scenes(scenes)


def ppo_on_budget(
    agent: Agent,
    spec: Spec,
    family: str,
    variant: int,
    budgets: Sequence[int],
    seed: int,
    eval_episodes: int,
    max_batch: int = 64,
    lr: float | None = None,
) -> Curve:
    """PPO on ``family:variant`` measured after each budget of episodes (the agent is copied).

    Args:
        agent: the starting agent (a fresh one for ``scratch``, pre-trained for ``finetune``).
        spec: the world and the ``ppo`` hyper-parameters.
        family: the target family.
        variant: the target variant.
        budgets: increasing episode budgets at which to measure (0 measures the start).
        seed: seeds the experience, the actions and the measurements.
        eval_episodes: fresh episodes per measurement.
        max_batch: the most episodes in one PPO update.
        lr: the Adam learning rate (default ``spec.ppo.lr``).

    Returns:
        ``{"return": [...], "success": [...], "steps": [...], "episodes": [...]}``, one entry
        per budget.
    """
    agent = copy.deepcopy(agent)
    cfg = spec.ppo
    lr = cfg.lr if lr is None else lr
    optimizer = torch.optim.Adam(agent.parameters(), lr=lr, eps=cfg.adam_eps)
    gen = torch.Generator(spec.device).manual_seed(seed + 1)
    shuffle = torch.Generator().manual_seed(seed + 2)
    curve: Curve = {k: [] for k in (*METRICS, "episodes")}
    used, env_seed = 0, seed + 3
    for budget in budgets:
        while used < budget:
            n = min(budget - used, max_batch)
            env = target_env(spec, family, variant, n, env_seed)
            env_seed += 1
            batch, _ = play_episodes(agent, env, family, gen, cfg.gamma, cfg.gae_lambda)
            ppo_update(agent, optimizer, {family: batch}, cfg, shuffle, f"{family}:{variant}")
            used += n
        result = measure(agent, spec, family, variant, eval_episodes, seed)
        for k in METRICS:
            curve[k].append(result[k])
        curve["episodes"].append(float(used))
    return curve
