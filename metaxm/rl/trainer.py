"""PPOTrainer: PPO from scratch (one family) or multi-family PPO pre-training, as a run-loop
trainer (see :class:`metaxm.run.loop.Trainer`).

Every training family of the spec gets one :class:`~metaxm.envs.task_env.TaskEnv` of
``train.num_envs`` environments; the family's training variants are dealt round-robin over its
environments, and every new episode draws a fresh task (goal, walls) from the world. Each
update collects ``ppo.num_steps`` steps in every environment of every family and runs
:func:`~metaxm.rl.ppo.ppo_update` on all of them together.

Everything random is drawn from generators seeded from ``spec.seed`` (worlds, renders, actions,
minibatches) and :meth:`PPOTrainer.state_dict` captures all of them along with the world
states, so a run resumed from a checkpoint continues exactly. Every family has its own streams
(actions included), so under torchrun a rank can step its share of the families
(:mod:`metaxm.run.distributed`) and the ranks together draw what one process draws.
"""

from __future__ import annotations

import logging
import math
import zlib
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

import torch
from torch import Tensor

from metaxm.align.aux import prepare_alignment
from metaxm.build import make_env
from metaxm.envs.task_env import TaskEnv
from metaxm.errors import ConfigError
from metaxm.nn.agent import Agent, build_agent
from metaxm.rl.evaluate import evaluate_agent
from metaxm.rl.gae import compute_gae
from metaxm.rl.ppo import Batch, ppo_update
from metaxm.rl.rollout import EpisodeStats, collect
from metaxm.run import distributed
from metaxm.sampler import TaskSampler
from metaxm.trainer_checks import check_frozen, check_ppo

if TYPE_CHECKING:
    from metaxm.spec import Spec

log = logging.getLogger(__name__)


def derive_seed(root: int, *names: str | int) -> int:
    """A seed for one named stream of randomness, derived from the run's root seed."""
    return zlib.crc32(repr((int(root), *names)).encode()) * 7919 % (2**62)


class PPOTrainer:
    """PPO over the training families of a spec.

    Args:
        spec: the task spec (``ppo``, ``agent``, ``train`` sections; ``modalities.train``).

    Attributes:
        agent: the agent being trained.
        envs: ``{family: TaskEnv}``.
        env_steps: environment steps so far, over all families.
        episodes: episodes finished so far.
        updates: updates done so far.
    """

    def __init__(self, spec: Spec) -> None:
        check_ppo(spec)
        samples = spec.train.num_envs * spec.ppo.num_steps
        if spec.ppo.num_minibatches > samples:
            log.warning(
                "ppo.num_minibatches %d is more than the %d samples a family collects per update "
                "(train.num_envs x ppo.num_steps): each minibatch is one sample",
                spec.ppo.num_minibatches, samples,
            )  # fmt: skip
        self.spec = spec
        self.config = spec.ppo
        self.device = torch.device(spec.device)
        self.sampler = TaskSampler(spec)
        self.families = self.sampler.families("train")
        self.agent: Agent = build_agent(spec).to(self.device)
        if spec.train.freeze == "latent":
            check_frozen(spec)
            self.agent.freeze_latent()
        self.aligner = prepare_alignment(spec, self.agent, derive_seed(spec.seed, "align"))
        self.optimizer = torch.optim.Adam(
            self.agent.trainable(), lr=self.config.lr, eps=self.config.adam_eps
        )
        n = spec.train.num_envs
        self.envs: dict[str, TaskEnv] = {}
        self.obs: dict[str, Tensor] = {}
        # under torchrun this rank steps only its share of the families (metaxm.run.distributed)
        self.action_generators: dict[str, torch.Generator] = {}
        for family in distributed.local_families(self.families):
            seeds = self.sampler.splits["train"][family]
            env = make_env(
                spec,
                family,
                [seeds[i % len(seeds)] for i in range(n)],
                world_seed=derive_seed(spec.seed, "world", family),
                seed=derive_seed(spec.seed, "render", family),
                device=self.device,
                final_obs=True,
                resample_tasks=True,
            )
            self.envs[family] = env
            self.obs[family] = env.reset()
            self.action_generators[family] = torch.Generator(self.device).manual_seed(
                derive_seed(spec.seed, "actions", family)
            )
        self.minibatch_generator = torch.Generator().manual_seed(
            derive_seed(spec.seed, "minibatch")
        )
        self.steps_per_update = self.config.num_steps * n * len(self.families)
        self.num_updates = math.ceil(spec.train.total_steps / self.steps_per_update)
        self.env_steps = 0
        self.episodes = 0
        self.updates = 0

    # ------------------------------------------------------------------ training
    def update(self) -> dict[str, float]:
        """Collect one rollout per family, then PPO epochs on all of them (see the module)."""
        cfg = self.config
        lr = cfg.lr
        if cfg.anneal_lr:
            lr = cfg.lr * max(1.0 - self.updates / self.num_updates, 0.0)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        batches: dict[str, Batch] = {}
        stats: dict[str, EpisodeStats] = {}
        explained: dict[str, float] = {}
        for family, env in self.envs.items():
            stats[family] = EpisodeStats.zeros(self.device)
            rollout, self.obs[family] = collect(
                self.agent, env, family, self.obs[family], cfg.num_steps,
                self.action_generators[family], stats[family],
            )  # fmt: skip
            adv, ret = compute_gae(
                rollout.rewards, rollout.values, rollout.next_values, rollout.terminated,
                rollout.done, cfg.gamma, cfg.gae_lambda,
            )  # fmt: skip
            batches[family] = Batch.from_rollout(rollout, adv, ret)
            explained[family] = _explained_variance(rollout.values, ret)
        step = self.env_steps + self.steps_per_update
        where = f"update {self.updates + 1} (env step {step})"
        metrics = ppo_update(
            self.agent, self.optimizer, batches, cfg, self.minibatch_generator, where,
            families=self.families,
        )  # fmt: skip
        if self.aligner is not None:  # the auxiliary alignment step (metaxm.align.aux)
            metrics.update(self.aligner.step(self.agent, self.optimizer, cfg.max_grad_norm))
        if self.agent.variant_adapters is not None:  # a new variant starts from their mean
            self.agent.variant_adapters.mean_into(self.agent.adapters)
        self.updates += 1
        self.env_steps = step
        metrics["lr"] = lr
        metrics["explained_variance"] = sum(explained.values()) / len(explained)
        total = EpisodeStats.zeros(self.device)
        for family, s in stats.items():
            total.merge(s)
            if len(self.families) > 1:
                metrics.update({f"{k}/{family}": v for k, v in s.summary().items()})
        metrics.update(total.summary())
        metrics = distributed.merge_metrics(distributed.all_gather(metrics))
        self.episodes += int(metrics["episodes"])
        return metrics

    def named_parameters(self) -> Iterator[tuple[str, Tensor]]:
        return self.agent.named_parameters()

    def evaluate(self, episodes: int) -> dict[str, float]:
        """The agent on fresh episodes of its training variants, beside the world's oracle
        (see :func:`~metaxm.rl.evaluate.evaluate_agent`)."""
        return evaluate_agent(
            self.agent,
            self.spec,
            {f: self.sampler.splits["train"][f] for f in self.families},
            episodes,
            seed=derive_seed(self.spec.seed, "evaluation") % (2**31),
        )

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        return {
            "agent": self.agent.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "counters": counters(self),
            "generators": {
                "actions": distributed.gather_dict(
                    {f: g.get_state() for f, g in self.action_generators.items()}
                ),
                "minibatch": self.minibatch_generator.get_state(),
            },
            "envs": distributed.gather_dict({f: env_state(env) for f, env in self.envs.items()}),
            "obs": distributed.gather_dict(dict(self.obs)),
            "align": None if self.aligner is None else self.aligner.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        check_families(state["envs"], self.families)
        actions = action_states(state)
        self.agent.load_state_dict(state["agent"])
        self.optimizer.load_state_dict(state["optimizer"])
        load_counters(self, state)
        self.minibatch_generator.set_state(state["generators"]["minibatch"])
        for family, env in self.envs.items():
            load_env_state(env, state["envs"][family])
            self.obs[family] = state["obs"][family].to(self.device)
            self.action_generators[family].set_state(actions[family])
        if self.aligner is not None:
            self.aligner.load_state_dict(state["align"])


# ---------------------------------------------------------------------- checkpoint helpers
# what the PPO, MAML and RL^2 trainers' state_dict / load_state_dict share


COUNTERS = ("env_steps", "episodes", "updates")


class _Counted(Protocol):
    env_steps: int
    episodes: int
    updates: int


def counters(trainer: _Counted) -> dict[str, int]:
    """A trainer's progress counters, as its checkpoint's ``counters``."""
    return {k: getattr(trainer, k) for k in COUNTERS}


def load_counters(trainer: _Counted, state: dict[str, Any]) -> None:
    """Restore what :func:`counters` saved under ``state["counters"]``."""
    for k in COUNTERS:
        setattr(trainer, k, state["counters"][k])


def action_states(state: dict[str, Any]) -> dict[str, Tensor]:
    """A checkpoint's per-family action-generator states (refused from older checkpoints)."""
    actions = state["generators"]["actions"]
    if not isinstance(actions, dict):
        raise ConfigError("the checkpoint predates per-family action generators; start anew")
    return actions


def check_families(saved: Iterable[str], families: Iterable[str]) -> None:
    """A checkpoint's training families must be the spec's."""
    saved, families = sorted(saved), sorted(families)
    if saved != families:
        raise ConfigError(f"checkpoint trains families {saved}, the spec {families}")


def env_state(env: TaskEnv) -> dict[str, Any]:
    """A TaskEnv's mutable state: the world's tensors, both generators, episode counters.

    A world's state is its tensor attributes (positions, tasks, step counters and derived
    tables); this holds for the built-in worlds and for any world that keeps its state in
    tensors, as the :class:`~metaxm.envs.base.World` contract asks.
    """
    world = env.world
    return {
        "world": {k: v.clone() for k, v in vars(world).items() if isinstance(v, Tensor)},
        "world_generator": world.generator.get_state(),
        "render_generator": env.render_generator.get_state(),
        "episode_return": env.episode_return.clone(),
        "episode_length": env.episode_length.clone(),
    }


def load_env_state(env: TaskEnv, state: dict[str, Any]) -> None:
    """Restore what :func:`env_state` captured."""
    for k, v in state["world"].items():
        setattr(env.world, k, v.to(env.device))
    # rebuild what a world derives from its tasks (including plain Python values, such as
    # GridNav's "any walls at all" flag) from the restored task tensors
    env.world.set_tasks(env.world.task_params())
    env.world.generator.set_state(state["world_generator"])
    env.render_generator.set_state(state["render_generator"])
    env.episode_return = state["episode_return"].to(env.device)
    env.episode_length = state["episode_length"].to(env.device)


def _explained_variance(values: Tensor, returns: Tensor) -> float:
    """1 - Var[returns - values] / Var[returns]; 0 when the returns do not vary."""
    var = float(returns.var())
    return 0.0 if var == 0 else 1.0 - float((returns - values).var()) / var
