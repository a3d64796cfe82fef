"""``train.init_from``: a run starts from another run's agent where names and shapes match."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from metaxm.build import make_trainer
from metaxm.errors import CheckpointError
from metaxm.run.init import init_agent_from
from metaxm.run.loop import train
from metaxm.spec import spec_from_dict

BASE = {
    "seed": 3,
    "world": {"name": "gridnav", "size": 4, "horizon": 8},
    "modalities": {"train": {"vector": 2}},
    "agent": {"latent_dim": 8, "encoder_width": 16, "hidden": 16},
    "ppo": {"num_steps": 8, "update_epochs": 1, "num_minibatches": 1},
    "train": {"total_steps": 64, "num_envs": 8, "checkpoint_interval": 0, "eval_episodes": 0},
    "log": {"mode": "disabled", "progress": False},
}


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("init") / "ppo"
    train(spec_from_dict(BASE), out)
    return out


def test_matching_parameters_are_copied(source: Path) -> None:
    from metaxm.run.checkpoint import load_checkpoint, resolve_checkpoint

    saved = load_checkpoint(resolve_checkpoint(source))["trainer"]["agent"]
    rl2 = make_trainer(spec_from_dict({**BASE, "seed": 4, "algo": "rl2"}))
    before = {k: v.clone() for k, v in rl2.agent.state_dict().items()}
    copied = init_agent_from(rl2.agent, source)
    after = rl2.agent.state_dict()
    assert copied and all(k.startswith(("encoders.", "adapters.")) for k in copied)
    for k in copied:
        assert torch.equal(after[k], saved[k])
    core = [k for k in after if k.startswith("core.")]
    assert core and all(torch.equal(after[k], before[k]) for k in core)  # GRU core stays fresh
    mlp = make_trainer(spec_from_dict({**BASE, "seed": 5})).agent
    assert set(init_agent_from(mlp, source)) == set(saved)  # same architecture: everything


def test_a_run_starts_from_the_source(source: Path, tmp_path: Path) -> None:
    spec = spec_from_dict({**BASE, "train": {**BASE["train"], "init_from": str(source)}})
    result = train(spec, tmp_path / "b")
    assert result.env_steps == 64
    with pytest.raises(CheckpointError, match=r"a folder of runs \(b\), not one run; name one"):
        init_agent_from(make_trainer(spec).agent, tmp_path)  # the folder above the run
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no checkpoints in this run directory"):
        init_agent_from(make_trainer(spec).agent, tmp_path / "empty")


def test_restoring_an_env_rebuilds_the_worlds_task_caches() -> None:
    """A fix: GridNav's plain-Python "any walls" flag was not restored with the tensors."""
    from metaxm.envs import GridNav, GridNavConfig
    from metaxm.envs.task_env import TaskEnv
    from metaxm.rl.trainer import env_state, load_env_state

    walled = TaskEnv(
        GridNav(GridNavConfig(size=5, walls=True, wall_fraction=0.4), 4, seed=0), "vector"
    )
    walled.reset()
    fresh = TaskEnv(GridNav(GridNavConfig(size=5, walls=True), 4, seed=1), "vector")
    fresh.world.set_tasks(
        {"goal": fresh.world.goal, "walls": torch.zeros(4, 5, 5, dtype=torch.bool)}
    )
    fresh.reset()
    load_env_state(fresh, env_state(walled))
    actions = torch.arange(4) % 4
    for _ in range(6):
        a, b = walled.step(actions), fresh.step(actions)
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
