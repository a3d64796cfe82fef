"""Stepping a sensory encoder one step at a time: what its all-at-once windows must equal
(``tests/nn/test_sensory.py``, ``tests/nn/test_symbol_channels.py``)."""

from __future__ import annotations

import torch
from torch import Tensor

from metaxm.nn.sensory import SensoryChannels, SensoryEncoder


def stepped(
    encoder: SensoryEncoder,
    channels: SensoryChannels,
    obs: Tensor,
    actions: Tensor,
    reset: Tensor | None = None,
    memory: Tensor | None = None,
    first: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """The latents of every step of ``obs`` (T, B, ...) and the memory after the last, by
    stepping the encoder from ``memory`` (zeros in ``actions``' dtype by default), zeroing it
    before each step where ``reset`` (T, B) says a trial starts; ``first`` (T, B), the done
    flags, for an encoder with trial statistics."""
    if memory is None:
        memory = actions.new_zeros(obs.shape[1], channels.memory_dim)
    out = []
    for t in range(obs.shape[0]):
        if reset is not None:
            memory = torch.where(reset[t, :, None], 0.0, memory)
        done = None if first is None else first[t]
        z, memory = encoder.step(channels, obs[t], actions[t], memory, done)
        out.append(z)
    return torch.stack(out), memory
