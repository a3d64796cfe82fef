"""A multimodal VAE with one shared latent: the ``loss: vae`` option of alignment.

Each family's adapted latent z is the *mean* of a Gaussian posterior q(s | x); a small head per
family gives its log-variance. A sample from the posterior of any one view must reconstruct the
observations of *every* view of the same state, through one decoder per family. Decoding family
b from a latent inferred from family a is what makes the latent shared: decoder b cannot tell
which family the latent came from, so each family's encoder must put a state where the others
do. This is the cross-modal reconstruction of MMVAE (Shi et al. 2019, "Variational
Mixture-of-Experts Autoencoders for Multi-Modal Deep Generative Models", arXiv:1911.03393),
with a beta-weighted KL to N(0, I) (Higgins et al. 2017, beta-VAE).

Departures from MMVAE: the loss is the plain beta-VAE bound per (source view, target view)
pair, averaged over pairs, instead of the importance-weighted mixture bound; reconstruction is
a mean over observation elements (squared error on inputs scaled to O(1) for boxes,
cross-entropy per token for token ids) and the KL a mean over latent dimensions, so families of
very different sizes weigh alike; decoders are not told the variant, so they reconstruct the
variant-averaged observation of a state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from metaxm.align.pairs import PairedBatch
from metaxm.nn.layers import init_weights


class ObservationDecoder(nn.Module):
    """latent -> the observation of one family: a Gaussian mean (boxes) or token logits.

    Args:
        space: the family's observation space (``Box`` or ``MultiDiscrete``).
        latent_dim: the latent width.
        hidden: the hidden width.
    """

    def __init__(self, space: gym.Space, latent_dim: int, hidden: int = 128) -> None:
        super().__init__()
        if isinstance(space, gym.spaces.MultiDiscrete):
            nvec = np.asarray(space.nvec).ravel()
            self.kind, self.length, self.vocab = "tokens", int(nvec.size), int(nvec.max())
            out = self.length * self.vocab
        elif isinstance(space, gym.spaces.Box):
            self.kind = "box"
            self.shape = tuple(space.shape)
            high = np.abs(np.concatenate([np.ravel(space.low), np.ravel(space.high)]))
            finite = high[np.isfinite(high)]
            self.scale = 1.0 / float(finite.max()) if finite.size and finite.max() > 0 else 1.0
            out = int(np.prod(space.shape))
        else:
            raise ValueError(f"the VAE decodes Box or MultiDiscrete observations, got {space}")
        self.net = nn.Sequential(
            nn.Linear(latent_dim, hidden), nn.ELU(), nn.Linear(hidden, hidden), nn.ELU(),
            nn.Linear(hidden, out),
        )  # fmt: skip

    def nll(self, s: Tensor, obs: Tensor) -> Tensor:
        """Mean reconstruction loss of ``obs`` (B, ...) from latents ``s`` (B, d)."""
        out = self.net(s)
        if self.kind == "tokens":
            logits = out.unflatten(1, (self.length, self.vocab))  # (B, L, V)
            return F.cross_entropy(logits.flatten(0, 1), obs.long().flatten())
        target = obs.flatten(1).float() * self.scale
        return 0.5 * (out - target).pow(2).mean()


class SharedLatentVAE(nn.Module):
    """Log-variance heads and decoders for every family of an agent (see the module).

    Args:
        spaces: ``{family: observation space}`` (``agent.observation_spaces``).
        latent_dim: the agent's latent width.
        beta: the weight of the KL term.
        hidden: the decoders' hidden width.
        seed: seeds the weights and the posterior samples.
    """

    def __init__(
        self,
        spaces: Mapping[str, gym.Space],
        latent_dim: int,
        beta: float = 1e-3,
        hidden: int = 128,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.beta = beta
        with torch.random.fork_rng(devices=[]):
            self.log_var = nn.ModuleDict({f: nn.Linear(latent_dim, latent_dim) for f in spaces})
            self.decoders = nn.ModuleDict(
                {f: ObservationDecoder(s, latent_dim, hidden) for f, s in spaces.items()}
            )
        g = torch.Generator().manual_seed(seed)
        init_weights(self, g)
        for head in self.log_var.values():  # start with a small variance, e^-4
            nn.init.zeros_(head.weight)
            nn.init.constant_(head.bias, -4.0)
        self.noise = torch.Generator().manual_seed(seed + 1)

    def forward(
        self, latents: Sequence[Tensor], batch: PairedBatch
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """The loss: mean over (source view a, target view b) of
        ``recon(x_b | s ~ q(. | x_a)) + beta * KL(q(. | x_a) || N(0, I))``."""
        recon, kl = [], []
        for mu, fa in zip(latents, batch.families):
            log_var = self.log_var[fa](mu).clamp(-10.0, 4.0)
            eps = torch.randn(mu.shape, generator=self._noise(mu.device), device=mu.device)
            s = mu + eps * (0.5 * log_var).exp()
            kl.append(0.5 * (mu.pow(2) + log_var.exp() - 1.0 - log_var).mean())
            for obs, fb in zip(batch.obs, batch.families):
                recon.append(self.decoders[fb].nll(s, obs))
        rec = torch.stack(recon).mean()
        kld = torch.stack(kl).mean()
        return rec + self.beta * kld, {"vae_recon": rec.detach(), "vae_kl": kld.detach()}

    def get_extra_state(self) -> dict[str, Tensor]:
        """The sampling generator's state travels with the weights (exact resume)."""
        return {"noise": self.noise.get_state()}

    def set_extra_state(self, state: dict[str, Tensor]) -> None:
        self.noise.set_state(state["noise"])

    def _noise(self, device: torch.device) -> torch.Generator:
        if self.noise.device != device:
            self.noise = torch.Generator(device).manual_seed(int(self.noise.initial_seed()))
        return self.noise
