"""``metaxm train``: outputs, override errors, exact resume after SIGKILL, unsafe checkpoints."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from metaxm.cli import main
from metaxm.run.checkpoint import write_checksum
from metaxm.spec import load_spec, spec_from_dict


def test_train_writes_the_run_directory(
    spec_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert main(["train", str(spec_file), "--out", str(out), "--set", "train.total_steps=512"]) == 0
    printed = capsys.readouterr().out
    assert "env steps/s" in printed and "oracle" in printed
    resolved = yaml.safe_load((out / "config.yaml").read_text())
    assert spec_from_dict(resolved) == load_spec(spec_file, ["train.total_steps=512"])
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [128, 256, 384, 512]
    assert {"step", "update", "episodes", "return", "success"} <= set(records[-1])
    assert records[-1]["episodes"] >= records[0]["episodes"] > 0
    ev = json.loads((out / "eval.json").read_text())
    assert ev["oracle_success"] == 1.0 and 0.0 <= ev["success"] <= 1.0
    assert (out / "curve.png").is_file() and (out / "checkpoints" / "ckpt-00000004.pt").is_file()
    # a --resume of the finished run trains nothing and keeps the summary's throughput
    summary = (out / "summary.json").read_text()
    sps = json.loads(summary)["sps"]
    again = ["train", str(spec_file), "--out", str(out), "--set", "train.total_steps=512"]
    assert main([*again, "--resume"]) == 0
    printed = capsys.readouterr().out
    assert (
        f"nothing left to train: the run had finished; its training throughput was {sps:,.0f}"
        in printed
    )
    assert (out / "summary.json").read_text() == summary
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 4


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("ppo.lr=fast", "ppo.lr: expected a number, got 'fast'"),
        ("train.num_envs=0", "train.num_envs: 0 is out of range; allowed 1 to 65536"),
        ("ppo.nope=1", "unknown key 'ppo.nope'"),
        ("algo=sarsa", "algo: 'sarsa' is not allowed"),
        ("log.mode=loud", "log.mode: 'loud' is not allowed; choose one of 'offline'"),
        ("agent.core=lstm", "agent.core: 'lstm' is not allowed"),
        (
            "agent.sensory_sign=odd",
            "agent.sensory_sign: 'odd' is not allowed; choose one of 'learned', 'invariant'",
        ),
        ("ppo.lr", "expected key=value"),
    ],
)
def test_bad_override_exits_2_with_one_line(
    spec_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], override: str, message: str
) -> None:
    code = main(["train", str(spec_file), "--out", str(tmp_path / "r"), "--set", override])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and message in err and err.startswith("metaxm train: error:")
    assert not (tmp_path / "r").exists()


def test_a_spec_the_trainer_refuses_leaves_no_run_folder_behind(
    spec_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The refusal is one line, and the corrected command then runs in the same folder (a
    half-made run folder used to block it: "already holds a run")."""
    out = tmp_path / "r"
    assert main(["train", str(spec_file), "--out", str(out), "--set", "agent.core=gru"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "PPO trains a feed-forward agent" in err
    assert not out.exists()
    assert main(["train", str(spec_file), "--out", str(out), "--set", "train.total_steps=128"]) == 0


def _metrics(rundir: Path) -> bytes:
    return (rundir / "metrics.jsonl").read_bytes()


def test_a_run_started_before_a_setting_existed_resumes_and_another_spec_does_not(
    spec_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, steps = tmp_path / "run", ["--set", "train.total_steps=256"]
    assert main(["train", str(spec_file), "--out", str(out), *steps]) == 0
    saved = yaml.safe_load((out / "config.yaml").read_text())
    del saved["agent"]["sensory_images"]  # as a run written before the setting was added
    (out / "config.yaml").write_text(yaml.safe_dump(saved))
    assert main(["train", str(spec_file), "--out", str(out), "--resume", *steps]) == 0
    assert "nothing left to train" in capsys.readouterr().out
    saved["ppo"]["lr"] = 0.5  # a setting the run really had otherwise
    (out / "config.yaml").write_text(yaml.safe_dump(saved))
    assert main(["train", str(spec_file), "--out", str(out), "--resume", *steps]) == 2
    assert "first difference at ppo.lr" in capsys.readouterr().err


def test_resume_after_sigkill_reproduces_metrics_exactly(spec_file: Path, tmp_path: Path) -> None:
    longer = ["--set", "train.total_steps=2048"]  # 16 updates, a checkpoint every 2
    full, killed = tmp_path / "full", tmp_path / "killed"
    assert main(["train", str(spec_file), "--out", str(full), *longer]) == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cmd = [sys.executable, "-c", "import sys, torch; torch.set_num_threads(1); "
           "from metaxm.cli import main; sys.exit(main(sys.argv[1:]))",
           "train", str(spec_file), "--out", str(killed), *longer]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    first = killed / "checkpoints" / "ckpt-00000002.pt"
    deadline = time.monotonic() + 60
    while not first.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode() if proc.stderr else ""
    partial = _metrics(killed)
    assert 0 < len(partial) < len(_metrics(full)), "the kill must interrupt the run"
    assert main(["train", str(spec_file), "--out", str(killed), "--resume", *longer]) == 0
    assert _metrics(killed) == _metrics(full)
    assert (killed / "eval.json").read_text() == (full / "eval.json").read_text()


def test_resume_refuses_unsafe_or_corrupt_checkpoint_and_runs_nothing(
    spec_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert main(["train", str(spec_file), "--out", str(out), "--set", "train.total_steps=512"]) == 0
    before = _metrics(out)
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self) -> tuple:
            return (os.system, (f"touch {marker}",))

    last = out / "checkpoints" / "ckpt-00000004.pt"
    torch.save({"format_version": 1, "trainer": Payload()}, last)
    write_checksum(last)  # vouched for: the payload must be refused by the loader itself
    args = [
        "train",
        str(spec_file),
        "--out",
        str(out),
        "--resume",
        "--set",
        "train.total_steps=512",
    ]
    assert main(args) == 2
    assert "refused to load" in capsys.readouterr().err
    assert not marker.exists() and _metrics(out) == before
    last.write_bytes(b"PK\x03\x04 cut short")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "checksum mismatch" in err and err.count("\n") == 1
    assert "ckpt-00000002.pt" in err  # the last good checkpoint
    write_checksum(last)  # cut short before its checksum was taken
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "truncated or corrupt" in err and err.count("\n") == 1
    assert "ckpt-00000002.pt" in err
    assert (out / "checkpoints" / "ckpt-00000002.pt").is_file() and _metrics(out) == before


def test_a_total_below_one_update_says_why_it_trained_more(tmp_path: Path, caplog) -> None:
    """A run stops at the end of an update: asked for 20 steps, it trains one update (64
    here) and says so, where it trains twice its total or more; a whole update says nothing."""
    from tests.test_pipeline import TINY

    spec = tmp_path / "spec.yaml"
    for steps, out in ((20, "short"), (64, "whole")):
        spec.write_text(yaml.safe_dump({**TINY, "train": {**TINY["train"], "total_steps": steps}}))
        caplog.clear()
        with caplog.at_level("WARNING", logger="metaxm.run.loop"):
            assert main(["train", str(spec), "--out", str(tmp_path / out)]) == 0
        said = "train.total_steps 20: trained 64 env steps, since a run stops only" in caplog.text
        assert said == (steps == 20)


def test_wandb_online_without_a_key_is_one_line_and_leaves_nothing(
    spec_file: Path, tmp_path: Path
) -> None:
    """``log.mode: online`` with no API key: one line naming wandb's reason, exit 2, and no
    ``wandb_id.txt`` left behind to block the retry (it was a 38-line traceback)."""
    out = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(HOME=str(tmp_path), NETRC=str(tmp_path / "no-netrc"), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "metaxm", "train", str(spec_file), "--out", str(out)]
    cmd += ["--set", "train.total_steps=128", "--set", "log.progress=false"]
    done = subprocess.run([*cmd, "--set", "log.mode=online"], env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.strip().splitlines()  # wandb's own words vary with its version
    assert line.startswith("metaxm train: error: log.mode: online: wandb did not start (")
    assert "API key" in line and line.endswith(
        "set log.mode=offline to keep the run's logs on this machine"
    )
    assert not out.exists()
    # the retry in offline mode starts afresh, with nothing in its way
    retry = subprocess.run([*cmd, "--set", "log.mode=offline"], env=env, capture_output=True,
                           text=True, timeout=300)  # fmt: skip
    assert retry.returncode == 0, retry.stderr
    assert (out / "wandb_id.txt").is_file() and (out / "summary.json").is_file()
