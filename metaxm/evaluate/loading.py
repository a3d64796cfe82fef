"""Loading trained agents from checkpoints and run directories for evaluation.

A *run directory* is what ``metaxm train --out RUNDIR`` writes (``config.yaml``,
``checkpoints/``). The main job writes one run per algorithm under one folder
(``OUT/ppo``, ``OUT/maml``, ``OUT/rl2``); :func:`load_agents` accepts either a single run or
such a folder. Checkpoints are loaded with ``weights_only=True`` (see
:func:`metaxm.run.checkpoint.load_checkpoint`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from metaxm.errors import CheckpointError
from metaxm.evaluate.strategies import Agents
from metaxm.learners import Learner
from metaxm.nn.agent import Agent
from metaxm.run.checkpoint import (
    file_sha256,
    load_checkpoint,
    resolve_checkpoint,
    state_dict_error,
)

if TYPE_CHECKING:
    from metaxm.spec import Spec

log = logging.getLogger(__name__)

KINDS = ("ppo", "maml", "rl2", "metafit", "selffit", "priorfit")


def add_family(agents: Agents, family: str, seed: int = 0) -> None:
    """Let ``agents`` meet a family they were trained without: the spec (and each run's) gains
    it as a held-out family, and every agent a fresh encoder and identity adapter for it.

    Raises:
        ConfigError: an unknown family, one the agents already read, or one that cannot
            render the spec's world.
    """
    from metaxm.errors import ConfigError
    from metaxm.modalities import get_family
    from metaxm.resources import check_spec
    from metaxm.spec import with_heldout_families

    try:
        space_of = get_family(family).observation_space
    except ValueError as err:
        raise ConfigError(f"--add-family: {err}") from None
    if any(family in agent.families for agent in agents.by_kind.values()):
        raise ConfigError(f"--add-family {family}: the agents already read it")
    spec = with_heldout_families(agents.spec, [family])
    check_spec(spec)  # the family can render the world
    agents.configs = {k: with_heldout_families(s, [family]) for k, s in agents.configs.items()}
    from metaxm.envs import make_world

    info = make_world(spec.world, 1).scene_info
    for agent in agents.by_kind.values():
        agent.add_family(family, space_of(info), seed=seed)
    use_spec(agents, spec)


def check_evaluation_spec(agents: Agents, spec: Spec, source: str) -> None:
    """Refuse an evaluation spec (from ``source``: ``--spec PATH`` or ``--set``) under which a
    loaded agent could not read a family it reads: the trained networks fix each family's
    observation shape, which the world (its size, its layout) sets.

    Raises:
        ConfigError: the first family whose observation the spec would change.
    """
    from metaxm.envs import make_world
    from metaxm.errors import ConfigError
    from metaxm.modalities import get_family

    info = make_world(spec.world, num_envs=1, seed=spec.seed).scene_info
    for kind, agent in agents.by_kind.items():
        for family, read in agent.observation_spaces.items():
            try:
                space = get_family(family).observation_space(info)
            except ValueError as err:
                why = f"{source}: {family} cannot render this spec's world: {err}"
                raise ConfigError(why) from None
            if space != read:
                raise ConfigError(
                    f"{source}: the {kind} agent reads {family} observations of shape "
                    f"{tuple(read.shape)}, which this spec's world renders as "
                    f"{tuple(space.shape)}; the trained agents fix the world (evaluate under "
                    "the run's)"
                )
    check_splits(agents, spec, source)


def trained_variants(agents: Agents) -> dict[tuple[str, int], str]:
    """Each ``(family, variant)`` of a loaded agent's training split (its run's own), with the
    first kind whose split holds it. An agent trained on fresh variants (``rl2.variants:
    fresh``) counts its split too, a superset of what it saw: it is kept out of held-out
    scores all the same."""
    from metaxm.sampler import TaskSampler

    out: dict[tuple[str, int], str] = {}
    for kind, trained in agents.configs.items():
        for family_variant in TaskSampler(trained).modalities("train"):
            out.setdefault(family_variant, kind)
    return out


def check_splits(agents: Agents, spec: Spec, source: str) -> None:
    """Refuse an evaluation spec whose splits are not the runs': the spec's ``seed`` and
    ``modalities.train`` draw the training variants, and the held-out ones (of a held-out
    family too) from the same order after them, so another seed, fewer training variants or a
    trained family moved to ``heldout_families`` would score a variant an agent trained on as
    held out, or measure the source level on variants no agent trained on.

    Raises:
        ConfigError: the first such variant.
    """
    from metaxm.errors import ConfigError
    from metaxm.sampler import TaskSampler

    trained = trained_variants(agents)
    if not trained:
        return
    sampler = TaskSampler(spec)
    why = "(the seed and modalities.train draw the splits: evaluate under the run's)"
    for split in ("heldout_variants", "heldout_families"):
        for family, variant in sampler.modalities(split):
            if (family, variant) in trained:
                kind = trained[family, variant]
                raise ConfigError(
                    f"{source}: held-out {family}:{variant} is a variant the {kind} agent "
                    f"trained on {why}"
                )
    read = {
        f for agent in getattr(agents, "by_kind", {}).values() for f in agent.observation_spaces
    }
    named = {f for split in sampler.splits.values() for f in split}
    if read and named - read:
        return  # families no agent reads: plan_evaluation refuses them, naming each
    for family, variant in sampler.modalities("train"):
        if (family, variant) not in trained:
            raise ConfigError(
                f"{source}: the source level would be measured on {family}:{variant}, which no "
                f"loaded agent trained on {why}"
            )


def use_spec(agents: Agents, spec: Spec) -> None:
    """Evaluate ``agents`` under ``spec``: the strategies and every learner (the settings its
    adaptation reads, e.g. ``align.*``) both see it."""
    agents.spec = spec
    for learner in agents.learners.values():
        learner.spec = spec


def load_agent(
    path: str | Path, device: str | None = None
) -> tuple[Agent, Spec, str, dict[str, Any]]:
    """The trained agent of a checkpoint (or run directory), its spec, its ``algo``, and the
    trainer's other learned state (MAML's ``inner_lrs``, the meta-learned fit's ``metafit``).

    Raises:
        CheckpointError: no checkpoint, an unsafe or corrupt one, or one without an agent.
    """
    from metaxm.build import make_agent
    from metaxm.run.device import resolve_device
    from metaxm.spec import replace, spec_from_dict

    if device is not None:
        resolve_device(device)
    ckpt = resolve_checkpoint(path)
    state = load_checkpoint(ckpt, map_location=device or "cpu")
    try:
        spec = spec_from_dict(state["spec"], saved=True)
        weights = state["trainer"]["agent"]
    except (KeyError, TypeError):
        raise CheckpointError(f"{ckpt}: holds no agent and spec") from None
    if Path(path).is_dir() and not (Path(path) / "summary.json").is_file():
        loop = state.get("loop")
        steps = loop.get("env_steps") if isinstance(loop, dict) else None
        log.warning(
            "%s did not finish (no summary.json): its agent is the newest checkpoint's, %s, "
            "at %s of %s env steps", path, ckpt.name,
            f"{steps:,}" if isinstance(steps, int) else "?", f"{spec.train.total_steps:,}",
        )  # fmt: skip
    if device is not None:
        spec = replace(spec, device=device)
    resolve_device(spec.device)  # a run trained on a GPU, loaded where there is none
    algo = str(state.get("algo", spec.algo))
    if algo not in KINDS:
        raise CheckpointError(
            f"{ckpt}: a {algo} checkpoint holds no policy to evaluate; evaluate the runs "
            "trained from it (align.init_from)"
        )
    agent = make_agent(replace(spec, algo=algo)).to(spec.device)
    try:
        agent.load_state_dict(weights)
    except RuntimeError as err:
        raise CheckpointError(
            f"{ckpt}: the agent's weights do not fit its spec ({state_dict_error(err)})"
        ) from None
    agent.eval()
    extras = {}
    for fit in ("metafit", "selffit", "priorfit"):  # a learned fit (metaxm.align.metafit, ...)
        if fit in state["trainer"]:
            from metaxm.align.metafit import load_tables

            extras[fit] = load_tables(state["trainer"][fit], spec.device)
    if "inner_lrs" in state["trainer"]:
        lrs = state["trainer"]["inner_lrs"]  # beside the agent (loaded onto the CPU above)
        extras["inner_lrs"] = {k: v.to(spec.device) for k, v in lrs.items()}
    return agent, spec, algo, extras


def load_agents(
    path: str | Path,
    spec: Spec | None = None,
    device: str | None = None,
    kinds: Sequence[str] = KINDS,
) -> Agents:
    """Every trained agent under ``path``: a run directory, or a folder of runs named by algo.

    Args:
        path: a run directory or checkpoint, or a folder holding ``ppo/``, ``maml/``, ``rl2/``.
        spec: the spec to evaluate under (its held-out splits and ``evaluate`` section);
            defaults to the spec of the first run found.
        device: load onto this device instead of the runs' own.
        kinds: in a folder of runs, the algos loaded (default: all of :data:`KINDS`; the main
            job loads the finished ones while others still train).
    """
    path = Path(path)
    runs = [path / k for k in KINDS if k in kinds and (path / k).is_dir()] if path.is_dir() else []
    if not runs:
        runs = [path]
    agents = Agents(spec=spec)  # type: ignore[arg-type]
    learned: dict[str, dict[str, Any]] = {}
    for run in runs:
        agent, run_spec, algo, learned[algo] = load_agent(run, device)
        if algo in agents.by_kind:
            raise CheckpointError(f"{path}: two runs of algo {algo!r}")
        agents.by_kind[algo] = agent
        agents.checkpoints[algo] = file_sha256(resolve_checkpoint(run))
        agents.configs[algo] = run_spec
        if agents.spec is None:
            agents.spec = run_spec
    if device is not None:
        from metaxm.spec import replace

        agents.spec = replace(agents.spec, device=device)
    agents.learners = learners(agents, learned)
    return agents


LEARNER_KINDS = (
    ("ppo", "align"), ("ppo", "translate"), ("ppo", "selfread"), ("maml", "maml"),
    ("rl2", "rl2"), ("metafit", "metafit"), ("selffit", "selffit"), ("priorfit", "priorfit"),
)  # fmt: skip
"""``(agent kind, learner name)``: the learner (:data:`metaxm.learners.LEARNERS`) that
:func:`learners` builds on each loaded agent of that kind; a learner not named here (a
plugin's) is built on the first loaded kind among its ``algos``."""


def learners(agents: Agents, learned: dict[str, dict[str, Any]]) -> dict[str, Learner]:
    """The learner of every loaded agent that has one, under the evaluation spec, holding the
    state its run learned (``learned[algo]``, as :func:`load_agent` returns it)."""
    from metaxm.learners import LEARNERS

    out: dict[str, Learner] = {}
    named = {name for _, name in LEARNER_KINDS}
    others = [
        (next(a for a in cls.algos if a in agents.by_kind), name)
        for name, cls in LEARNERS.items()
        if name not in named and any(a in agents.by_kind for a in cls.algos)
    ]
    for algo, name in (*LEARNER_KINDS, *others):
        cls = LEARNERS[name]
        if algo in agents.by_kind:
            # the run's own settings (maml, align), then the evaluation's spec
            learner = cls.from_trained(agents.by_kind[algo], agents.configs[algo], learned[algo])
            learner.spec = agents.spec
            out[cls.name] = learner
    return out
