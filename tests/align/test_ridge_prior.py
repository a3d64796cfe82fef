"""`scripts/ridge_prior.py`, the study of the closed-form paired fit's prior, end to end (its
solve and meta-gradient are checked in `tests/align/test_priorfit.py`)."""

from __future__ import annotations

import json
from pathlib import Path


def test_the_script_meta_trains_and_measures_every_fit(
    make_spec, load_script, tmp_path: Path
) -> None:
    """On a tiny PPO run with per-variant adapters: every fit measured at every budget on every
    validation variant, the meta-training's curve, the page and the numbers written."""
    from metaxm.run.loop import train

    spec = make_spec(
        agent={"adapters": "variant"},
        train={"total_steps": 64, "num_envs": 4, "checkpoint_interval": 0},
        ppo={"num_steps": 8, "update_epochs": 1, "num_minibatches": 1},
    )
    train(spec, tmp_path / "run")
    script = load_script("ridge_prior")
    argv = [str(tmp_path / "run"), "--updates", "2", "--batch", "1", "--budgets", "1", "2"]
    argv += ["--seeds", "1", "--episodes", "2", "--families", "vector", "--out", str(tmp_path)]
    assert script.main(argv) == 0
    data = json.loads((tmp_path / "ridge-prior.json").read_text())
    fits = ["learned prior", "the prior's start (not meta-learned)", "least squares", "align"]
    assert list(data["rows"]) == [f"vector|{f}" for f in [*fits, "translate"]]
    for by_k in data["rows"].values():
        assert list(by_k) == ["1", "2"]
        assert all(
            len(v) == len(script.VALIDATION) and 0 <= min(v) <= max(v) <= 1 for v in by_k.values()
        )
    assert len(data["curves"]["vector"]) == 2
    assert "| vector | learned prior |" in (tmp_path / "ridge-prior.md").read_text()
