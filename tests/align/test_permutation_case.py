"""#15's constructed case (`scripts/permutation_case.py`): a pure permutation of a known vector
variant, fitted from one CartPole episode, where the right answer is known."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch


def test_the_case_is_posed_so_that_one_episode_pins_the_permutation(
    load_script, tmp_path: Path
) -> None:
    script = load_script("permutation_case")
    argv = ["--updates", "10", "--align-updates", "2", "--prior-updates", "50", "--trials", "2"]
    argv += ["--out", str(tmp_path)]
    assert script.main(argv) == 0
    result = json.loads((tmp_path / "permutation-case.json").read_text())
    errors = result["errors"]
    assert list(errors) == list(script.ROWS)
    assert all(len(v) == 2 and all(math.isfinite(x) for x in v) for v in errors.values())
    # the right answer reads every query state as the source does, and one episode holds it:
    # the closed-form map from the permuted channels finds it
    assert max(errors["right answer"]) < 1e-10
    assert max(errors["least squares"]) < 1e-6
    # and the permutation is not read without a fit (never the identity): the case measures
    assert min(errors["no fit (learned start)"] + errors["no fit (the agent's weights)"]) > 0.2
    # the source's state channels are the permutation: least squares reads them exactly
    assert list(result["state_errors"]) == list(script.MAP_ROWS)
    assert max(result["state_errors"]["least squares"]) < 1e-6
    # a fit from one episode moves toward it (metafit from its start, align and priorfit from
    # the agent's weights)
    for fit, start in (
        ("metafit", "no fit (learned start)"),
        ("align", "no fit (the agent's weights)"),
        ("priorfit", "no fit (the agent's weights)"),
    ):
        assert all(a < b for a, b in zip(errors[fit], errors[start])), (fit, errors)
    # #15's test: the meta-learned paired fit (priorfit, 50 meta-updates here) recovers the
    # permutation from one episode, within a tolerance: the state channels to 1% of their mean
    # square, the latents to 10% (its misfit there is the noise channels, which the target
    # shares with the source here and no real variant does)
    assert max(result["state_errors"]["priorfit"]) < 0.01, result["state_errors"]
    assert max(errors["priorfit"]) < 0.1, errors["priorfit"]
    page = (tmp_path / "permutation-case.md").read_text()
    assert "| metafit |" in page and "| priorfit |" in page


def test_a_permutation_moves_the_features_and_leaves_the_noise_last(load_script) -> None:
    script = load_script("permutation_case")
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        perm = script._permutation(2, g)  # one permutation of 2 is the identity: never drawn
        assert perm.tolist() == [1, 0, *range(2, 2 + script.NOISE_CHANNELS)]


def test_with_its_own_noise_the_target_keeps_the_permutation_and_not_the_sources_noise(
    load_script,
) -> None:
    import dataclasses

    script = load_script("permutation_case")
    n = script.NOISE_CHANNELS
    g = torch.Generator().manual_seed(0)
    source = torch.randn(12, 4 + n, generator=g)
    batch = dataclasses.make_dataclass("B", ["obs"])(obs=(source, source))
    perm = script._permutation(4, g)
    own = script._permuted(batch, perm, "own", g).obs[0]
    assert torch.equal(own[:, :4], source[:, perm[:4]])  # the state: a pure permutation
    noise, theirs = own[:, -n:], source[:, -n:]
    assert not torch.equal(noise, theirs)  # not the source's at each step, but its values
    assert sorted(noise[:, 0].tolist()) == sorted(theirs[:, 0].tolist())
    shared = script._permuted(batch, perm).obs[0]
    assert torch.equal(shared, source[:, perm])
