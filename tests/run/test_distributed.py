"""Distributed training (metaxm.run.distributed): 2 gloo ranks on CPU give the parameters of one
process with the same total batch (MAML, RL^2 and PPO), resume included; the helpers are no-ops
in one process; metrics from several ranks merge into the one-process record."""

from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from metaxm.errors import ConfigError
from metaxm.run import distributed
from metaxm.run.checkpoint import list_checkpoints, load_checkpoint
from metaxm.run.loop import train
from metaxm.spec import Spec, spec_from_dict

WORLD = 2
TIMEOUT_S = 120


def tiny_spec(algo: str) -> Spec:
    """GridNav 4x4 through two families, a tiny agent, two updates of each algorithm."""
    data: dict[str, Any] = {
        "seed": 1,
        "world": {"name": "gridnav", "size": 4, "horizon": 8},
        "modalities": {"train": {"vector": 2, "projected": 1}, "heldout_variants": {"vector": 1}},
        "algo": algo,
        "agent": {"latent_dim": 8, "encoder_width": 8, "hidden": 8, "token_dim": 4},
        "ppo": {"num_steps": 8, "update_epochs": 2, "num_minibatches": 2},
        "maml": {"meta_batch": 4, "support_episodes": 2, "query_episodes": 2, "outer_epochs": 2},
        "train": {
            "total_steps": 2 * 128 if algo == "maml" else 2 * 64,
            "num_envs": 4,
            "checkpoint_interval": 1,
            "keep_checkpoints": 0,
            "eval_episodes": 0,
        },
        "log": {"mode": "disabled", "progress": False},
    }
    if algo == "ppo":  # per-variant adapters: parameters that only one rank's family uses
        data["agent"]["adapters"] = "variant"
    return spec_from_dict(data)


ALGOS = ("maml", "rl2", "ppo")


def _worker(rank: int, ports: list[int], out: str, runs: list[tuple[str, str, bool]]) -> None:
    """One rank, started the way torchrun starts it (its environment variables); each run joins
    and leaves its own process group inside ``train`` (``distributed.setup``/``teardown``)."""
    torch.set_num_threads(1)
    os.environ.update(
        {"WANDB_MODE": "disabled", "RANK": str(rank), "LOCAL_RANK": str(rank),
         "WORLD_SIZE": str(WORLD), "MASTER_ADDR": "127.0.0.1"}
    )  # fmt: skip
    for port, (algo, name, resume) in zip(ports, runs, strict=True):
        os.environ["MASTER_PORT"] = str(port)
        train(tiny_spec(algo), Path(out) / name, resume=resume)
        assert not dist.is_initialized()  # left by train


def _free_ports(n: int) -> list[int]:
    """``n`` distinct free ports (all held open while choosing, so none repeats)."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _agent(rundir: Path) -> dict[str, Any]:
    state = load_checkpoint(list_checkpoints(rundir)[-1])
    return {
        "agent": state["trainer"]["agent"],
        "counters": state["trainer"]["counters"],
        "update": state["loop"]["update"],
    }


def _ranks(out: Path, runs: list[tuple[str, str, bool]]) -> None:
    """:func:`_worker` on ``WORLD`` forked ranks; they are killed after ``TIMEOUT_S``."""
    # fork, after the heavy imports a run makes, so the ranks start in well under a second
    # (spawn re-imports torch, torch._dynamo and matplotlib in each rank: ~10 s on 2 cores)
    import matplotlib.pyplot  # noqa: F401
    import torch._dynamo  # noqa: F401

    ports = _free_ports(len(runs))
    ctx = mp.start_processes(
        _worker, args=(ports, str(out), runs), nprocs=WORLD, join=False, start_method="fork"
    )
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while not ctx.join(timeout=1):
            if time.monotonic() > deadline:
                pytest.fail(f"the {WORLD} ranks did not finish within {TIMEOUT_S} s")
    finally:
        for p in ctx.processes:
            if p.is_alive():
                p.kill()


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Each algorithm's run on 2 ranks, then the MAML run resumed from its first checkpoint."""
    out = tmp_path_factory.mktemp("dist")
    _ranks(out, [(algo, algo, False) for algo in ALGOS])
    shutil.copytree(out / "maml", out / "maml-resumed")
    for ckpt in list_checkpoints(out / "maml-resumed")[1:]:
        ckpt.unlink()
    _ranks(out, [("maml", "maml-resumed", True)])
    return out


@pytest.mark.parametrize("algo", ALGOS)
def test_two_ranks_equal_one_process(two_ranks: Path, tmp_path: Path, algo: str) -> None:
    one = _agent(train(tiny_spec(algo), tmp_path / "one").rundir)
    two = _agent(two_ranks / algo)
    assert two["update"] == one["update"] == 2
    assert two["counters"] == one["counters"]  # env steps and episodes counted over all ranks
    assert two["agent"].keys() == one["agent"].keys()
    for name, value in one["agent"].items():
        torch.testing.assert_close(two["agent"][name], value, rtol=0, atol=1e-5, msg=name)
    moved = max(
        float((v - load_checkpoint(list_checkpoints(tmp_path / "one")[0])["trainer"]["agent"][k])
              .abs().max())
        for k, v in one["agent"].items()
    )  # fmt: skip
    assert moved > 1e-4  # the runs did train, so equality is not trivial


def test_two_ranks_resume_exactly(two_ranks: Path) -> None:
    full, resumed = _agent(two_ranks / "maml"), _agent(two_ranks / "maml-resumed")
    assert resumed["update"] == 2 and resumed["counters"] == full["counters"]
    for name, value in full["agent"].items():
        torch.testing.assert_close(resumed["agent"][name], value, rtol=0, atol=1e-6, msg=name)
    records = (two_ranks / "maml-resumed" / "metrics.jsonl").read_text().splitlines()
    assert len(records) == 2  # rank 0 alone logged, once per update


def test_helpers_are_no_ops_in_one_process() -> None:
    assert not distributed.active()
    assert (distributed.rank(), distributed.world_size(), distributed.is_main()) == (0, 1, True)
    assert distributed.local_families(["a", "b", "c"]) == ["a", "b", "c"]
    p = torch.nn.Parameter(torch.ones(3))
    p.grad = torch.full((3,), 2.0)
    distributed.all_reduce_gradients([p])
    assert p.grad.tolist() == [2.0, 2.0, 2.0]
    assert distributed.all_reduce_sum({"x": 1.5}) == {"x": 1.5}
    assert distributed.gather_dict({"a": 1}) == {"a": 1}
    assert distributed.setup("cpu") == distributed.DistContext(0, 1, False)


def test_merge_metrics_sums_counts_and_weights_episode_means() -> None:
    rank0 = {"episodes": 1.0, "return": 4.0, "episodes/a": 1.0, "return/a": 4.0, "loss": 0.5,
             "post_return": 4.0, "collect_s": 1.0}  # fmt: skip
    rank1 = {"episodes": 3.0, "return": 0.0, "episodes/b": 3.0, "return/b": 0.0, "loss": 0.5,
             "post_return": 2.0, "collect_s": 3.0}  # fmt: skip
    merged = distributed.merge_metrics([rank0, rank1])
    assert merged == {
        "episodes": 4.0, "return": 1.0, "episodes/a": 1.0, "return/a": 4.0, "episodes/b": 3.0,
        "return/b": 0.0, "loss": 0.5, "post_return": 2.5, "collect_s": 2.0,
    }  # fmt: skip
    # a rank with no finished episode adds nothing to the means
    assert distributed.merge_metrics([{"episodes": 0.0}, {"episodes": 2.0, "return": 1.0}]) == {
        "episodes": 2.0,
        "return": 1.0,
    }


def test_more_ranks_than_families_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(distributed, "world_size", lambda: 3)
    with pytest.raises(ConfigError, match=r"3 processes but only 2 training families"):
        distributed.check_spec(tiny_spec("ppo"), ["vector", "projected"])
    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    distributed.check_spec(tiny_spec("ppo"), ["vector", "projected"])  # fits


@pytest.mark.parametrize("algo", distributed.UNSPLIT_ALGOS)
def test_a_trainer_that_does_not_split_is_refused(
    monkeypatch: pytest.MonkeyPatch, algo: str
) -> None:
    """The fitting trainers never call ``local_families``: two ranks would each run it all."""
    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    spec = dataclasses.replace(tiny_spec("ppo"), algo=algo)
    with pytest.raises(ConfigError, match=rf"^algo: {algo} does not share its work out"):
        distributed.check_spec(spec, ["vector", "projected"])
    monkeypatch.setattr(distributed, "world_size", lambda: 1)
    distributed.check_spec(spec, ["vector", "projected"])  # one process: nothing to split


@pytest.mark.slow
def test_torchrun_cli_trains_and_resumes(tmp_path: Path) -> None:
    """``torchrun --nproc_per_node=2 -m metaxm train`` end to end, then ``--resume``."""
    import subprocess
    import sys

    import yaml

    from metaxm.spec import spec_to_dict

    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(spec_to_dict(tiny_spec("maml"))))
    out = tmp_path / "run"

    def torchrun(*extra: str) -> subprocess.CompletedProcess[str]:
        port = str(_free_ports(1)[0])
        cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={WORLD}",
               f"--master_port={port}", "-m", "metaxm", "train", str(spec), "--out", str(out),
               *extra]  # fmt: skip
        env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}
        return subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, env=env)

    done = torchrun()
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("run: ") == 1  # rank 0 reports
    full = _agent(out)
    for ckpt in list_checkpoints(out)[1:]:
        ckpt.unlink()
    again = torchrun("--resume")
    assert again.returncode == 0, again.stderr[-2000:]
    resumed = _agent(out)
    assert resumed["update"] == full["update"] == 2
    for name, value in full["agent"].items():
        torch.testing.assert_close(resumed["agent"][name], value, rtol=0, atol=1e-6, msg=name)


def test_metaxm_main_under_torchrun_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from metaxm.cli import main

    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["main", "tasks/gridnav.yaml", "--out", str(tmp_path / "out")]) == 2
    assert "does not run under torchrun" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
