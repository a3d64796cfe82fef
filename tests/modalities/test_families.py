"""Every built-in family on every kind of scene: spaces, seeding, and batched-vs-loop rendering."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from modality_scenes import BATCH, SCENES, row

from metaxm.envs import GridNav, GridNavConfig
from metaxm.envs.base import Layout, Scene, SceneInfo
from metaxm.envs.task_env import TaskEnv
from metaxm.modalities import FAMILIES, Modality, expand_params, get_family, stack_params

BUILTIN = ("vector", "projected", "pixels", "text", "audio")
NOISE_KEYS = ("noise", "occlusion")  # the parameters that scale a family's per-render noise


@pytest.fixture(params=sorted(SCENES))
def scene_and_info(request: pytest.FixtureRequest) -> tuple[Scene, SceneInfo]:
    """Every kind of scene, one at a time."""
    return SCENES[request.param]()


@pytest.fixture(params=BUILTIN)
def family_name(request: pytest.FixtureRequest) -> str:
    return request.param


def render(name: str, variants: list[int], scene: Scene, info: SceneInfo, seed: int = 0):
    family = get_family(name)
    params = stack_params([family.variant(v, info) for v in variants], "cpu")
    return family.render(scene, params, torch.Generator().manual_seed(seed))


def quiet(params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The same variant without observation noise."""
    return {k: torch.zeros_like(v) if k in NOISE_KEYS else v for k, v in params.items()}


def test_builtin_families_are_registered() -> None:
    assert set(BUILTIN) <= set(FAMILIES)


def test_render_lies_in_the_space(family_name: str, scene_and_info) -> None:
    scene, info = scene_and_info
    modality = Modality(family_name, 5, info)
    space = modality.observation_space
    obs = modality.render(scene, torch.Generator().manual_seed(0))
    assert obs.shape == (BATCH, *space.shape)
    assert obs.dtype == torch.from_numpy(np.zeros(0, space.dtype)).dtype
    for r in obs.numpy():
        assert space.contains(r)
    # every variant shares the space (and parameter shapes): a batch mixing six variants
    mixed = render(family_name, list(range(6)), scene, info)
    assert mixed.shape == obs.shape and mixed.dtype == obs.dtype
    for r in mixed.numpy():
        assert space.contains(r)


def test_same_seed_same_render(family_name: str, scene_and_info) -> None:
    scene, info = scene_and_info
    a = Modality(family_name, 11, info).render(scene, torch.Generator().manual_seed(4))
    b = Modality(family_name, 11, info).render(scene, torch.Generator().manual_seed(4))
    assert torch.equal(a, b)


def test_different_seeds_render_differently(family_name: str, scene_and_info) -> None:
    scene, info = scene_and_info
    renders = [render(family_name, [v] * BATCH, scene, info) for v in range(4)]
    for i in range(4):
        for j in range(i):
            assert not torch.equal(renders[i], renders[j]), (i, j)


def test_mixed_batch_equals_one_variant_at_a_time(family_name: str, scene_and_info) -> None:
    """Row i of a batch of per-row variants is row i of the batch rendered with variant i alone.

    With the same generator state the noise draws coincide, so this holds with noise on.
    """
    scene, info = scene_and_info
    family = get_family(family_name)
    variants = [3, 1, 4, 1, 5, 9]
    mixed = render(family_name, variants, scene, info, seed=7)
    for i, v in enumerate(variants):
        params = expand_params(family.variant(v, info), BATCH, "cpu")
        alone = family.render(scene, params, torch.Generator().manual_seed(7))
        assert torch.equal(mixed[i], alone[i]), i


def test_mixed_batch_equals_rendering_each_row_alone(family_name: str, scene_and_info) -> None:
    """Without noise, a row rendered in a batch equals that scene rendered on its own."""
    scene, info = scene_and_info
    family = get_family(family_name)
    variants = [2, 7, 1, 8, 2, 8]
    params = [quiet(family.variant(v, info)) for v in variants]
    mixed = family.render(scene, stack_params(params, "cpu"), torch.Generator())
    for i in range(BATCH):
        alone = family.render(row(scene, i), expand_params(params[i], 1, "cpu"), torch.Generator())
        assert torch.equal(mixed[i], alone[0]), i


def test_noise_comes_from_the_generator(family_name: str) -> None:
    scene, info = SCENES["gridnav_walls"]()
    modality = Modality(family_name, 0, info)
    a = modality.render(scene, torch.Generator().manual_seed(1))
    b = modality.render(scene, torch.Generator().manual_seed(1))
    torch.manual_seed(123)  # global state must not matter
    c = modality.render(scene, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and torch.equal(a, c)


def test_task_env_steps_a_mix_of_variants(family_name: str) -> None:
    variants = [0, 1, 2, 0]
    env = TaskEnv(GridNav(GridNavConfig(walls=True), 4, seed=1), family_name, variants, seed=3)
    obs = env.reset()
    family = get_family(family_name)
    info = env.world.scene_info
    for _ in range(3):
        for r in obs.numpy():
            assert env.observation_space.contains(r)
        actions = env.world.oracle_action()
        state = env.render_generator.get_state()
        obs, *_ = env.step(actions)  # one render, after any auto-reset
        scene = env.world.scene()
        for i, v in enumerate(variants):
            params = expand_params(family.variant(v, info), 4, "cpu")
            alone = family.render(scene, params, torch.Generator().set_state(state))
            assert torch.equal(obs[i], alone[i]), i


@pytest.mark.gpu
def test_cuda_render_matches_cpu(family_name: str, scene_and_info) -> None:
    scene, info = scene_and_info
    family = get_family(family_name)
    params = stack_params([quiet(family.variant(v, info)) for v in range(BATCH)], "cpu")
    cpu = family.render(scene, params, torch.Generator())
    layout = scene.layout
    if layout is not None:
        move = lambda t: None if t is None else t.cuda()  # noqa: E731
        layout = Layout(layout.size, layout.agent.cuda(), move(layout.goal), move(layout.walls))
    on_gpu = Scene(features=scene.features.cuda(), layout=layout)
    params = {k: v.cuda() for k, v in params.items()}
    gpu = family.render(on_gpu, params, torch.Generator("cuda"))
    assert gpu.device.type == "cuda" and gpu.dtype == cpu.dtype
    assert float((gpu.cpu().double() - cpu.double()).abs().max()) < 1e-5
