"""The ``device`` setting: where worlds, renders, agents and training live.

Every tensor metaxm creates in a world, a render, an agent, a trainer or the evaluator is made
on the configured device (or made on the CPU from a seeded CPU generator, such as a modality
variant's parameters, and moved there once); no device is hard-coded. This module turns the
setting into a ``torch.device`` and refuses one this machine does not have, in one line,
before any work starts.
"""

from __future__ import annotations

import torch

from metaxm.errors import ConfigError


def resolve_device(name: str | torch.device) -> torch.device:
    """``name`` as a ``torch.device``, checked against this machine.

    Raises:
        ConfigError: not a device torch knows, ``cuda`` without a usable CUDA device, a CUDA
            index beyond the devices present, or ``mps`` without MPS.
    """
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as err:
        raise ConfigError(
            f"device: {name!r} is not a torch device ({err}); use cpu or cuda"
        ) from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"device: {name!r} but CUDA is not available on this machine (torch "
                f"{torch.__version__}, CUDA build {torch.version.cuda or 'none'}); use device: cpu"
            )
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ConfigError(f"device: {name!r} but this machine has {count} CUDA device(s)")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device: {name!r} but MPS is not available; use device: cpu")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"device: {name!r}: metaxm runs on cpu or cuda")
    return device
