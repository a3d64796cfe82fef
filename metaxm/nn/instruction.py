"""The instruction channel of the agent: instruction token ids -> an embedding -> FiLM on z.

An agent built for a world that gives instructions (``SceneInfo.instruction``) owns an
:class:`InstructionConditioner` as ``agent.instruction``. ``Agent.encode`` splits the instruction
ids off the observation (:func:`metaxm.envs.instructions.split_instruction`), computes the
family's adapted latent ``z`` as before, and returns ``z * (1 + gamma(i)) + beta(i)``: FiLM
(Perez et al. 2018) by the instruction embedding ``i``. The latent keeps its width, so the core,
MAML's parameter subsets and RL^2's GRU are unchanged; agents of other worlds have no
instruction channel and no ``instruction.*`` parameters.

Two encoders (``agent.instruction``):

- ``learned``: :class:`LearnedInstructionEncoder`, word embeddings averaged over the non-pad
  tokens, then an MLP, trained with the policy. Words it never saw in training keep their
  random initial embeddings.
- ``minilm``: :class:`PretrainedInstructionEncoder`, the frozen all-MiniLM-L6-v2 sentence
  embedding (:mod:`metaxm.nn.sentence`) followed by a trained linear layer. Every sentence the
  world can give is embedded once when the agent is built (a table indexed by the ids, so the
  forward is tensor-only and runs under ``vmap``); a sentence outside the table is decoded,
  embedded and added on first sight (outside ``torch.func`` transforms).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from metaxm.envs.base import InstructionInfo
from metaxm.nn.layers import init_weights

if TYPE_CHECKING:
    from metaxm.config.agent import AgentConfig


class LearnedInstructionEncoder(nn.Module):
    """Word embeddings, mean over the non-pad tokens, one tanh layer: (N, L) ids -> (N, dim).

    Args:
        vocab_size: the number of token ids (0 is padding).
        dim: the embedding width.
    """

    def __init__(self, vocab_size: int, dim: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim)
        self.fc = nn.Linear(dim, dim)

    def reset_parameters(self, generator: torch.Generator) -> None:
        init_weights(self, generator)
        with torch.no_grad():  # unit-scale words, so instructions differ clearly from the start
            self.embed.weight.normal_(0.0, 1.0, generator=generator)

    def forward(self, ids: Tensor) -> Tensor:
        """ids: (N, L) long -> (N, dim)."""
        keep = (ids != 0).unsqueeze(-1).float()  # (N, L, 1)
        mean = (self.embed(ids) * keep).sum(1) / keep.sum(1).clamp(min=1.0)
        return torch.tanh(self.fc(mean))


class PretrainedInstructionEncoder(nn.Module):
    """Frozen sentence embeddings (a table over the known sentences) and a trained projection.

    Args:
        info: the instruction format (vocabulary, length, the world's sentences).
        dim: the output width.
        embedder: maps sentences to (N, E) embeddings; default the process-wide MiniLM
            (:func:`metaxm.nn.sentence.sentence_embedder`, not copied with the module).
    """

    def __init__(
        self, info: InstructionInfo, dim: int, embedder: Callable[[list[str]], Tensor] | None = None
    ) -> None:
        super().__init__()
        self._embedder = embedder
        self.vocab = info.vocab
        base = len(info.vocab)
        if base**info.length >= 2**62:
            raise ValueError(f"{base} words x {info.length} tokens do not fit an exact int64 key")
        self.register_buffer(  # ids (N, L) -> key (N,) = sum ids[:, j] * base**j, exact
            "powers", base ** torch.arange(info.length, dtype=torch.long), persistent=False
        )
        from metaxm.envs.instructions import tokenize

        ids = tokenize(list(info.sentences), info.length)
        self.register_buffer("keys", (ids * self.powers).sum(1), persistent=False)  # (M,)
        self.register_buffer("table", self.embedder(list(info.sentences)), persistent=False)
        self.proj = nn.Linear(self.table.shape[1], dim)

    @property
    def embedder(self) -> Callable[[list[str]], Tensor]:
        if self._embedder is not None:
            return self._embedder
        from metaxm.nn.sentence import sentence_embedder

        return sentence_embedder()

    def reset_parameters(self, generator: torch.Generator) -> None:
        init_weights(self.proj, generator)

    def forward(self, ids: Tensor) -> Tensor:
        """ids: (N, L) long -> (N, dim)."""
        keys = (ids * self.powers).sum(1)  # (N,)
        self._add_unknown(ids, keys)
        match = (keys[:, None] == self.keys[None, :]).to(self.table.dtype)  # (N, M) one-hot
        return torch.tanh(self.proj(match @ self.table))

    def _add_unknown(self, ids: Tensor, keys: Tensor) -> None:
        """Embed sentences missing from the table (not possible inside ``vmap``, where the
        world's sentences are all in the table already)."""
        try:
            known = set(self.keys.tolist())
            fresh = {k: i for i, k in enumerate(keys.tolist()) if k not in known}
        except RuntimeError:  # a batched tensor under torch.func: nothing can be added here
            return
        if not fresh:
            return
        from metaxm.envs.instructions import decode

        rows = ids[list(fresh.values())].cpu()
        new = self.embedder(decode(rows, self.vocab)).to(self.table)
        self.keys = torch.cat((self.keys, keys.new_tensor(list(fresh))))
        self.table = torch.cat((self.table, new))


class InstructionConditioner(nn.Module):
    """An instruction encoder and the FiLM layer it drives (see the module docstring).

    Args:
        config: the agent's config (``instruction``, ``instruction_dim``, ``latent_dim``).
        info: the world's instruction format.
    """

    def __init__(self, config: AgentConfig, info: InstructionInfo) -> None:
        super().__init__()
        self.length = info.length
        d = config.instruction_dim
        if config.instruction == "minilm":
            self.encoder: nn.Module = PretrainedInstructionEncoder(info, d)
        else:
            self.encoder = LearnedInstructionEncoder(len(info.vocab), d)
        self.film = nn.Linear(d, 2 * config.latent_dim)

    def reset_parameters(self, generator: torch.Generator) -> None:
        self.encoder.reset_parameters(generator)
        init_weights(self.film, generator, gain=1.0)

    def forward(self, z: Tensor, ids: Tensor) -> Tensor:
        """z (N, latent), ids (N, L) -> the conditioned latent (N, latent)."""
        gamma, beta = self.film(self.encoder(ids)).chunk(2, -1)
        return z * (1.0 + gamma) + beta


class SentenceTextEncoder(nn.Module):
    """The ``text`` family read by the frozen sentence encoder (``agent.text_encoder: minilm``).

    Token ids are decoded back to words with the text family's vocabulary, each distinct
    sentence is embedded once (the process-wide cache of :mod:`metaxm.nn.sentence`), and a
    trained linear layer maps the embedding to the latent, normalised as every encoder's is.
    The encoder cannot see a variant's cipher, so it reads ids as plain words: a ciphered
    variant is read as a consistent word substitution (distinct states stay distinct, but the
    words lose their meaning). Decoding needs Python, so this encoder does not run under
    ``vmap`` (MAML adapting it); every state's sentence is new to the cache until visited.

    Args:
        space: the family's observation space (``MultiDiscrete`` token ids).
        config: the agent's config (``latent_dim``).
        embedder: sentences -> (N, E); default the process-wide MiniLM.
    """

    def __init__(
        self,
        space: object,
        config: AgentConfig,
        embedder: Callable[[list[str]], Tensor] | None = None,
    ) -> None:
        super().__init__()
        from metaxm.nn.sentence import EMBEDDING_DIM, sentence_embedder

        self._embedder = embedder if embedder is not None else sentence_embedder()
        width = int(getattr(self._embedder, "dim", EMBEDDING_DIM))
        self.fc = nn.Linear(width, config.latent_dim)
        self.norm = nn.LayerNorm(config.latent_dim, elementwise_affine=False)

    def forward(self, obs: Tensor) -> Tensor:
        """obs: (N, L) token ids -> (N, latent_dim)."""
        from metaxm.modalities.text import VOCAB

        rows = obs.long().cpu().tolist()
        sentences = [" ".join(VOCAB[i] for i in row if i != 0) for row in rows]
        e = self._embedder(sentences).to(self.fc.weight)
        return self.norm(self.fc(e))
