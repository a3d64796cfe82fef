"""Checks a spec against the world and the machine before anything is built or written.

:func:`check_spec` runs when a spec is loaded (:func:`metaxm.spec.load_spec`) and again when
a run starts (:mod:`metaxm.run.loop`, :mod:`metaxm.align.pretrain`). It builds the world with
one environment (cheap: no run-sized tensor is allocated) and

* asks every family of every split whether it can render that world (``Family.check_scene``),
  so ``heldout_families: {minigrid_rgb: 1}`` on GridNav is refused in one line at load time;
* estimates the memory the run's largest tensors would take: the rollout buffer (environments
  x families x steps x observation size), MAML's and RL^2's episodes, the evaluation's batched
  worlds, alignment's batches and the agent's parameters with their gradients and optimizer
  moments. A spec whose estimate exceeds the memory of the device it runs on is refused with
  what was estimated, e.g. ``would allocate ~64 GB for the PPO rollout buffer (train.num_envs
  4096 x 8 families x ppo.num_steps 512 x 12,288 floats per observation); the cpu has 24 GB``.

The estimate counts float32 observations and the dominant terms only; it is a guard against
absurd specs (an agent of 1e9 units, a horizon of 1e9), not a profiler.
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING

from metaxm.errors import ConfigError

if TYPE_CHECKING:
    from metaxm.envs.base import SceneInfo, World
    from metaxm.spec import Spec

FLOAT = 4  # bytes
ADAM = 4  # parameter, gradient and two moments
LIMIT = 0.9  # of the device's memory a single run may plan to use


def check_spec(spec: Spec) -> None:
    """Refuse a spec whose families cannot render its world, that would not fit in memory, or
    whose agent cannot be trained by its algorithm (a sensory encoder outside RL^2, a probe of
    visited cells or a coverage bonus on a world without a layout, a coverage bonus on a world
    that charges no step cost or at or above the cost it charges).

    Raises:
        ConfigError: one line naming the family and world, or what was estimated and where;
            a device this machine does not have.
    """
    from metaxm.config.agent import AgentConfig
    from metaxm.run.device import resolve_device
    from metaxm.trainer_checks import check_trainer

    if spec.agent.encoder == "sensory" and spec.algo != "rl2":
        raise ConfigError(
            f"agent.encoder: sensory needs algo: rl2, not {spec.algo}: its neurons read each "
            "channel's history, which only a recurrent agent carries"
        )
    default = AgentConfig()  # the readers of their own families
    for name in ("sensory_images", "sensory_text"):
        value = getattr(spec.agent, name)
        if value != getattr(default, name) and spec.agent.encoder != "sensory":
            raise ConfigError(
                f"agent.{name}: {value} needs agent.encoder: sensory, not "
                f"{spec.agent.encoder}: the sensory neurons read those channels"
            )
    if not spec.agent.reward_input and spec.algo != "rl2":
        raise ConfigError(
            f"agent.reward_input: false needs algo: rl2, not {spec.algo}: only a recurrent "
            "agent reads the previous reward"
        )
    check_trainer(spec)  # what the trainer of spec.algo refuses, before anything is built
    resolve_device(spec.device)
    world = build_world(spec)
    info, horizon = world.scene_info, int(world.horizon)
    for name in ("state_probe_visited", "coverage_bonus"):
        if spec.algo == "rl2" and getattr(spec.rl2, name) and info.layout_size is None:
            raise ConfigError(
                f"rl2.{name} needs a world whose scenes have a layout (gridnav, minigrid), "
                f"not {spec.world.name}"
            )
    cost = getattr(spec.world, "step_cost", None)
    bonus = spec.rl2.coverage_bonus if spec.algo == "rl2" else 0.0
    if bonus and cost is None:
        raise ConfigError(
            f"rl2.coverage_bonus needs a world that charges a step_cost (gridnav), not "
            f"{spec.world.name}: without one, wandering onto new cells could pay more than the goal"
        )
    if bonus and cost is not None and bonus >= cost:
        raise ConfigError(
            f"rl2.coverage_bonus {bonus} is not below world.step_cost {cost}: a step onto a "
            "new cell would cost nothing, and wandering could pay more than the goal"
        )
    sizes = _observation_sizes(spec, info)
    _check_renders(spec, world)
    parts = estimate(spec, sizes, horizon)
    what, need = max(parts.items(), key=lambda kv: kv[1])
    total = sum(parts.values())
    have = device_memory(spec.device)
    if have and total > LIMIT * have:
        raise ConfigError(
            f"the spec would allocate ~{_gb(total)} ({_gb(need)} for {what}); the "
            f"{spec.device} has {_gb(have)}: lower the sizes named there"
        )


def build_world(spec: Spec) -> World:
    """The spec's world with one env, on the CPU (what its agent and checks are built from).

    Raises:
        ConfigError: the world cannot be built (an unknown or unimportable gymnasium env, a
            user's world that fails): one line naming it.
    """
    from metaxm.envs import make_world

    try:
        return make_world(spec.world, 1, "cpu", seed=spec.seed)
    except ConfigError:
        raise
    except Exception as err:  # noqa: BLE001 (a user's or a library's world: any failure, one line)
        text = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
        raise ConfigError(f"world: cannot build {spec.world.name}: {text}") from None


def _observation_sizes(spec: Spec, info: SceneInfo) -> dict[str, int]:
    """Floats per observation of each family the spec names, after checking it can render."""
    from metaxm.modalities import get_family
    from metaxm.spec import SPLITS

    sizes: dict[str, int] = {}
    for split in SPLITS:
        for name in getattr(spec.modalities, split):
            family = get_family(name)
            try:
                family.check_scene(info)
            except ValueError as err:
                raise ConfigError(
                    f"modalities.{split}.{name}: cannot render the {spec.world.name} world: {err}"
                ) from None
            shape = family.observation_space(info).shape or (1,)
            sizes[name] = math.prod(shape)
    return sizes


def _check_renders(spec: Spec, world: World) -> None:
    """Render one observation of each family the spec names and refuse one whose shape is not
    its ``observation_space``'s: the encoders are built from the space, so a plugin's family
    that renders another shape would fail inside the first update, with a traceback. A world
    whose features at reset leave [-1, 1] is refused first."""
    import torch

    from metaxm.modalities import Modality
    from metaxm.spec import SPLITS

    world.reset()
    scene, info = world.scene(), world.scene_info
    top = float(scene.features.abs().max()) if scene.features.numel() else 0.0
    if not top <= 1.0 + 1e-6:  # NaN too
        raise ConfigError(
            f"world {spec.world.name}: its scene's features reach {top:g} at reset; they must "
            "lie in [-1, 1] (every family renders from them: docs/plugins.md)"
        )
    names = dict.fromkeys(n for split in SPLITS for n in getattr(spec.modalities, split))
    for name in names:
        modality = Modality(name, 0, info)
        try:
            obs = modality.render(scene, torch.Generator().manual_seed(spec.seed))
        except Exception as err:  # noqa: BLE001 (a plugin's render: any failure, one line)
            text = (str(err).strip().splitlines() or [""])[0][:300]
            raise ConfigError(
                f"modality family {name!r} failed to render one observation: "
                f"{type(err).__name__}: {text}"
            ) from None
        want = (scene.batch_size, *(modality.observation_space.shape or ()))
        got = tuple(getattr(obs, "shape", ()))
        if got != want:
            raise ConfigError(
                f"modality family {name!r} renders observations of shape {got[1:]}, but its "
                f"observation_space says {want[1:]}: make render() return (batch, "
                "*observation_space.shape)"
            )


def estimate(spec: Spec, sizes: dict[str, int], horizon: int) -> dict[str, int]:
    """Bytes of the run's largest tensors, by what they hold (see the module docstring)."""
    train = [sizes[f] for f in spec.modalities.train]
    obs, families = max(train), len(train)
    n = spec.train.num_envs
    largest = max(sizes.values())
    ppo = f"train.num_envs {n} x {families} families x ppo.num_steps {spec.ppo.num_steps}"
    maml = spec.maml
    episodes = maml.meta_batch * (maml.support_episodes + maml.query_episodes)
    trial = spec.rl2.episodes_per_trial * horizon
    ev = spec.evaluate.eval_episodes
    per_obs = f" x {obs:,} floats per observation"
    parts = {
        f"the PPO rollout buffer ({ppo}{per_obs})": n * families * spec.ppo.num_steps * obs,
        f"MAML's episodes (maml.meta_batch x (support + query episodes) {episodes:,} x "
        f"horizon {horizon}{per_obs})": episodes * horizon * obs,
        f"RL^2's trials (train.num_envs {n} x {families} families x {trial:,} steps{per_obs})": (
            n * families * trial * obs
        ),
        f"the evaluation's worlds (evaluate.eval_episodes {ev:,} x {largest:,} floats per "
        "observation)": ev * largest,
        f"alignment batches (align.batch_size {spec.align.batch_size} x views x "
        f"{largest:,} floats per observation)": (
            spec.align.batch_size * max(spec.align.views, len(sizes)) * largest
        ),
        # InfoNCE's similarity matrix of a pair of views, its softmax and its gradient
        f"alignment's similarity matrices (align.batch_size {spec.align.batch_size} squared, "
        "x 3)": 3 * spec.align.batch_size**2,
        "the agent's parameters, gradients and optimizer moments (agent.*)": (
            _agent_params(spec, sizes) * ADAM
        ),
    }
    return {k: v * FLOAT for k, v in parts.items()}


def _agent_params(spec: Spec, sizes: dict[str, int]) -> int:
    a = spec.agent
    core = a.latent_dim * a.hidden + max(a.layers - 1, 0) * a.hidden**2 + a.hidden * 32
    encoders = sum(obs * a.encoder_width + a.encoder_width * a.latent_dim for obs in sizes.values())
    tokens = a.token_layers * 12 * a.token_dim**2 + a.pool_queries * a.token_dim * a.latent_dim
    variants = sum(spec.modalities.train.values())
    adapters = max(variants, 1) * a.latent_dim * (a.latent_dim + 2 * a.adapter_rank)
    return core + encoders + tokens + adapters


def device_memory(device: str) -> int:
    """Bytes of memory on ``device``: the machine's RAM for the CPU, or the process's address
    space limit (``ulimit -v``) where that is lower; 0 if unknown."""
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            return 0
        index = int(device.partition(":")[2] or 0)
        return int(torch.cuda.get_device_properties(index).total_memory)
    try:
        have = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not POSIX
        return 0
    try:
        import resource

        limit = resource.getrlimit(resource.RLIMIT_AS)[0]
    except (ImportError, OSError, ValueError):
        return have
    return have if limit == resource.RLIM_INFINITY else min(have, limit)


def _gb(n: float) -> str:
    return f"{n / 1e9:,.0f} GB" if n >= 1e9 else f"{n / 1e6:,.0f} MB"
