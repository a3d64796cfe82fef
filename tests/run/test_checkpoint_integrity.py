"""Checkpoint integrity: checksum files, the last good checkpoint, resume fallback, and refusing
a foreign checkpoint before any of its weights are loaded."""

from __future__ import annotations

import hashlib
import logging
import os
import zipfile
from pathlib import Path
from typing import Any

import pytest
import torch

from metaxm.errors import CheckpointError
from metaxm.run import checkpoint as ckpt_module
from metaxm.run.checkpoint import (
    check_resumable,
    checkpoint_path,
    checksum_path,
    first_difference,
    last_good_checkpoint,
    list_checkpoints,
    load_checkpoint,
    newest_checkpoint,
    prune_checkpoints,
    resolve_checkpoint,
    save_checkpoint,
    write_checksum,
)
from metaxm.spec import spec_from_dict, spec_to_dict

SPEC = {"seed": 3, "world": {"name": "gridnav", "size": 4}, "modalities": {"train": {"vector": 1}}}


def _weights(update: int) -> dict[str, Any]:
    gen = torch.Generator().manual_seed(update)
    return {
        "layer.weight": torch.randn(64, 32, generator=gen),  # 8 KiB of float32
        "layer.bias": torch.randn(64, generator=gen),
        "counters": {"update": update},
    }


def _save(rundir: Path, *updates: int) -> list[Path]:
    return [save_checkpoint(checkpoint_path(rundir, u), _weights(u)) for u in updates]


def _flip_tensor_bytes(path: Path, n: int = 64) -> None:
    """Invert ``n`` bytes in the middle of the file's largest tensor record (torch stores them
    uncompressed, so this changes weights and leaves the archive well-formed)."""
    with zipfile.ZipFile(path) as archive:
        info = max(
            (i for i in archive.infolist() if "/data/" in i.filename), key=lambda i: i.file_size
        )
        assert info.compress_type == zipfile.ZIP_STORED
    raw = bytearray(path.read_bytes())
    name_len = int.from_bytes(raw[info.header_offset + 26 : info.header_offset + 28], "little")
    extra_len = int.from_bytes(raw[info.header_offset + 28 : info.header_offset + 30], "little")
    start = info.header_offset + 30 + name_len + extra_len + info.file_size // 2
    raw[start : start + n] = bytes(b ^ 0xFF for b in raw[start : start + n])
    path.write_bytes(bytes(raw))


# --------------------------------------------------------------------------- checksum files
def test_checksum_file_is_sha256sum_of_the_checkpoint(tmp_path: Path) -> None:
    (path,) = _save(tmp_path, 7)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert checksum_path(path).name == "ckpt-00000007.pt.sha256"
    assert checksum_path(path).read_text() == f"{digest}  ckpt-00000007.pt\n"
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name, f"{path.name}.sha256"]


def test_flipped_tensor_bytes_are_refused_naming_the_previous_checkpoint(tmp_path: Path) -> None:
    previous, path = _save(tmp_path, 2, 4)
    _flip_tensor_bytes(path)
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path)
    assert str(caught.value) == (
        f"{path}: checksum mismatch (the file changed after it was written); "
        f"the last good checkpoint is {previous}"
    )
    # without the checksum the damage is silent: the archive loads, with other weights
    silent = load_checkpoint(path, verify=False)
    assert not torch.equal(silent["layer.weight"], _weights(4)["layer.weight"])
    assert torch.equal(load_checkpoint(previous)["layer.weight"], _weights(2)["layer.weight"])


def test_a_damaged_first_checkpoint_says_no_earlier_one_verifies(tmp_path: Path) -> None:
    (path,) = _save(tmp_path, 1)
    _flip_tensor_bytes(path)
    with pytest.raises(CheckpointError, match=r"after it was written\); no earlier checkpoint"):
        load_checkpoint(path)


def test_missing_checksum_file_is_refused_unless_verify_is_off(tmp_path: Path) -> None:
    previous, path = _save(tmp_path, 1, 2)
    checksum_path(path).unlink()
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: no checksum file ckpt-00000002.pt.sha256; it was not ")
    assert "written by this metaxm version or was copied without it" in message
    assert message.endswith(f"the last good checkpoint is {previous}") and "\n" not in message
    assert load_checkpoint(path, verify=False)["counters"] == {"update": 2}


def test_a_garbled_checksum_file_is_a_mismatch(tmp_path: Path) -> None:
    (path,) = _save(tmp_path, 1)
    checksum_path(path).write_text("not a digest\n")
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        load_checkpoint(path)
    checksum_path(path).write_bytes(b"\xff\xfe")
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        load_checkpoint(path)


def test_write_checksum_vouches_for_a_file_made_elsewhere(tmp_path: Path) -> None:
    path = checkpoint_path(tmp_path, 3)
    path.parent.mkdir(parents=True)
    torch.save({"format_version": 1, "x": torch.ones(2)}, path)
    assert write_checksum(path) == checksum_path(path)
    assert torch.equal(load_checkpoint(path)["x"], torch.ones(2))


def test_hashing_streams_in_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The file is never read whole to hash it (a checkpoint may not fit in memory twice)."""
    path = save_checkpoint(checkpoint_path(tmp_path, 1), {"big": torch.zeros(500_000)})  # 2 MB
    expected = hashlib.sha256(path.read_bytes()).hexdigest()
    reads: list[int] = []
    real_open = Path.open

    class Spy:
        def __init__(self, f: Any) -> None:
            self.f = f

        def __getattr__(self, name: str) -> Any:
            return getattr(self.f, name)

        def __enter__(self) -> Spy:
            return self

        def __exit__(self, *exc: object) -> None:
            self.f.close()

        def read(self, size: int = -1) -> bytes:
            reads.append(size)
            return self.f.read(size)

        def readinto(self, buf: Any) -> int:
            reads.append(len(buf))
            return self.f.readinto(buf)

    monkeypatch.setattr(Path, "open", lambda self, *a, **k: Spy(real_open(self, *a, **k)))
    assert ckpt_module.file_sha256(path) == expected
    assert len(reads) > 2 and all(0 < n < path.stat().st_size // 2 for n in reads)


# --------------------------------------------------------------------------- crash safety
def test_checksum_is_in_place_before_the_checkpoint_takes_its_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    previous = _save(tmp_path, 1)
    renames: list[tuple[str, bool]] = []
    real_replace = os.replace

    def dying_replace(src: Any, dst: Any) -> None:
        renames.append((Path(dst).name, checksum_path(checkpoint_path(tmp_path, 2)).exists()))
        if Path(dst).name == "ckpt-00000002.pt":
            # the checksum file on disk already describes the bytes about to take the name
            digest = hashlib.sha256(Path(src).read_bytes()).hexdigest()
            assert checksum_path(dst).read_text() == f"{digest}  ckpt-00000002.pt\n"
            raise KeyboardInterrupt  # killed just before the checkpoint's own rename
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", dying_replace)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(checkpoint_path(tmp_path, 2), _weights(2))
    monkeypatch.undo()
    assert renames == [("ckpt-00000002.pt.sha256", False), ("ckpt-00000002.pt", True)]
    assert list_checkpoints(tmp_path) == previous  # only a stray checksum file is left
    assert not [p for p in (tmp_path / "checkpoints").iterdir() if p.name.endswith(".tmp")]
    assert newest_checkpoint(tmp_path) == previous[0]


def test_listing_ignores_checksum_and_temporary_files(tmp_path: Path) -> None:
    paths = _save(tmp_path, 1, 2)
    folder = tmp_path / "checkpoints"
    (folder / ".ckpt-00000003.pt.x1y2.tmp").write_bytes(b"PK half")
    (folder / ".ckpt-00000003.pt.sha256.x1y2.tmp").write_text("0" * 64)
    (folder / "ckpt-00000009.pt.sha256").write_text("0" * 64)
    assert list_checkpoints(tmp_path) == paths


def test_prune_removes_checksum_files_too(tmp_path: Path) -> None:
    _save(tmp_path, 1, 2, 3, 4)
    folder = tmp_path / "checkpoints"
    (folder / ".ckpt-00000005.pt.a1b2.tmp").write_bytes(b"cut")  # a SIGKILL mid-write
    (folder / ".ckpt-00000005.pt.sha256.x1y2.tmp").write_text("0")
    prune_checkpoints(tmp_path, keep=2)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "ckpt-00000003.pt", "ckpt-00000003.pt.sha256",
        "ckpt-00000004.pt", "ckpt-00000004.pt.sha256",
    ]  # fmt: skip
    (folder / ".ckpt-00000006.pt.c3d4.tmp").write_bytes(b"cut")
    prune_checkpoints(tmp_path, keep=0)  # keeping every checkpoint, still no stale write
    assert len(list(folder.glob(".*.tmp"))) == 0 and len(list_checkpoints(tmp_path)) == 2


# --------------------------------------------------------------------------- the last good one
def test_last_good_checkpoint_skips_every_kind_of_damage(tmp_path: Path) -> None:
    one, two, three, four, five = _save(tmp_path, 1, 2, 3, 4, 5)
    assert last_good_checkpoint(tmp_path) == five
    assert last_good_checkpoint(tmp_path, before=five) == four
    _flip_tensor_bytes(five)  # checksum mismatch
    checksum_path(four).unlink()  # no checksum file
    three.write_bytes(three.read_bytes()[:-200])  # truncated, then vouched for: no zip index
    write_checksum(three)
    assert last_good_checkpoint(tmp_path) == two
    assert last_good_checkpoint(tmp_path, before=two) == one
    assert last_good_checkpoint(tmp_path, before=one) is None
    assert last_good_checkpoint(tmp_path / "nothing") is None


def test_newest_checkpoint_without_damage(tmp_path: Path) -> None:
    assert newest_checkpoint(tmp_path) is None
    *_, newest = _save(tmp_path, 2, 4)
    assert newest_checkpoint(tmp_path) == newest == newest_checkpoint(tmp_path, fallback=True)


def test_newest_checkpoint_damaged_names_the_fallback(tmp_path: Path) -> None:
    _, good, newest = _save(tmp_path, 2, 4, 6)
    _flip_tensor_bytes(newest)
    with pytest.raises(CheckpointError) as caught:
        newest_checkpoint(tmp_path)
    assert str(caught.value) == (
        f"{newest}: checksum mismatch (the file changed after it was written); "
        f"pass --resume-last-good (last_good=True from Python) to resume from {good}"
    )


def test_fallback_resumes_from_the_older_good_one_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _, good, bad, newest = _save(tmp_path, 2, 4, 6, 8)
    _flip_tensor_bytes(newest)
    checksum_path(bad).unlink()
    with caplog.at_level(logging.WARNING, logger="metaxm.run.checkpoint"):
        assert newest_checkpoint(tmp_path, fallback=True) == good
    (record,) = caplog.records
    assert "ckpt-00000006.pt, ckpt-00000008.pt" in record.getMessage()
    assert "checksum mismatch" in record.getMessage()
    assert record.getMessage().endswith("resuming from ckpt-00000004.pt")
    assert load_checkpoint(good)["counters"] == {"update": 4}


def test_fallback_with_nothing_good_is_an_error(tmp_path: Path) -> None:
    paths = _save(tmp_path, 1, 2)
    for path in paths:
        _flip_tensor_bytes(path)
    for fallback in (False, True):
        with pytest.raises(CheckpointError, match=r"ckpt-00000002\.pt: checksum mismatch .*; no"):
            newest_checkpoint(tmp_path, fallback=fallback)


# --------------------------------------------------------------------------- resumable
def _spec_data(**train: Any) -> dict[str, Any]:
    return spec_to_dict(spec_from_dict({**SPEC, "train": {"total_steps": 256, **train}}))


def _state(algo: str, spec_data: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint as ``save_run_checkpoint`` writes it; pretraining's trainer state is
    :meth:`metaxm.align.pretrain.PretrainTrainer.state_dict`'s."""
    if algo == "pretrain":
        trainer = {
            **dict.fromkeys(("agent", "loss", "optimizer", "sampler"), {}),
            "variants": None,
            "pool": {"vector": [1]},
            "counters": {"env_steps": 0, "updates": 2},
        }
    else:
        trainer = {"agent": {}, "optimizer": {}, "counters": {"env_steps": 64}}
    return {"algo": algo, "spec": spec_data, "trainer": trainer,
            "loop": {"update": 2, "env_steps": 64}, "rng": {}}  # fmt: skip


@pytest.mark.parametrize("algo", ["ppo", "maml", "rl2", "metafit", "selffit", "pretrain"])
def test_a_matching_checkpoint_is_resumable(tmp_path: Path, algo: str) -> None:
    data = _spec_data()
    path = save_checkpoint(checkpoint_path(tmp_path, 2), _state(algo, data))
    check_resumable(load_checkpoint(path), path, algo, data)  # through the real file


@pytest.mark.parametrize(
    ("theirs", "ours", "message"),
    [
        ("maml", "ppo", "a maml checkpoint; this run trains ppo (to start a new run from its "
                        "weights, use train.init_from)"),
        ("pretrain", "ppo", "a pretraining checkpoint; this run trains ppo (to start a new run "
                            "from its weights, use align.init_from)"),
        ("pretrain", "rl2", "a pretraining checkpoint; this run trains rl2"),
        ("ppo", "pretrain", "a ppo checkpoint; this run pretrains"),
        ("metafit", "maml", "a metafit checkpoint; this run trains maml"),
        ("selffit", "metafit", "a selffit checkpoint; this run trains metafit"),
    ],
)  # fmt: skip
def test_another_algorithms_checkpoint_is_refused(theirs: str, ours: str, message: str) -> None:
    data = _spec_data()
    with pytest.raises(CheckpointError) as caught:
        check_resumable(_state(theirs, data), "RUN/ckpt.pt", ours, data)
    assert str(caught.value).startswith(f"RUN/ckpt.pt: {message}")
    assert "\n" not in str(caught.value)
    if ours == "pretrain":
        assert str(caught.value) == f"RUN/ckpt.pt: {message}"  # pretraining takes no init_from


def test_a_checkpoint_without_run_state_is_refused(tmp_path: Path) -> None:
    path = save_checkpoint(checkpoint_path(tmp_path, 1), _weights(1))  # only tensors
    with pytest.raises(CheckpointError) as caught:
        check_resumable(load_checkpoint(path), path, "ppo", _spec_data())
    assert str(caught.value) == (
        f"{path}: holds no run state to resume (algo, spec, trainer, loop, rng missing); "
        "it was not written by metaxm train or pretrain"
    )
    state = _state("ppo", _spec_data())
    del state["loop"]
    with pytest.raises(CheckpointError, match=r"\(loop missing\)"):
        check_resumable(state, path, "ppo", _spec_data())
    with pytest.raises(CheckpointError, match=r"\(its trainer or spec is no dict\)"):
        check_resumable({**_state("ppo", {}), "trainer": [1]}, path, "ppo", {})


def test_another_specs_checkpoint_is_refused_naming_the_first_difference() -> None:
    theirs = _state("ppo", _spec_data(total_steps=512))
    with pytest.raises(CheckpointError) as caught:
        check_resumable(theirs, "RUN/ckpt.pt", "ppo", _spec_data())
    assert str(caught.value) == (
        "RUN/ckpt.pt: written by a run of another spec (first difference at "
        "train.total_steps); resume with the spec and --set values it was written with"
    )
    extra = _spec_data()
    extra["world"] = {**extra["world"], "unheard_of": 1}
    with pytest.raises(CheckpointError, match=r"first difference at world\.unheard_of\)"):
        check_resumable(_state("ppo", _spec_data()), "RUN/ckpt.pt", "ppo", extra)


def test_first_difference_names_the_dotted_key() -> None:
    a = {"seed": 1, "train": {"total_steps": 5, "num_envs": 2}}
    assert first_difference(a, {"seed": 1, "train": {"total_steps": 5, "num_envs": 3}}) == (
        "train.num_envs"
    )
    assert first_difference(a, {**a, "extra": {"x": 1}}) == "extra"
    assert first_difference(a, {"seed": 2}) == "seed"
    assert first_difference([1], {"a": 1}) == "the top level"


def test_check_follows_resume_last_good_as_the_run_does(tmp_path: Path, capsys) -> None:
    """``--resume --check`` past a damaged newest checkpoint refuses it as the run would, and
    with ``--resume-last-good`` passes, as the run resumes (it once refused both)."""
    import yaml

    from metaxm.cli import main
    from tests.test_pipeline import TINY

    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({**TINY, "train": {**TINY["train"], "checkpoint_interval": 1}}))
    run = tmp_path / "run"
    assert main(["train", str(spec), "--out", str(run)]) == 0
    _flip_tensor_bytes(list_checkpoints(run)[-1])
    capsys.readouterr()
    args = ["train", str(spec), "--out", str(run), "--resume", "--check"]
    assert main(args) == 2
    assert "pass --resume-last-good (last_good=True from Python) to resume from" in (
        capsys.readouterr().err
    )
    assert main([*args, "--resume-last-good"]) == 0
    assert main(["train", str(spec), "--out", str(run), "--resume", "--resume-last-good"]) == 0


def test_a_file_that_is_no_checkpoint_and_a_folder_of_runs_are_named_as_such(
    tmp_path: Path,
) -> None:
    """A spec or a run's config.yaml given where a checkpoint goes was refused as "no checksum
    file config.yaml.sha256; it was not written by this metaxm version"; a main job's folder
    as "no checkpoints in this run directory"."""
    spec = tmp_path / "config.yaml"
    spec.write_text("seed: 0\n")
    with pytest.raises(CheckpointError, match=r"config\.yaml: not a checkpoint or a run folder"):
        load_checkpoint(spec)
    _save(tmp_path / "job" / "ppo", 2)
    (tmp_path / "job" / "logs").mkdir()
    with pytest.raises(CheckpointError, match=r"job: a folder of runs \(ppo\), not one run"):
        resolve_checkpoint(tmp_path / "job")
    with pytest.raises(CheckpointError, match="no checkpoints in this run directory"):
        resolve_checkpoint(tmp_path / "job" / "logs")


def test_a_cut_checkpoint_without_its_checksum_is_still_called_a_checkpoint(
    tmp_path: Path,
) -> None:
    """A zip archive cut short has no end record: it is a damaged checkpoint, not "not a
    checkpoint" (a code review's find: zipfile.is_zipfile said no)."""
    (path,) = _save(tmp_path, 2)
    checksum_path(path).unlink()
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="no checksum file ckpt-00000002.pt.sha256"):
        load_checkpoint(path)
