"""Episodes for MAML's losses: collected for a whole task batch, padded, masked, with advantages.

MAML's inner and outer losses are computed under ``torch.func.vmap`` over the tasks of a
family group, so every task's data must have the same shape. One
:class:`~metaxm.envs.task_env.TaskEnv` holds ``n_tasks x E`` environments, task-major (env
``i * E + e`` plays episode ``e`` of task ``i``); every environment plays exactly one episode,
all of them stepped together for at most the world's horizon. Steps after an environment's
episode ended are padding (the TaskEnv has already auto-reset it) and carry ``mask = 0``. The
result is reshaped to ``(n_tasks, L * E, ...)``, L the longest episode of the batch.

Each task can be acted on with its own parameters: ``params`` holds a ``(n_tasks, ...)`` stack
of the adapted subset and the policy runs as
``vmap(functional_call(agent, params_i, (obs_i, family)))`` over tasks.

Advantages follow pytorch-maml-rl (Deleu 2018) and rllab (Duan et al. 2016): a linear baseline
fitted per task by ridge regression to the discounted returns-to-go, GAE (Schulman et al. 2016)
on top of it, then normalised within each task (``maml.normalize: task``; ``batch`` normalises
over all tasks of the batch instead, which keeps a task whose episodes all failed alike from
having its noise scaled up to unit variance, as happens with a sparse reward).

Departure: the baseline's features are ``[z, z^2, tau, tau^2, tau^3, 1]`` with ``z`` the
agent's *latent* of the observation (under the parameters before adaptation, detached) instead
of the raw observation, so the same baseline works for pixels and token ids; ``tau = t / L``.
Episodes cut at the horizon are not bootstrapped: MAML's objective is the finite-horizon
return, as in the paper.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

from metaxm.envs.play import play
from metaxm.envs.task_env import TaskEnv
from metaxm.rl.gae import compute_gae

if TYPE_CHECKING:
    from metaxm.meta.maml import MAMLConfig
    from metaxm.nn.agent import Agent


class PGBatch(NamedTuple):
    """Policy-gradient data, padded and masked; a NamedTuple so ``vmap`` maps over its fields.

    Task-major: every field has the task as dimension 0 and the N = L * E steps as dimension 1
    (one task's row drops the first dimension).

    Attributes:
        obs: (n, N, *obs_shape) observations.
        actions: (n, N) or (n, N, action_dim) actions taken.
        logprobs: (n, N) their log-probabilities under the acting policy.
        advantages: (n, N) normalised advantages, 0 on padding.
        mask: (n, N) float, 1 on real steps, 0 on padding.
    """

    obs: Tensor
    actions: Tensor
    logprobs: Tensor
    advantages: Tensor
    mask: Tensor

    def task(self, i: int) -> PGBatch:
        """The row of task ``i``."""
        return PGBatch(*(x[i] for x in self))

    def to(self, dtype: torch.dtype) -> PGBatch:
        """Floating fields cast to ``dtype`` (observations and actions keep integer types)."""
        return PGBatch(*(x.to(dtype) if x.is_floating_point() else x for x in self))


@dataclass
class Episodes:
    """One episode per environment for a batch of tasks, as collected.

    Attributes:
        batch: the padded policy-gradient data (:class:`PGBatch`).
        returns: (n, E) undiscounted episode returns.
        success: (n, E) bool, whether each episode reached its goal.
        lengths: (n, E) episode lengths.
        env_steps: environment steps taken to collect them (every environment of the batch
            steps until the last episode ends, padding included).
        value_targets: (n, N) discounted returns-to-go, the value head's targets.
    """

    batch: PGBatch
    returns: Tensor
    success: Tensor
    lengths: Tensor
    env_steps: int
    value_targets: Tensor

    @property
    def num_episodes(self) -> int:
        return self.returns.numel()

    def summary(self, prefix: str = "") -> dict[str, float]:
        """Mean ``return``, ``success`` and ``length`` over all episodes."""
        return {
            f"{prefix}return": float(self.returns.double().mean()),
            f"{prefix}success": float(self.success.double().mean()),
            f"{prefix}length": float(self.lengths.double().mean()),
        }


TRUNK_CHUNK = 1024
"""Rows of a task batch the trunk runs on at once. One pass over every observation of a batch
(12,000 images of 28 x 28 in ``metaxm bench maml``'s pixels case) runs its convolutions and
normalisations on tensors far larger than the CPU's caches: in chunks the pixels and text
meta-gradients take 0.4x the time (``docs/maml.md``). The chunks' features are the same up to
float summation order (meta-gradients within 3e-9)."""


DISTINCT_SHARE = 0.5
"""The trunk runs once per distinct observation where at most this share of a batch's rows are
distinct (:func:`distinct_rows`): a grid world's images and sentences repeat (of the 12,000
steps of ``metaxm bench maml``'s pixels case, about 1,500 are distinct; a sensor bank with
noise of its own never repeats, and then the rows run as they are, untouched)."""


def distinct_rows(rows: Tensor) -> tuple[Tensor, Tensor] | None:
    """The first row of each distinct value of ``rows`` (N, ...) (indices (U,)) and, per row,
    its distinct value's place among them ((N,), so ``rows[first][inverse]`` equals ``rows``),
    or None where more than :data:`DISTINCT_SHARE` of the rows are distinct.

    Rows are compared by their bytes: a 64-bit hash of each row's 8-byte words (their sum
    weighted by fixed random odd numbers) finds the candidates, and ``rows[first][inverse]`` is
    checked equal to ``rows`` exactly (a hash collision gives None, never a wrong row). Rows
    equal as bytes are one value: ``-0.0`` and ``0.0`` are two."""
    if len(rows) < 2:
        return None
    data = rows.reshape(len(rows), -1).contiguous().view(torch.uint8)
    if data.shape[1] % 8:
        data = nn.functional.pad(data, (0, 8 - data.shape[1] % 8))
    words = data.view(torch.int64)  # (N, W)
    generator = torch.Generator().manual_seed(0)  # one odd multiplier per word, fixed
    weights = torch.randint(-(2**62), 2**62, (words.shape[1],), generator=generator) * 2 + 1
    hashes = (words * weights.to(rows.device)).sum(1)  # wraps round: a 64-bit hash
    values, inverse = torch.unique(hashes, return_inverse=True)
    if len(values) > DISTINCT_SHARE * len(rows):
        return None
    index = torch.arange(len(rows), device=rows.device)
    first = torch.full_like(values, len(rows)).scatter_reduce(0, inverse, index, "amin")
    if not torch.equal(words[first][inverse], words):
        return None
    return first, inverse


def identity(obs: Tensor) -> Tensor:
    """The trunk where every part of the forward may be adapted: nothing runs outside ``vmap``."""
    return obs


@dataclass(frozen=True)
class FunctionalPolicy:
    """The policy as two pure functions: ``pd = head(params, trunk(obs))``.

    ``trunk`` is the part of the forward that no adapted parameter enters (the family's
    encoder when only the adapter and core are adapted, else nothing); it runs once over the
    whole task batch (in chunks of :data:`TRUNK_CHUNK` rows), outside ``vmap``, with the
    model's own parameters (so autograd still reaches them). ``head`` takes the adapted
    parameters and runs under ``vmap`` per task. This is exact: the encoder's features do not
    depend on the adapted parameters, so splitting the forward only changes where the encoder
    runs, not what is differentiated (it avoids batching rules for convolutions and a double
    backward through the encoder; compare ANIL, Raghu et al. 2020, which caches the body's
    features the same way).

    Attributes:
        model: the module (an :class:`~metaxm.nn.agent.Agent`, or any module whose forward is
            ``(obs, family) -> (pd, ...)`` and that has an action ``head``).
        family: routes the agent's encoder and adapter.
        trunk: ``(N, *obs_shape) -> (N, *feature_shape)``.
        head: ``(params, features (N, ...)) -> pd (N, pd_dim)``.
    """

    model: nn.Module
    family: str
    trunk: Callable[[Tensor], Tensor]
    head: Callable[[dict[str, Tensor], Tensor], Tensor]

    def features(self, obs: Tensor, lead: int = 2, mask: Tensor | None = None) -> Tensor:
        """``trunk`` over observations with ``lead`` leading batch dimensions, e.g. (n, N), in
        chunks of :data:`TRUNK_CHUNK` rows, once per distinct observation where they repeat
        (:func:`distinct_rows`; autograd sums a repeated row's gradients). With ``mask`` (the
        leading dimensions' shape), the rows it zeroes (padding, which every loss multiplies
        by 0) are not run: their features are 0."""
        if self.trunk is identity:
            return obs
        flat = obs.flatten(0, lead - 1)
        live = None if mask is None else (mask.flatten() > 0).nonzero().flatten()
        if live is not None and len(live) < len(flat):
            out = self._distinct(flat[live])
            full = out.new_zeros(len(flat), *out.shape[1:]).index_copy(0, live, out)
            return full.unflatten(0, obs.shape[:lead])
        return self._distinct(flat).unflatten(0, obs.shape[:lead])

    def _distinct(self, flat: Tensor) -> Tensor:
        distinct = distinct_rows(flat)
        if distinct is not None:
            return self._trunk(flat[distinct[0]])[distinct[1]]
        return self._trunk(flat)

    def _trunk(self, flat: Tensor) -> Tensor:
        if len(flat) > TRUNK_CHUNK:
            return torch.cat([self.trunk(chunk) for chunk in flat.split(TRUNK_CHUNK)])
        return self.trunk(flat)


def functional_policy(model: nn.Module, family: str, names: Iterable[str]) -> FunctionalPolicy:
    """Split ``model``'s policy for adapting the parameters ``names`` (see
    :class:`FunctionalPolicy`).

    A feed-forward :class:`~metaxm.nn.agent.Agent` is composed from its parts as
    ``Agent.encode`` and ``MLPCore.forward`` do, without the value head (MAML never uses it):
    the encoder is the trunk unless it is adapted. Any other module gets the identity trunk and
    ``functional_call`` of the whole model. ``tests/meta/test_maml.py`` checks the composition
    against the agent's own forward.
    """
    from metaxm.nn.agent import Agent
    from metaxm.nn.core import MLPCore

    names = list(names)
    # an agent with an instruction channel conditions z inside encode: run it whole
    plain = isinstance(model, Agent) and getattr(model, "instruction", None) is None
    if not plain or not isinstance(model.core, MLPCore):

        def whole(params: dict[str, Tensor], obs: Tensor) -> Tensor:
            return functional_call(model, params, (obs, family))[0]

        return FunctionalPolicy(model, family, identity, whole)

    encoder, tokens = model.encoders[family], model.token_encoder
    adapter, core = model.adapters[family], model.core
    prefixes = {
        "encoder": f"encoders.{family}.",
        "tokens": "token_encoder.",
        "adapter": f"adapters.{family}.",
        "pi": "core.pi.",
    }
    encoder_adapted = any(n.startswith((prefixes["encoder"], prefixes["tokens"])) for n in names)

    def encode(obs: Tensor, p: dict[str, dict[str, Tensor]]) -> Tensor:  # without the adapter
        e = functional_call(encoder, p["encoder"], (obs,))
        return e if tokens is None else functional_call(tokens, p["tokens"], e)

    def split(params: dict[str, Tensor]) -> dict[str, dict[str, Tensor]]:
        return {
            part: {k[len(pre) :]: v for k, v in params.items() if k.startswith(pre)}
            for part, pre in prefixes.items()
        }

    def head(params: dict[str, Tensor], x: Tensor) -> Tensor:
        p = split(params)
        e = encode(x, p) if encoder_adapted else x
        pd = functional_call(core.pi, p["pi"], (functional_call(adapter, p["adapter"], (e,)),))
        if core.gaussian:
            log_std = params.get("core.log_std", core.log_std)
            pd = torch.cat((pd, log_std.expand_as(pd)), -1)
        return pd

    def trunk(obs: Tensor) -> Tensor:
        return encode(obs, split({}))

    return FunctionalPolicy(model, family, identity if encoder_adapted else trunk, head)


def policy_pd(
    agent: Agent, family: str, obs: Tensor, n_tasks: int, params: dict[str, Tensor] | None
) -> Tensor:
    """The policy's distribution parameters for task-major observations (n_tasks * E, ...).

    ``params`` is None for the agent's own parameters, else a ``(n_tasks, ...)`` stack of one
    parameter subset per task, run with ``vmap`` over tasks (after the shared trunk).
    """
    if params is None:
        return agent(obs, family)[0]
    policy = functional_policy(agent, family, params)
    feats = policy.trunk(obs).unflatten(0, (n_tasks, -1))
    return vmap(policy.head)(params, feats).flatten(0, 1)


@torch.no_grad()
def collect_episodes(
    agent: Agent,
    env: TaskEnv,
    family: str,
    n_tasks: int,
    params: dict[str, Tensor] | None,
    generator: torch.Generator,
    config: MAMLConfig,
    deterministic: bool = False,
) -> Episodes:
    """Play one episode in every environment of ``env`` and compute the advantages.

    Args:
        agent: a feed-forward agent.
        env: ``n_tasks * E`` environments, task-major, with their tasks and variants set.
        family: the modality family of ``env``.
        n_tasks: the number of tasks n (``env.num_envs`` must be a multiple).
        params: ``(n_tasks, ...)`` per-task parameters of a subset, or None for the agent's own.
        generator: draws the actions.
        config: gamma, gae_lambda, baseline and baseline_reg.
        deterministic: act with the policy's mode instead of sampling.
    """
    if env.num_envs % n_tasks:
        raise ValueError(f"{env.num_envs} environments do not split into {n_tasks} tasks")
    head = agent.head
    b = env.num_envs

    def act(obs: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        pd = policy_pd(agent, family, obs, n_tasks, params)
        action = head.mode(pd) if deterministic else head.sample(pd, generator)
        return action, {"logp": head.log_prob(pd, action)}

    played = play(env, act, record=("obs", "action", "logp", "reward", "terminated", "done",
                                    "alive"))  # fmt: skip
    r = played.record  # (L, B, ...)
    steps = {"obs": r["obs"], "act": r["action"], "logp": r["logp"], "rew": r["reward"],
             "term": r["terminated"], "done": r["done"]}  # fmt: skip
    mask = r["alive"].float()  # (L, B)
    ret, success, length = played.returns[:, 0], played.success[:, 0], played.length[:, 0]
    adv, rtg = advantages(agent, family, steps, mask, n_tasks, config)
    horizon_steps = mask.shape[0]

    def task_major(x: Tensor) -> Tensor:  # (L, B, ...) -> (n, L * E, ...)
        return x.unflatten(1, (n_tasks, -1)).movedim(1, 0).flatten(1, 2)

    batch = PGBatch(
        obs=task_major(steps["obs"]),
        actions=task_major(steps["act"]),
        logprobs=task_major(steps["logp"]),
        advantages=task_major(adv),
        mask=task_major(mask),
    )
    return Episodes(
        batch=batch,
        returns=ret.view(n_tasks, -1),
        success=success.view(n_tasks, -1),
        lengths=length.view(n_tasks, -1),
        env_steps=horizon_steps * b,
        value_targets=task_major(rtg),
    )


def advantages(
    agent: Agent,
    family: str,
    steps: dict[str, Tensor],
    mask: Tensor,
    n_tasks: int,
    config: MAMLConfig,
) -> tuple[Tensor, Tensor]:
    """GAE on the configured baseline, normalised (see the module docstring); (L, B), 0 on
    padding; and the discounted returns-to-go (L, B), the value head's regression targets.

    Baselines: a per-task linear fit (``latent``, ``time``), the agent's value head (``value``,
    trained in the outer loop on these returns-to-go) or none.

    Args:
        steps: ``obs``, ``rew``, ``term``, ``done``, each (L, B, ...), time-major.
        mask: (L, B) 1 on real steps.
    """
    rew, term, done = steps["rew"], steps["term"], steps["done"]
    zeros = torch.zeros_like(rew)
    # discounted returns-to-go: GAE with V = 0 and lambda = 1, cut at the end of each episode
    rtg, _ = compute_gae(rew, zeros, zeros, term, done, config.gamma, 1.0)
    values = zeros
    if config.baseline == "value":  # the agent's own value head (before adaptation)
        obs = steps["obs"]
        values = agent(obs.flatten(0, 1), family)[1].unflatten(0, obs.shape[:2]).to(rew.dtype)
    elif config.baseline != "none":
        feats = baseline_features(agent, family, steps["obs"], config.baseline)  # (L, B, d)
        values = fit_linear_baseline(feats, rtg, mask, n_tasks, config.baseline_reg)
    # V(s_{t+1}) inside an episode; nothing after its end (finite horizon, no bootstrap)
    following = torch.cat((values[1:], torch.zeros_like(values[:1])))
    next_values = torch.where(done, 0.0, following)
    adv, _ = compute_gae(rew, values, next_values, term, done, config.gamma, config.gae_lambda)
    if config.normalize == "none":
        return adv * mask, rtg
    return normalize_per_task(adv, mask, n_tasks if config.normalize == "task" else 1), rtg


def baseline_features(agent: Agent, family: str, obs: Tensor, kind: str) -> Tensor:
    """rllab's linear-baseline features, on the agent's latent: (L, B, d).

    ``latent``: ``[z, z^2, tau, tau^2, tau^3, 1]``; ``time``: ``[tau, tau^2, tau^3, 1]``.
    """
    length, b = obs.shape[:2]
    tau = torch.arange(length, device=obs.device, dtype=torch.float32) / length
    tau = tau[:, None, None].expand(length, b, 1)
    parts = [tau, tau**2, tau**3, torch.ones_like(tau)]
    if kind == "latent":
        z = agent.encode(obs.flatten(0, 1), family).unflatten(0, (length, b)).float()
        parts = [z, z**2, *parts]
    return torch.cat(parts, -1)


def fit_linear_baseline(
    feats: Tensor, targets: Tensor, mask: Tensor, n_tasks: int, reg: float
) -> Tensor:
    """Ridge regression of ``targets`` on ``feats``, one fit per task over its masked steps.

    Solves ``(X^T M X + reg * n_valid * I) w = X^T M y`` per task (batched, no loop) and returns
    the fitted values ``X w``, (L, B).

    Args:
        feats: (L, B, d).
        targets: (L, B).
        mask: (L, B).
        n_tasks: tasks are the blocks of B / n_tasks consecutive columns.
        reg: the ridge penalty per valid sample.
    """
    length, b, d = feats.shape
    x = feats.double().unflatten(1, (n_tasks, -1)).movedim(1, 0).flatten(1, 2)  # (n, N, d)
    y = targets.double().unflatten(1, (n_tasks, -1)).movedim(1, 0).flatten(1, 2)  # (n, N)
    m = mask.double().unflatten(1, (n_tasks, -1)).movedim(1, 0).flatten(1, 2)
    xm = x * m[..., None]
    eye = torch.eye(d, dtype=x.dtype, device=x.device)
    gram = xm.transpose(1, 2) @ x + (reg * m.sum(1).clamp(min=1.0))[:, None, None] * eye
    w = torch.linalg.solve(gram, (xm.transpose(1, 2) @ y[..., None]))  # (n, d, 1)
    fitted = (x @ w).squeeze(-1)  # (n, N)
    out = fitted.unflatten(1, (length, -1)).movedim(0, 1).flatten(1, 2)  # (L, B)
    return out.to(targets.dtype)


def normalize_per_task(adv: Tensor, mask: Tensor, n_tasks: int) -> Tensor:
    """(adv - mean) / (std + 1e-8) over each task's valid steps; 0 on padding. (L, B).

    ``n_tasks = 1`` normalises over the whole batch instead."""
    a = adv.unflatten(1, (n_tasks, -1))  # (L, n, E)
    m = mask.unflatten(1, (n_tasks, -1))
    count = m.sum((0, 2), keepdim=True).clamp(min=1.0)
    mean = (a * m).sum((0, 2), keepdim=True) / count
    var = ((a - mean).pow(2) * m).sum((0, 2), keepdim=True) / count
    return ((a - mean) / (var.sqrt() + 1e-8) * m).flatten(1, 2)
