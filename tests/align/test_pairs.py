"""Paired renders show the same states; seeded sampling is reproducible."""

from __future__ import annotations

import torch

from metaxm.align.pairs import PairedSampler, render_pairs, state_ids
from metaxm.envs import make_world
from metaxm.envs.base import Scene
from metaxm.modalities import Modality
from metaxm.sampler import TaskSampler


def _unvector(obs: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
    """Invert the vector family's permutation and gains: (B, D + noise) -> (B, D)."""
    d = params["perm"].shape[-1]
    x = obs[:, :d] / params["gain"]
    out = torch.empty_like(x)
    out.scatter_(1, params["perm"], x)
    return out


def test_views_render_the_same_states(make_spec) -> None:
    spec = make_spec()
    sampler = PairedSampler.from_spec(spec, seed=5)
    batch = sampler.sample(["vector", "vector"])
    assert batch.num_views == 2 and batch.batch_size == spec.align.batch_size
    pool = TaskSampler(spec).splits["train"]["vector"]
    table = sampler.tables["vector"]
    for obs, variants in zip(batch.obs, batch.variants):
        assert set(variants.tolist()) <= set(pool)
        index = torch.tensor([pool.index(v) for v in variants.tolist()])
        features = _unvector(obs, table.params(index))
        assert torch.allclose(features, batch.scene.features, atol=1e-5, rtol=0)
    # both training variants occur across the rows
    assert len(set(batch.variants[0].tolist())) == 2


def test_sampler_is_seeded_and_resumable(make_spec) -> None:
    spec = make_spec()
    a, b = PairedSampler.from_spec(spec, seed=2), PairedSampler.from_spec(spec, seed=2)
    a.sample()
    state = a.state_dict()
    first = a.sample()
    b.load_state_dict(state)
    second = b.sample()
    for x, y in zip(first.obs, second.obs):
        assert torch.equal(x, y)
    other = PairedSampler.from_spec(spec, seed=3).sample()
    assert not torch.equal(first.scene.features, other.scene.features)


def test_random_states_cover_the_grid_and_ids_mark_duplicates(make_spec) -> None:
    spec = make_spec()
    sampler = PairedSampler(spec.world, {"vector": [0]}, 256, views=2, seed=0)
    scene = sampler.sample_states()
    layout = scene.layout
    cells = set((layout.agent[:, 0] * 4 + layout.agent[:, 1]).tolist())
    assert len(cells) == 16  # every one of the 4 x 4 cells within 256 draws
    assert not bool((layout.agent == layout.goal).all(1).any())  # resets avoid the goal
    ids = state_ids(scene)
    same = ids[:, None] == ids[None, :]
    equal = (scene.features[:, None] == scene.features[None, :]).all(-1)
    assert torch.equal(same, equal)


def test_render_pairs_matches_modality_render(make_spec) -> None:
    spec = make_spec()
    world = make_world(spec.world, 16, seed=0)
    scene = world.scene()
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    batch = render_pairs(scene, [("vector", 4), ("vector", 9)], world.scene_info, g1)
    expected = Modality("vector", 4, world.scene_info).render(scene, g2)
    assert torch.equal(batch.obs[0], expected)
    assert batch.variants[1].tolist() == [9] * 16
    assert isinstance(batch.scene, Scene)
