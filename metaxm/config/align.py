"""AlignConfig: the ``align:`` section of a spec (pretraining, auxiliary loss, few-shot fits).

One section serves the three uses of cross-modal alignment (see :mod:`metaxm.align`):

* ``metaxm pretrain``: ``loss``, ``temperature``, ``batch_size``, ``views``, ``lr``,
  ``pretrain_updates`` (and the spec's ``train.log_interval`` / ``checkpoint_interval``);
* the auxiliary loss of PPO, MAML and RL^2: ``weight`` (0 turns it off) with the same loss
  settings;
* few-shot fitting of a new modality's adapter: the ``fit_*`` fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from metaxm.config import bounded

AlignLossName = Literal["infonce", "vae"]


@dataclass(frozen=True)
class AlignConfig:
    """Cross-modal alignment settings.

    Attributes:
        weight: weight of the alignment loss as an auxiliary term in PPO, MAML and RL^2
            training; 0 (the default) turns it off and leaves those trainers unchanged.
        loss: ``infonce`` (symmetric InfoNCE between the latents of paired renders) or ``vae``
            (a VAE whose posterior mean is the shared latent, trained to reconstruct every
            view of a state from the latent of any one view).
        temperature: the InfoNCE temperature (the initial one when ``learn_temperature``).
        learn_temperature: learn the temperature as a parameter, as CLIP does.
        batch_size: world states per paired batch.
        views: modalities each state is rendered in per batch (>= 2; 0 renders it in every
            training family). Each view is one family with a training variant drawn per state.
        random_steps: random actions taken from the random reset states before rendering, for
            worlds whose reset states do not cover the state space.
        vae_beta: the weight of the KL term of the ``vae`` loss.
        pretrain_adapters: what pretraining trains between the encoders and the latent:
            ``variant``, one adapter per training variant (:mod:`metaxm.align.variants`), so
            the encoders need not tell variants apart from one observation; ``family``, the
            agent's family adapters shared by all variants (variant-invariant encoders).
        pretrain_variants: variants per training family that pretraining aligns besides the
            training variants, drawn outside every split (:func:`metaxm.align.pretrain.
            pretrain_pool`); 0: the training variants only.
        lr: Adam learning rate of ``metaxm pretrain`` (and of the loss module's own parameters
            in the auxiliary use).
        anneal_lr: decay the pretraining learning rate linearly to 0 over the run.
        max_grad_norm: global gradient-norm clip of pretraining and of the auxiliary step.
        pretrain_updates: gradient steps of ``metaxm pretrain``.
        eval_states: random states the representation metrics are computed on.
        eval_interval: pretraining updates between two retrieval evaluations written to
            ``metrics.jsonl`` (0: only at the end).
        fit_iters: gradient steps of a few-shot adapter fit.
        fit_lr: Adam learning rate of a few-shot fit.
        fit_mse: weight of the squared distance to the source latent in a few-shot fit
            (InfoNCE only fixes directions; the policy reads the latent itself).
        fit_policy: weight of the policy's KL divergence, KL(pi(z_s) || pi(z_t)), in a few-shot
            fit: what the frozen policy does on the source latent is what it should do on the
            target latent, which weighs the latent's directions by how much they move the
            policy (0: latents only). Feed-forward agents only: a recurrent core's policy
            depends on the trial so far, and the term is left out for it.
        fit_prior: weight of the squared distance of the fitted parameters to where the fit
            started (the agent's), divided by the number of paired states: a prior that holds
            a fit on one short episode near the starting adapter and fades as pairs accumulate.
        fit_envs: parallel environments the paired steps of a few-shot fit are collected in.
        explore: while the few-shot fits (``align``, ``metafit``, ``selffit``, and their
            meta-training) collect their k episodes, the probability of a uniformly random
            action in place of the policy's at each step. In a new modality the unadapted
            policy tends to repeat one action, so its episodes show the fit few states; a random
            walk shows more (:func:`metaxm.nn.distributions.explore`).
        fit_subset: what a few-shot fit changes: ``adapter``, ``adapter+encoder``, or ``auto``
            (the adapter for a variant of a training family, whose encoder already reads the
            family; adapter and encoder for a family never trained on).
        translate_iters: Adam steps of a ``translate`` fit (:mod:`metaxm.align.translate`:
            a translator from the new modality's observations to the source modality's), for
            the translators that learn (a vector's MLP, the keypoint and frame readers); the
            shipped families other than ``vector`` are translated in closed form.
        translate_lr: the Adam learning rate of a ``translate`` fit.
        translate_width: the hidden width of a learned translator's MLPs.
        init_from: a ``metaxm pretrain`` run directory (or checkpoint file) whose encoders and
            adapters initialise the agent of a training run (PPO, MAML, RL^2); null: none.
        meta_steps: inner gradient steps of the meta-learned paired fit (``algo: metafit``,
            :mod:`metaxm.align.metafit`), in meta-training and when it adapts.
        meta_inner_lr: the initial per-parameter inner learning rate (Meta-SGD's alpha).
        meta_lr: Adam learning rate of the outer loop (theta_0 and alpha).
        meta_batch: new variants per training family in one meta-update.
        meta_episodes: the support budgets k a meta-training task draws from (whole episodes
            of the source agent in the variant, as the evaluator's fits get).
        meta_query_episodes: episodes of the same variant the outer loss is measured on.
        meta_first_order: drop the second-order terms of the meta-gradient.
        prior_log_prec: where the closed-form paired fit's prior (``algo: priorfit``,
            :mod:`metaxm.align.priorfit`) starts: every entry's log precision (its mean
            starts at 0), and where its prior for any family without its own starts (each
            source channel's log precision, set on each of D features plus ``log D``). -3,
            chosen on validation variants (``docs/transfer-studies.md`` section 21), is close
            to least squares where the pairs pin an entry.
    """

    weight: float = bounded(0.0, 0, 10000.0)
    loss: AlignLossName = "infonce"
    temperature: float = bounded(0.1, 0.0001, 1000.0)
    learn_temperature: bool = True
    batch_size: int = bounded(128, 1, 65536)
    views: int = bounded(0, 0, 64)
    random_steps: int = bounded(0, 0, 10**6)
    vae_beta: float = bounded(1e-3, 0, 10000.0)
    pretrain_adapters: Literal["variant", "family"] = "variant"
    pretrain_variants: int = bounded(0, 0, 10000)
    lr: float = bounded(3e-3, 1e-10, 1)
    anneal_lr: bool = True
    max_grad_norm: float = bounded(1.0, 0, 1000000.0)
    pretrain_updates: int = bounded(2500, 0, 10**7)
    eval_states: int = bounded(256, 1, 10**6)
    eval_interval: int = bounded(250, 0, 10**7)
    fit_iters: int = bounded(300, 0, 10**6)
    fit_lr: float = bounded(3e-3, 1e-10, 1)
    fit_mse: float = bounded(1.0, 0, 1000000.0)
    fit_policy: float = bounded(0.0, 0, 1000000.0)
    fit_prior: float = bounded(0.0, 0, 1000000.0)
    fit_envs: int = bounded(8, 1, 4096)
    explore: float = bounded(0.0, 0, 1)
    fit_subset: Literal["auto", "adapter", "adapter+encoder"] = "auto"
    translate_iters: int = bounded(300, 0, 10**6)
    translate_lr: float = bounded(0.01, 1e-10, 1)
    translate_width: int = bounded(64, 4, 4096)
    init_from: str | None = None
    meta_steps: int = bounded(5, 0, 1000)
    meta_inner_lr: float = bounded(0.1, 0, 100)
    meta_lr: float = bounded(1e-3, 1e-10, 1)
    meta_batch: int = bounded(2, 1, 4096)
    meta_episodes: tuple[int, ...] = bounded((1, 2, 4), 1, 4096)
    meta_query_episodes: int = bounded(8, 1, 10000)
    meta_first_order: bool = False
    prior_log_prec: float = bounded(-3.0, -30.0, 30.0)

    def __post_init__(self) -> None:
        if self.meta_steps < 1 or self.meta_batch < 1 or self.meta_query_episodes < 1:
            raise ValueError("meta_steps, meta_batch and meta_query_episodes must be >= 1")
        if not self.meta_episodes or min(self.meta_episodes) < 1:
            raise ValueError(f"meta_episodes must be budgets >= 1, got {self.meta_episodes}")
        if not (self.meta_inner_lr > 0 and self.meta_lr > 0):
            raise ValueError("meta_inner_lr and meta_lr must be > 0")
        if min(self.weight, self.vae_beta, self.fit_mse, self.fit_prior, self.fit_policy) < 0:
            raise ValueError("weight, vae_beta, fit_mse, fit_policy and fit_prior must be >= 0")
        if self.temperature <= 0 or self.lr <= 0 or self.fit_lr <= 0 or self.max_grad_norm <= 0:
            raise ValueError("temperature, lr, fit_lr and max_grad_norm must be > 0")
        if self.batch_size < 2 or self.eval_states < 2:
            raise ValueError(
                f"batch_size and eval_states must be >= 2 (InfoNCE needs negatives), got "
                f"{self.batch_size} and {self.eval_states}"
            )
        if self.views == 1 or self.views < 0:
            raise ValueError(f"views must be 0 (all families) or >= 2, got {self.views}")
        for name in (
            "random_steps",
            "pretrain_updates",
            "eval_interval",
            "fit_iters",
            "pretrain_variants",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.fit_envs < 1:
            raise ValueError(f"fit_envs must be >= 1, got {self.fit_envs}")
