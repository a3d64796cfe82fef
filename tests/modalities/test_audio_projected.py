"""The audio and projected families against their closed forms."""

from __future__ import annotations

import math

import torch
from modality_scenes import SCENES

from metaxm.envs.base import Scene, SceneInfo
from metaxm.modalities import expand_params, stack_params
from metaxm.modalities.audio import (
    MAX_HARMONICS,
    NUM_BINS,
    AudioFamily,
    tone,
)
from metaxm.modalities.projected import MIN_WIDTH, OUT_DIM, ProjectedFamily

AUDIO, PROJECTED = AudioFamily(), ProjectedFamily()


def sweep(d: int = 9) -> tuple[Scene, SceneInfo]:
    """One scene whose features sweep [-1, 1], then random ones."""
    g = torch.Generator().manual_seed(0)
    x = torch.cat((torch.linspace(-1.0, 1.0, d)[None], torch.rand(3, d, generator=g) * 2 - 1))
    return Scene(features=x), SceneInfo(feature_dim=d)


def test_audio_matches_the_exact_tone_without_noise() -> None:
    scene, info = sweep()
    for seed in range(10):
        params = AUDIO.variant(seed, info)
        params["noise"] = torch.tensor(0.0)
        obs = AUDIO.render(scene, expand_params(params, 4, "cpu"), torch.Generator())
        assert obs.shape == (4, 1, NUM_BINS, 9)
        exact = tone(scene.features, params)  # (B, F, T)
        # the render interpolates a table of pitch levels: close to the exact tone, not equal
        assert (obs[:, 0] - exact).abs().max() < 0.015


def test_audio_pitch_follows_the_value() -> None:
    scene, info = sweep()
    pure = [p for p in (AUDIO.variant(seed, info) for seed in range(40)) if p["partials"][1] == 0]
    assert len(pure) >= 3
    for params in pure:  # one partial: the loudest bin is the one nearest the pitch
        params["noise"] = torch.tensor(0.0)
        obs = AUDIO.render(scene, expand_params(params, 4, "cpu"), torch.Generator())
        peak = obs[0, 0].argmax(0).float()
        base, span = float(params["base"]), float(params["span"])
        u = torch.linspace(0.0, 1.0, 9)
        expected = base + (u if span > 0 else 1.0 - u) * abs(span)
        assert (peak - expected).abs().max() <= 0.5 + 0.05
        steps = peak.diff()
        assert bool((steps * span >= 0).all()) and float((peak[-1] - peak[0]) * span) > 0


def test_audio_noise_is_bounded_by_the_variant_level() -> None:
    scene, info = sweep()
    params = AUDIO.variant(3, info)
    quiet = {**params, "noise": torch.tensor(0.0)}
    clean = AUDIO.render(scene, expand_params(quiet, 4, "cpu"), torch.Generator())
    noisy = AUDIO.render(scene, expand_params(params, 4, "cpu"), torch.Generator().manual_seed(1))
    diff = noisy - clean
    assert float(diff.min()) >= 0.0 and float(diff.max()) <= float(params["noise"]) + 1e-6
    assert float(diff.max()) > 0.0


def test_audio_variants_differ_in_harmonics_and_direction() -> None:
    info = SceneInfo(feature_dim=4)
    variants = [AUDIO.variant(seed, info) for seed in range(40)]
    counts = {int((p["partials"] > 0).sum()) for p in variants}
    assert counts == set(range(1, MAX_HARMONICS + 1))
    assert {float(p["span"]) > 0 for p in variants} == {True, False}


def test_projected_is_tanh_of_the_projection() -> None:
    scene, info = SCENES["gridnav_walls"]()
    for seed in range(5):
        params = PROJECTED.variant(seed, info)
        quiet = {**params, "noise": torch.zeros(OUT_DIM)}
        obs = PROJECTED.render(scene, expand_params(quiet, 6, "cpu"), torch.Generator())
        expected = torch.tanh(scene.features @ params["weight"].T + params["bias"])
        assert float((obs - expected).abs().max()) < 1e-6  # (assert_close imports for seconds)


def test_projected_width_dead_channels_are_exactly_zero() -> None:
    scene, info = SCENES["pointnav"]()
    variants = [PROJECTED.variant(seed, info) for seed in range(30)]
    obs = PROJECTED.render(scene, stack_params(variants[:6], "cpu"), torch.Generator())
    widths = []
    for i, params in enumerate(variants):
        alive = (params["weight"] != 0).any(1)
        width = int(alive.sum())
        assert torch.equal(alive, torch.arange(OUT_DIM) < width)  # the first `width` sensors
        assert MIN_WIDTH <= width <= OUT_DIM
        widths.append(width)
        if i < 6:
            assert bool((obs[i, width:] == 0).all()) and bool((obs[i, :width] != 0).all())
    assert len(set(widths)) > 5


def test_projected_noise_has_the_variant_scale() -> None:
    scene, info = SCENES["features"]()
    params = PROJECTED.variant(1, info)
    batch = 4000
    big = Scene(features=scene.features[:1].expand(batch, -1))
    obs = PROJECTED.render(big, expand_params(params, batch, "cpu"), torch.Generator())
    z = torch.atanh(obs.double().clamp(-1 + 1e-7, 1 - 1e-7))  # back to before the squashing
    noise_std = z.std(0)
    sigma = params["noise"].double()
    alive = sigma > 0
    assert torch.allclose(noise_std[alive], sigma[alive], rtol=0.1, atol=1e-3)
    assert not math.isnan(float(noise_std.sum()))
