"""What each trainer refuses in a spec, checked from the spec alone, before anything is built.

The trainers call these when they are constructed; :func:`metaxm.resources.check_spec` calls
:func:`check_trainer`, so ``load_spec``, ``metaxm train --check`` and the main job's check of
every stage of ``main.runs`` refuse such a spec before anything is built or trained.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from metaxm.errors import ConfigError

if TYPE_CHECKING:
    from metaxm.spec import Spec

FITS = ("metafit", "priorfit", "selffit")
"""The trainers that fit on a frozen PPO source agent (:mod:`metaxm.align.metafit_trainer`)."""


def check_trainer(spec: Spec) -> None:
    """Everything the trainer of ``spec.algo`` refuses that the spec alone shows.

    Raises:
        ConfigError: one line naming the setting.
    """
    if spec.algo == "ppo":
        check_ppo(spec)
    elif spec.algo == "maml":
        check_maml(spec)
    elif spec.algo in FITS:
        check_fit(spec, spec.algo)
    if spec.algo in ("ppo", "rl2"):
        check_frozen(spec)
    if spec.algo in ("ppo", "rl2", "maml"):
        check_alignment(spec)


def check_ppo(spec: Spec) -> None:
    if spec.agent.core != "mlp":
        raise ConfigError(
            "agent.core: PPO trains a feed-forward agent (core: mlp); the gru core is for algo: rl2"
        )


def check_maml(spec: Spec) -> None:
    if spec.agent.core != "mlp":
        raise ConfigError("agent.core: MAML adapts a feed-forward agent; use core: mlp")
    if spec.train.freeze != "none":
        raise ConfigError(
            "train.freeze: MAML meta-learns the adapter its inner loop adapts; use none"
        )
    families = list(spec.modalities.train)  # TaskSampler's training families, with no world built
    if spec.maml.meta_batch < len(families):
        raise ConfigError(
            f"maml.meta_batch ({spec.maml.meta_batch}) must be at least the number of training "
            f"families ({len(families)}): every family needs a task per meta-batch"
        )


def check_fit(spec: Spec, key: str) -> None:
    if spec.agent.core != "mlp" or spec.agent.adapters != "variant":
        raise ConfigError(
            f"algo: {key} adapts a PPO source agent: set agent.adapters: variant and "
            "agent.core: mlp, and train.init_from: its run"
        )
    if not spec.train.init_from:
        raise ConfigError(f"algo: {key} needs train.init_from: the source agent's run")


def check_frozen(spec: Spec) -> None:
    """``train.freeze: latent`` needs a latent to keep (``align.init_from`` or
    ``train.init_from``; frozen random encoders are a mistake, not a baseline), and excludes an
    auxiliary alignment loss, which would train the very encoders and adapters it freezes."""
    if spec.train.freeze != "latent":
        return
    if spec.align.weight > 0:
        raise ConfigError(
            "train.freeze: latent keeps the encoders and adapters fixed, so align.weight "
            f"({spec.align.weight}) would train nothing; set one of them off"
        )
    if not (spec.align.init_from or spec.train.init_from):
        raise ConfigError(
            "train.freeze: latent would keep randomly initialised encoders; start the run from "
            "a pretraining run (align.init_from) or another run (train.init_from)"
        )


def check_alignment(spec: Spec) -> None:
    """``align.weight > 0`` pairs renders of the training variants: ``align.views: 0`` pairs
    every training family, so it needs two."""
    if spec.align.weight <= 0 or spec.align.views != 0:
        return
    families = list(spec.modalities.train)
    if len(families) < 2:
        raise ConfigError(
            f"align.weight > 0 with align.views: 0 pairs every training family, and there is "
            f"one ({', '.join(families)}); the alignment loss needs two views: add a training "
            "family or set align.views >= 2"
        )
