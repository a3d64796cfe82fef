"""`scripts/translate_priors.py`: the settings under which it measures `translate`, each
changing only the prior it names and restoring it after."""

from __future__ import annotations

import math

import pytest
import torch

import metaxm.align.reading_search as reading_search
import metaxm.align.sensor_posterior as sensor_posterior


def test_flat_takes_away_both_learned_priors_and_gives_them_back(load_script) -> None:
    script = load_script("translate_priors")
    gain, offset = reading_search.gain_prior, sensor_posterior.bias_scale
    with script.setting("flat"):
        prior = reading_search.gain_prior([], 1.0, 3)
        assert prior.shape == (2, 3) and (prior[0] == 0).all() and (prior[1] == 1e3).all()
        assert math.isnan(sensor_posterior.bias_scale([], torch.zeros(1, 3)))
    assert reading_search.gain_prior is gain and sensor_posterior.bias_scale is offset
    with script.setting("learned"):
        assert reading_search.gain_prior is gain


@pytest.mark.parametrize(
    ("name", "place", "factor"),
    [("weight x4", 0, 2.0), ("offset x0.25", 1, 0.5), ("noise x4", 2, 2.0)],
)
def test_a_scaled_setting_multiplies_one_fitted_variance(
    load_script, name: str, place: int, factor: float
) -> None:
    script = load_script("translate_priors")
    generator = torch.Generator().manual_seed(0)
    x = torch.cat((torch.randn(40, 3, generator=generator, dtype=torch.float64),
                   torch.ones(40, 1, dtype=torch.float64)), 1)  # fmt: skip
    z = x @ torch.randn(4, 6, generator=generator, dtype=torch.float64)
    z += 0.05 * torch.randn(z.shape, generator=generator, dtype=torch.float64)
    plain = sensor_posterior.evidence_fit(x, z)
    with script.setting(name):
        scaled = sensor_posterior.evidence_fit(x, z)
    for i in range(3):
        assert scaled[i] == pytest.approx(plain[i] * (factor if i == place else 1.0), rel=1e-6)
    assert sensor_posterior.evidence_fit(x, z) == pytest.approx(plain, rel=1e-6)
