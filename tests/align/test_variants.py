"""Per-variant adapters: a mixed-variant batch equals each variant's adapter applied alone."""

from __future__ import annotations

import torch

from metaxm.align.losses import encode
from metaxm.align.pairs import PairedSampler
from metaxm.align.variants import VariantAdapters
from metaxm.nn.agent import build_agent
from metaxm.sampler import TaskSampler


def test_rows_use_their_own_variant_adapter(make_spec) -> None:
    spec = make_spec(modalities={"train": {"vector": 3}})
    agent = build_agent(spec)
    pool = TaskSampler(spec).splits["train"]
    adapters = VariantAdapters(agent, pool)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # make the three copies differ
        for p in adapters.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g))
    batch = PairedSampler.from_spec(spec, seed=4).sample()
    obs, variants = batch.obs[0], batch.variants[0]
    with torch.no_grad():
        mixed = adapters.encode(agent, obs, "vector", variants)
        for v in pool["vector"]:
            rows = variants == v
            alone = encode(agent, obs[rows], "vector", adapters.params("vector", v))
            assert rows.any() and torch.allclose(mixed[rows], alone, atol=1e-6)
        # freshly built copies start as the family adapter (the identity)
        fresh = VariantAdapters(agent, pool).encode(agent, obs, "vector", variants)
        assert torch.allclose(fresh, agent.encode(obs, "vector"), atol=1e-6)
