"""MAML with ``torch.func``: inner policy-gradient steps, a clipped outer surrogate, few-shot adapt.

Model-Agnostic Meta-Learning (Finn, Abbeel & Levine 2017, "Model-Agnostic Meta-Learning for Fast
Adaptation of Deep Networks", Algorithm 3 for RL) learns an initialisation ``theta`` from which
a few policy-gradient steps on one task's episodes give a good policy for that task. In metaxm a
task is a world task (a goal) *and* a modality variant, and the inner loop adapts a chosen
subset of the agent: the family's adapter, adapter + encoder, or everything the family uses.

Everything is a pure function of parameter dicts (``{name: tensor}``): the agent runs as
``functional_call(agent, params, (obs, family))``, ``torch.func.grad`` gives the inner
gradients and ``torch.func.vmap`` runs the inner loops of all tasks of a family group at once
(their episodes are padded and masked to one shape, see :mod:`metaxm.meta.policy_gradient`;
the environments are stepped outside ``vmap``). The meta-gradient is ordinary autograd through
the vmapped inner steps: second-order by default, first-order (FOMAML) by detaching the inner
gradients.

Inner loop. ``theta_i' = theta - alpha * grad L_in(theta; D_i)``, ``L_in`` the REINFORCE loss
``-sum_t m_t log pi(a_t|s_t) A_t / sum_t m_t`` with advantages from GAE on a linear baseline
fitted per task (rllab's baseline, as in the paper and pytorch-maml-rl; ``maml.baseline``
``latent`` or ``time``), or on the agent's value head (``value``, regressed on the returns in
the outer loop; better for sparse rewards); see :mod:`metaxm.meta.policy_gradient`. Each inner
step collects fresh support episodes with the current adapted parameters, as in the paper.
``alpha`` is one scalar, or with ``meta_sgd`` a tensor per parameter element learned in the
outer loop (Meta-SGD, Li et al. 2017). With ``inner_objective: lvc`` the inner loss is ProMP's
low-variance-curvature one, ``log pi`` replaced by ``pi / pi_old`` (:func:`inner_loss`).

Outer loop. Query episodes are collected with the adapted parameters ``theta_i'(theta_old)``.
The outer update maximises the PPO-clip surrogate (Schulman et al. 2017) of the post-adaptation
policy, ``min(r A, clip(r, 1 - eps, 1 + eps) A)`` with ``r = pi_{theta_i'(theta)} / pi_old``,
for ``outer_epochs`` Adam steps, recomputing the adaptation from the stored support episodes at
every step. This is ProMP's clipped meta-objective (Rothfuss et al. 2019, "ProMP", eq. 13,
without its KL term) and departs from the paper, which uses TRPO. Why: TRPO needs
Hessian-vector products of the KL *through the inner loop* in every conjugate-gradient
iteration plus a line search, i.e. ~10-25 meta-gradient-sized passes per update; a PPO epoch
costs one, reuses the vmapped meta-gradient as it is, and Rothfuss et al. report the clipped
objective matching or beating TRPO-MAML. At the first epoch ``r = 1`` and the gradient is
exactly the MAML policy-gradient meta-gradient. The meta-gradient of this objective is tested
against an independent ``higher`` implementation (:func:`metaxm.bench.maml.
higher_meta_gradient`) to 1e-6 in float64.

Few-shot API (used by the evaluator)::

    params = adapt(agent, family, variant, task_params, episodes=k, steps=n, spec=spec)
    pd, value = torch.func.functional_call(agent, params, (obs, family))
    policy = adapted_agent(agent, params)   # or a plain Agent with the adapted weights
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn
from torch.func import grad, vmap
from torch.nn import functional as F
from torch.overrides import TorchFunctionMode

from metaxm.build import make_env
from metaxm.config.maml import AdaptSubset, InnerObjective, MAMLConfig
from metaxm.meta.functional import sgd_step
from metaxm.meta.policy_gradient import (
    Episodes,
    FunctionalPolicy,
    PGBatch,
    collect_episodes,
    functional_policy,
    identity,
)

if TYPE_CHECKING:
    from metaxm.envs.base import TaskParams
    from metaxm.envs.task_env import TaskEnv
    from metaxm.nn.agent import Agent
    from metaxm.spec import Spec

Params = dict[str, Tensor]
InnerLRs = Mapping[str, "Tensor | float"]
"""Inner learning rate per adapted parameter name: a float, or a tensor of the parameter's
shape (Meta-SGD)."""


# ---------------------------------------------------------------------- parameter subsets
def adapted_names(agent: Agent, subset: AdaptSubset, family: str) -> list[str]:
    """The parameter names the inner loop adapts for ``family``.

    ``all`` means every parameter the family's policy uses (its encoder and adapter, the
    shared token encoder, the core's policy), not the other families' encoders and not the
    value head, which MAML never uses (its advantages come from a linear baseline).
    """
    if subset == "all":
        core = [n for n in agent.param_names("core") if not n.startswith("core.v.")]
        return agent.param_names("adapter+encoder", family) + core
    return agent.param_names(subset, family)


def inner_lrs(names: Sequence[str], default: float, learned: InnerLRs | None = None) -> InnerLRs:
    """``{name: lr}`` for ``names``: the learned (Meta-SGD) rate where there is one, else
    ``default``."""
    learned = learned or {}
    return {n: learned.get(n, default) for n in names}


# ---------------------------------------------------------------------- losses (one task)
def inner_loss(
    policy: FunctionalPolicy,
    params: Params,
    batch: PGBatch,
    objective: InnerObjective = "reinforce",
) -> Tensor:
    """The policy-gradient loss of one task's padded episodes (a scalar to minimise).

    ``reinforce``: ``-sum_t m_t log pi(a_t|s_t) A_t / sum_t m_t``. ``lvc``: ProMP's
    low-variance-curvature objective (Rothfuss et al. 2019, eq. 11), ``log pi`` replaced by the
    likelihood ratio ``pi / pi_old`` to the policy that played the episodes: the same gradient
    where the two policies are one (every inner step taken while adapting), and a Hessian that
    also carries how the support episodes' sampling depends on the parameters, which
    REINFORCE's drops.

    Args:
        policy: the split policy (:func:`~metaxm.meta.policy_gradient.functional_policy`).
        params: the adapted parameters (they replace the model's own).
        batch: one task's row of a :class:`PGBatch` whose ``obs`` are the trunk's features.
        objective: ``reinforce`` or ``lvc`` (``maml.inner_objective``).
    """
    logp = policy.model.head.log_prob(policy.head(params, batch.obs), batch.actions)
    if objective == "lvc":
        logp = torch.where(batch.mask > 0, logp - batch.logprobs, 0.0).exp()
    return -(logp * batch.advantages * batch.mask).sum() / batch.mask.sum().clamp(min=1.0)


def inner_step(
    policy: FunctionalPolicy,
    params: Params,
    batch: PGBatch,
    lrs: InnerLRs,
    first_order: bool = False,
    objective: InnerObjective = "reinforce",
) -> Params:
    """One inner step ``theta - alpha * grad L_in(theta)``; differentiable in ``params`` and the
    learning rates unless ``first_order`` (then the gradient is treated as a constant)."""
    grads = grad(inner_loss, argnums=1)(policy, params, batch, objective)
    return sgd_step(params, grads, lrs, first_order)  # the update rule of metaxm.meta.MAML


def adapt_params(
    policy: FunctionalPolicy,
    params: Params,
    supports: Sequence[PGBatch],
    lrs: InnerLRs,
    first_order: bool = False,
    objective: InnerObjective = "reinforce",
) -> Params:
    """The inner loop on one task: one :func:`inner_step` per support batch."""
    for batch in supports:
        params = inner_step(policy, params, batch, lrs, first_order, objective)
    return params


def query_loss(
    policy: FunctionalPolicy,
    params: Params,
    batch: PGBatch,
    clip_coef: float,
    ent_coef: float = 0.0,
) -> tuple[Tensor, dict[str, Tensor]]:
    """The PPO-clip surrogate of one task's query episodes under ``params`` (to minimise).

    Returns:
        the loss and detached ``surrogate``, ``entropy``, ``approx_kl``, ``clipfrac``.
    """
    pd = policy.head(params, batch.obs)
    head = policy.model.head
    m = batch.mask
    count = m.sum().clamp(min=1.0)
    log_ratio = torch.where(m > 0, head.log_prob(pd, batch.actions) - batch.logprobs, 0.0)
    ratio = log_ratio.exp()
    adv = batch.advantages
    surrogate = torch.min(ratio * adv, ratio.clamp(1.0 - clip_coef, 1.0 + clip_coef) * adv)
    pg_loss = -(surrogate * m).sum() / count
    entropy = (head.entropy(pd) * m).sum() / count
    stats = {
        "surrogate": pg_loss.detach(),
        "entropy": entropy.detach(),
        "approx_kl": (((ratio - 1.0) - log_ratio) * m).sum().detach() / count,
        "clipfrac": (((ratio - 1.0).abs() > clip_coef).float() * m).sum().detach() / count,
    }
    return pg_loss - ent_coef * entropy, stats


def task_loss(
    policy: FunctionalPolicy,
    theta: Params,
    supports: Sequence[PGBatch],
    query: PGBatch,
    lrs: InnerLRs,
    config: MAMLConfig,
) -> tuple[Tensor, dict[str, Tensor]]:
    """One task's post-adaptation loss: adapt ``theta`` on ``supports``, score on ``query``."""
    adapted = adapt_params(policy, theta, supports, lrs, config.first_order, config.inner_objective)
    return query_loss(policy, adapted, query, config.clip_coef, config.ent_coef)


# ---------------------------------------------------------------------- the task batch
class ExactLayerNorm(TorchFunctionMode):
    """Computes ``F.layer_norm`` from elementary ops while active.

    A workaround for a PyTorch bug (pytorch/functorch#534, still in torch 2.13): under
    ``vmap``, the double backward of ``layer_norm`` returns wrong input gradients when the
    norm's affine weight is differentiated as well, which silently corrupts the second-order
    meta-gradient of any adapted parameter below an affine LayerNorm (the text and token
    transformers' norms). :func:`meta_loss` runs its vmapped second-order path under this
    mode where the vmapped head runs the encoder (or the whole module); the adapter and the
    core's MLP call no layer norm, and the per-task loop and first-order MAML do not need it.
    Checked against ``higher`` in ``tests/meta/test_maml.py``.
    """

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        kwargs = kwargs or {}
        if func is not F.layer_norm:
            return func(*args, **kwargs)
        names = ("input", "normalized_shape", "weight", "bias", "eps")
        a = {**dict(zip(names, args)), **kwargs}
        x, dims = a["input"], tuple(range(-len(a["normalized_shape"]), 0))
        centred = x - x.mean(dims, keepdim=True)
        var = (centred * centred).mean(dims, keepdim=True)
        y = centred * torch.rsqrt(var + a.get("eps", 1e-5))
        if a.get("weight") is not None:
            y = y * a["weight"]
        if a.get("bias") is not None:
            y = y + a["bias"]
        return y


def meta_loss(
    model: nn.Module,
    family: str,
    theta: Params,
    supports: Sequence[PGBatch],
    query: PGBatch,
    lrs: InnerLRs,
    config: MAMLConfig,
    vectorize: bool = True,
) -> tuple[Tensor, dict[str, Tensor]]:
    """The mean post-adaptation loss over a family group's tasks.

    The trunk of the policy (the encoder, when it is not adapted; see
    :class:`~metaxm.meta.policy_gradient.FunctionalPolicy`) runs once on every observation of
    the batch; the inner loops and query losses of the tasks then run under one ``vmap``, or
    one task at a time (``vectorize`` false: ``maml.vectorize``, faster where each task's batch
    is large and every weight adapted).

    Args:
        model: an :class:`~metaxm.nn.agent.Agent`, or any module whose forward is
            ``(obs, family) -> (pd, ...)`` and that has an action ``head``.
        family: the group's family.
        theta: the initialisation of the adapted subset (the live parameters, to get their
            meta-gradient; the other parameters come from ``model`` itself).
        supports: one task-major :class:`PGBatch` per inner step, (n, N, ...).
        query: the task-major query batch, (n, N, ...).
        lrs: the inner learning rates.
        config: ``first_order``, ``clip_coef``, ``ent_coef``.
        vectorize: run the tasks under ``vmap`` (true) or in a Python loop (false); the same
            loss up to float summation order.

    Returns:
        the loss (a scalar with the autograd graph to ``theta``, ``lrs`` and the model) and the
        diagnostics averaged over tasks.
    """
    policy = functional_policy(model, family, theta)
    supports = [s._replace(obs=policy.features(s.obs, mask=s.mask)) for s in supports]
    query = query._replace(obs=policy.features(query.obs, mask=query.mask))

    def one(sup: list[PGBatch], q: PGBatch) -> tuple[Tensor, dict[str, Tensor]]:
        return task_loss(policy, theta, sup, q, lrs, config)

    if vectorize:
        # past a trunk the head is the adapter and the core's MLP, which call no layer norm;
        # the mode intercepts every op under vmap (about 3% of the bench's vector case), so only
        # a head that runs the encoder, or a whole module, gets it
        exact = not config.first_order and policy.trunk is identity
        with ExactLayerNorm() if exact else contextlib.nullcontext():
            losses, stats = vmap(one)(supports, query)
    else:
        rows = [one([s.task(i) for s in supports], query.task(i)) for i in range(len(query.mask))]
        losses = torch.stack([r[0] for r in rows])
        stats = {k: torch.stack([r[1][k] for r in rows]) for k in rows[0][1]}
    return losses.mean(), {k: v.mean() for k, v in stats.items()}


def meta_gradient(
    model: nn.Module,
    family: str,
    names: Sequence[str],
    supports: Sequence[PGBatch],
    query: PGBatch,
    config: MAMLConfig,
    learned_lrs: Mapping[str, Tensor] | None = None,
    vectorize: bool = True,
) -> tuple[Tensor, Params]:
    """The meta-gradient of :func:`meta_loss` for every parameter of ``model``.

    Args:
        names: the adapted subset (see :func:`adapted_names`).
        learned_lrs: Meta-SGD rates (leaf tensors); their gradients are returned as
            ``"lr:<name>"``.

    Returns:
        the loss and ``{name: gradient}`` (zeros for parameters the loss does not use).
    """
    all_params = dict(model.named_parameters())
    theta = {n: all_params[n] for n in names}
    lrs = inner_lrs(names, config.inner_lr, learned_lrs)
    loss, _ = meta_loss(model, family, theta, supports, query, lrs, config, vectorize)
    targets = dict(all_params)
    targets.update({f"lr:{n}": t for n, t in (learned_lrs or {}).items()})
    grads = torch.autograd.grad(loss, list(targets.values()), allow_unused=True)
    out = {n: torch.zeros_like(t) if g is None else g for (n, t), g in zip(targets.items(), grads)}
    return loss.detach(), out


# ---------------------------------------------------------------------- few-shot adaptation
@dataclass
class Adaptation:
    """What :func:`adapt_in_env` produced.

    Attributes:
        params: ``{name: (n_tasks, *shape)}`` the adapted subset per task, detached.
        supports: the support episodes of every inner step (the first ones were collected
            with the unadapted parameters: the pre-adaptation performance).
    """

    params: Params
    supports: list[Episodes]

    @property
    def env_steps(self) -> int:
        return sum(e.env_steps for e in self.supports)


def adapt_in_env(
    agent: Agent,
    env: TaskEnv,
    family: str,
    n_tasks: int,
    config: MAMLConfig,
    generator: torch.Generator,
    steps: int | None = None,
    learned_lrs: Mapping[str, Tensor] | None = None,
) -> Adaptation:
    """Adapt to every task of ``env`` at once: ``steps`` inner steps, each on fresh episodes.

    Args:
        agent: the meta-trained agent (its parameters are not changed).
        env: ``n_tasks * E`` environments, task-major, tasks and variants set; E episodes per
            task per step.
        family: the family of ``env``.
        n_tasks: the number of tasks.
        config: ``adapt``, ``inner_lr`` and the advantage settings.
        generator: draws the actions.
        steps: inner steps (default ``config.inner_steps``); 0 returns the initialisation.
        learned_lrs: Meta-SGD rates, if the agent was meta-trained with them.
    """
    steps = config.inner_steps if steps is None else steps
    names = adapted_names(agent, config.adapt, family)
    own = dict(agent.named_parameters())
    theta = {n: own[n].detach() for n in names}
    lrs = {
        n: lr.detach() if isinstance(lr, Tensor) else lr
        for n, lr in inner_lrs(names, config.inner_lr, learned_lrs).items()
    }
    params: Params | None = None
    supports: list[Episodes] = []

    policy = functional_policy(agent, family, names)

    def step(p: Params, batch: PGBatch) -> Params:
        return inner_step(policy, p, batch, lrs, True, config.inner_objective)

    for _ in range(steps):
        episodes = collect_episodes(agent, env, family, n_tasks, params, generator, config)
        supports.append(episodes)
        with torch.no_grad():
            batch = episodes.batch
            batch = batch._replace(obs=policy.features(batch.obs, mask=batch.mask))
        if params is None:
            params = vmap(step, in_dims=(None, 0))(theta, batch)
        else:
            params = vmap(step)(params, batch)
        params = {k: v.detach() for k, v in params.items()}
    if params is None:
        params = {k: v.unsqueeze(0).repeat(n_tasks, *([1] * v.dim())) for k, v in theta.items()}
    return Adaptation(params, supports)


def adapt(
    agent: Agent,
    family: str,
    variant: int,
    task_params: TaskParams,
    episodes: int,
    steps: int,
    spec: Spec,
    *,
    config: MAMLConfig | None = None,
    learned_lrs: Mapping[str, Tensor] | None = None,
    seed: int = 0,
) -> Params:
    """Few-shot MAML adaptation of ``agent`` to one modality variant and world task.

    Plays ``episodes`` episodes of the task seen through ``(family, variant)``, takes one
    policy-gradient step on them, and repeats ``steps`` times (fresh episodes with the adapted
    policy each time, so ``episodes * steps`` episodes in all); ``steps = 0`` is zero-shot.

    Args:
        agent: the meta-trained agent; it must read ``family`` (``agent.add_family`` first for
            a family it has never seen). Its own parameters are not changed.
        family: the modality family.
        variant: the variant seed of the family.
        task_params: the world task, unbatched (e.g. ``{"goal": tensor([0.3, -0.2])}``).
        episodes: episodes per inner step (k).
        steps: inner gradient steps (n).
        spec: gives the world and, unless ``config`` is passed, ``spec.maml``.
        config: the MAML settings (adapted subset, inner lr, baseline).
        learned_lrs: Meta-SGD rates (``MAMLTrainer.inner_lrs`` / the checkpoint's
            ``trainer.inner_lrs``).
        seed: seeds the episodes and the actions.

    Returns:
        ``{name: tensor}`` of the adapted subset; run the adapted policy with
        ``torch.func.functional_call(agent, params, (obs, family))``.
    """

    cfg = config or spec.maml
    device = next(agent.parameters()).device
    tasks = {k: torch.as_tensor(v, device=device).unsqueeze(0) for k, v in task_params.items()}
    tasks = {k: v.expand(episodes, *v.shape[1:]).clone() for k, v in tasks.items()}
    env = make_env(spec, family, variant, num_envs=episodes, seed=seed, device=device, tasks=tasks)
    generator = torch.Generator(device).manual_seed(seed + 1)
    result = adapt_in_env(agent, env, family, 1, cfg, generator, steps, learned_lrs)
    return {k: v[0] for k, v in result.params.items()}


def adapted_agent(agent: Agent, params: Params) -> Agent:
    """A copy of ``agent`` with ``params`` (e.g. from :func:`adapt`) loaded into it, for code
    that runs an :class:`~metaxm.nn.agent.Agent` rather than ``functional_call``."""
    out = copy.deepcopy(agent)
    own = dict(out.named_parameters())
    with torch.no_grad():
        for name, value in params.items():
            own[name].copy_(value)
    return out
