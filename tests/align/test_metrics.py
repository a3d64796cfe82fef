"""Retrieval, chance levels, NMI/AMI and the linear probe on constructed cases."""

from __future__ import annotations

import math

import pytest
import torch

from metaxm.align.metrics import (
    cluster_scores,
    cross_modal_retrieval,
    linear_probe_r2,
    retrieval_accuracy,
    retrieval_chance,
)


def test_retrieval_perfect_case_is_one() -> None:
    g = torch.Generator().manual_seed(0)
    z = torch.randn(64, 8, generator=g)
    rotation = torch.linalg.qr(torch.randn(8, 8, generator=g))[0]
    out = cross_modal_retrieval(z, z @ rotation.T @ rotation * 3.0, (1, 5))  # same directions
    assert out["a2b_top1"] == 1.0 and out["b2a_top1"] == 1.0 and out["a2b_top5"] == 1.0
    assert out["chance_top1"] == pytest.approx(1 / 64)
    assert out["chance_top5"] == pytest.approx(5 / 64)


def test_retrieval_random_case_is_near_chance() -> None:
    g = torch.Generator().manual_seed(1)
    n, trials = 128, 20
    top1 = top5 = 0.0
    for _ in range(trials):
        acc = retrieval_accuracy(torch.randn(n, 16, generator=g), torch.randn(n, 16, generator=g))
        top1, top5 = top1 + acc[1] / trials, top5 + acc[5] / trials
    # chance 1/128 = 0.0078 and 5/128 = 0.039; the means of 2560 draws sit within a few s.e.
    assert abs(top1 - 1 / n) < 4 * math.sqrt((1 / n) / (n * trials))
    assert abs(top5 - 5 / n) < 4 * math.sqrt((5 / n) / (n * trials))


def test_retrieval_counts_duplicates_and_exact_chance() -> None:
    za = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    zb = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    ids = torch.tensor([0, 0, 1])
    assert retrieval_accuracy(za, zb, (1,), ids)[1] == 1.0
    # a query whose state occurs twice among 3 keys: 1 - C(1, 1) / C(3, 1) = 2/3; once: 1/3
    assert retrieval_chance(3, 1, ids) == pytest.approx((2 / 3 + 2 / 3 + 1 / 3) / 3)
    assert retrieval_chance(3, 5) == 1.0


def test_nmi_ami_on_a_constructed_clustering() -> None:
    g = torch.Generator().manual_seed(2)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])
    labels = torch.arange(4).repeat_interleave(25)
    z = centres[labels] + 0.1 * torch.randn(100, 2, generator=g)
    perfect = cluster_scores(z, labels)
    assert perfect["nmi"] == pytest.approx(1.0) and perfect["ami"] == pytest.approx(1.0)
    # labels unrelated to the geometry: AMI near 0 (it is chance-adjusted), NMI small
    shuffled = labels[torch.randperm(100, generator=g)]
    noise = cluster_scores(z, shuffled)
    assert abs(noise["ami"]) < 0.08 and noise["nmi"] < 0.15
    # two true classes merged in the latent: exactly half the information is lost
    merged = cluster_scores(z, labels // 2, n_clusters=4)
    assert merged["nmi"] == pytest.approx(2 * 1.0 / (1.0 + 2.0), abs=1e-6)  # 2 I / (H_y + H_c)


def test_linear_probe_r2() -> None:
    g = torch.Generator().manual_seed(3)
    y = torch.rand(300, 4, generator=g) * 2 - 1
    w = torch.randn(4, 16, generator=g)
    z = y @ w + 0.01 * torch.randn(300, 16, generator=g)
    assert linear_probe_r2(z[:200], y[:200], z[200:], y[200:]) > 0.999
    unrelated = torch.randn(300, 16, generator=g)
    assert linear_probe_r2(unrelated[:200], y[:200], unrelated[200:], y[200:]) < 0.05
