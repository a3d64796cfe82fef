"""Action distributions as pure functions of a parameter tensor ``pd``.

The agent returns the distribution's parameters as one tensor (logits for a categorical policy;
mean and log-std side by side for a diagonal Gaussian) instead of a ``torch.distributions``
object, so its forward stays a plain tensor function that ``torch.func`` transforms can vmap and
differentiate. An :class:`ActionHead` holds no parameters; it knows how to sample, score and
summarise ``pd``. Sampling draws from an explicit ``torch.Generator``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import gymnasium as gym
import torch
from torch import Tensor
from torch.nn import functional as F


class ActionHead(ABC):
    """Sampling, log-probabilities and entropy for one kind of action space.

    Attributes:
        action_dim: the width of an action (1 for a discrete action, stored as a scalar).
        pd_dim: the width of ``pd``.
        encoding_dim: the width of :meth:`encode` (the previous action fed to a recurrent core).
    """

    action_dim: int
    pd_dim: int
    encoding_dim: int

    @abstractmethod
    def sample(self, pd: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Draw one action per row of ``pd`` (..., pd_dim)."""

    @abstractmethod
    def mode(self, pd: Tensor) -> Tensor:
        """The most likely action (the deterministic policy)."""

    @abstractmethod
    def uniform(
        self,
        rows: int,
        generator: torch.Generator | None = None,
        device: torch.device | None = None,
    ) -> Tensor:
        """``rows`` actions drawn uniformly from the action space (a random walk's)."""

    @abstractmethod
    def log_prob(self, pd: Tensor, action: Tensor) -> Tensor:
        """log pi(action), shape ``pd.shape[:-1]``."""

    @abstractmethod
    def entropy(self, pd: Tensor) -> Tensor:
        """The entropy of each distribution, shape ``pd.shape[:-1]``."""

    @abstractmethod
    def encode(self, action: Tensor) -> Tensor:
        """A float encoding of ``action`` (..., encoding_dim), e.g. one-hot for discrete."""

    @abstractmethod
    def kl(self, p: Tensor, q: Tensor) -> Tensor:
        """KL(pi_p || pi_q) per row, (...): how far the policy ``q`` acts from ``p``."""


class CategoricalHead(ActionHead):
    """A categorical policy over ``n`` actions; ``pd`` are the logits (..., n)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.action_dim = 1
        self.pd_dim = n
        self.encoding_dim = n

    def sample(self, pd: Tensor, generator: torch.Generator | None = None) -> Tensor:
        # Gumbel-max: argmax(logits + Gumbel noise) is a sample of softmax(logits)
        u = torch.rand(pd.shape, generator=generator, device=pd.device).clamp_(1e-20, 1.0)
        return (pd - (-u.log()).log()).argmax(-1)

    def mode(self, pd: Tensor) -> Tensor:
        return pd.argmax(-1)

    def uniform(self, rows, generator=None, device=None):  # noqa: D102
        return torch.randint(0, self.n, (rows,), generator=generator, device=device)

    def log_prob(self, pd: Tensor, action: Tensor) -> Tensor:
        return F.log_softmax(pd, -1).gather(-1, action.long().unsqueeze(-1)).squeeze(-1)

    def entropy(self, pd: Tensor) -> Tensor:
        logp = F.log_softmax(pd, -1)
        return -(logp.exp() * logp).sum(-1)

    def encode(self, action: Tensor) -> Tensor:
        return F.one_hot(action.long(), self.n).float()

    def kl(self, p: Tensor, q: Tensor) -> Tensor:
        logp, logq = F.log_softmax(p, -1), F.log_softmax(q, -1)
        return (logp.exp() * (logp - logq)).sum(-1)


class GaussianHead(ActionHead):
    """A diagonal Gaussian over ``dim``-dimensional actions; ``pd`` = cat(mean, log_std).

    ``pd`` describes the action in units of the action bound (``action / scale``), so that a
    network's O(1) outputs and an initial log-std mean the same in every world; :meth:`sample`
    and :meth:`mode` return actions in the world's units, and :meth:`log_prob` and
    :meth:`entropy` are those of the normalised action (they differ from the world-unit
    density by the constant ``dim * log(scale)``, which no gradient or probability ratio sees).
    Actions are sampled unbounded and the world clips them, as in the PPO paper's MuJoCo set-up
    (Schulman et al. 2017); log-probabilities are of the unclipped sample.

    Args:
        dim: the action width.
        scale: the action bound.
    """

    def __init__(self, dim: int, scale: float = 1.0) -> None:
        self.dim = dim
        self.scale = scale
        self.action_dim = dim
        self.pd_dim = 2 * dim
        self.encoding_dim = dim

    def sample(self, pd: Tensor, generator: torch.Generator | None = None) -> Tensor:
        mean, log_std = pd.chunk(2, -1)
        noise = torch.randn(mean.shape, generator=generator, device=pd.device)
        return (mean + log_std.exp() * noise) * self.scale

    def mode(self, pd: Tensor) -> Tensor:
        return pd.chunk(2, -1)[0] * self.scale

    def uniform(self, rows, generator=None, device=None):  # noqa: D102
        u = torch.rand(rows, self.dim, generator=generator, device=device)
        return (u * 2.0 - 1.0) * self.scale

    def log_prob(self, pd: Tensor, action: Tensor) -> Tensor:
        mean, log_std = pd.chunk(2, -1)
        z = (action / self.scale - mean) / log_std.exp()
        return (-0.5 * z.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)

    def entropy(self, pd: Tensor) -> Tensor:
        log_std = pd.chunk(2, -1)[1]
        return (log_std + 0.5 * math.log(2 * math.pi * math.e)).sum(-1)

    def encode(self, action: Tensor) -> Tensor:
        return action.float() / self.scale

    def kl(self, p: Tensor, q: Tensor) -> Tensor:
        (mp, lp), (mq, lq) = p.chunk(2, -1), q.chunk(2, -1)
        ratio = ((mp - mq).pow(2) + (2 * lp).exp()) / (2 * (2 * lq).exp())
        return (lq - lp + ratio - 0.5).sum(-1)


def action_head(space: gym.Space) -> ActionHead:
    """The head for a ``Discrete`` (categorical) or 1-D ``Box`` (Gaussian) action space."""
    if isinstance(space, gym.spaces.Discrete):
        return CategoricalHead(int(space.n))
    if isinstance(space, gym.spaces.Box) and len(space.shape) == 1:
        bound = float(abs(space.high).max())
        return GaussianHead(int(space.shape[0]), bound if bound > 0 else 1.0)
    raise ValueError(f"no policy head for action space {space}: use Discrete or a 1-D Box")


def explore(
    head: ActionHead, action: Tensor, rate: float, generator: torch.Generator | None = None
) -> Tensor:
    """``action`` (B, ...) with each row replaced, with probability ``rate``, by a uniformly
    random action (:meth:`ActionHead.uniform`). ``rate`` 0 returns ``action`` and draws
    nothing, so a caller's random stream is the same as without it."""
    if rate <= 0:
        return action
    rows = action.shape[0]
    swap = torch.rand(rows, generator=generator, device=action.device) < rate
    other = head.uniform(rows, generator, action.device).to(action.dtype)
    return torch.where(swap.view(rows, *[1] * (action.dim() - 1)), other, action)
