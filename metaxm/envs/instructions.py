"""Instructions: the templated sentences that name a goal, their tokens, and their channel.

Language is a modality-independent channel for the goal. A world that gives instructions
(:class:`~metaxm.envs.gridnav_lang.GridNavLang`) puts each environment's instruction in
``Scene.instruction`` as token ids of the vocabulary :data:`VOCAB`, and describes the format in
``SceneInfo.instruction`` (:class:`~metaxm.envs.base.InstructionInfo`).

**Paraphrases.** An instruction is a template filled with a colour: ``"go to the red square"``,
``"walk to the red tile"``, ``"the red square is your target"``. :data:`TRAIN_TEMPLATES` are the
paraphrases training may see; :data:`HELDOUT_TEMPLATES` are never drawn unless a world is built
with ``paraphrases: heldout`` (or ``all``), so a policy can be measured on phrasings it has never
read. Held-out templates use words that no training template contains (``head``, ``navigate``,
``cell``, ...), so a token encoder meets them with untrained embeddings.

**The channel.** Instructions travel *with* the observation, in one tensor, so that rollouts,
PPO batches, MAML's ``vmap`` over tasks, RL^2 trials, the evaluator and paired renders carry them
without knowing about them: an instruction world's observation of any family is the family's
observation flattened, followed by the L instruction ids (:func:`with_instruction`), in the
family's dtype, and its space is :func:`instructed_space`. The agent splits the two again
(:func:`split_instruction`) before the family encoder; worlds without instructions are
unchanged.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from metaxm.envs.base import InstructionInfo, Scene, SceneInfo

COLORS: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("red", (220, 40, 40)),
    ("green", (40, 190, 60)),
    ("blue", (40, 90, 235)),
    ("yellow", (235, 215, 40)),
)
"""Object colours: object k of a layout has name and RGB ``COLORS[k]``."""
COLOR_NAMES = tuple(name for name, _ in COLORS)

TRAIN_TEMPLATES = (
    "go to the {color} square",
    "walk to the {color} tile",
    "the {color} square is your target",
    "move to the {color} square",
    "find the {color} tile",
    "reach the {color} square",
)
"""Paraphrases used in training (``paraphrases: train``)."""
HELDOUT_TEMPLATES = (
    "head for the {color} block",
    "your goal is the {color} tile",
    "navigate to the {color} square",
    "get to the {color} cell",
    "make your way to the {color} one",
    "proceed to the {color} patch",
)
"""Paraphrases never drawn in training (``paraphrases: heldout``)."""
TEMPLATES = TRAIN_TEMPLATES + HELDOUT_TEMPLATES
"""Every template; a task's ``template`` parameter indexes this tuple."""


def template_ids(paraphrases: str) -> tuple[int, ...]:
    """Indices into :data:`TEMPLATES` of the paraphrase split ``train``, ``heldout`` or ``all``."""
    n = len(TRAIN_TEMPLATES)
    splits = {
        "train": tuple(range(n)),
        "heldout": tuple(range(n, len(TEMPLATES))),
        "all": tuple(range(len(TEMPLATES))),
    }
    if paraphrases not in splits:
        raise ValueError(f"paraphrases must be one of {', '.join(splits)}, got {paraphrases!r}")
    return splits[paraphrases]


def sentence(template: int, color: int) -> str:
    """The instruction of template ``template`` for the object of colour ``color``."""
    return TEMPLATES[template].format(color=COLOR_NAMES[color])


def _vocabulary() -> tuple[str, ...]:
    words = ["<pad>", *COLOR_NAMES]
    for template in TEMPLATES:
        for word in template.split():
            if not word.startswith("{") and word not in words:
                words.append(word)
    return tuple(words)


VOCAB = _vocabulary()
"""Token id -> word; id 0 is padding."""
_ID = {w: i for i, w in enumerate(VOCAB)}
LENGTH = max(len(t.split()) for t in TEMPLATES)
"""L, the tokens of every instruction (padded with 0)."""


def instruction_info(num_colors: int = len(COLORS)) -> InstructionInfo:
    """The format of the instructions about ``num_colors`` objects, every sentence listed."""
    sentences = tuple(sentence(t, c) for t in range(len(TEMPLATES)) for c in range(num_colors))
    return InstructionInfo(length=LENGTH, vocab=VOCAB, sentences=sentences)


def tokenize(sentences: list[str], length: int = LENGTH) -> Tensor:
    """(N, length) long token ids of ``sentences``, padded with 0; unknown words are an error."""
    out = torch.zeros(len(sentences), length, dtype=torch.long)
    for i, text in enumerate(sentences):
        words = text.split()
        if len(words) > length:
            raise ValueError(f"instruction {text!r} has more than {length} words")
        try:
            out[i, : len(words)] = torch.tensor([_ID[w] for w in words])
        except KeyError as err:
            raise ValueError(f"instruction {text!r}: word {err.args[0]!r} not in VOCAB") from None
    return out


def decode(ids: Tensor, vocab: tuple[str, ...] = VOCAB) -> list[str]:
    """The sentences behind (N, L) token ids (padding dropped)."""
    rows = ids.reshape(-1, ids.shape[-1]).tolist()
    return [" ".join(vocab[i] for i in row if i != 0) for row in rows]


def sentence_table(num_colors: int = len(COLORS)) -> Tensor:
    """(len(TEMPLATES), num_colors, L) long: the token ids of every instruction, by template."""
    sentences = [sentence(t, c) for t in range(len(TEMPLATES)) for c in range(num_colors)]
    return tokenize(sentences).view(len(TEMPLATES), num_colors, LENGTH)


# ----------------------------------------------------------------------------- the channel
def instructed_space(space: gym.Space, info: SceneInfo) -> gym.Space:
    """The observation space of ``space``'s family on a world described by ``info``.

    Without instructions, ``space`` itself; with them, a flat space of the family's values
    followed by ``info.instruction.length`` ids in [0, vocabulary size), in the family's dtype.
    """
    instr = info.instruction
    if instr is None:
        return space
    n, top = instr.length, len(instr.vocab) - 1
    if isinstance(space, gym.spaces.MultiDiscrete):
        nvec = np.concatenate((np.ravel(space.nvec), np.full(n, top + 1)))
        return gym.spaces.MultiDiscrete(nvec.astype(space.dtype), dtype=space.dtype)
    if isinstance(space, gym.spaces.Box):
        low = np.concatenate((np.ravel(space.low), np.zeros(n))).astype(space.dtype)
        high = np.concatenate((np.ravel(space.high), np.full(n, top))).astype(space.dtype)
        return gym.spaces.Box(low, high, dtype=space.dtype)
    raise ValueError(
        f"instructions can travel beside Box and MultiDiscrete observations, not {space}"
    )


def with_instruction(obs: Tensor, scene: Scene) -> Tensor:
    """obs (B, *shape) -> (B, prod(shape) + L): the scene's instruction ids appended (a no-op
    for scenes without instructions)."""
    if scene.instruction is None:
        return obs
    return torch.cat((obs.flatten(1), scene.instruction.to(obs.dtype)), 1)


def split_instruction(obs: Tensor, shape: tuple[int, ...], length: int) -> tuple[Tensor, Tensor]:
    """Undo :func:`with_instruction`: (N, prod(shape) + L) -> obs (N, *shape), ids (N, L) long."""
    ids = obs[:, obs.shape[1] - length :].long()
    return obs[:, : obs.shape[1] - length].reshape(obs.shape[0], *shape), ids
