"""RL^2: a recurrent agent that adapts in context, trained with PPO over multi-episode trials.

Duan et al. (2016, "RL^2: Fast Reinforcement Learning via Slow Reinforcement Learning",
arXiv:1611.02779) train a recurrent policy whose hidden state, carried across the episodes of
one task (a *trial*), does the adapting: the "fast" learner is the GRU's state, the "slow"
learner is the policy-gradient method that trains its weights. Here a task includes a modality
variant, so the agent must also work out in context how to read an observation stream it has
not seen before. The trial mechanics (asynchronous per-environment trials, the recurrent
inputs) and the few-shot API for evaluation (:func:`~metaxm.meta.trial_eval.run_trial`, also
importable from here) live in :mod:`metaxm.meta.trials` and :mod:`metaxm.meta.trial_eval`.

One update (:meth:`RL2Trainer.update`):

1. every training family's TaskEnv runs ``ppo.num_steps`` steps of its environments' trials
   (:func:`~metaxm.meta.trials.collect_trials`), storing the hidden state at the chunk's start;
2. GAE (:func:`~metaxm.rl.gae.compute_gae`) over the *trial* as the episode of the meta-MDP:
   the lambda-return runs on across episode boundaries inside a trial (the paper's objective is
   the discounted return of the whole trial) and stops at a trial's end, which is terminal (no
   reward follows it), whether its last episode reached the goal or ran out of time;
3. PPO epochs (:func:`~metaxm.rl.ppo.ppo_update` with :func:`rl2_loss`), minibatches made of
   whole environment columns, each replayed from its stored hidden state.

Departures from the paper:

* PPO (Schulman et al. 2017) instead of TRPO, with the policy and value heads on one GRU.
* Truncated backpropagation through time: gradients flow through the ``ppo.num_steps`` steps
  of a rollout chunk, not through whole trials; a chunk starts from the hidden state the acting
  policy had there (stored, not recomputed, as in CleanRL's ``ppo_atari_lstm``), so from the
  second PPO epoch on that start state is slightly stale. Chunks of fixed length need no
  padding of trials of varying length, and with ``num_steps`` at least a trial's typical length
  most credit assignment inside a trial stays within one chunk. The value bootstrap at a
  chunk's end carries the return across chunks.
* Trials are asynchronous per environment (see :mod:`metaxm.meta.trials`); the paper's batches
  hold whole trials.
* ``algo: rl2`` always uses the ``gru`` core: with ``agent.core: mlp`` (the default) the agent is
  built with ``core: gru`` and otherwise the spec's ``agent:`` settings
  (:func:`build_rl2_agent`).

Alignment: with ``align.weight > 0`` every update ends with one auxiliary gradient step of the
alignment loss on fresh paired renders of the training variants
(:class:`~metaxm.align.aux.AuxAlignment`, as PPO uses it), with the same optimizer.

State probe: with ``rl2.state_probe > 0`` the agent gets a linear probe from the core's hidden
state to the world's true state features (``agent.state_probe``), and the loss adds its
squared error at every replayed step, weighted by ``rl2.state_probe``: an auxiliary task with
privileged information (cf. Jaderberg et al. 2017, "Reinforcement Learning with Unsupervised
Auxiliary Tasks", for auxiliary losses on the core). The probe asks the core to hold what
a trial has shown of the state (where the agent stands in the world's frame, however the
sensor is wired; where the goal was found), which the return alone rewards only sparsely.
Acting never reads the probe.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from metaxm.build import make_env
from metaxm.config.rl2 import RL2Config
from metaxm.envs import has_oracle, make_world
from metaxm.envs.task_env import TaskEnv
from metaxm.meta.trial_eval import TrialResult, run_trial, run_trials
from metaxm.meta.trials import (
    TrialRollout,
    TrialState,
    TrialStats,
    TrialTasks,
    collect_trials,
    replay_hidden,
    start_trials,
    with_windows,
)
from metaxm.nn.agent import Agent, build_agent
from metaxm.rl.evaluate import fresh_env, oracle_act, run_episodes
from metaxm.rl.gae import compute_gae
from metaxm.rl.ppo import PPOConfig, ppo_objective, ppo_update
from metaxm.run import distributed

if TYPE_CHECKING:
    from metaxm.spec import Spec

# metaxm.spec imports RL2Config from this module, so what imports metaxm.spec (the sampler, and
# the PPO trainer's seed and environment-state helpers) is imported where it is used.

__all__ = [
    "RL2Config",
    "RL2Trainer",
    "TrialBatch",
    "TrialResult",
    "build_rl2_agent",
    "rl2_loss",
    "run_trial",
    "run_trials",
]


def build_rl2_agent(spec: Spec, seed: int | None = None) -> Agent:
    """The recurrent agent of a spec: its ``agent:`` settings with ``core: gru``, and with
    ``rl2.state_probe > 0`` a linear ``state_probe`` from the core's state to the world's
    state features (drawn from its own seed, so the rest of the agent is as without it)."""
    from metaxm.rl.trainer import derive_seed
    from metaxm.spec import replace

    agent_config = dataclasses.replace(spec.agent, core="gru")
    agent = build_agent(replace(spec, agent=agent_config), seed)
    if spec.rl2.state_probe > 0:
        dim = make_world(spec.world, num_envs=1, seed=spec.seed).scene_info.feature_dim
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(spec.seed if seed is None else seed, "state_probe"))
            outputs = dim * (1 + len(spec.rl2.state_probe_lags))
            agent.state_probe = torch.nn.Linear(agent.core.hidden_dim, outputs)
    if spec.rl2.state_probe_visited:
        size = make_world(spec.world, num_envs=1, seed=spec.seed).scene_info.layout_size
        if size is None:
            raise ValueError(
                f"rl2.state_probe_visited needs a world whose scenes have a layout, not "
                f"{spec.world.name}"
            )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(spec.seed if seed is None else seed, "visited_probe"))
            agent.visited_probe = torch.nn.Linear(agent.core.hidden_dim, size * size)
    return agent


@dataclass
class TrialBatch:
    """One family's rollout with its advantages; its rows (for minibatches) are environments.

    Attributes:
        rollout: the T steps of B environments.
        advantages: (T, B).
        returns: (T, B) the value targets.
    """

    rollout: TrialRollout
    advantages: Tensor
    returns: Tensor

    def __len__(self) -> int:
        return self.advantages.shape[1]

    def index(self, idx: Tensor) -> TrialBatch:
        return TrialBatch(self.rollout.columns(idx), self.advantages[:, idx], self.returns[:, idx])


def rl2_loss(
    agent: Agent,
    family: str,
    mb: TrialBatch,
    config: PPOConfig,
    state_probe: float = 0.0,
    lags: tuple[int, ...] = (),
) -> tuple[Tensor, dict[str, Tensor]]:
    """The clipped PPO loss on whole sequences, replayed from their stored hidden states.

    With ``state_probe > 0`` (the rollout holds the true states) it adds that weight times
    the probe's squared error, summed over state features and averaged over steps, and reports
    it as ``state_probe_loss``; each of ``lags`` adds the error of predicting the state L steps
    earlier, averaged over the steps that have one in the same trial and chunk; a rollout that
    holds the trials' visited cells adds the visited probe's binary cross-entropy, averaged
    over cells and steps (also reported alone, as ``visited_probe_loss``).
    """
    h = replay_hidden(agent, family, mb.rollout)  # (T, b, H)
    pd, value = agent.core.heads(h)  # (T, b, pd_dim), (T, b)
    r = mb.rollout
    loss, stats = ppo_objective(
        agent.head, pd.flatten(0, 1), value.flatten(0, 1), r.actions.flatten(0, 1),
        r.logprobs.flatten(0, 1), r.values.flatten(0, 1), mb.advantages.flatten(),
        mb.returns.flatten(), config,
    )  # fmt: skip
    if state_probe > 0:
        if r.state is None:
            raise ValueError("rl2_loss: state_probe > 0 needs a rollout with its true states")
        guess = agent.state_probe(h).unflatten(-1, (1 + len(lags), r.state.shape[-1]))
        probe_loss = (guess[..., 0, :] - r.state).square().sum(-1).mean()
        trial = r.reset.long().cumsum(0)  # (T, b): steps with equal counts share a trial
        for i, lag in enumerate(lags, 1):
            if lag >= r.state.shape[0]:
                continue
            err = (guess[lag:, :, i] - r.state[:-lag]).square().sum(-1)
            same = (trial[lag:] == trial[:-lag]).float()
            probe_loss = probe_loss + (err * same).sum() / same.sum().clamp(min=1)
        if r.visited is not None:
            logits = agent.visited_probe(h)
            visited_loss = torch.nn.functional.binary_cross_entropy_with_logits(
                logits, r.visited.float(), reduction="none"
            )
            stats["visited_probe_loss"] = visited_loss.mean().detach()
            probe_loss = probe_loss + visited_loss.mean()
        loss = loss + state_probe * probe_loss
        stats["state_probe_loss"] = probe_loss.detach()
    return loss, stats


class RL2Trainer:
    """RL^2 over the training families of a spec, as a run-loop trainer.

    Every training family gets one TaskEnv of ``train.num_envs`` environments, each running
    trials of ``rl2.episodes_per_trial`` episodes; a new trial draws a fresh world task and one
    of the family's training variants.

    Args:
        spec: the task spec (``rl2``, ``ppo``, ``agent``, ``train`` sections).

    Attributes:
        agent: the recurrent agent being trained.
        envs: ``{family: TaskEnv}``.
        states: ``{family: TrialState}``, where every environment stands in its trial.
        env_steps: environment steps so far, over all families.
        episodes: episodes finished so far.
        updates: updates done so far.
    """

    def __init__(self, spec: Spec) -> None:
        from metaxm.rl.trainer import derive_seed
        from metaxm.sampler import TaskSampler

        self.spec = spec
        self.config: RL2Config = spec.rl2
        self.ppo = spec.ppo
        self.device = torch.device(spec.device)
        self.sampler = TaskSampler(spec)
        self.families = self.sampler.families("train")
        self.agent: Agent = build_rl2_agent(spec).to(self.device)
        if spec.train.freeze == "latent":
            from metaxm.trainer_checks import check_frozen

            check_frozen(spec)
            self.agent.freeze_latent()
        self.optimizer = torch.optim.Adam(
            self.agent.trainable(), lr=self.ppo.lr, eps=self.ppo.adam_eps
        )
        n = spec.train.num_envs
        self.envs: dict[str, TaskEnv] = {}
        self.tasks: dict[str, TrialTasks] = {}
        self.states: dict[str, TrialState] = {}
        # under torchrun this rank runs only its share of the families (metaxm.run.distributed)
        self.action_generators: dict[str, torch.Generator] = {}
        for family in distributed.local_families(self.families):
            env = make_env(
                spec,
                family,
                num_envs=n,
                world_seed=derive_seed(spec.seed, "world", family),
                seed=derive_seed(spec.seed, "render", family),
                device=self.device,
                resample_tasks=self.config.episode_tasks == "new",  # a new task per episode
            )
            gen = torch.Generator(self.device).manual_seed(derive_seed(spec.seed, "trials", family))
            self.tasks[family] = TrialTasks(
                env.world,
                self.sampler.splits["train"][family],
                gen,
                fresh=self.config.variants == "fresh",
            )
            self.envs[family] = env
            self.states[family] = start_trials(self.agent, env, self.tasks[family])
            self.action_generators[family] = torch.Generator(self.device).manual_seed(
                derive_seed(spec.seed, "actions", family)
            )
        self.minibatch_generator = torch.Generator().manual_seed(
            derive_seed(spec.seed, "minibatch")
        )
        self.aux = None
        if spec.align.weight > 0:
            from metaxm.align.aux import AuxAlignment

            self.aux = AuxAlignment.from_spec(
                spec, self.agent, seed=derive_seed(spec.seed, "align") % (2**31)
            )
        self.steps_per_update = self.ppo.num_steps * n * len(self.families)
        self.num_updates = math.ceil(spec.train.total_steps / self.steps_per_update)
        self.env_steps = 0
        self.episodes = 0
        self.updates = 0

    # ------------------------------------------------------------------ training
    def update(self) -> dict[str, float]:
        """Collect one chunk of trials per family, then PPO epochs on all of them."""
        cfg, n = self.ppo, self.config.episodes_per_trial
        lr = cfg.lr * max(1.0 - self.updates / self.num_updates, 0.0) if cfg.anneal_lr else cfg.lr
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        batches: dict[str, TrialBatch] = {}
        stats: dict[str, TrialStats] = {}
        explained = []
        for family, env in self.envs.items():
            stats[family] = TrialStats(n, self.device)
            rollout, self.states[family] = collect_trials(
                self.agent, env, family, self.states[family], cfg.num_steps, n,
                self.tasks[family], self.action_generators[family], stats[family],
                record_state=self.config.state_probe > 0,
                record_visited=self.config.state_probe_visited,
                coverage_bonus=self.config.coverage_bonus,
            )  # fmt: skip
            rollout = with_windows(self.agent, family, rollout)  # once, not every epoch
            end = rollout.trial_end
            adv, ret = compute_gae(
                rollout.rewards, rollout.values, rollout.next_values, end, end, cfg.gamma,
                cfg.gae_lambda,
            )  # fmt: skip
            batches[family] = TrialBatch(rollout, adv, ret)
            var = float(ret.var())
            explained.append(0.0 if var == 0 else 1.0 - float((ret - rollout.values).var()) / var)
        step = self.env_steps + self.steps_per_update
        where = f"update {self.updates + 1} (env step {step})"
        loss = functools.partial(
            rl2_loss, state_probe=self.config.state_probe, lags=self.config.state_probe_lags
        )
        metrics = ppo_update(
            self.agent, self.optimizer, batches, cfg, self.minibatch_generator, where, loss,
            families=self.families,
        )  # fmt: skip
        if self.aux is not None:
            metrics.update(self.aux.step(self.agent, self.optimizer))
        self.updates += 1
        self.env_steps = step
        metrics["lr"] = lr
        metrics["explained_variance"] = sum(explained) / len(explained)
        total = TrialStats(n, self.device)
        for family, s in stats.items():
            total.merge(s)
            if len(self.families) > 1:
                metrics.update(s.summary(f"/{family}"))
        metrics.update(total.summary())
        metrics = distributed.merge_metrics(distributed.all_gather(metrics))
        self.episodes += int(metrics["episodes"])
        return metrics

    def named_parameters(self) -> Iterator[tuple[str, Tensor]]:
        return self.agent.named_parameters()

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, episodes: int) -> dict[str, float]:
        """Fresh trials of ``rl2.eval_episodes`` episodes on every split's variants.

        ``episodes // K`` trials per family and split (at least one), cycling through the
        split's variants, once sampling the policy and once with its mode, beside the oracle on
        the first episodes of the same tasks.

        Returns:
            ``<split>/<policy>/<key>/ep<k>`` (policy ``sampled`` or ``mode``; key ``return``,
            ``success``, ``length``, ``optimal``; k = 1 .. K), and the same per family with a
            ``/<family>`` suffix; for the CLI's summary, ``return``, ``success``, ``length``
            (mode), ``sampled_*`` and ``oracle_*`` over all training-split episodes.
        """
        from metaxm.rl.trainer import derive_seed

        k = self.config.eval_episodes
        trials = max(episodes // k, 1)
        root = derive_seed(self.spec.seed, "evaluation") % (2**31)
        was_training = self.agent.training
        self.agent.eval()
        out: dict[str, float] = {"episodes": float(trials * k), "episodes_per_trial": float(k)}
        for s, (split, pool) in enumerate(self.sampler.splits.items()):
            results: dict[str, dict[str, TrialResult]] = {"sampled": {}, "mode": {}}
            for i, (family, seeds) in enumerate(pool.items()):
                rows = [seeds[j % len(seeds)] for j in range(trials)]
                seed = root + 1000 * i + 100_000 * s
                for policy in results:
                    results[policy][family] = run_trial(
                        self.agent, self.spec.world, family, rows, episodes=k, seed=seed,
                        deterministic=policy == "mode",
                        new_tasks=self.config.episode_tasks == "new",
                    )  # fmt: skip
                if split == "train" and has_oracle(self.spec.world):
                    oracle = run_episodes(fresh_env(self.spec, family, rows, seed), oracle_act)
                    results.setdefault("oracle", {})[family] = TrialResult(
                        oracle["return"][:, None], oracle["success"][:, None],
                        oracle["length"][:, None], torch.full_like(oracle["length"][:, None], -1),
                    )  # fmt: skip
            for policy, by_family in results.items():
                if not by_family:
                    continue
                merged = TrialResult.concat(list(by_family.values()))
                out.update(merged.summary(f"{split}/{policy}/"))
                if len(by_family) > 1:
                    for family, r in by_family.items():
                        out.update({f"{key}/{family}": v for key, v in r.summary(
                            f"{split}/{policy}/").items()})  # fmt: skip
                if split == "train":
                    prefix = {"mode": "", "sampled": "sampled_", "oracle": "oracle_"}[policy]
                    out[f"{prefix}return"] = float(merged.returns.double().mean())
                    out[f"{prefix}success"] = float(merged.success.double().mean())
                    out[f"{prefix}length"] = float(merged.length.double().mean())
        self.agent.train(was_training)
        return out

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        from metaxm.rl.trainer import counters, env_state

        gather = distributed.gather_dict  # per-family state lives on the rank that steps it
        return {
            "agent": self.agent.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "counters": counters(self),
            "generators": {
                "actions": gather({f: g.get_state() for f, g in self.action_generators.items()}),
                "minibatch": self.minibatch_generator.get_state(),
                "trials": gather({f: t.generator.get_state() for f, t in self.tasks.items()}),
            },
            "envs": gather({f: env_state(env) for f, env in self.envs.items()}),
            "variants": gather({f: list(env.variants) for f, env in self.envs.items()}),
            "trials": gather({f: s.state_dict() for f, s in self.states.items()}),
            "align": None if self.aux is None else self.aux.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        from metaxm.rl.trainer import action_states, check_families, load_counters, load_env_state

        check_families(state["envs"], self.families)
        actions = action_states(state)
        self.agent.load_state_dict(state["agent"])
        self.optimizer.load_state_dict(state["optimizer"])
        load_counters(self, state)
        gens = state["generators"]
        self.minibatch_generator.set_state(gens["minibatch"])
        for family, env in self.envs.items():
            self.action_generators[family].set_state(actions[family])
            self.tasks[family].generator.set_state(gens["trials"][family])
            load_env_state(env, state["envs"][family])
            env.set_tasks(variants=state["variants"][family])
            self.states[family] = TrialState.from_state_dict(state["trials"][family], self.device)
        if self.aux is not None:
            self.aux.load_state_dict(state["align"])
