"""Output folders: checked before anything is written, one writer at a time, stale locks taken
over after a kill (:mod:`metaxm.run.rundir`)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from metaxm.cli import main
from metaxm.errors import ConfigError
from metaxm.run.rundir import LOCK_NAME, OutputLock

HOLD = (
    "import sys, time; from metaxm.run.rundir import OutputLock; "
    "OutputLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(60)"
)


def _holder(folder: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_writer_is_refused_naming_the_holder_and_a_killed_holders_lock_is_taken_over(
    spec_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    proc = _holder(out)
    try:
        args = ["train", str(spec_file), "--out", str(out), "--set", "train.total_steps=128"]
        assert main(args) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"pid {proc.pid} on " in err
        assert "another metaxm process is writing here" in err
        assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]  # nothing of the run
        info = json.loads((out / LOCK_NAME).read_text())
        assert info["pid"] == proc.pid
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    # the kernel dropped the dead holder's flock: the lock file left behind is stale
    assert (out / LOCK_NAME).exists()
    assert main(args) == 0
    assert not (out / LOCK_NAME).exists()  # released on exit
    assert (out / "summary.json").is_file()


def test_two_concurrent_runs_into_one_folder_leave_one_clean_run(
    spec_file: Path, tmp_path: Path
) -> None:
    """Both start at once; exactly one trains, and its metrics are those of a lone run."""
    lone, out = tmp_path / "lone", tmp_path / "shared"
    steps = ["--set", "train.total_steps=512"]
    assert main(["train", str(spec_file), "--out", str(lone), *steps]) == 0
    cmd = [sys.executable, "-m", "metaxm", "train", str(spec_file), "--out", str(out), *steps]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    codes = sorted(p.wait(timeout=120) for p in procs)
    errors = [p.stderr.read() for p in procs if p.stderr is not None]
    assert codes == [0, 2], errors
    refused = next(e for e in errors if "error:" in e)
    assert "another metaxm process is writing here" in refused or "already holds a run" in refused
    assert (out / "metrics.jsonl").read_bytes() == (lone / "metrics.jsonl").read_bytes()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: "", "--out: empty path"),
        (
            lambda d: (d / "file.txt").write_text("mine") and d / "file.txt",
            "is a file, not a folder",
        ),
        (lambda d: _foreign(d), "holds files but no run (metrics.jsonl, notes.txt)"),
        (lambda d: (d / "f").write_text("x") and d / "f" / "run", "is a file, not a folder"),
    ],
)
def test_a_bad_out_path_is_refused_in_one_line_and_nothing_is_touched(
    spec_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], make, message: str
) -> None:
    out = make(tmp_path)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert main(["train", str(spec_file), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    after = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert after == before


def _foreign(folder: Path) -> Path:
    run = folder / "someone-elses"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"step": 1}\n')
    (run / "notes.txt").write_text("keep me")
    return run


def test_adapt_checks_its_out_before_adapting(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "existing"
    folder.mkdir()
    args = ["adapt", str(tmp_path / "no-run"), "--modality", "vector:1", "--strategy", "align"]
    args += ["--out", str(folder)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "is a folder; name a file" in err and err.count("\n") == 1


def test_a_lock_refuses_a_second_holder_in_process_and_a_refused_start_leaves_no_folder(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "a" / "b"
    with OutputLock(folder):
        second = OutputLock(folder)
        with pytest.raises(ConfigError, match=f"pid {os.getpid()} on "):
            second.acquire()
        assert folder.is_dir()
    assert not (folder / LOCK_NAME).exists()
    fresh = tmp_path / "fresh"
    lock = OutputLock(fresh).acquire()
    lock.release(remove_created=True)
    assert not fresh.exists()
    t = time.monotonic()
    with OutputLock(folder):  # re-taken at once
        pass
    assert time.monotonic() - t < 5


def test_a_folder_made_by_another_start_between_check_and_mkdir_is_locked_not_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race CI once hit: both starts find no folder and the other one makes it first."""
    folder = tmp_path / "raced"
    make = Path.mkdir

    def other_start_wins(self: Path, *args: object, **kwargs: object) -> None:
        make(self, parents=True)
        raise FileExistsError(17, "File exists", str(self))

    monkeypatch.setattr(Path, "mkdir", other_start_wins)
    lock = OutputLock(folder).acquire()
    monkeypatch.undo()
    assert (folder / LOCK_NAME).exists() and not lock.created
    lock.release(remove_created=True)
    assert folder.is_dir()  # not this start's folder, so it stays


def test_a_run_that_fails_before_its_first_checkpoint_leaves_nothing_a_retry_trips_on(
    spec_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad ``train.init_from`` fails after the trainer is built; the retry is accepted. A
    refused fresh start into a folder holding another run's files deletes none of them."""
    out = tmp_path / "run"
    bad = ["--set", f"train.init_from={tmp_path / 'nowhere'}", "--set", "train.total_steps=128"]
    assert main(["train", str(spec_file), "--out", str(out), *bad]) == 2
    assert not out.exists()
    capsys.readouterr()
    assert main(["train", str(spec_file), "--out", str(out), "--set", "train.total_steps=128"]) == 0
    halfway = tmp_path / "halfway"  # a run killed before its first checkpoint
    halfway.mkdir()
    for name in ("config.yaml", "metrics.jsonl"):
        (halfway / name).write_text("kept\n")
    assert main(["train", str(spec_file), "--out", str(halfway)]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert sorted(p.name for p in halfway.iterdir()) == ["config.yaml", "metrics.jsonl"]


def test_an_interrupted_fresh_run_without_a_checkpoint_is_discarded(
    spec_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from metaxm.rl.trainer import PPOTrainer

    def interrupted(self: PPOTrainer) -> dict:
        raise KeyboardInterrupt

    monkeypatch.setattr(PPOTrainer, "update", interrupted)
    out = tmp_path / "run"
    assert main(["train", str(spec_file), "--out", str(out)]) == 130
    assert not out.exists()  # config.yaml, metrics.jsonl and the folder: gone
    monkeypatch.undo()
    assert main(["train", str(spec_file), "--out", str(out), "--set", "train.total_steps=128"]) == 0


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("device=garbage", "device: 'garbage' is not a torch device"),
        ("device=meta", "device: 'meta': metaxm runs on cpu or cuda"),
        ("train.init_from=/nowhere/run", "train.init_from: /nowhere/run does not exist"),
        ("align.init_from=/nowhere/run", "align.init_from: /nowhere/run does not exist"),
    ],
)
def test_check_refuses_what_the_run_would_refuse(
    spec_file: Path, tmp_path: Path, capsys, override: str, message: str
) -> None:
    argv = ["train", str(spec_file), "--out", str(tmp_path / "run"), "--check", "--set", override]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not (tmp_path / "run").exists()


def test_pretrain_check_refuses_a_pool_of_one_family(
    spec_file: Path, tmp_path: Path, capsys
) -> None:
    argv = ["pretrain", str(spec_file), "--out", str(tmp_path / "run"), "--check",
            "--set", "align.views=0"]  # fmt: skip
    assert main(argv) == 2
    assert "pretraining aligns at least two views" in capsys.readouterr().err


def test_sigterm_stops_a_command_as_ctrl_c_does(
    spec_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """SIGTERM (timeout, Slurm, Docker) used to end the process where it stood: no message,
    and a fresh run's files left to block the retry, a checkpoint's temporary file behind."""
    import os
    import signal

    from metaxm.rl.trainer import PPOTrainer

    update = PPOTrainer.update

    def terminated(self: PPOTrainer) -> dict:
        os.kill(os.getpid(), signal.SIGTERM)
        return update(self)

    before = signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr(PPOTrainer, "update", terminated)
    out = tmp_path / "run"
    assert main(["train", str(spec_file), "--out", str(out)]) == 143
    assert capsys.readouterr().err.strip().splitlines()[-1] == "metaxm train: terminated"
    assert not out.exists()  # as after a Ctrl-C: the fresh run's files gone
    assert signal.getsignal(signal.SIGTERM) == before  # the handler is the command's alone
    monkeypatch.undo()
    assert main(["train", str(spec_file), "--out", str(out), "--set", "train.total_steps=128"]) == 0


def test_a_resume_puts_back_a_deleted_config_yaml(
    spec_file: Path, tmp_path: Path, capsys, caplog: pytest.LogCaptureFixture
) -> None:
    """``--resume`` said "holds no run (no config.yaml)" and a plain start "already holds a
    run; pass --resume": the checkpoint's own spec now vouches, and the file is written again."""
    out = tmp_path / "run"
    short = ["--set", "train.total_steps=256"]
    assert main(["train", str(spec_file), "--out", str(out), *short]) == 0
    saved = (out / "config.yaml").read_bytes()
    (out / "config.yaml").unlink()
    capsys.readouterr()
    # another spec is still refused, and nothing is written
    assert (
        main(
            ["train", str(spec_file), "--out", str(out), "--resume", *short, "--set", "ppo.lr=0.01"]
        )
        == 2
    )
    assert (
        "written by a run of another spec (first difference at ppo.lr)" in capsys.readouterr().err
    )
    assert not (out / "config.yaml").exists()
    with caplog.at_level("WARNING", logger="metaxm.run.rundir"):
        assert main(["train", str(spec_file), "--out", str(out), "--resume", *short]) == 0
    assert "has checkpoints but no config.yaml (deleted?)" in caplog.text
    assert (out / "config.yaml").read_bytes() == saved
