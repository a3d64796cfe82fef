"""The notebooks under ``notebooks/`` run top to bottom (each in its own kernel, as nbmake would)
and are committed without outputs or execution counts."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))
TIMEOUT_S = 240  # per cell; each notebook is meant to take well under 60 s on 2 cores


def test_there_are_notebooks() -> None:
    assert [p.name for p in NOTEBOOKS] == [
        "01_modalities.ipynb",
        "02_meta_training.ipynb",
        "03_few_shot_adaptation.ipynb",
        "04_reading_without_reward.ipynb",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_without_outputs(path: Path) -> None:
    cells = json.loads(path.read_text())["cells"]
    dirty = [
        i
        for i, cell in enumerate(cells)
        if cell.get("outputs") or cell.get("execution_count") is not None
    ]
    assert dirty == [], f"{path.name}: strip the outputs (jupyter nbconvert --clear-output)"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    book = nbformat.read(path, as_version=4)
    for key, value in {"WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}.items():
        monkeypatch.setenv(key, os.environ.get(key, value))  # the kernel inherits these
    client = nbclient.NotebookClient(
        book,
        timeout=TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": path.parent}},
    )
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError, naming the cell, on the first failure
    errors = [
        o for c in book.cells for o in c.get("outputs", []) if o.get("output_type") == "error"
    ]
    assert errors == []
    assert time.perf_counter() - start < 120, f"{path.name} is meant to run in well under 60 s"
