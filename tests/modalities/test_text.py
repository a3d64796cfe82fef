"""The text family: known sentences for known states, through every kind of variant choice."""

from __future__ import annotations

import pytest
import torch
from modality_scenes import SCENES

from metaxm.envs.base import Layout, Scene, SceneInfo
from metaxm.modalities import Modality, expand_params
from metaxm.modalities.text import (
    SYNONYMS,
    TEMPLATES,
    VOCAB,
    VOCAB_SIZE,
    TextFamily,
    TextVariant,
    decode,
    number_words,
    sequence_length,
)

FAMILY = TextFamily()
CANONICAL = {"synonyms": dict.fromkeys(SYNONYMS, 0), "templates": dict.fromkeys(TEMPLATES, 0)}


def grid_scene() -> tuple[Scene, SceneInfo]:
    """Two GridNav-like states.

    Row 0: the agent at (2, 4) with a wall to its north, the goal at (0, 1). Row 1: the agent in
    the top-right corner (the grid's edge north and east), the goal at (6, 0), a wall far off.
    """
    walls = torch.zeros(2, 7, 7, dtype=torch.bool)
    walls[0, 1, 4] = True
    walls[1, 3, 5] = True
    layout = Layout(
        size=7,
        agent=torch.tensor([[2, 4], [0, 6]]),
        goal=torch.tensor([[0, 1], [6, 0]]),
        walls=walls,
    )
    info = SceneInfo(feature_dim=8, layout_size=7, goal_visible=True, has_walls=True)
    return Scene(features=torch.zeros(2, 8), layout=layout), info


def say(scene: Scene, info: SceneInfo, variant: TextVariant) -> list[str]:
    params = variant.compile(info)
    tokens = FAMILY.render(scene, expand_params(params, scene.batch_size, "cpu"), torch.Generator())
    return decode(tokens, params)


def test_canonical_sentences() -> None:
    scene, info = grid_scene()
    sentences = say(scene, info, TextVariant(**CANONICAL, order=(0, 1, 2)))
    assert sentences == [
        "you are at row three column five . the goal is at row one column two . "
        "wall to the north .",
        "you are at row one column seven . the goal is at row seven column one . "
        "wall to the north . wall to the east .",
    ]


def test_synonyms_templates_and_order() -> None:
    scene, info = grid_scene()
    variant = TextVariant(
        synonyms={"agent": 1, "goal": 2, "wall": 3, "axis": 2, "dir": 1, "feature": 0},
        templates={"agent": 2, "goal": 1, "wall": 1, "feature": 0},
        order=(2, 0, 1),
        sides=(3, 2, 1, 0),
    )
    assert say(scene, info, variant) == [
        "there is a rock above . agent : x five , y three . exit : y one , x two .",
        "there is a rock to the right . there is a rock above . "
        "agent : x seven , y one . exit : y seven , x one .",
    ]


def test_no_wall_and_hidden_goal() -> None:
    scene, _ = grid_scene()
    scene = Scene(
        features=scene.features,
        layout=Layout(7, scene.layout.agent, None, torch.zeros(2, 7, 7, dtype=torch.bool)),
    )
    info = SceneInfo(feature_dim=6, layout_size=7, goal_visible=False, has_walls=True)
    variant = TextVariant(**CANONICAL, order=(1, 0))
    assert say(scene, info, variant) == [
        "no wall nearby . you are at row three column five .",
        "wall to the north . wall to the east . you are at row one column seven .",
    ]


def test_layout_less_scene_lists_quantised_features() -> None:
    scene, info = SCENES["features"]()  # row 0 is (-1, -0.5, 0, 0.5, 1)
    sentences = say(scene, info, TextVariant(**CANONICAL, order=(0, 1, 2, 3, 4)))
    assert sentences[0] == (
        "feature one is minus nine . feature two is minus four . feature three is zero . "
        "feature four is four . feature five is nine ."
    )  # -0.5 * 9 = -4.5 rounds half to even
    variant = TextVariant({**CANONICAL["synonyms"], "feature": 1}, {"feature": 2}, (4, 0, 1, 2, 3))
    assert say(scene, info, variant)[0].startswith(
        "sensor five reads nine . sensor one reads minus"
    )


def test_cipher_changes_ids_not_words() -> None:
    scene, info = grid_scene()
    plain = TextVariant(**CANONICAL, order=(0, 1, 2))
    cipher = torch.cat((torch.zeros(1, dtype=torch.long), torch.arange(VOCAB_SIZE - 1, 0, -1)))
    secret = TextVariant(**CANONICAL, order=(0, 1, 2), cipher=cipher)
    a = FAMILY.render(scene, expand_params(plain.compile(info), 2, "cpu"), torch.Generator())
    b = FAMILY.render(scene, expand_params(secret.compile(info), 2, "cpu"), torch.Generator())
    assert torch.equal(b, cipher[a])
    assert decode(b, secret.compile(info)) == decode(a, plain.compile(info))


def test_tokens_are_packed_left_and_padded() -> None:
    scene, info = SCENES["gridnav_walls"]()
    for seed in range(8):
        params = FAMILY.variant(seed, info)
        tokens = FAMILY.render(scene, expand_params(params, 6, "cpu"), torch.Generator())
        assert tokens.shape == (6, sequence_length(info))
        words = tokens != 0
        assert torch.equal(words, words.cummin(1).values)  # no word after a pad
        for sentence in decode(tokens, params):
            assert sentence.endswith(".") and "<pad>" not in sentence


def test_every_seed_decodes_to_the_right_numbers() -> None:
    scene, info = grid_scene()
    for seed in range(20):
        modality = Modality(FAMILY, seed, info)
        tokens = modality.render(scene, torch.Generator())
        words = decode(tokens, modality.params)[0].split()
        assert words.count("three") == 1 and words.count("five") == 1  # the agent's row, col
        assert words.count("one") == 1 and words.count("two") == 1  # the goal's
        assert len(set(modality.params["cipher"].tolist())) == VOCAB_SIZE


def test_numbers_in_words() -> None:
    assert number_words(0) == ("zero",) and number_words(19) == ("nineteen",)
    assert number_words(40) == ("forty",) and number_words(73) == ("seventy", "three")
    assert all(w in VOCAB for n in range(100) for w in number_words(n))
    with pytest.raises(ValueError, match="numbers in"):
        number_words(100)


def test_large_grids_are_refused() -> None:
    with pytest.raises(ValueError, match="rows up to"):
        Modality("text", 0, SceneInfo(feature_dim=2, layout_size=120))
    Modality("text", 0, SceneInfo(feature_dim=2, layout_size=42))  # two-word numbers are fine
