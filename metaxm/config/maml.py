"""MAMLConfig: the ``maml:`` section of a spec (the hyper-parameters of :mod:`metaxm.meta.maml`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from metaxm.config import bounded

AdaptSubset = Literal["adapter", "adapter+encoder", "all"]
"""What the inner loop adapts: the family's adapter, adapter and encoder, or all it uses."""

InnerObjective = Literal["reinforce", "lvc"]
"""The inner policy-gradient loss: REINFORCE's, or ProMP's low-variance-curvature one."""


@dataclass(frozen=True)
class MAMLConfig:
    """MAML hyper-parameters (the ``maml:`` section of a spec).

    Attributes:
        meta_batch: tasks per meta-iteration, dealt evenly over the training families.
        support_episodes: episodes per task per inner step (the inner loop's data).
        query_episodes: episodes per task collected after adaptation (the outer loss's data).
        inner_steps: policy-gradient steps of the inner loop (each on fresh support episodes).
        inner_lr: the inner step size alpha (Meta-SGD's initial value with ``meta_sgd``).
        adapt: the subset the inner loop changes: ``adapter`` (the family's adapter),
            ``adapter+encoder`` or ``all`` (every parameter the family's forward uses).
        first_order: drop the second-order terms of the meta-gradient (FOMAML).
        inner_objective: the inner loss: ``reinforce`` (``log pi`` times the advantage) or
            ``lvc``, ProMP's low-variance-curvature objective (the likelihood ratio to the
            policy that played the support episodes times the advantage; Rothfuss et al.
            2019). Both give the same inner step; ``lvc``'s meta-gradient also credits the
            start with the support episodes it plays (:func:`metaxm.meta.maml.inner_loss`).
        vectorize: run the outer loss's tasks under one ``vmap`` (true) or in a Python loop
            (false). The two give the same meta-gradient up to float summation order; the
            loop is faster where each task's batch is large and every weight is adapted
            (PointNav: ``metaxm bench maml``, ``docs/maml.md``).
        meta_sgd: learn a per-parameter inner learning rate in the outer loop (Meta-SGD).
        variants: what each meta-training task is shown through: a variant of the ``split``
            (the spec's ``train`` split), or a ``fresh`` one no split holds, drawn anew for
            every task, so the adaptation is meta-learned on variants as new as a held-out one.
        episode_tasks: ``task``: every support and query episode of a meta-training task plays
            the task's world parameters (its goal), MAML's tasks; ``new``: every episode draws
            its own (the variant kept), as the evaluator's k episodes and measured ones do, so
            what the inner step can carry to the query is a reading of the modality, not the
            goal. :func:`evaluate_maml` follows it.
        baseline: the inner and outer advantages' baseline: a linear fit per task on
            ``latent`` (rllab's features on the agent's latent) or ``time`` (a time
            polynomial) features, the agent's ``value`` head (trained in the outer loop with
            ``vf_coef``), or ``none`` (normalised returns).
        baseline_reg: the baseline's ridge penalty per valid step.
        normalize: normalise the advantages within each ``task`` (pytorch-maml-rl), over the
            whole ``batch`` of tasks (better for sparse rewards), or ``none``.
        gamma: discount factor.
        gae_lambda: GAE lambda on the baseline (1: Monte-Carlo returns minus baseline).
        outer_lr: Adam learning rate of the meta-update.
        outer_epochs: PPO epochs (Adam steps) per meta-iteration on the same episodes.
        clip_coef: the outer surrogate's clipping epsilon.
        ent_coef: weight of the post-adaptation entropy bonus in the outer loss.
        vf_coef: weight of the value head's regression loss on the query episodes'
            returns-to-go in the outer loss (only with ``baseline: value``; the value head is
            not adapted).
        max_grad_norm: global norm clip of the meta-gradient.
        target_kl: stop the outer epochs once the mean approximate KL of the adapted policies
            exceeds this; null never stops early.
    """

    meta_batch: int = bounded(20, 1, 4096)
    support_episodes: int = bounded(20, 1, 10000)
    query_episodes: int = bounded(20, 1, 10000)
    inner_steps: int = bounded(1, 1, 100)
    inner_lr: float = bounded(0.1, 0, 100)
    adapt: AdaptSubset = "adapter"
    first_order: bool = False
    inner_objective: InnerObjective = "reinforce"
    vectorize: bool = True
    meta_sgd: bool = False
    variants: Literal["split", "fresh"] = "split"
    episode_tasks: Literal["task", "new"] = "task"
    baseline: Literal["latent", "time", "value", "none"] = "latent"
    baseline_reg: float = bounded(1e-2, 0, 1000000.0)
    normalize: Literal["task", "batch", "none"] = "task"
    gamma: float = bounded(0.99, 0, 1)
    gae_lambda: float = bounded(1.0, 0, 1)
    outer_lr: float = bounded(1e-3, 1e-10, 1)
    outer_epochs: int = bounded(4, 1, 1000)
    clip_coef: float = bounded(0.2, 0, 10)
    ent_coef: float = bounded(0.0, 0, 100)
    vf_coef: float = bounded(0.5, 0, 1000)
    max_grad_norm: float = bounded(1.0, 0, 1000000.0)
    target_kl: float | None = bounded(None, 0, 100)

    def __post_init__(self) -> None:
        for name in ("meta_batch", "support_episodes", "query_episodes", "outer_epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.inner_steps < 0:
            raise ValueError(f"inner_steps must be >= 0, got {self.inner_steps}")
        if self.outer_lr <= 0 or self.clip_coef <= 0 or self.max_grad_norm <= 0:
            raise ValueError("outer_lr, clip_coef and max_grad_norm must be > 0")
        if not 0.0 <= self.gamma <= 1.0 or not 0.0 <= self.gae_lambda <= 1.0:
            raise ValueError("gamma and gae_lambda must lie in [0, 1]")
        if self.baseline_reg < 0 or self.ent_coef < 0 or self.vf_coef < 0:
            raise ValueError("baseline_reg, ent_coef and vf_coef must be >= 0")
        if self.target_kl is not None and self.target_kl <= 0:
            raise ValueError(f"target_kl must be > 0 or null, got {self.target_kl}")
