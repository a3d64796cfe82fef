"""AgentConfig: the ``agent:`` section of a spec, the architecture of
:class:`metaxm.nn.agent.Agent`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from metaxm.config import bounded

Activation = Literal["tanh", "relu"]
"""The activations of the MLPs (:mod:`metaxm.nn.layers`)."""
InstructionEncoderKind = Literal["learned", "minilm"]
"""How instructions and text are encoded (:mod:`metaxm.nn.instruction`)."""


@dataclass(frozen=True)
class AgentConfig:
    """The agent's architecture (the ``agent:`` section of a spec).

    Attributes:
        latent_dim: the width of the shared latent z every encoder projects into.
        encoder: ``family`` gives each family its own encoder (MLP, CNN, token transformer,
            spectrogram conv); ``tokens`` reads every family with one modality-agnostic set
            encoder (:mod:`metaxm.nn.tokens`); ``sensory`` reads every channel-structured
            family (a box of at most 256 entries: vector, projected, audio, a gymnasium env's
            state) with shared sensory neurons over each channel's recent history and the
            previous actions, pooled by attention, so the order of the channels does not
            matter (:mod:`metaxm.nn.sensory`; recurrent agents only, ``algo: rl2``); the
            other families keep their own encoders, unless ``sensory_images`` or
            ``sensory_text`` turns them into channels too.
        sensory_window: K, the steps of history each sensory neuron sees (its channel's
            values and the previous actions).
        sensory_lags: L, how many steps after an action a sensory neuron looks for its
            channel's answer to it (1: the next change only; 2 also the one after, where a
            position answers a push that moved its velocity first). At most K - 1.
        sensory_sign: ``learned``: a sensory neuron reads its channel as it comes, and a
            re-signed channel must be learned to be the same sensor; ``invariant``: each neuron
            is the sum of one network over its channel's window and over the same window
            negated, so a channel and its negation give the same output by construction (its
            value still reads against how it answers the actions, which flips with it).
        sensory_memory: ``window``: a sensory neuron remembers its channel's last K steps;
            ``trial``: also its statistics over the trial so far (the mean change after each
            action, the mean, spread and RMS change of its values), so that what the agent read
            of a wiring reaches the trial's next episode (:mod:`metaxm.nn.channel_stats`). Channel
            families only: symbol channels (``sensory_images: colours``, ``sensory_text:
            words``) keep their window alone, their statistics zero.
        sensory_scaled: with ``sensory_memory: trial``, each neuron also reads its channel's
            current value divided by the root mean square of its values over the trial, a
            reading its gain does not change (:mod:`metaxm.nn.channel_stats`).
        sensory_images: how a sensory agent reads RGB images (``pixels``): ``conv``, their
            own convolutional encoder; ``colours``, three channels per colour of the frame
            (where its pixels lie, how much of the image it covers) read by the sensory
            neurons like a vector's (:mod:`metaxm.nn.symbol_channels`).
        sensory_text: how a sensory agent reads token ids (``text``): ``tokens``, their own
            token transformer; ``words``, two channels per distinct word of the sentence
            (where it stands, how often it is said) read by the sensory neurons.
        encoder_width: the hidden width of the encoders' last layers.
        conv_channels: channels of the convolutions (pixels, audio).
        conv_layers: 3 x 3 convolutions after the patch stem (pixels, audio).
        audio_encoder: the ``audio`` family's encoder: ``conv`` (4 x 4 patches over frequency
            and time, :class:`~metaxm.nn.encoders.ConvEncoder`) or ``frames`` (one shared
            network reads every time frame, :class:`~metaxm.nn.encoders.FrameEncoder`).
        token_dim: the token width of the transformer encoders (and the sensory neurons'
            width).
        token_heads: attention heads of the transformer encoders.
        token_layers: transformer blocks of the transformer encoders.
        pool_queries: learned queries of attention pooling (outputs are concatenated).
        adapter_rank: the rank of the adapter's low-rank residual (0: FiLM only).
        adapters: ``family``: one adapter per family, shared by its variants; ``variant``: also
            one per training variant (:mod:`metaxm.nn.variant_adapters`), so a memoryless
            agent need not tell the variants apart from one observation. The family adapter
            is then kept at their mean, where adapting to a new variant starts.
        core: ``mlp`` (feed-forward policy and value) or ``gru`` (recurrent, for RL^2).
        reward_input: whether a recurrent core (RL^2) reads the previous reward beside the
            previous action and the episode's end. False feeds it 0, so what the agent adapts
            in context comes from the target's observations, its own actions and where
            episodes ended (reward-free adaptation; training still learns from rewards). Only
            with ``algo: rl2``.
        hidden: the width of the core's hidden layers (the GRU state width for ``gru``).
        layers: hidden layers of the policy and value MLPs of the ``mlp`` core.
        activation: the activation of the MLPs.
        init_log_std: the initial log standard deviation of a Gaussian policy.
        instruction: the instruction encoder on worlds that give instructions: ``learned``
            word embeddings or the frozen pretrained ``minilm`` sentence encoder (the optional
            ``text`` extra); ignored on other worlds.
        instruction_dim: the width of the instruction embedding.
        text_encoder: the ``text`` family's encoder: the ``learned`` token transformer, or the
            frozen ``minilm`` sentence encoder on the decoded words (the ``text`` extra).
    """

    latent_dim: int = bounded(64, 1, 4096)
    encoder: Literal["family", "tokens", "sensory"] = "family"
    sensory_window: int = bounded(8, 1, 64)
    sensory_lags: int = bounded(1, 1, 63)
    sensory_sign: Literal["learned", "invariant"] = "learned"
    sensory_memory: Literal["window", "trial"] = "window"
    sensory_scaled: bool = False
    sensory_images: Literal["conv", "colours"] = "conv"
    sensory_text: Literal["tokens", "words"] = "tokens"
    encoder_width: int = bounded(128, 1, 8192)
    conv_channels: int = bounded(16, 1, 512)
    conv_layers: int = bounded(1, 0, 8)
    audio_encoder: Literal["conv", "frames"] = "conv"
    token_dim: int = bounded(32, 1, 1024)
    token_heads: int = bounded(2, 1, 64)
    token_layers: int = bounded(1, 0, 24)
    pool_queries: int = bounded(4, 1, 64)
    adapter_rank: int = bounded(4, 0, 1024)
    adapters: Literal["family", "variant"] = "family"
    core: Literal["mlp", "gru"] = "mlp"
    reward_input: bool = True
    hidden: int = bounded(64, 1, 8192)
    layers: int = bounded(2, 0, 32)
    activation: Activation = "tanh"
    init_log_std: float = bounded(-0.5, -10, 5)
    instruction: InstructionEncoderKind = "learned"
    instruction_dim: int = bounded(32, 1, 1024)
    text_encoder: InstructionEncoderKind = "learned"

    def __post_init__(self) -> None:
        for name in (
            "latent_dim",
            "encoder_width",
            "conv_channels",
            "token_dim",
            "hidden",
            "instruction_dim",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.token_dim % self.token_heads:
            raise ValueError(
                f"token_dim ({self.token_dim}) must be divisible by token_heads "
                f"({self.token_heads})"
            )
        if min(self.token_layers, self.layers, self.adapter_rank, self.conv_layers) < 0:
            raise ValueError("token_layers, layers, conv_layers and adapter_rank must be >= 0")
        if self.sensory_memory == "trial" and self.sensory_window < 2:
            raise ValueError("sensory_memory: trial needs sensory_window >= 2")
        if self.sensory_scaled and self.sensory_memory != "trial":
            raise ValueError("sensory_scaled needs sensory_memory: trial")
        if self.pool_queries < 1:
            raise ValueError(f"pool_queries must be >= 1, got {self.pool_queries}")
        if not 1 <= self.sensory_lags <= max(self.sensory_window - 1, 1):
            raise ValueError(
                f"sensory_lags must lie in [1, sensory_window - 1], got {self.sensory_lags} "
                f"with sensory_window {self.sensory_window}"
            )
