"""Checkpoints: atomic writes, safe loads (corrupt, truncated, malicious), RNG capture.

Checksums, the last good checkpoint and resume checks: ``test_checkpoint_integrity.py``.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from metaxm.errors import CheckpointError
from metaxm.run.checkpoint import (
    checkpoint_path,
    global_rng_state,
    list_checkpoints,
    load_checkpoint,
    prune_checkpoints,
    save_checkpoint,
    set_global_rng_state,
    write_checksum,
)


class _Payload:
    """Unpickling this would run a shell command that creates a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


def _payload() -> dict:
    return {"weights": torch.arange(6.0).reshape(2, 3), "counters": {"update": 4}, "name": "x"}


def test_round_trip_and_listing(tmp_path: Path) -> None:
    for update in (2, 10, 4):
        save_checkpoint(checkpoint_path(tmp_path, update), _payload())
    names = [p.name for p in list_checkpoints(tmp_path)]
    assert names == ["ckpt-00000002.pt", "ckpt-00000004.pt", "ckpt-00000010.pt"]
    data = load_checkpoint(list_checkpoints(tmp_path)[-1])
    assert torch.equal(data["weights"], torch.arange(6.0).reshape(2, 3))
    assert data["counters"] == {"update": 4} and data["format_version"] == 1
    assert not [p for p in (tmp_path / "checkpoints").iterdir() if p.name.endswith(".tmp")]
    prune_checkpoints(tmp_path, keep=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == names[1:]


def test_failed_write_leaves_previous_checkpoint_and_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = save_checkpoint(checkpoint_path(tmp_path, 1), _payload())

    def dying_save(obj: object, f: object) -> None:
        f.write(b"PK\x03\x04 half a checkpoint")  # type: ignore[attr-defined]
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(checkpoint_path(tmp_path, 2), _payload())
    monkeypatch.undo()
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == [good.name, f"{good.name}.sha256"]  # no temporary file, no stray checksum
    assert load_checkpoint(good)["counters"] == {"update": 4}


def test_truncated_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    earlier = save_checkpoint(checkpoint_path(tmp_path, 1), _payload())
    path = save_checkpoint(checkpoint_path(tmp_path, 2), _payload())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="checksum mismatch") as caught:
        load_checkpoint(path)
    assert str(caught.value).endswith(f"the last good checkpoint is {earlier}")
    write_checksum(path)  # cut before its checksum was taken: the archive check still refuses it
    with pytest.raises(CheckpointError, match="truncated or corrupt") as caught:
        load_checkpoint(path)
    assert str(caught.value).endswith(f"the last good checkpoint is {earlier}")
    assert "\n" not in str(caught.value)
    assert earlier.is_file() and load_checkpoint(earlier)["name"] == "x"


def test_corrupt_and_foreign_files_are_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pt"
    junk.write_bytes(bytes(range(256)) * 4)
    write_checksum(junk)  # an intact checksum: what is tested here is the loader's own refusal
    with pytest.raises(CheckpointError, match=r"truncated or corrupt checkpoint \(.*\)$"):
        load_checkpoint(junk)  # a loose file: no run folder, so no last good checkpoint named
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    write_checksum(foreign)
    with pytest.raises(CheckpointError, match="not a metaxm checkpoint"):
        load_checkpoint(foreign)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match="a folder, not a checkpoint file"):
        load_checkpoint(tmp_path)  # AdaptedPolicy.load("runs/x") with a run's folder, say


def test_malicious_pickle_is_refused_and_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"format_version": 1, "trainer": _Payload(marker)}, path)
    write_checksum(path)  # a valid checksum vouches for the bytes, not for their safety
    with pytest.raises(CheckpointError, match="refused to load"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="refused to load"):
        load_checkpoint(path, verify=False)
    assert not marker.exists()


def test_global_rng_state_round_trip() -> None:
    state = global_rng_state()
    expected = (torch.rand(3), np.random.rand(3), random.random())  # noqa: NPY002
    torch.rand(5), np.random.rand(5), random.random()  # noqa: NPY002
    set_global_rng_state(state)
    again = (torch.rand(3), np.random.rand(3), random.random())  # noqa: NPY002
    assert torch.equal(expected[0], again[0])
    assert np.array_equal(expected[1], again[1]) and expected[2] == again[2]
