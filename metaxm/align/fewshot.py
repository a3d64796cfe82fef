"""Few-shot alignment of a new modality: fit its adapter (and encoder) from k paired steps.

**What a paired step is.** One environment step the agent takes in the *target* modality (the
one being adapted to), acting with its own policy; the state it acted in is rendered twice: in
the target modality (what the agent saw) and in a *source* modality, a known training
modality. ``k`` paired steps are ``k`` environment steps of target-modality experience: they
are collected in ``align.fit_envs`` parallel environments (``ceil(k / fit_envs)`` steps each;
finished episodes restart with a fresh task), and :class:`PairedSteps` records how many
episodes they touched, which is what an episode budget should be charged.

**The fit.** The source latents ``z_s`` come from the agent as it is, and are fixed. Copies of
the target family's parameters are trained with Adam for ``align.fit_iters`` steps to minimise

    InfoNCE(z_t, z_s) + fit_mse * mean((z_t - z_s)^2) + fit_policy * KL(pi(z_s) || pi(z_t))
        + fit_prior / n * |theta - theta_0|^2

InfoNCE (:func:`~metaxm.align.losses.info_nce`) makes each target latent pick out its own
state; the squared distance puts it on the *same point* as the source latent, because the
policy above reads the latent itself, not only its direction; the KL term (off by default)
asks the frozen policy to act on the target latent as it acts on the source one, which
weighs the latent's directions by how much they matter to acting; the last term (off by default)
keeps a fit on a handful of pairs ``n`` near the starting parameters ``theta_0``. The
parameters fitted (:func:`fit_subset`, ``align.fit_subset``) are by default the adapter
(``subset="adapter"``) for a training family, whose encoder already reads the family, and the
adapter and encoder (``"adapter+encoder"``) for a family never trained on; a family the agent
has no encoder for at all is added with :meth:`~metaxm.nn.agent.Agent.add_family`.

The agent's own parameters are never changed (except by ``add_family``): the result is a dict
of parameters to run the agent with, ``torch.func.functional_call(agent, params, (obs,
family))``, as MAML's adapted parameters are.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from metaxm.align.losses import encode, info_nce
from metaxm.align.pairs import PairedBatch, concat_scenes, render_pairs, select_rows
from metaxm.build import make_env
from metaxm.config.align import AlignConfig
from metaxm.envs import make_world
from metaxm.envs.play import play, transitions
from metaxm.errors import ConfigError
from metaxm.modalities import get_family
from metaxm.nn.agent import Agent, ParamSubset
from metaxm.nn.distributions import explore

if TYPE_CHECKING:
    from metaxm.spec import Spec


@dataclass(frozen=True)
class PairedSteps:
    """Paired steps collected from the agent's own experience.

    Attributes:
        batch: the visited states rendered in the target (view 0) and source (view 1).
        steps: the number of paired steps (environment steps in the target modality).
        episodes: the episodes those steps touched (begun, finished or not).
        actions: (N,) the action the agent took in each of the N states, in ``batch``'s order.
        transitions: ``(first, second)``, (M,) rows of ``batch`` each: state ``second`` came
            right after state ``first`` in one episode (:func:`metaxm.envs.play.transitions`).
    """

    batch: PairedBatch
    steps: int
    episodes: int
    actions: Tensor
    transitions: tuple[Tensor, Tensor]


@dataclass(frozen=True)
class FitResult:
    """A few-shot fit.

    Attributes:
        params: the fitted parameters by name (the target family's ``subset``), detached.
        family: the target family.
        subset: which parameters were fitted.
        paired_steps: how many paired steps the fit used.
        episodes: how many episodes of target experience those steps touched.
        loss_first: the fit loss before the first step.
        loss_last: the fit loss at the last step.
    """

    params: dict[str, Tensor]
    family: str
    subset: str
    paired_steps: int
    episodes: int
    loss_first: float
    loss_last: float


def default_source(spec: Spec) -> tuple[str, int]:
    """The known modality latents are fitted against: the first variant of the first training
    family of the spec's ``train`` split."""
    from metaxm.sampler import TaskSampler

    family, seeds = next(iter(TaskSampler(spec).splits["train"].items()))
    return family, seeds[0]


def source_params(agent: Agent, source: tuple[str, int]) -> dict[str, Tensor] | None:
    """The source variant's own adapter when the agent has one (``adapters: variant`` and the
    variant in its pool), under the family adapter's names; None: the family adapter."""
    va = agent.variant_adapters
    known = va is not None and source[0] in va and source[1] in va.seeds(source[0])
    return va.params(*source) if known else None


@torch.no_grad()
def collect_paired_steps(
    agent: Agent,
    spec: Spec,
    target: tuple[str, int],
    steps: int | None = None,
    source: tuple[str, int] | None = None,
    seed: int = 0,
    params: Mapping[str, Tensor] | None = None,
    episodes: int | None = None,
) -> PairedSteps:
    """Run the agent's stochastic policy (with ``align.explore``) in the target modality and
    render every visited state in the target and the source modality (see the module
    docstring).

    Give exactly one budget: ``steps`` (k environment steps over ``align.fit_envs`` parallel
    environments) or ``episodes`` (k whole episodes, played side by side, whose steps are all
    kept; the number of paired steps is then the sum of their lengths).

    Args:
        agent: the acting agent.
        spec: the task spec (``world``, ``align.fit_envs``).
        target: ``(family, variant)`` of the modality being adapted to.
        steps: k, the number of paired steps.
        source: ``(family, variant)`` of the known modality (:func:`default_source`).
        seed: seeds tasks, start states, actions and render noise.
        params: parameters to act with instead of the agent's own.
        episodes: k, the number of episodes.
    """
    if (steps is None) == (episodes is None):
        raise ValueError("give exactly one of steps and episodes")
    budget = steps if steps is not None else episodes
    if budget is None or budget < 1:
        raise ValueError(f"the budget must be >= 1, got steps={steps}, episodes={episodes}")
    source = default_source(spec) if source is None else source
    device = next(agent.parameters()).device
    n = min(spec.align.fit_envs, budget) if episodes is None else episodes
    env = make_env(spec, *target, num_envs=n, seed=seed, device=device, resample_tasks=True)
    world = env.world
    g = torch.Generator(device).manual_seed(seed + 1)
    actor = Actor(agent, target[0], n, params, spec.align.explore)
    played = play(
        env, lambda obs: actor.act(obs, g), steps=None if episodes else math.ceil(budget / n),
        record=("scene", "count", "action"), observe=actor.observe,
    )  # fmt: skip
    scenes = played.record["scene"]
    scene = concat_scenes(scenes)
    count = played.record["count"]  # (T, n) episode of each step
    ids = count.flatten()  # step-major like the scene
    rows = torch.arange(ids.shape[0], device=device)
    # steps: the last round is cut to the budget; episodes: every env's first episode, whole
    keep = rows[:budget] if episodes is None else rows[ids == 0]
    scene = select_rows(scene, keep)
    env_of = torch.arange(n, device=device).repeat(len(scenes))[keep]
    touched = torch.unique(env_of * (world.horizon + 1) + ids[keep]).numel()
    batch = render_pairs(scene, [target, source], world.scene_info, g)
    kept = torch.zeros_like(ids, dtype=torch.bool).index_fill_(0, keep, True).view_as(count)
    actions = played.record["action"].flatten(0, 1)[keep]
    return PairedSteps(batch, scene.batch_size, touched, actions, transitions(kept, count))


def fit_adapter(
    agent: Agent,
    pairs: PairedBatch,
    config: AlignConfig,
    subset: ParamSubset = "adapter",
    seed: int = 0,
    source_params: Mapping[str, Tensor] | None = None,
    start: Mapping[str, Tensor] | None = None,
) -> FitResult:
    """Fit the target family's ``subset`` so its latents meet the source latents.

    Args:
        agent: the agent (not modified).
        pairs: view 0 in the target modality, views 1.. in known modalities (fixed targets).
        config: ``fit_iters``, ``fit_lr``, ``fit_mse``, ``temperature``, ``batch_size``.
        subset: ``adapter`` or ``adapter+encoder`` of the target family.
        seed: seeds the minibatches (when the pairs exceed ``batch_size``).
        source_params: parameters to encode the source views with (e.g. a training variant's
            own adapter from pretraining, :meth:`VariantAdapters.params`).
        start: the ``subset``'s parameters to start from (e.g. a meta-learned start), by name;
            by default the agent's own.
    """
    family = pairs.families[0]
    with torch.no_grad():
        sources = [
            encode(agent, o, f, source_params) for o, f in zip(pairs.obs[1:], pairs.families[1:])
        ]
    own = agent.named_params(subset, family)
    start = {k: v.detach().clone() for k, v in (own if start is None else start).items()}
    if start.keys() != own.keys():
        missing, extra = sorted(own.keys() - start.keys()), sorted(start.keys() - own.keys())
        raise ValueError(
            f"start must hold exactly the {subset} of {family!r}: missing {missing}, extra {extra}"
        )
    params = {k: v.clone().requires_grad_(True) for k, v in start.items()}
    optimizer = torch.optim.Adam(params.values(), lr=config.fit_lr)
    n = pairs.batch_size
    size = min(n, config.batch_size)
    g = torch.Generator().manual_seed(seed)
    target = _target_latent(agent, pairs.obs[0], family, subset)
    policy = config.fit_policy > 0 and not agent.recurrent
    if policy:  # the policy is a fixed function here: its weights take no gradient
        core = {k: v.detach() for k, v in agent.core.named_parameters()}
        with torch.no_grad():
            pds = [agent.core(zs)[0] for zs in sources]
    losses = []
    for _ in range(config.fit_iters):
        idx = torch.randperm(n, generator=g)[:size].to(pairs.state_ids.device)
        z = target(idx, params)
        loss = sum(
            info_nce(z, zs[idx], config.temperature, pairs.state_ids[idx])
            + config.fit_mse * (z - zs[idx]).pow(2).mean()
            for zs in sources
        ) / len(sources)
        if policy:
            pd = torch.func.functional_call(agent.core, core, (z,))[0]
            kl = sum(agent.head.kl(p[idx], pd).mean() for p in pds) / len(pds)
            loss = loss + config.fit_policy * kl
        if config.fit_prior > 0:
            drift = sum((params[k] - start[k]).pow(2).sum() for k in params)
            loss = loss + config.fit_prior / n * drift
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return FitResult(
        {k: v.detach() for k, v in params.items()}, family, subset, n, 0,
        losses[0] if losses else float("nan"), losses[-1] if losses else float("nan"),
    )  # fmt: skip


def _target_latent(agent: Agent, obs: Tensor, family: str, subset: ParamSubset):
    """``(rows, params) -> z`` of the target view. When only the adapter is fitted the
    encoder's output is computed once (the fit then costs an adapter per step, not an
    encoder: the difference between seconds and milliseconds per fit for pixels)."""
    if subset != "adapter":
        return lambda idx, params: encode(agent, obs[idx], family, params)
    with torch.no_grad():
        e = agent.features(obs, family)
    prefix = f"adapters.{family}."
    adapter = agent.adapters[family]

    def z(idx: Tensor, params: Mapping[str, Tensor]) -> Tensor:
        own = {k.removeprefix(prefix): v for k, v in params.items()}
        return torch.func.functional_call(adapter, own, (e[idx],))

    return z


def fit_subset(spec: Spec, family: str) -> ParamSubset:
    """What a few-shot fit of ``family`` changes: ``align.fit_subset``, where ``auto`` is the
    adapter for a training family and the adapter and encoder for any other.

    Raises:
        ConfigError: ``adapter`` for a family never trained on (its encoder is random).
    """
    trained = family in spec.modalities.train
    if spec.align.fit_subset == "adapter" and not trained:
        raise ConfigError(
            f"align.fit_subset: adapter would keep the untrained encoder of {family!r}, a family "
            "no training run saw; use auto or adapter+encoder"
        )
    if spec.align.fit_subset != "auto":
        return spec.align.fit_subset
    return "adapter" if trained else "adapter+encoder"


def few_shot_align(
    agent: Agent,
    spec: Spec,
    target: tuple[str, int],
    steps: int | None = None,
    source: tuple[str, int] | None = None,
    subset: ParamSubset | None = None,
    seed: int = 0,
    source_params: Mapping[str, Tensor] | None = None,
    episodes: int | None = None,
) -> FitResult:
    """The evaluator's ``align`` strategy: collect paired steps, fit, return the parameters.

    Args:
        agent: the trained agent; a family it has no encoder for is added to it.
        spec: the task spec (a family outside ``modalities.train`` counts as new).
        target: ``(family, variant)`` to adapt to.
        steps: k paired steps; 0 returns the agent's own parameters unfitted.
        episodes: instead of ``steps``, the paired steps of k whole episodes (0: unfitted).
        source: the known modality (:func:`default_source`).
        subset: what to fit; by default :func:`fit_subset`.
        seed: seeds collection and fit.
        source_params: parameters to encode the source modality with (see :func:`fit_adapter`).
    """
    family = target[0]
    if family not in agent.encoders:
        info = make_world(spec.world, 1).scene_info
        agent.add_family(family, get_family(family).observation_space(info), seed=seed)
    if subset is None:
        subset = fit_subset(spec, family)
    if (steps is None) == (episodes is None):
        raise ValueError("give exactly one of steps and episodes")
    if (steps if steps is not None else episodes) == 0:
        own = {k: v.detach().clone() for k, v in agent.named_params(subset, family).items()}
        return FitResult(own, family, subset, 0, 0, float("nan"), float("nan"))
    paired = collect_paired_steps(agent, spec, target, steps, source, seed, episodes=episodes)
    fit = fit_adapter(agent, paired.batch, spec.align, subset, seed, source_params)
    return FitResult(
        fit.params, family, subset, paired.steps, paired.episodes, fit.loss_first, fit.loss_last
    )


class Actor:
    """The agent's stochastic policy on one family (recurrent state kept for a GRU core), each
    action a uniformly random one with probability ``explore``: how every few-shot collection
    plays its episodes (``act`` as :func:`~metaxm.envs.play.play`'s ``act`` with a generator,
    ``observe`` as its ``observe``)."""

    def __init__(
        self,
        agent: Agent,
        family: str,
        n: int,
        params: Mapping[str, Tensor] | None = None,
        explore: float = 0.0,
    ) -> None:
        self.agent, self.family, self.params, self.explore = agent, family, params, explore
        device = next(agent.parameters()).device
        if agent.recurrent:  # the state at the start of a trial: no previous action or reward
            self.hidden = agent.initial_state(n, device)
            if hasattr(agent.head, "n"):  # categorical: (n,) action indices
                self.prev_action = torch.zeros(n, dtype=torch.long, device=device)
            else:
                self.prev_action = torch.zeros(n, agent.head.action_dim, device=device)
            self.prev_reward = torch.zeros(n, device=device)
            self.done = torch.ones(n, dtype=torch.bool, device=device)

    def act(self, obs: Tensor, generator: torch.Generator) -> Tensor:
        call = (lambda *a: self.agent(*a)) if self.params is None else self._functional
        if self.agent.recurrent:
            pd, _, self.hidden = call(
                obs, self.family, self.prev_action, self.prev_reward, self.done, self.hidden
            )
        else:
            pd, _ = call(obs, self.family)
        action = self.agent.head.sample(pd, generator)
        return explore(self.agent.head, action, self.explore, generator)

    def _functional(self, *args: object) -> tuple[Tensor, ...]:
        return torch.func.functional_call(self.agent, dict(self.params), args, strict=False)

    def observe(self, action: Tensor, reward: Tensor, done: Tensor) -> None:
        if self.agent.recurrent:
            self.prev_action, self.prev_reward, self.done = action, reward, done
