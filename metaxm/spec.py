"""Task specs: the YAML files in ``tasks/`` loaded strictly into a frozen :class:`Spec`.

A spec names the world and its parameters, the modality families with how many variants go to
each split, the seed, and the settings of every part of a run. Each section is the config
dataclass of the module it configures; this file only composes them::

    seed: 0
    world: {name: gridnav, size: 7}
    modalities:
      train: {vector: 8, pixels: 8}
      heldout_variants: {vector: 2, pixels: 2}
      heldout_families: {audio: 4}

Any unknown key, wrong type, unknown world or unknown family is a :class:`ConfigError` whose
one-line message names the key and what is allowed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from metaxm.config import ConfigError, apply_overrides, bounded, from_dict, load_yaml, to_dict
from metaxm.config.agent import AgentConfig
from metaxm.config.align import AlignConfig
from metaxm.config.evaluate import EvalConfig
from metaxm.config.log import LogConfig
from metaxm.config.main import MainConfig
from metaxm.config.maml import MAMLConfig
from metaxm.config.ppo import PPOConfig
from metaxm.config.rl2 import RL2Config
from metaxm.config.train import TrainConfig
from metaxm.errors import MetaxmError
from metaxm.plugins import HOW_TO_REGISTER

Split = Literal["train", "heldout_variants", "heldout_families"]
SPLITS: tuple[Split, ...] = ("train", "heldout_variants", "heldout_families")


VARIANTS = {"range": (1, 1000)}  # variants of one family in one split


@dataclass(frozen=True)
class ModalitySplits:
    """Which modality variants each split holds, as ``{family: number of variants}``.

    Attributes:
        train: families and variant counts used for (meta-)training.
        heldout_variants: fresh variants of training families, never seen in training.
        heldout_families: families never seen in training at all.
    """

    train: dict[str, int] = field(default_factory=lambda: {"vector": 1}, metadata=VARIANTS)
    heldout_variants: dict[str, int] = field(default_factory=dict, metadata=VARIANTS)
    heldout_families: dict[str, int] = field(default_factory=dict, metadata=VARIANTS)

    def __post_init__(self) -> None:
        from metaxm.modalities import FAMILIES  # the families register on import

        for split in SPLITS:
            for family, n in getattr(self, split).items():
                if family not in FAMILIES:
                    raise ConfigError(
                        f"modalities.{split}.{family}: unknown modality family; "
                        f"registered: {', '.join(sorted(FAMILIES))}; {HOW_TO_REGISTER}"
                    )
                if n < 1:
                    raise ConfigError(f"modalities.{split}.{family}: need >= 1 variant, got {n}")
        if not self.train:
            raise ConfigError("modalities.train: name at least one family to train on")
        for family in self.heldout_variants:
            if family not in self.train:
                raise ConfigError(
                    f"modalities.heldout_variants.{family}: not a training family; "
                    f"held-out variants must come from: {', '.join(self.train)}"
                )
        for family in self.heldout_families:
            if family in self.train:
                raise ConfigError(
                    f"modalities.heldout_families.{family}: a held-out family cannot also be "
                    "in train"
                )


def _default_world() -> Any:
    from metaxm.envs import GridNavConfig

    return GridNavConfig()


def _parse_world(value: Any, key: str) -> Any:
    if not isinstance(value, dict):
        raise ConfigError(f"{key}: expected a mapping with a 'name', got {value!r}")
    name = value.get("name", "gridnav")
    if not isinstance(name, str):
        raise ConfigError(f"{key}.name: expected the name of a world, got {name!r}")
    from metaxm.envs import world_config_class  # the worlds register on import

    try:
        cls = world_config_class(name)
    except ValueError as err:
        raise ConfigError(f"{key}.name: {err}; {HOW_TO_REGISTER}") from None
    return from_dict(cls, value, prefix=key)


@dataclass(frozen=True)
class Spec:
    """A whole task spec.

    Attributes:
        imports: modules to import before the rest of the spec is checked: plugins that
            register the spec's world or families (:mod:`metaxm.plugins`).
        seed: the root seed of everything the run draws (tasks, variants, weights).
        device: where worlds, renders and training run.
        world: the world and its parameters (a registered world's config, chosen by ``name``).
        modalities: the families and variant counts of each split.
        algo: the training algorithm ``metaxm train`` runs (see :data:`metaxm.build.TRAINERS`).
        agent: the agent's architecture (:class:`metaxm.nn.agent.AgentConfig`).
        ppo: PPO's hyper-parameters (:class:`metaxm.rl.ppo.PPOConfig`).
        rl2: RL^2's trial settings (:class:`metaxm.meta.rl2.RL2Config`).
        maml: MAML's hyper-parameters (:class:`metaxm.meta.maml.MAMLConfig`).
        train: run length, environments, log and checkpoint intervals
            (:class:`metaxm.run.loop.TrainConfig`).
        log: wandb mode and project, progress bar (:class:`metaxm.run.logger.LogConfig`).
        evaluate: the transfer evaluation (:class:`metaxm.config.evaluate.EvalConfig`).
        main: what the main job runs (:class:`metaxm.pipeline.MainConfig`).
        align: cross-modal alignment: pretraining, the auxiliary loss and few-shot fits
            (:class:`metaxm.config.align.AlignConfig`).
    """

    imports: tuple[str, ...] = ()
    seed: int = bounded(0, 0, 2**62)
    device: str = "cpu"
    world: Any = field(default_factory=_default_world, metadata={"parse": _parse_world})
    modalities: ModalitySplits = field(default_factory=ModalitySplits)
    algo: Literal["ppo", "rl2", "maml", "metafit", "selffit", "priorfit"] = "ppo"
    agent: AgentConfig = field(default_factory=AgentConfig)
    ppo: PPOConfig = field(default_factory=PPOConfig)
    rl2: RL2Config = field(default_factory=RL2Config)
    maml: MAMLConfig = field(default_factory=MAMLConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    log: LogConfig = field(default_factory=LogConfig)
    align: AlignConfig = field(default_factory=AlignConfig)
    evaluate: EvalConfig = field(default_factory=EvalConfig)
    main: MainConfig = field(default_factory=MainConfig)


def load_spec(path: str | Path, overrides: list[str] | None = None) -> Spec:
    """Load a task spec from YAML, applying ``--set key=value`` overrides first, and check it
    whole before anything runs: every run of ``main.runs`` is built too, and each is checked
    against its world and the machine (:func:`metaxm.resources.check_spec`).

    Raises:
        ConfigError: one line naming the key (``main.runs.<name>.<key>`` inside a run).
    """
    data = load_yaml(path)
    if overrides:
        data = apply_overrides(data, overrides)
    return check_spec(spec_from_dict(data))


def check_spec(spec: Spec) -> Spec:
    """``spec`` after checking it and each run of its ``main.runs`` against their world and
    the machine (:func:`metaxm.resources.check_spec`); a refused run is named."""
    from metaxm.evaluate.strategies import STRATEGIES
    from metaxm.pipeline import run_spec
    from metaxm.resources import check_spec as check_resources

    unknown = [s for s in spec.evaluate.strategies if s not in STRATEGIES]
    if unknown:
        raise ConfigError(
            f"evaluate.strategies: unknown strategy {unknown[0]!r}; choose from "
            f"{', '.join(STRATEGIES)}"
        )
    check_resources(spec)
    for name in spec.main.runs:
        try:
            check_resources(run_spec(spec, name, "{out}"))
        except ConfigError as err:
            message = str(err)
            prefix = f"main.runs.{name}: "
            raise ConfigError(message if message.startswith(prefix) else prefix + message) from None
    return spec


def spec_from_dict(data: dict[str, Any], saved: bool = False) -> Spec:
    """Build a :class:`Spec` from plain data, strictly, after loading the installed plugins
    and importing the modules its ``imports:`` names (:mod:`metaxm.plugins`).

    Args:
        data: the spec as plain data.
        saved: the spec comes from a run or checkpoint, not from the user: its ``imports``,
            and the module of a ``world.env_id`` written ``module:Id``, are imported only from
            outside the current folder (:func:`metaxm.plugins.import_saved`), so a module
            dropped beside a run is never run by loading it.
    """
    from metaxm.plugins import import_modules, import_saved, load_plugins, refuse_saved_env

    load_plugins()
    if isinstance(data, dict) and data.get("imports"):
        (import_saved if saved else import_modules)(data["imports"])
    if saved and isinstance(data, dict):
        refuse_saved_env(data.get("world"))
    return from_dict(Spec, data)


def with_defaults(stored: Any) -> Any:
    """A run's or checkpoint's saved spec as the current version writes it: the fields added
    since it was saved at their defaults (a new setting's default keeps the behaviour it had),
    so that a run started by an older metaxm resumes; ``stored`` as it is where it does not
    parse (a comparison then names the difference)."""
    try:
        return spec_to_dict(spec_from_dict(stored, saved=True))
    except (MetaxmError, TypeError, ValueError):
        return stored


def spec_to_dict(spec: Spec) -> dict[str, Any]:
    """The resolved spec as plain data (what ``RUNDIR/config.yaml`` holds)."""
    return to_dict(spec)


def replace(spec: Spec, **changes: Any) -> Spec:
    """A copy of ``spec`` with top-level sections replaced (configs are frozen)."""
    return dataclasses.replace(spec, **changes)


def with_heldout_families(spec: Spec, families: Sequence[str]) -> Spec:
    """``spec`` with ``families`` among its held-out families (one variant each, unless it
    already names them): the spec of an agent given their encoders after training."""
    m = spec.modalities
    held = {**m.heldout_families, **{f: m.heldout_families.get(f, 1) for f in families}}
    return replace(spec, modalities=dataclasses.replace(m, heldout_families=held))
