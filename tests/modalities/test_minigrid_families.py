"""The MiniGrid families: MiniGrid's own renders, their spaces, and their variants."""

from __future__ import annotations

import pytest
import torch

from metaxm.align.pairs import concat_scenes, select_rows
from metaxm.envs import GridNav, GridNavConfig, MiniGrid, MiniGridConfig
from metaxm.envs.minigrid import MiniGridScene
from metaxm.envs.task_env import TaskEnv
from metaxm.modalities import Modality, get_family, stack_params
from metaxm.modalities.minigrid import NUM_COLORS, NUM_OBJECTS, RGB_TILE, pov_image

pytest.importorskip("minigrid", reason="needs the minigrid extra: pip install metaxm[minigrid]")

FAMILIES = ("minigrid_symbolic", "minigrid_rgb")


@pytest.fixture(scope="module")
def world() -> MiniGrid:
    return MiniGrid(MiniGridConfig(), 6, seed=4)


def test_pov_image_is_minigrids_own_render() -> None:
    """GoToObject sees through walls, so every cell is visible: the image is exactly
    ``get_pov_render``'s, at every step of an episode."""
    world = MiniGrid(MiniGridConfig(env_id="MiniGrid-GoToObject-6x6-N2-v0"), 1)
    raw = world.envs[0]
    for action in (0, 2, 2, 1, 2, 0):
        image = pov_image(world.scene().view.long(), RGB_TILE)[0].permute(1, 2, 0).numpy()
        assert (image == raw.get_pov_render(RGB_TILE)).all()
        world.step(torch.tensor([action % 3]))


def test_pov_image_blacks_out_only_unseen_cells() -> None:
    """BabyAI does not see through walls: unseen cells are black, the others MiniGrid's."""
    world = MiniGrid(MiniGridConfig(), 4, seed=1)
    view = world.scene().view.long()
    image = pov_image(view, RGB_TILE).permute(0, 2, 3, 1)  # (B, S, S, 3)
    for i, raw in enumerate(world.envs):
        seen = (view[i, :, :, 0] != 0).T.repeat_interleave(RGB_TILE, 0)  # (V, V) -> rows = y
        seen = seen.repeat_interleave(RGB_TILE, 1)
        reference = torch.from_numpy(raw.get_pov_render(RGB_TILE))
        assert torch.equal(image[i][seen], reference[seen])
        assert not image[i][~seen].any()


def test_symbolic_planes_decode_to_the_grid(world: MiniGrid) -> None:
    """Undo a variant's plane permutations: the one-hot planes give back obs["image"]."""
    modality = Modality("minigrid_symbolic", 5, world.scene_info)
    scene = world.scene()
    obs = modality.render(scene, torch.Generator())  # (B, 20, V, V)
    assert obs.sum(1).eq(3).all()  # one object, one colour, one state per cell
    for k, key in enumerate(("object", "color", "state")):
        planes = modality.params[key]  # id -> plane
        which = obs[:, planes].argmax(1)  # (B, V[y], V[x]) -> id
        assert torch.equal(which.transpose(1, 2), scene.view[..., k].long())


def test_rgb_variant_permutes_colours_and_channels(world: MiniGrid) -> None:
    family = get_family("minigrid_rgb")
    scene = world.scene()
    b = scene.batch_size
    params = {
        "color": torch.arange(NUM_COLORS).expand(b, NUM_COLORS),
        "channels": torch.tensor([2, 1, 0]).expand(b, 3),
        "invert": torch.tensor([True, False, False]).expand(b, 3),
    }
    identity = pov_image(scene.view.long(), RGB_TILE)
    out = family.render(scene, params, torch.Generator())
    assert torch.equal(out[:, 0], 255 - identity[:, 2])
    assert torch.equal(out[:, 1:], identity[:, [1, 0]])
    # a colour permutation is a re-coloured grid
    perm = torch.roll(torch.arange(NUM_COLORS), 1)  # colour c is drawn as colour perm[c]
    shifted = dict(params, color=perm.expand(b, NUM_COLORS))
    view = scene.view.long().clone()
    view[..., 1] = perm[view[..., 1]]
    recoloured = pov_image(view, RGB_TILE)
    out = family.render(scene, shifted, torch.Generator())
    assert torch.equal(out[:, 0], 255 - recoloured[:, 2])


@pytest.mark.parametrize("family", FAMILIES)
def test_mixed_variants_render_into_the_space(world: MiniGrid, family: str) -> None:
    env = TaskEnv(world, family, variants=[0, 1, 2, 3, 4, 5])
    obs = env.reset()
    space = env.observation_space
    assert tuple(obs.shape) == (6, *space.shape) and obs.dtype == torch.uint8
    for row in obs.numpy():
        assert row in space
    # row i of the mixed batch is what variant i renders on its own
    scene = world.scene()
    for i in (0, 3):
        alone = Modality(family, i, world.scene_info).render(scene, torch.Generator())
        assert torch.equal(alone[i], obs[i])


@pytest.mark.parametrize("family", FAMILIES)
def test_variants_are_deterministic_and_differ(world: MiniGrid, family: str) -> None:
    fam = get_family(family)
    scene = world.scene()
    renders = {}
    for seed in (0, 1, 2):
        a, b = fam.variant(seed, world.scene_info), fam.variant(seed, world.scene_info)
        assert all(torch.equal(a[k], b[k]) for k in a)
        stacked = stack_params([a] * scene.batch_size, "cpu")
        renders[seed] = fam.render(scene, stacked, torch.Generator())
    assert not torch.equal(renders[0], renders[1]) and not torch.equal(renders[1], renders[2])
    params = [fam.variant(s, world.scene_info) for s in range(20)]
    key = "object" if family == "minigrid_symbolic" else "color"
    distinct = {tuple(p[key].tolist()) for p in params}
    assert len(distinct) >= 15  # 11! or 6! permutations: repeats are rare
    if family == "minigrid_symbolic":
        assert all(sorted(p["object"].tolist()) == list(range(NUM_OBJECTS)) for p in params)


@pytest.mark.parametrize("family", FAMILIES)
def test_other_worlds_are_refused_with_a_clear_message(family: str) -> None:
    gridnav = GridNav(GridNavConfig(), 1)
    with pytest.raises(ValueError, match=f"{family} renders MiniGrid scenes only"):
        TaskEnv(gridnav, family)


def test_row_selection_and_stacking_keep_the_view(world: MiniGrid) -> None:
    """The evaluator and the alignment fits cut and stack scenes: the view must come along."""
    scene = world.scene()
    rows = select_rows(scene, torch.tensor([4, 1]))
    assert isinstance(rows, MiniGridScene)
    assert torch.equal(rows.view, scene.view[[4, 1]])
    both = concat_scenes([rows, select_rows(scene, slice(0, 3))])
    assert torch.equal(both.view, torch.cat((scene.view[[4, 1]], scene.view[:3])))
    assert torch.equal(both.layout.walls[2:], scene.layout.walls[:3])
    family = get_family("minigrid_rgb")
    params = stack_params([family.variant(0, world.scene_info)] * 5, "cpu")
    expected = family.render(
        scene, stack_params([family.variant(0, world.scene_info)] * 6, "cpu"), torch.Generator()
    )
    assert torch.equal(family.render(both, params, torch.Generator())[:2], expected[[4, 1]])
