"""The ``device`` setting: a device this machine lacks is a one-line ConfigError; every tensor a
world, a render, an agent or a trainer holds is on the configured device; no ``.cuda()`` in the
library. The ``gpu`` tests (skipped without CUDA) train and evaluate on ``cuda`` and compare
world stepping and renders on ``cuda`` with ``cpu``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from torch import Tensor

import metaxm
from metaxm.build import make_trainer
from metaxm.cli import main
from metaxm.envs import make_world
from metaxm.envs.task_env import TaskEnv
from metaxm.errors import ConfigError
from metaxm.run.device import resolve_device
from metaxm.run.loop import train
from metaxm.spec import Spec, spec_from_dict

NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]


def tiny(algo: str, device: str = "cpu", **train: Any) -> Spec:
    return spec_from_dict(
        {
            "seed": 2,
            "device": device,
            "world": {"name": "gridnav", "size": 4, "horizon": 8},
            "modalities": {
                "train": {"vector": 1, "pixels": 1, "text": 1},
                "heldout_variants": {"vector": 1},
                "heldout_families": {"audio": 1},
            },
            "algo": algo,
            "agent": {"latent_dim": 8, "encoder_width": 8, "hidden": 8, "token_dim": 4},
            "ppo": {"num_steps": 8, "update_epochs": 1, "num_minibatches": 1},
            "maml": {"meta_batch": 3, "support_episodes": 2, "query_episodes": 2},
            "train": {"total_steps": 96, "num_envs": 4, "checkpoint_interval": 0, **train},
            "log": {"mode": "disabled", "progress": False},
            "evaluate": {"seeds": 1, "budgets": [0, 1], "scratch_cap": 2, "eval_episodes": 4,
                         "workers": 1, "strategies": ["zeroshot", "finetune", "scratch"]},
        }
    )  # fmt: skip


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ConfigError, match=r"^device: 'banana' is not a torch device"):
        resolve_device("banana")
    with pytest.raises(ConfigError, match="metaxm runs on cpu or cuda"):
        resolve_device("meta")


@NO_CUDA
def test_cuda_without_cuda_is_one_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^device: 'cuda' but CUDA is not available") as err:
        resolve_device("cuda")
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="CUDA is not available"):
        train(tiny("ppo", "cuda"), tmp_path / "run")
    assert not (tmp_path / "run").exists()  # refused before anything is written
    with pytest.raises(ConfigError, match="CUDA is not available"):
        make_world(tiny("ppo").world, 2, device="cuda:0")


@NO_CUDA
def test_cli_train_on_cuda_without_cuda_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"world": {"name": "gridnav", "size": 4}}))
    code = main(["train", str(spec), "--set", "device=cuda", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and "CUDA is not available" in err


def test_library_never_hardcodes_cuda() -> None:
    root = Path(metaxm.__file__).parent
    hits = [
        f"{path.relative_to(root)}:{i}"
        for path in root.rglob("*.py")
        for i, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"\.cuda\(|device=['\"]cuda|torch\.device\(['\"]cuda", line)
        and "nccl" not in line  # the nccl backend moves CUDA tensors only
    ]
    assert hits == []


def _tensors(trainer: Any) -> dict[str, Tensor]:
    """Every state tensor of a trainer's agent, worlds, renders and observations (generator
    states and optimizer step counters are CPU by torch's design and not included)."""
    out = {f"agent.{k}": v for k, v in trainer.agent.state_dict().items()}
    envs: dict[str, TaskEnv] = {}
    for name in ("envs", "support_envs", "query_envs"):
        envs.update({f"{name}.{f}": e for f, e in getattr(trainer, name, {}).items()})
    for name, env in envs.items():
        out.update(
            {f"{name}.world.{k}": v for k, v in vars(env.world).items() if torch.is_tensor(v)}
        )
        out.update({f"{name}.params.{k}": v for k, v in env.params.items()})
        out[f"{name}.episode_return"] = env.episode_return
    out.update({f"obs.{f}": o for f, o in getattr(trainer, "obs", {}).items()})
    return out


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("algo", ["ppo", "maml", "rl2"])
def test_every_tensor_lives_on_the_configured_device(algo: str, device: str) -> None:
    trainer = make_trainer(tiny(algo, device))
    metrics = trainer.update()
    assert all(v == v for v in metrics.values())
    tensors = _tensors(trainer)
    assert len(tensors) > 20
    wrong = {k: str(v.device) for k, v in tensors.items() if v.device.type != device}
    assert wrong == {}


@pytest.mark.gpu
@pytest.mark.parametrize("world", ["gridnav", "pointnav"])
def test_world_steps_and_renders_the_same_on_cuda_and_cpu(world: str) -> None:
    config = tiny("ppo").world if world == "gridnav" else spec_from_dict(
        {"world": {"name": "pointnav"}}
    ).world  # fmt: skip
    family = "text" if world == "gridnav" else "vector"  # text draws no noise; vector may
    cpu = TaskEnv(make_world(config, 16, "cpu", seed=3), family, 5, seed=3)
    gpu = TaskEnv(make_world(config, 16, "cuda", seed=3), family, 5, seed=3)
    cpu.reset()
    gpu.reset()
    for k, v in vars(cpu.world).items():  # the same start states and tasks on both
        if torch.is_tensor(v):
            setattr(gpu.world, k, v.to("cuda"))
    gen = torch.Generator().manual_seed(0)
    for _ in range(12):
        if world == "gridnav":
            actions = torch.randint(0, 4, (16,), generator=gen)
        else:
            actions = torch.rand(16, 2, generator=gen) * 2 - 1
        a = cpu.world.step(actions)
        b = gpu.world.step(actions.to("cuda"))
        for x, y in zip(a, b, strict=True):
            torch.testing.assert_close(y.cpu(), x)
        torch.testing.assert_close(gpu.world.scene().features.cpu(), cpu.world.scene().features)
        obs_cpu = cpu.family.render(cpu.world.scene(), cpu.params, cpu.render_generator)
        obs_gpu = gpu.family.render(gpu.world.scene(), gpu.params, gpu.render_generator)
        assert obs_gpu.device.type == "cuda" and obs_gpu.shape == obs_cpu.shape
        if family == "text":
            torch.testing.assert_close(obs_gpu.cpu(), obs_cpu)


@pytest.mark.gpu
def test_tiny_train_and_evaluate_on_cuda(tmp_path: Path) -> None:
    from dataclasses import replace

    from metaxm.evaluate.loading import load_agents
    from metaxm.evaluate.runner import run_evaluation

    result = train(tiny("ppo", "cuda", eval_episodes=8), tmp_path / "ppo")
    assert 0.0 <= result.evaluation["success"] <= 1.0
    maml = tiny("maml", "cuda", eval_episodes=4, init_from=str(tmp_path / "ppo"))
    maml = replace(maml, maml=replace(maml.maml, meta_sgd=True))  # learned rates travel too
    train(maml, tmp_path / "maml")
    agents = load_agents(tmp_path)  # onto the device the runs trained on
    for kind, agent in agents.by_kind.items():
        assert next(agent.parameters()).device.type == "cuda", kind
    assert all(v.device.type == "cuda" for v in agents.learners["maml"].inner_lrs.values())
    strategies = ["zeroshot", "maml", "finetune", "scratch"]
    report = run_evaluation(agents, strategies, progress=False, workers=1)
    assert len(report["modalities"]) == 2


@pytest.mark.parametrize(
    ("algo", "device"),
    [("rl2", "cpu")]  # the others resume exactly on CPU in their own tests
    + [pytest.param(a, "cuda", marks=pytest.mark.gpu) for a in ("ppo", "maml", "rl2")],
)
def test_resume_continues_the_run_on_its_device(algo: str, device: str, tmp_path: Path) -> None:
    from metaxm.run.checkpoint import list_checkpoints, load_checkpoint

    spec = tiny(
        algo, device, total_steps=288, checkpoint_interval=1, keep_checkpoints=0, eval_episodes=0
    )  # three updates
    train(spec, tmp_path / "run")
    full = load_checkpoint(list_checkpoints(tmp_path / "run")[-1])["trainer"]["agent"]
    for ckpt in list_checkpoints(tmp_path / "run")[1:]:
        ckpt.unlink()
    train(spec, tmp_path / "run", resume=True)  # generator states load as CPU byte tensors
    resumed = load_checkpoint(list_checkpoints(tmp_path / "run")[-1])["trainer"]["agent"]
    for name, value in full.items():  # CUDA kernels may reorder sums: a loose tolerance
        torch.testing.assert_close(resumed[name], value, rtol=1e-4, atol=1e-4, msg=name)
