"""MAMLTrainer: MAML meta-training across modality families, as a run-loop trainer.

One meta-iteration (:meth:`MAMLTrainer.update`), following Finn et al. (2017), Algorithm 3:

1. draw ``maml.meta_batch`` tasks from the spec's ``train`` split, dealt evenly over the
   training families (a world task and a modality variant each);
2. per family group, one :class:`~metaxm.envs.task_env.TaskEnv` holds all its tasks'
   support environments: :func:`~metaxm.meta.maml.adapt_in_env` plays the support episodes
   and takes the inner steps of all tasks at once (``vmap``);
3. the query episodes are played with every task's adapted parameters;
4. ``maml.outer_epochs`` Adam steps on the post-adaptation PPO-clip loss summed over the
   family groups (each group's inner loops recomputed under ``vmap``, or per task with
   ``maml.vectorize: false``, from the stored support episodes;
   :func:`~metaxm.meta.maml.meta_loss`), plus ``align.weight`` times the
   cross-modal alignment loss when that is set.

Families cannot share a ``vmap`` (their encoders and observation shapes differ), hence the
groups. ``metrics.jsonl`` gets ``pre_return``/``pre_success`` (the first support episodes,
played before adaptation) and ``post_return``/``post_success`` (the query episodes), per family
as ``<key>/<family>``; ``return``/``success``/``length`` are the post-adaptation ones, so the
run's ``curve.png`` shows the adapted policy. :meth:`MAMLTrainer.evaluate` measures pre- and
post-adaptation performance on fresh tasks of the train and held-out-variant splits.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from metaxm.build import make_env
from metaxm.envs import has_oracle
from metaxm.envs.task_env import TaskEnv
from metaxm.errors import ConfigError, DivergenceError
from metaxm.meta.maml import (
    Adaptation,
    adapt_in_env,
    adapted_names,
    inner_lrs,
    meta_loss,
)
from metaxm.meta.policy_gradient import Episodes, collect_episodes
from metaxm.nn.agent import Agent, build_agent
from metaxm.rl.evaluate import oracle_act, run_episodes
from metaxm.rl.trainer import (
    action_states,
    check_families,
    counters,
    derive_seed,
    env_state,
    load_counters,
    load_env_state,
)
from metaxm.run import distributed
from metaxm.sampler import Task, TaskSampler, batch_params
from metaxm.trainer_checks import check_maml

if TYPE_CHECKING:
    from metaxm.envs.base import TaskParams
    from metaxm.spec import Spec


class MAMLTrainer:
    """MAML over the training families of a spec (see the module docstring).

    Args:
        spec: the task spec (``maml``, ``agent``, ``world`` sections; ``modalities.train``).

    Attributes:
        agent: the meta-trained initialisation.
        inner_lrs: Meta-SGD's learned inner learning rates ``{name: tensor}`` (empty without
            ``maml.meta_sgd``); pass them to :func:`~metaxm.meta.maml.adapt`.
        env_steps: environment steps so far (support and query, padding included).
        episodes: episodes played so far (support and query).
        updates: meta-iterations done.
    """

    def __init__(self, spec: Spec) -> None:
        check_maml(spec)
        self.spec = spec
        self.config = cfg = spec.maml
        self.device = torch.device(spec.device)
        self.sampler = TaskSampler(spec)
        self.families = self.sampler.families("train")
        k, r = divmod(cfg.meta_batch, len(self.families))
        self.tasks_per_family = {f: k + (i < r) for i, f in enumerate(self.families)}
        self.agent: Agent = build_agent(spec).to(self.device)
        self.names = {f: adapted_names(self.agent, cfg.adapt, f) for f in self.families}
        own = dict(self.agent.named_parameters())
        self.inner_lrs: dict[str, Tensor] = {}
        if cfg.meta_sgd:
            for n in dict.fromkeys(n for names in self.names.values() for n in names):
                lr = torch.full_like(own[n].detach(), cfg.inner_lr)
                self.inner_lrs[n] = lr.requires_grad_()
        groups: list[dict[str, Any]] = [{"params": list(self.agent.parameters())}]
        if self.inner_lrs:
            groups.append({"params": list(self.inner_lrs.values())})
        self.optimizer = torch.optim.Adam(groups, lr=cfg.outer_lr, eps=1e-5)
        self.aux = self._alignment(spec)
        self.support_envs: dict[str, TaskEnv] = {}
        self.query_envs: dict[str, TaskEnv] = {}
        # under torchrun this rank adapts only its share of the family groups
        # (metaxm.run.distributed); every family has its own action stream, so the ranks
        # together draw what one process draws
        self.action_generators: dict[str, torch.Generator] = {}
        for f in distributed.local_families(self.families):
            n = self.tasks_per_family[f]
            self.support_envs[f] = self._env(f, n * cfg.support_episodes, "support")
            self.query_envs[f] = self._env(f, n * cfg.query_episodes, "query")
            self.action_generators[f] = torch.Generator(self.device).manual_seed(
                derive_seed(spec.seed, "actions", f)
            )
        self.task_generator = torch.Generator().manual_seed(derive_seed(spec.seed, "maml-tasks"))
        self.env_steps = 0
        self.episodes = 0
        self.updates = 0

    def _env(self, family: str, num_envs: int, role: str) -> TaskEnv:
        return make_env(
            self.spec,
            family,
            num_envs=num_envs,
            world_seed=derive_seed(self.spec.seed, "world", role, family),
            seed=derive_seed(self.spec.seed, "render", role, family),
            device=self.device,
        )

    def _alignment(self, spec: Spec) -> Any:
        """The auxiliary alignment loss when ``align.weight > 0`` (:mod:`metaxm.align`)."""
        align = getattr(spec, "align", None)
        if align is None or align.weight <= 0:
            return None
        try:
            from metaxm.align.aux import AuxAlignment
        except ImportError as err:
            raise ConfigError(
                f"align.weight > 0 needs metaxm.align ({err}); set align.weight=0"
            ) from None
        return AuxAlignment.from_spec(spec, self.agent, seed=derive_seed(spec.seed, "align"))

    # ------------------------------------------------------------------ one meta-iteration
    def update(self) -> dict[str, float]:
        """Sample a meta-batch, adapt to every task, then the outer PPO-clip epochs."""
        cfg = self.config
        start, cpu_start = time.perf_counter(), time.process_time()
        groups: dict[str, tuple[Adaptation, Episodes]] = {}
        for family, n in self.tasks_per_family.items():
            # every rank draws every family's tasks, so the task stream stays in step
            tasks = self.sampler.sample(
                "train", n, [family], self.task_generator, fresh=cfg.variants == "fresh"
            )
            if family not in self.support_envs:
                continue  # another rank's family
            sup, qry = self.support_envs[family], self.query_envs[family]
            gen = self.action_generators[family]
            for env, episodes in ((sup, cfg.support_episodes), (qry, cfg.query_episodes)):
                world = None  # each task's own goal, or with episode_tasks new one per episode
                if cfg.episode_tasks == "new":
                    world = self.sampler.world_params(n * episodes, self.task_generator)
                _assign(env, tasks, episodes, world)
            adaptation = adapt_in_env(
                self.agent, sup, family, n, cfg, gen, learned_lrs=self.inner_lrs
            )
            query = collect_episodes(self.agent, qry, family, n, adaptation.params, gen, cfg)
            groups[family] = (adaptation, query)
        collected = time.perf_counter()
        metrics = self._outer(groups)
        done = time.perf_counter()
        steps = sum(a.env_steps + q.env_steps for a, q in groups.values())
        eps = sum(
            q.num_episodes + sum(s.num_episodes for s in a.supports) for a, q in groups.values()
        )
        counts = distributed.all_reduce_sum({"steps": steps, "episodes": eps})
        steps, eps = int(counts["steps"]), int(counts["episodes"])
        self.updates += 1
        self.env_steps += steps
        self.episodes += eps
        metrics.update(_adaptation_metrics(groups, per_family=len(self.families) > 1))
        metrics.update(
            {
                "iteration_env_steps": float(steps),
                "collect_s": collected - start,
                "outer_s": done - collected,
                "iteration_s": done - start,
                "iteration_cpu_s": time.process_time() - cpu_start,
            }
        )
        if self.inner_lrs:
            flat = torch.cat([lr.detach().flatten() for lr in self.inner_lrs.values()])
            metrics["inner_lr_mean"] = float(flat.mean())
        return distributed.merge_metrics(distributed.all_gather(metrics))

    def _outer(self, groups: dict[str, tuple[Adaptation, Episodes]]) -> dict[str, float]:
        """``outer_epochs`` Adam steps on the post-adaptation loss of every family group."""
        cfg = self.config
        own = dict(self.agent.named_parameters())
        total = sum(self.tasks_per_family.values())
        params = list(self.agent.parameters()) + list(self.inner_lrs.values())
        out: dict[str, float] = {}
        for epoch in range(cfg.outer_epochs):
            loss: Tensor | float = 0.0
            stats: dict[str, float] = {}
            for family, (adaptation, query) in groups.items():
                names = self.names[family]
                theta = {n: own[n] for n in names}
                lrs = inner_lrs(names, cfg.inner_lr, self.inner_lrs)
                supports = [s.batch for s in adaptation.supports]
                f_loss, f_stats = meta_loss(
                    self.agent, family, theta, supports, query.batch, lrs, cfg, cfg.vectorize
                )
                w = self.tasks_per_family[family] / total
                loss = loss + w * f_loss
                if cfg.baseline == "value" and cfg.vf_coef > 0:
                    v_loss = value_loss(self.agent, family, [query])
                    loss = loss + w * cfg.vf_coef * v_loss
                    f_stats = {**f_stats, "value_loss": v_loss.detach()}
                for key, v in f_stats.items():
                    stats[key] = stats.get(key, 0.0) + w * float(v)
            if self.aux is not None:
                aux_loss, aux_stats = self.aux.loss(self.agent)
                loss = loss + aux_loss
                stats.update(
                    {k if k.startswith("align") else f"align_{k}": v for k, v in aux_stats.items()}
                )
            stats["loss"] = float(loss.detach())  # type: ignore[union-attr]
            stats = distributed.all_reduce_sum(stats)  # this rank's groups -> the meta-batch
            where = f"meta-iteration {self.updates + 1}, outer epoch {epoch + 1}"
            if not math.isfinite(stats["loss"]):
                raise DivergenceError(f"{where}: the outer loss is {stats['loss']}")
            self.optimizer.zero_grad(set_to_none=True)
            if self.aux is not None and self.aux.optimizer is not None:
                self.aux.optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[union-attr]
            distributed.all_reduce_gradients(params)
            grad_norm = float(torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm))
            if not math.isfinite(grad_norm):
                raise DivergenceError(f"{where}: the meta-gradient norm is {grad_norm}")
            self.optimizer.step()
            if self.aux is not None and self.aux.optimizer is not None:
                self.aux.optimizer.step()
            stats["grad_norm"] = grad_norm
            out.update(stats)
            out["outer_epochs"] = epoch + 1.0
            if cfg.target_kl is not None and stats["approx_kl"] > cfg.target_kl:
                break
        return out

    def named_parameters(self) -> Iterator[tuple[str, Tensor]]:
        yield from self.agent.named_parameters()
        for n, lr in self.inner_lrs.items():
            yield f"inner_lr:{n}", lr

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, episodes: int) -> dict[str, float]:
        """Pre- and post-adaptation performance on fresh tasks of the train and held-out
        variant splits (see :func:`evaluate_maml`)."""
        return evaluate_maml(
            self.agent, self.spec, self.sampler, episodes, self.inner_lrs,
            seed=derive_seed(self.spec.seed, "evaluation") % (2**31),
        )  # fmt: skip

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        envs = {f"support/{f}": env_state(e) for f, e in self.support_envs.items()}
        envs.update({f"query/{f}": env_state(e) for f, e in self.query_envs.items()})
        actions = {f: g.get_state() for f, g in self.action_generators.items()}
        return {
            "agent": self.agent.state_dict(),
            "inner_lrs": {n: lr.detach().clone() for n, lr in self.inner_lrs.items()},
            "optimizer": self.optimizer.state_dict(),
            "counters": counters(self),
            "generators": {
                "tasks": self.task_generator.get_state(),
                "actions": distributed.gather_dict(actions),
            },
            "envs": distributed.gather_dict(envs),
            "align": None if self.aux is None else self.aux.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        check_families({key.partition("/")[2] for key in state["envs"]}, self.families)
        actions = action_states(state)
        self.agent.load_state_dict(state["agent"])
        if set(state["inner_lrs"]) != set(self.inner_lrs):
            raise ConfigError("the checkpoint's Meta-SGD learning rates do not match maml.*")
        with torch.no_grad():
            for n, lr in self.inner_lrs.items():
                lr.copy_(state["inner_lrs"][n])
        self.optimizer.load_state_dict(state["optimizer"])
        load_counters(self, state)
        self.task_generator.set_state(state["generators"]["tasks"])
        for f, gen in self.action_generators.items():
            gen.set_state(actions[f])
        for key, env in [
            *((f"support/{f}", e) for f, e in self.support_envs.items()),
            *((f"query/{f}", e) for f, e in self.query_envs.items()),
        ]:
            if key not in state["envs"]:
                raise ConfigError(f"the checkpoint has no environments {key!r}: another spec?")
            load_env_state(env, state["envs"][key])
        if self.aux is not None and state.get("align") is not None:
            self.aux.load_state_dict(state["align"])


def value_loss(agent: Agent, family: str, episodes: list[Episodes]) -> Tensor:
    """``0.5 * mean (V(s) - G)^2`` of the (unadapted) value head over the real steps of
    ``episodes``, G the discounted return-to-go (``maml.baseline: value``)."""
    total, count = 0.0, 0.0
    for e in episodes:
        obs, mask = e.batch.obs, e.batch.mask
        v = agent(obs.flatten(0, 1), family)[1].unflatten(0, mask.shape)
        total = total + ((v - e.value_targets).pow(2) * mask).sum()
        count = count + mask.sum()
    return 0.5 * total / max(float(count), 1.0)  # type: ignore[return-value]


def _assign(
    env: TaskEnv, tasks: list[Task], episodes: int, world: TaskParams | None = None
) -> None:
    """Give ``env`` the tasks, task-major, ``episodes`` environments each: each task's world
    parameters, or ``world``'s rows, one per environment (``maml.episode_tasks: new``), with
    the task's variant."""
    params = batch_params(tasks, episodes) if world is None else world
    env.set_tasks(params, [t.variant for t in tasks for _ in range(episodes)])


def _fresh_env(
    spec: Spec, family: str, tasks: list[Task], per_task: int, seed: int, sampler: TaskSampler
) -> TaskEnv:
    """A new TaskEnv of ``per_task`` environments per task, seeded: the same seed gives the same
    tasks, start states and observation noise (with ``maml.episode_tasks: new``, world
    parameters of each environment's own, drawn from ``seed``)."""
    n = len(tasks) * per_task
    env = make_env(spec, family, num_envs=n, seed=seed)
    world = None
    if spec.maml.episode_tasks == "new":
        world = sampler.world_params(n, torch.Generator().manual_seed(seed))
    _assign(env, tasks, per_task, world)
    return env


def _adaptation_metrics(
    groups: dict[str, tuple[Adaptation, Episodes]], per_family: bool = True
) -> dict[str, float]:
    """pre_/post_ return and success, ``return``/``success``/``length`` (post), and with
    ``per_family`` the same per family as ``<key>/<family>``."""
    out: dict[str, float] = {}
    rows: dict[str, dict[str, float]] = {}
    for family, (adaptation, query) in groups.items():
        pre = adaptation.supports[0] if adaptation.supports else query
        r = {**pre.summary("pre_"), **query.summary("post_"), **query.summary()}
        r["episodes"] = float(query.num_episodes)
        rows[family] = r
    n = sum(r["episodes"] for r in rows.values())
    for key in next(iter(rows.values())):
        if key == "episodes":
            out[key] = n
            continue
        out[key] = sum(r[key] * r["episodes"] for r in rows.values()) / n
    if per_family:
        for family, r in rows.items():
            out.update({f"{k}/{family}": v for k, v in r.items() if "length" not in k})
    return out


def evaluate_maml(
    agent: Agent,
    spec: Spec,
    sampler: TaskSampler,
    episodes: int,
    learned_lrs: dict[str, Tensor] | None = None,
    seed: int = 0,
) -> dict[str, float]:
    """Pre- and post-adaptation return and success on fresh tasks, per split and family.

    For every family of the ``train`` and ``heldout_variants`` splits, ``ceil(episodes /
    maml.query_episodes)`` fresh tasks are drawn; each is adapted with ``maml.inner_steps``
    steps on ``maml.support_episodes`` episodes, then the unadapted (pre) and adapted (post)
    policies play the *same* query episodes (same tasks, start states and observation noise),
    sampled and deterministic (mode), next to the world's oracle. With ``maml.episode_tasks:
    new`` every support and query episode has a goal of its own, the task's variant kept.

    Returns:
        ``<split>/{pre,post}_{return,success}`` (sampled policy, the MAML convention),
        ``<split>/{pre,post}_mode_{return,success}`` (the mode), ``<split>/oracle_*``, each
        averaged over families and per family as ``<key>/<family>``; plus the run loop's
        ``return``/``success``/``length`` (post-adaptation mode), ``sampled_*`` and
        ``oracle_*`` on the train split, and ``episodes``.
    """
    cfg = spec.maml
    device = next(agent.parameters()).device
    n_tasks = max(1, math.ceil(episodes / cfg.query_episodes))
    result: dict[str, float] = {}
    for split in ("train", "heldout_variants"):
        per_family: dict[str, dict[str, float]] = {}
        for family in sampler.families(split):
            s = derive_seed(seed, split, family) % (2**31)
            tasks = sampler.sample(split, n_tasks, [family], torch.Generator().manual_seed(s))
            gen = torch.Generator(device).manual_seed(s + 1)

            post: dict[str, Tensor] | None = None
            if cfg.inner_steps:
                sup = _fresh_env(spec, family, tasks, cfg.support_episodes, s + 1, sampler)
                post = adapt_in_env(
                    agent, sup, family, n_tasks, cfg, gen, learned_lrs=learned_lrs
                ).params
            row: dict[str, float] = {}
            for name, params in (("pre", None), ("post", post)):
                for mode, det in (("", False), ("mode_", True)):
                    q = _fresh_env(spec, family, tasks, cfg.query_episodes, s + 2, sampler)
                    episodes_ = collect_episodes(agent, q, family, n_tasks, params, gen, cfg, det)
                    row.update(episodes_.summary(f"{name}_{mode}"))
            if has_oracle(spec.world):
                oracle_env = _fresh_env(spec, family, tasks, cfg.query_episodes, s + 2, sampler)
                oracle = run_episodes(oracle_env, oracle_act)
                row.update({f"oracle_{k}": float(v.double().mean()) for k, v in oracle.items()})
            per_family[family] = row
        if not per_family:
            continue
        keys = next(iter(per_family.values()))
        for k in keys:
            result[f"{split}/{k}"] = sum(r[k] for r in per_family.values()) / len(per_family)
            if len(per_family) > 1:
                for family, r in per_family.items():
                    result[f"{split}/{k}/{family}"] = r[k]
    for k in ("return", "success", "length"):
        result[k] = result[f"train/post_mode_{k}"]
        result[f"sampled_{k}"] = result[f"train/post_{k}"]
        if f"train/oracle_{k}" in result:
            result[f"oracle_{k}"] = result[f"train/oracle_{k}"]
    result["episodes"] = float(n_tasks * cfg.query_episodes)
    return result


def plot_adaptation_curve(rundir: str | Path, out: str | Path | None = None) -> Path | None:
    """Plot pre- and post-adaptation return of ``RUNDIR/metrics.jsonl`` against meta-iteration
    into ``RUNDIR/adaptation.png`` (or ``out``); None when the run logged no MAML records."""
    from matplotlib.figure import Figure  # no pyplot: a notebook's backend is left as it was

    from metaxm.run.logger import read_metrics

    records = [r for r in read_metrics(rundir) if "pre_return" in r]
    if not records:
        return None
    it = [r["update"] for r in records]
    per_iteration = records[-1]["step"] / records[-1]["update"] / 1e6  # million steps
    fig = Figure(figsize=(10, 3.8))
    axes = fig.subplots(1, 2)
    for ax, key, label in ((axes[0], "return", "return"), (axes[1], "success", "success rate")):
        ax.plot(it, [r[f"pre_{key}"] for r in records], label="pre-adaptation", lw=1.5)
        ax.plot(it, [r[f"post_{key}"] for r in records], label="post-adaptation", lw=1.5)
        ax.set_xlabel("meta-iteration")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
        top = ax.secondary_xaxis(
            "top", functions=(lambda x: x * per_iteration, lambda m: m / per_iteration)
        )
        top.set_xlabel("environment steps (millions)")
    fig.suptitle(f"MAML: {Path(rundir).name}")
    fig.tight_layout()
    path = Path(out) if out is not None else Path(rundir) / "adaptation.png"
    fig.savefig(path, dpi=100)
    return path
