"""The agent: encoder[family] -> adapter[family] -> shared latent z -> core -> (pi, V).

Parameter names are fixed by the structure, so subsets can be named as plain strings::

    encoders.<family>.*     the family's encoder (:mod:`metaxm.nn.encoders`)
    token_encoder.*         the shared set encoder when ``encoder: tokens``
    sensory_encoder.*       the shared sensory neurons when ``encoder: sensory``
    adapters.<family>.*     the family's adapter (:mod:`metaxm.nn.adapter`)
    core.*                  policy and value (:mod:`metaxm.nn.core`)
    instruction.*           the instruction channel, on worlds that give instructions
                            (:mod:`metaxm.nn.instruction`)

:meth:`Agent.param_names` / :meth:`Agent.named_params` return the subsets ``"adapter"``,
``"adapter+encoder"``, ``"core"`` and ``"all"``. The forward is a pure function of (parameters,
buffers, inputs) with the family chosen by a Python string, so MAML runs it as
``torch.func.functional_call(agent, params, (obs, family))`` under ``grad`` and ``vmap``, where
``params`` may hold only the subset being adapted.

Adapters: the agent keeps one adapter per *family*, the shared (meta-learned) initialisation.
Adapting to a particular *variant* of a family is functional: copy
``agent.named_params("adapter", family)``, adapt the copy, call the agent with it; the agent's
own parameters stay the initialisation for the next variant. With ``adapters: variant`` the
agent also holds one adapter per *training* variant (``variant_adapters.*``,
:mod:`metaxm.nn.variant_adapters`), used for the rows whose variant seeds the caller passes
(``agent(obs, family, variants=...)``); every other row, and every call without ``variants``,
goes through the family adapter.

Recurrent agents (``core: gru``, for RL^2) take the previous action, previous reward and done
flag too: :meth:`Agent.step` for one step, :meth:`Agent.sequence` for a (T, B) trial chunk.
Their state is the GRU's, followed by the *memory* of the sensory encoder (``encoder:
sensory``, :mod:`metaxm.nn.sensory`): the last steps of each channel and the previous actions
(with ``sensory_memory: trial`` also each channel's running sums over the trial,
:mod:`metaxm.nn.channel_stats`), as wide as the widest family's (:attr:`Agent.memory_dim`; 0
with no sensory encoder).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Literal

import gymnasium as gym
import torch
from torch import Tensor, nn

from metaxm.config.agent import AgentConfig
from metaxm.envs.base import InstructionInfo
from metaxm.envs.instructions import split_instruction
from metaxm.nn.adapter import Adapter
from metaxm.nn.core import GRUCore, MLPCore
from metaxm.nn.distributions import ActionHead, action_head
from metaxm.nn.encoders import make_encoder
from metaxm.nn.instruction import InstructionConditioner
from metaxm.nn.layers import init_weights
from metaxm.nn.sensory import SensoryChannels, SensoryEncoder
from metaxm.nn.tokens import SetTokenEncoder
from metaxm.nn.variant_adapters import VariantAdapters

if TYPE_CHECKING:
    from metaxm.envs.base import SceneInfo
    from metaxm.spec import Spec

ParamSubset = Literal["adapter", "adapter+encoder", "core", "all"]


class Agent(nn.Module):
    """Per-family encoders and adapters, one shared core.

    Args:
        config: the architecture.
        observation_spaces: ``{family: observation space}`` for every family the agent reads.
        action_space: the world's action space (``Discrete``: categorical; ``Box``: Gaussian).
        seed: seeds the initial weights (the global RNG is left untouched).
        variant_pool: ``{family: variant seeds}`` that get their own adapter; required with
            ``config.adapters == "variant"`` (:func:`build_agent` passes the train split).
        instruction: the world's instruction format (``scene_info.instruction``); None for
            worlds without instructions (no instruction channel).
    """

    def __init__(
        self,
        config: AgentConfig,
        observation_spaces: Mapping[str, gym.Space],
        action_space: gym.Space,
        seed: int = 0,
        variant_pool: Mapping[str, Sequence[int]] | None = None,
        instruction: InstructionInfo | None = None,
    ) -> None:
        super().__init__()
        if config.encoder == "sensory" and config.core != "gru":
            raise ValueError(
                "agent.encoder: sensory needs a recurrent agent (algo: rl2): its neurons read "
                "each channel's history, which the recurrent state carries"
            )
        self.config = config
        self.head: ActionHead = action_head(action_space)
        self.observation_spaces = dict(observation_spaces)
        with torch.random.fork_rng(devices=[]):  # module constructors draw from the global RNG
            self.encoders = nn.ModuleDict(
                {
                    f: make_encoder(f, s, config, self.head.encoding_dim)
                    for f, s in observation_spaces.items()
                }
            )
            self.token_encoder = SetTokenEncoder(config) if config.encoder == "tokens" else None
            self.sensory_encoder = (
                SensoryEncoder(config, self.head.encoding_dim)
                if config.encoder == "sensory"
                else None
            )
            self.adapters = nn.ModuleDict(
                {f: Adapter(config.latent_dim, config.adapter_rank) for f in observation_spaces}
            )
            if config.core == "gru":
                self.core: nn.Module = GRUCore(
                    config.latent_dim, config.hidden, config.activation, self.head,
                    config.init_log_std, config.reward_input,
                )  # fmt: skip
            else:
                self.core = MLPCore(
                    config.latent_dim, config.hidden, config.layers, config.activation, self.head,
                    config.init_log_std,
                )  # fmt: skip
            self.instruction = (
                None if instruction is None else InstructionConditioner(config, instruction)
            )
        self.reset_parameters(torch.Generator().manual_seed(seed))
        self.variant_adapters: VariantAdapters | None = None
        if config.adapters == "variant":
            if not variant_pool:
                raise ValueError("adapters: variant needs the pool of variants to adapt per row")
            self.variant_adapters = VariantAdapters(self.adapters, variant_pool)

    # ------------------------------------------------------------------ construction
    def reset_parameters(self, generator: torch.Generator) -> None:
        """Re-draw every weight from ``generator`` (encoders, adapters, core, instruction)."""
        for family in self.encoders:
            self._init_family(family, generator)
        for shared in (self.token_encoder, self.sensory_encoder):
            if shared is not None:
                init_weights(shared, generator)
        self.core.reset_parameters(generator)
        if self.instruction is not None:
            self.instruction.reset_parameters(generator)

    def _init_family(self, family: str, generator: torch.Generator) -> None:
        init_weights(self.encoders[family], generator)
        self.adapters[family].reset_parameters(generator)

    def add_family(self, family: str, space: gym.Space, seed: int = 0) -> None:
        """Give the agent an encoder and an identity adapter for a family it has not seen."""
        if family in self.encoders:
            raise ValueError(f"the agent already reads family {family!r}")
        device = next(self.parameters()).device
        with torch.random.fork_rng(devices=[]):
            self.encoders[family] = make_encoder(family, space, self.config, self.head.encoding_dim)
            self.adapters[family] = Adapter(self.config.latent_dim, self.config.adapter_rank)
        self.observation_spaces[family] = space
        self._init_family(family, torch.Generator().manual_seed(seed))
        self.encoders[family].to(device)
        self.adapters[family].to(device)

    @property
    def families(self) -> list[str]:
        return list(self.encoders)

    @property
    def recurrent(self) -> bool:
        return self.config.core == "gru"

    @property
    def memory_dim(self) -> int:
        """The width of the sensory encoder's memory in the recurrent state (0: none)."""
        widths = [e.memory_dim for e in self.encoders.values() if isinstance(e, SensoryChannels)]
        return max(widths, default=0)

    def sensory(self, family: str) -> bool:
        """The family is read by a sensory encoder (which needs the recurrent state)."""
        return isinstance(self.encoders[family], SensoryChannels)

    # ------------------------------------------------------------------ parameter subsets
    def param_names(self, subset: ParamSubset = "all", family: str | None = None) -> list[str]:
        """Names (as in ``named_parameters``) of a subset; ``family`` is needed for the
        ``adapter`` and ``adapter+encoder`` subsets."""
        names = [n for n, _ in self.named_parameters()]
        if subset == "all":
            return names
        if subset == "core":
            return [n for n in names if n.startswith("core.")]
        if family is None or family not in self.encoders:
            raise ValueError(
                f"subset {subset!r} needs one of the agent's families: {', '.join(self.encoders)}"
            )
        prefixes = [f"adapters.{family}."]
        if subset == "adapter+encoder":
            prefixes += [f"encoders.{family}.", "token_encoder.", "sensory_encoder."]
        elif subset != "adapter":
            raise ValueError(
                f"unknown parameter subset {subset!r}; choose adapter, adapter+encoder, core, all"
            )
        return [n for n in names if n.startswith(tuple(prefixes))]

    def freeze_latent(self) -> list[str]:
        """Stop training everything below the shared latent: the encoders, the token encoder,
        the family adapters and the per-variant adapters. What reads the latent (the core,
        and the instruction channel that conditions z) stays trainable. A policy trained on a
        frozen, pre-aligned latent keeps every modality on the same point of it, so a few-shot
        fit of a new modality aims at exactly what the policy reads. Returns the frozen names.
        """
        below = (
            "encoders.",
            "token_encoder.",
            "sensory_encoder.",
            "adapters.",
            "variant_adapters.",
        )
        frozen = []
        for name, p in self.named_parameters():
            if name.startswith(below):
                p.requires_grad_(False)
                frozen.append(name)
        return frozen

    def trainable(self) -> list[Tensor]:
        """The parameters an optimizer should hold (those not frozen)."""
        return [p for p in self.parameters() if p.requires_grad]

    def named_params(
        self, subset: ParamSubset = "all", family: str | None = None
    ) -> dict[str, Tensor]:
        """``{name: parameter}`` of a subset, ready for ``torch.func.functional_call``."""
        params = dict(self.named_parameters())
        return {n: params[n] for n in self.param_names(subset, family)}

    # ------------------------------------------------------------------ forward
    def features(self, obs: Tensor, family: str) -> Tensor:
        """obs (N, *obs_shape) -> the encoder's output e (N, latent_dim), before the adapter.

        An instruction world's observations also carry the instruction ids; they are split off
        here and condition ``z`` in :meth:`encode` (:mod:`metaxm.nn.instruction`).
        """
        if self.sensory(family):
            raise ValueError(
                f"family {family!r} is read by a sensory encoder, which needs its history: "
                "call Agent.step or Agent.sequence with the recurrent state"
            )
        obs = self._observation(obs, family)
        if self.token_encoder is not None:
            return self.token_encoder(*self.encoders[family](obs))
        return self.encoders[family](obs)

    def _observation(self, obs: Tensor, family: str) -> Tensor:
        """The family's own observation: an instruction world's ids split off."""
        if self.instruction is None:
            return obs
        shape = self.observation_spaces[family].shape
        return split_instruction(obs, shape, self.instruction.length)[0]

    def encode(self, obs: Tensor, family: str, variants: Tensor | None = None) -> Tensor:
        """obs (N, *obs_shape) -> the adapted latent z (N, latent_dim); with ``variants`` (N,)
        the rows of pooled variants go through their own adapters (see the module); with an
        instruction channel, z is conditioned on the observation's instruction ids."""
        return self.apply_adapters(self.features(obs, family), obs, family, variants)

    def apply_adapters(
        self, e: Tensor, obs: Tensor, family: str, variants: Tensor | None = None
    ) -> Tensor:
        """The encoder's output e (N, latent_dim) of ``obs`` (N, ...) -> the latent z: the
        family's adapter, the rows' variant adapters, the instruction (see :meth:`encode`)."""
        z = self.adapters[family](e)
        va = self.variant_adapters
        if variants is not None and va is not None and family in va:
            z = va.mix(e, family, variants, z)
        if self.instruction is not None:
            ids = obs[:, obs.shape[1] - self.instruction.length :].long()  # (N, L)
            z = self.instruction(z, ids)
        return z

    def forward(
        self,
        obs: Tensor,
        family: str,
        prev_action: Tensor | None = None,
        prev_reward: Tensor | None = None,
        done: Tensor | None = None,
        hidden: Tensor | None = None,
        sequence: bool = False,
        variants: Tensor | None = None,
    ) -> tuple[Tensor, ...]:
        """The policy's distribution parameters and the value.

        Feed-forward core: ``(obs (N, ...), family) -> (pd (N, pd_dim), value (N,))``.
        Recurrent core: also pass ``prev_action``, ``prev_reward``, ``done`` and ``hidden``;
        returns ``(pd, value, hidden)``; with ``sequence=True`` the inputs carry a leading time
        dimension, (T, B, ...), and ``hidden`` is the state before the first step.
        ``variants`` (N,): the rows' variant seeds, for ``adapters: variant`` (feed-forward).
        """
        if not self.recurrent:
            return self.core(self.encode(obs, family, variants))
        if prev_action is None or prev_reward is None or done is None or hidden is None:
            raise ValueError("a recurrent agent needs prev_action, prev_reward, done and hidden")
        h, memory = self.split_state(hidden)
        if sequence:
            z, memory = self.latents(obs, family, prev_action, None, memory, first=done)
            pd, value, h = self.core.sequence(z, prev_action, prev_reward, done, h)
        else:
            z, memory = self.latents(
                obs[None], family, prev_action[None], None, memory, first=done[None]
            )
            pd, value, h = self.core.step(z[0], prev_action, prev_reward, done, h)
        return pd, value, torch.cat((h, memory), -1)

    def latents(
        self,
        obs: Tensor,
        family: str,
        prev_action: Tensor,
        reset: Tensor | None,
        memory: Tensor,
        windows: Tensor | None = None,
        first: Tensor | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """The latents of a recurrent agent's (T, B) steps and the memory after them.

        Args:
            obs: (T, B, *obs_shape).
            family: the observations' family.
            prev_action: (T, B) or (T, B, A), the action before each step.
            reset: (T, B) bool, the memory is zeroed before this step (a trial starts); None
                for no resets.
            memory: (B, memory_dim) the sensory memory before the first step.
            windows: the sensory encoder's windows of these steps, as :meth:`sensory_windows`
                gave them (computed once for a rollout that is replayed many times); None:
                computed here.
            first: (T, B) bool, the step starts an episode (the done flag the core reads);
                the sensory encoder's trial statistics need it (``agent.sensory_memory:
                trial``).

        Returns:
            z (T, B, latent_dim) and the memory after the last step (B, memory_dim); a family
            without a sensory encoder leaves the memory as it is, and given ``windows`` it is
            None (they were computed with it).
        """
        t, b = obs.shape[:2]
        flat = obs.flatten(0, 1)
        if not self.sensory(family):
            return self.encode(flat, family).unflatten(0, (t, b)), memory
        own = self._observation(flat, family).unflatten(0, (t, b))
        assert self.sensory_encoder is not None
        channels = self.encoders[family]
        if windows is not None:
            e = self.sensory_encoder.read(windows.flatten(0, 1))
            return self.apply_adapters(e, flat, family).unflatten(0, (t, b)), None
        e, after = self.sensory_encoder.sequence(
            channels, own, self.head.encode(prev_action), reset, memory, first
        )
        z = self.apply_adapters(e.flatten(0, 1), flat, family).unflatten(0, (t, b))
        after = torch.cat((after, memory[:, after.shape[1] :]), 1)  # keep the width
        return z, after

    def sensory_windows(
        self,
        obs: Tensor,
        family: str,
        prev_action: Tensor,
        reset: Tensor | None,
        memory: Tensor,
        first: Tensor | None = None,
    ) -> Tensor | None:
        """The sensory encoder's windows (T, B, K, C + A) of (T, B) steps (the arguments as
        :meth:`latents` takes them), where they depend on no parameter: what a rollout replayed
        in every PPO epoch computes once (an image's colour table sorts every frame). None
        where the family has no sensory encoder or its windows depend on a parameter (a
        channel reader with weights, an action encoding with weights)."""
        if not self.sensory(family):
            return None
        channels = self.encoders[family]
        actions = self.head.encode(prev_action)  # with grad: one with weights would need it
        if any(p.requires_grad for p in channels.parameters()) or actions.requires_grad:
            return None
        with torch.no_grad():
            own = self._observation(obs.flatten(0, 1), family).unflatten(0, obs.shape[:2])
            return channels.windows(own, actions, reset, memory, first)[0]

    def step(
        self,
        obs: Tensor,
        family: str,
        prev_action: Tensor,
        prev_reward: Tensor,
        done: Tensor,
        hidden: Tensor,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """One recurrent step: obs (B, ...), hidden (B, H) -> (pd, value (B,), hidden)."""
        return self(obs, family, prev_action, prev_reward, done, hidden)

    def sequence(
        self,
        obs: Tensor,
        family: str,
        prev_action: Tensor,
        prev_reward: Tensor,
        done: Tensor,
        hidden: Tensor,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """A recurrent chunk: obs (T, B, ...) -> (pd (T, B, .), value (T, B), last hidden)."""
        return self(obs, family, prev_action, prev_reward, done, hidden, sequence=True)

    def split_state(self, hidden: Tensor) -> tuple[Tensor, Tensor]:
        """A recurrent state (..., hidden + memory_dim) -> the GRU's state and the sensory
        memory (:meth:`initial_state` lays them out)."""
        return hidden[..., : self.core.hidden_dim], hidden[..., self.core.hidden_dim :]

    def initial_state(self, batch: int, device: torch.device | str = "cpu") -> Tensor:
        """The recurrent state at the start of a trial: zeros (batch, hidden + memory_dim)."""
        if not self.recurrent:
            raise ValueError("a feed-forward agent (core: mlp) has no recurrent state")
        h = self.core.initial_state(batch, device)
        return torch.cat((h, h.new_zeros(batch, self.memory_dim)), 1)


def observation_spaces(
    spec: Spec, families: list[str] | None = None, info: SceneInfo | None = None
) -> dict[str, gym.Space]:
    """``{family: observation space}`` for ``families`` (default: every family of the spec),
    from the world's ``info`` (default: the spec's world, built)."""
    from metaxm.modalities import get_family
    from metaxm.resources import build_world

    if families is None:
        m = spec.modalities
        families = list(dict.fromkeys([*m.train, *m.heldout_variants, *m.heldout_families]))
    info = info if info is not None else build_world(spec).scene_info
    return {f: get_family(f).observation_space(info) for f in families}


def build_agent(spec: Spec, seed: int | None = None) -> Agent:
    """The agent of a spec: encoders for every family of every split, ``spec.agent`` config.

    Raises:
        ConfigError: the spec's world cannot be built here (one line naming it).
    """
    from metaxm.resources import build_world

    world = build_world(spec)  # built once: its action space, instruction and scene info
    pool = None
    if spec.agent.adapters == "variant":
        from metaxm.sampler import TaskSampler

        pool = TaskSampler(spec).splits["train"]
    return Agent(
        spec.agent,
        observation_spaces(spec, info=world.scene_info),
        world.action_space,
        spec.seed if seed is None else seed,
        pool,
        instruction=world.scene_info.instruction,
    )
