"""PPOConfig: the ``ppo:`` section of a spec (the hyper-parameters of :mod:`metaxm.rl.ppo`)."""

from __future__ import annotations

from dataclasses import dataclass

from metaxm.config import bounded


@dataclass(frozen=True)
class PPOConfig:
    """PPO hyper-parameters (the ``ppo:`` section of a spec).

    Attributes:
        lr: Adam learning rate at the first update.
        anneal_lr: decay the learning rate linearly to 0 over the run.
        adam_eps: Adam's epsilon (1e-5 as in the reference implementation).
        num_steps: rollout length T per environment per update.
        gamma: discount factor.
        gae_lambda: the GAE lambda.
        update_epochs: passes over each rollout.
        num_minibatches: minibatches per pass (each takes 1/num_minibatches of every family).
        clip_coef: the surrogate's clipping epsilon.
        clip_vloss: clip the value loss around the rollout's values, as the reference code does.
        vf_coef: weight of the value loss.
        ent_coef: weight of the entropy bonus.
        max_grad_norm: global gradient-norm clip.
        norm_adv: normalise advantages within each minibatch (and family).
        target_kl: stop the epochs of an update early once the approximate KL exceeds this;
            null never stops early.
    """

    lr: float = bounded(2.5e-4, 1e-10, 1)
    anneal_lr: bool = True
    adam_eps: float = bounded(1e-5, 1e-12, 1)
    num_steps: int = bounded(128, 1, 100000)
    gamma: float = bounded(0.99, 0, 1)
    gae_lambda: float = bounded(0.95, 0, 1)
    update_epochs: int = bounded(4, 1, 1000)
    num_minibatches: int = bounded(4, 1, 65536)
    clip_coef: float = bounded(0.2, 0, 10)
    clip_vloss: bool = True
    vf_coef: float = bounded(0.5, 0, 1000)
    ent_coef: float = bounded(0.01, 0, 100)
    max_grad_norm: float = bounded(0.5, 0, 1000000.0)
    norm_adv: bool = True
    target_kl: float | None = bounded(None, 0, 100)

    def __post_init__(self) -> None:
        if self.lr <= 0 or self.adam_eps <= 0:
            raise ValueError(f"lr and adam_eps must be > 0, got {self.lr} and {self.adam_eps}")
        for name in ("num_steps", "update_epochs", "num_minibatches"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.gamma <= 1.0 or not 0.0 <= self.gae_lambda <= 1.0:
            raise ValueError("gamma and gae_lambda must lie in [0, 1]")
        if self.clip_coef <= 0 or self.max_grad_norm <= 0:
            raise ValueError("clip_coef and max_grad_norm must be > 0")
        if self.vf_coef < 0 or self.ent_coef < 0:
            raise ValueError("vf_coef and ent_coef must be >= 0")
        if self.target_kl is not None and self.target_kl <= 0:
            raise ValueError(f"target_kl must be > 0 or null, got {self.target_kl}")
