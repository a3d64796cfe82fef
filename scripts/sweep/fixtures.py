"""The bad-input sweep's fixtures: the TINY spec's trained runs, and the setups that make a
case's files in its folder (written, copied, damaged checkpoints, payloads)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from sweep.core import MARKER, Setup, bad, metaxm


def build_fixtures(fx: Path, quick: bool) -> None:
    """The TINY spec (and a one-family variant) and its trained runs: ppo, maml, pretrain and,
    unless ``quick``, ppo with another agent size."""
    fx.mkdir(parents=True)
    (fx / "tiny.yaml").write_text(yaml.safe_dump(bad.TINY, sort_keys=False))
    one = {**bad.TINY, "modalities": {"train": {"vector": 1}}}
    (fx / "one-family.yaml").write_text(yaml.safe_dump(one, sort_keys=False))
    runs = {
        "ppo": ["train", "tiny.yaml"],
        "maml": ["train", "tiny.yaml", "--set", "algo=maml"],
        "pretrain": ["pretrain", "tiny.yaml"],
        "ppo_h32": ["train", "tiny.yaml", "--set", "agent.hidden=32"],
    }
    for name, argv in list(runs.items())[: 3 if quick else 4]:
        t = time.perf_counter()
        proc = metaxm([*argv, "--out", name], fx, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, err = proc.communicate(timeout=300)
        if proc.returncode != 0:
            sys.exit(f"bad_inputs: the fixture run {name} failed:\n{err.decode()}")
        print(f"fixture {name}: {time.perf_counter() - t:.1f} s", flush=True)


def fixtures_of(case_dir: Path) -> Path:
    return case_dir.parent.parent / "fixtures"


def write(name: str, data: bytes | Callable[[Path], object]) -> Setup:
    """A setup writing ``data`` (or calling it with the path) to ``name`` in the case folder."""

    def setup(case_dir: Path) -> None:
        if callable(data):
            data(case_dir / name)
        else:
            (case_dir / name).write_bytes(data)

    return setup


def copy_run(src: str) -> Setup:
    """A setup copying fixture run ``src`` into the case folder as ``run``."""
    return lambda case_dir: shutil.copytree(fixtures_of(case_dir) / src, case_dir / "run")


def damaged(src: str, how: str, every: bool = False) -> Setup:
    """A setup copying fixture run ``src`` to ``run`` and damaging its newest checkpoint (or
    ``every`` one): ``flip``, ``truncate``, ``zero``, ``garbage``, ``no-sidecar``, ``payload``,
    or ``foreign-<run>`` (that run's newest checkpoint added as the newest, with a checksum)."""

    def setup(case_dir: Path) -> None:
        fx, run = fixtures_of(case_dir), case_dir / "run"
        shutil.copytree(fx / src, run)
        found = sorted((run / "checkpoints").glob("ckpt-*.pt"))
        for path in found if every else found[-1:]:
            if how == "flip":
                bad.flip_bytes(path)
            elif how == "truncate":
                bad.truncate(path)
            elif how == "zero":
                bad.garbage_checkpoint(path, b"")
            elif how == "garbage":
                bad.garbage_checkpoint(path)
            elif how == "no-sidecar":
                path.with_name(path.name + ".sha256").unlink()
            elif how == "payload":
                bad.pickle_payload(path, fx / MARKER)
            elif how.startswith("foreign-"):
                other = sorted((fx / how.removeprefix("foreign-") / "checkpoints").glob("*.pt"))
                shutil.copy(other[-1], run / "checkpoints" / "ckpt-00000099.pt")
                bad.write_sidecar(run / "checkpoints" / "ckpt-00000099.pt")
            else:
                raise ValueError(how)

    return setup


def payload_file(name: str, torch_format: bool = True) -> Setup:
    return lambda d: bad.pickle_payload(d / name, fixtures_of(d) / MARKER, torch_format)


def run_importing_a_module(case_dir: Path) -> None:
    """A setup: ``plug.py`` (it makes the marker file when imported) beside ``run``, a TINY
    run whose spec imports it, as a downloaded run folder could hold them."""
    fx = fixtures_of(case_dir)
    (case_dir / "plug.py").write_text(
        f"import pathlib\npathlib.Path({str(fx / MARKER)!r}).touch()\n"
    )
    spec = {**bad.TINY, "imports": ["plug"]}
    (case_dir / "spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    proc = metaxm(["train", "spec.yaml", "--out", "run"], case_dir, stdout=subprocess.DEVNULL,
                  stderr=subprocess.PIPE)  # fmt: skip
    _, err = proc.communicate(timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"the run importing plug.py failed: {err.decode()}")
    (fx / MARKER).unlink()  # made by the training itself, which asked for it
    (case_dir / "spec.yaml").unlink()


def out_files(case_dir: Path) -> None:
    bad.make_out_paths(case_dir / "paths")
