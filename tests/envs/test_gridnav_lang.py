"""GridNavLang: instructions name the target, observations show the objects but not the goal.

The gymnasium sweep (``tests/envs/test_gym_api.py``) runs ``metaxm/GridNavLang-v0`` through
make, the env checker and a seeded reset in every registered family, as for every world.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from metaxm.envs import GridNavLang, GridNavLangConfig
from metaxm.envs.gym_api import GYM_IDS
from metaxm.envs.instructions import (
    COLOR_NAMES,
    COLORS,
    HELDOUT_TEMPLATES,
    LENGTH,
    TEMPLATES,
    TRAIN_TEMPLATES,
    instructed_space,
    split_instruction,
    tokenize,
)
from metaxm.envs.task_env import TaskEnv
from metaxm.modalities import get_family
from metaxm.modalities.base import expand_params
from metaxm.modalities.text import decode as decode_text

FAMILIES = ("vector", "projected", "pixels", "text", "audio")


def test_instructions_name_the_target_and_goal_is_its_object() -> None:
    world = GridNavLang(GridNavLangConfig(size=6, objects=4), 64, seed=0)
    rows = torch.arange(64)
    assert torch.equal(world.goal, world.objects[rows, world.target])
    for sentence, target, template in zip(
        world.instructions(), world.target.tolist(), world.template.tolist()
    ):
        assert sentence == TEMPLATES[template].format(color=COLOR_NAMES[target])
    # objects sit on distinct cells
    cells = world.objects[:, :, 0] * 6 + world.objects[:, :, 1]
    assert all(len(set(r)) == 4 for r in cells.tolist())


@pytest.mark.parametrize(
    ("split", "allowed"),
    [("train", range(len(TRAIN_TEMPLATES))), ("heldout", range(6, 6 + len(HELDOUT_TEMPLATES)))],
)
def test_paraphrase_split_is_respected(split: str, allowed: range) -> None:
    world = GridNavLang(GridNavLangConfig(paraphrases=split), 512, seed=1)  # type: ignore[arg-type]
    drawn = set(world.sample_tasks(2048)["template"].tolist())
    assert drawn == set(allowed)  # every template of the split, none of the other


def test_heldout_paraphrases_use_words_training_never_shows() -> None:
    train_words = {w for t in TRAIN_TEMPLATES for w in t.split()}
    for template in HELDOUT_TEMPLATES:
        assert set(template.split()) - train_words - {"{color}"}, template


def test_oracle_reaches_the_named_object_in_optimal_steps() -> None:
    world = GridNavLang(GridNavLangConfig(), 32, seed=2)
    env = TaskEnv(world, "vector")
    env.reset()
    optimal = world.optimal_steps().clone()
    done_at = torch.zeros(32, dtype=torch.long)
    for t in range(1, world.horizon + 1):
        _, reward, terminated, _, info = env.step(world.oracle_action())
        newly = terminated & (done_at == 0)
        done_at[newly] = t
        assert torch.all(reward[newly] == 1.0) and torch.all(info["success"][newly])
    assert torch.equal(done_at, optimal)


@pytest.mark.parametrize("family", FAMILIES)
def test_observation_shows_objects_not_which_is_the_goal(family: str) -> None:
    """Two worlds that differ only in the target: the family's render is the same, the
    instruction ids differ, and the observation in the space is the two side by side."""
    a = GridNavLang(GridNavLangConfig(), 8, seed=3)
    b = GridNavLang(GridNavLangConfig(), 8, seed=3)
    tasks = a.task_params()
    tasks["target"] = (tasks["target"] + 1) % a.num_objects
    tasks["template"] = a.task_params()["template"]
    b.set_tasks(tasks)
    b.pos = a.pos.clone()
    env_a, env_b = TaskEnv(a, family, 5, seed=0), TaskEnv(b, family, 5, seed=0)
    obs_a, obs_b = env_a.observe(), env_b.observe()
    inner = get_family(family).observation_space(a.scene_info).shape
    view_a, ids_a = split_instruction(obs_a, inner, LENGTH)
    view_b, ids_b = split_instruction(obs_b, inner, LENGTH)
    assert torch.equal(view_a, view_b)
    assert torch.equal(ids_a, a.instruction_ids) and torch.equal(ids_b, b.instruction_ids)
    assert not torch.equal(ids_a, ids_b)
    space = instructed_space(get_family(family).observation_space(a.scene_info), a.scene_info)
    assert space == env_a.observation_space
    for r in obs_a.numpy():
        assert space.contains(r)


def test_pixels_draw_each_object_in_its_colour_and_text_names_it() -> None:
    world = GridNavLang(GridNavLangConfig(objects=4), 4, seed=4)
    scene = world.scene()
    pixels = get_family("pixels")
    for variant in range(3):
        params = pixels.variant(variant, world.scene_info)
        quiet = {k: torch.zeros_like(v) if k == "occlusion" else v for k, v in params.items()}
        image = pixels.render(scene, expand_params(quiet, 4, "cpu"), torch.Generator())
        colours = {tuple(c) for c in image[0].flatten(1).T.tolist()}
        for _, rgb in COLORS:
            assert rgb in colours, (variant, rgb)
    text = get_family("text")
    params = text.variant(0, world.scene_info)
    tokens = text.render(scene, expand_params(params, 4, "cpu"), torch.Generator())
    sentence = decode_text(tokens, params)[0]
    for name in COLOR_NAMES:
        assert f"{name} square" in sentence
        assert sentence.count(name) == 1, sentence
    assert "goal" not in sentence and "target" not in sentence


def test_other_worlds_are_unchanged_by_the_object_vocabulary() -> None:
    """A GridNav text or pixels variant is the same as before objects existed: same space,
    same palette draws (the first NUM_CLASSES colours), no instruction in the observation."""
    from metaxm.envs import GridNav, GridNavConfig
    from metaxm.modalities.text import VOCAB_SIZE

    world = GridNav(GridNavConfig(), 2, seed=0)
    assert world.scene().instruction is None
    space = get_family("text").observation_space(world.scene_info)
    assert int(np.max(space.nvec)) == VOCAB_SIZE
    assert get_family("pixels").variant(0, world.scene_info)["palette"].shape == (6, 3)


def test_world_resumes_from_its_tensors() -> None:
    from metaxm.rl.trainer import env_state, load_env_state

    env = TaskEnv(GridNavLang(GridNavLangConfig(), 6, seed=5), "text", 1, resample_tasks=True)
    env.reset()
    state = env_state(env)
    other = TaskEnv(GridNavLang(GridNavLangConfig(), 6, seed=99), "text", 1, resample_tasks=True)
    load_env_state(other, state)
    assert torch.equal(env.observe(), other.observe())
    for _ in range(25):  # through auto-resets with fresh tasks
        a = env.world.oracle_action()
        assert torch.equal(env.step(a)[0], other.step(a)[0])


def test_gym_id_is_registered_and_tokenize_rejects_unknown_words() -> None:
    assert GYM_IDS["gridnav_lang"] == "metaxm/GridNavLang-v0"
    with pytest.raises(ValueError, match="'purple' not in VOCAB"):
        tokenize(["go to the purple square"])


def test_recorded_scenes_keep_their_own_objects_and_instruction_when_tasks_are_resampled() -> None:
    from metaxm.envs.play import play

    env = TaskEnv(GridNavLang(GridNavLangConfig(), 4, seed=3), "text", 1, resample_tasks=True)
    gen = torch.Generator().manual_seed(0)
    played = play(
        env, lambda obs: torch.randint(4, (4,), generator=gen), episodes=3, record=("scene",)
    )
    scale = (env.world.size - 1) / 2.0
    for scene in played.record["scene"]:
        objects = ((scene.features[:, 2:] + 1.0) * scale).round().long().view(4, -1, 2)
        assert torch.equal(objects, scene.layout.objects)
    first, last = played.record["scene"][0], played.record["scene"][-1]
    assert not torch.equal(first.layout.objects, last.layout.objects)  # tasks did change
