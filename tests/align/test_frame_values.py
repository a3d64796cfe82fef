"""The audio translator (``metaxm.align.frame_values``): one linear reader for every time frame,
routed linearly; real ``audio`` renders (harmonics, noise) of GridNav states."""

from __future__ import annotations

import pytest
import torch

from metaxm.align.frame_values import FrameValueTranslator, fit_reader
from metaxm.align.translate import fit_translator
from metaxm.config.align import AlignConfig
from metaxm.envs import GridNav, GridNavConfig
from metaxm.modalities import get_family


@pytest.mark.parametrize(("variant", "share"), [(2, 0.95), (3, 0.7)])
def test_two_goals_and_a_walk_translate_new_goals(variant: int, share: float, walk, pairs) -> None:
    """A walk past two goals, then fresh agents and goals anywhere: the share of states whose
    four features are all read to within half a grid cell (variant 2's noise level is 0.10,
    variant 3's 0.14, of at most 0.2; the noise is what the linear reader cannot undo)."""
    info = GridNav(GridNavConfig(size=7), 1).scene_info
    g = torch.Generator().manual_seed(0)
    (a1, g1), (a2, g2) = walk((1, 5), 40, g), walk((5, 2), 40, g)
    target, source = pairs(("audio", variant), torch.cat((a1, a2)), torch.cat((g1, g2)))
    translator = FrameValueTranslator(get_family("audio").observation_space(info), 8)
    fit_translator(translator, target, source, AlignConfig())
    assert not list(translator.parameters())  # all closed form
    agent, goal = (
        torch.randint(0, 7, (300, 2), generator=g),
        torch.randint(0, 7, (300, 2), generator=g),
    )
    target, source = pairs(("audio", variant), agent, goal, seed=1)
    with torch.no_grad():
        got = translator(target)
    cell = source[:, :4].abs().amax(0) / 3  # a channel's value at the grid's edge is 3 cells
    within = ((got[:, :4] - source[:, :4]).abs() < cell / 2).all(1)
    assert within.float().mean() >= share
    assert bool((got[:, 4:] == 0).all())  # the source's noise channels: not translated


def test_no_frame_that_explains_a_channel_gives_no_reader() -> None:
    g = torch.Generator().manual_seed(0)
    frames, source = torch.rand(50, 4, 32, generator=g), torch.rand(50, 3, generator=g)
    assert fit_reader(frames.double(), source.double()) is None


def test_one_episode_searches_the_goal_frames_it_leaves_open(
    walk, pairs, candidates, features, seek, tasks
) -> None:
    """After one episode (goal (4, 2)) the goal's frames are constant. With the world's test of
    success, every held frame may read each goal channel, at the ratio of their values or at
    the gain the agent's frames show, and the readings are searched within the episode: over
    variants 41-46 a policy walking to the goal it reads reaches >= 90% of 39 new tasks within
    the horizon, and at least 0.5 more than the same fit without the test (measured: 1.00 on
    every variant, against 0.13-0.23)."""
    from metaxm.align.least_squares import ridge
    from metaxm.align.translation_context import TranslationContext

    info = GridNav(GridNavConfig(size=7), 1).scene_info
    space = get_family("audio").observation_space(info)
    plain_context = TranslationContext(candidates)
    search_context = TranslationContext(
        candidates, features=features, reached=GridNav(GridNavConfig(size=7), 1).reached
    )
    decode = ridge(candidates.double(), features.double())
    shares = {False: [], True: []}
    for variant in range(41, 47):
        target, source = pairs(("audio", variant), *walk((4, 2), 30,
                               torch.Generator().manual_seed(variant)))  # fmt: skip
        for searching, context in ((False, plain_context), (True, search_context)):
            translator = FrameValueTranslator(space, source.shape[1])
            fit_translator(translator, target, source, AlignConfig(), context=context)
            assert bool(translator.readings.active) == searching
            found = [seek(translator, decode, ("audio", variant), s, t) for s, t in tasks]
            shares[searching].append(sum(found) / len(found))
    assert sum(shares[True]) / 6 >= 0.9
    assert sum(shares[True]) / 6 >= sum(shares[False]) / 6 + 0.5


@pytest.mark.parametrize("variant", [2, 3, 41])
def test_a_frames_pitch_is_linear_in_its_value_at_every_value(variant: int, pairs) -> None:
    """The pitch of the agent's row frame over all seven rows (each drawn 20 times, with the
    variant's noise): a straight line in the row to a fifth of a bin, so a value the walk never
    played is read on the line the others drew (the parabola through a narrow peak leaves up to
    a fifth of a bin; a row is 1.4-1.8 bins here)."""
    from metaxm.align.frame_values import frame_pitch
    from metaxm.nn.encoders import time_frames

    rows = torch.arange(7).repeat_interleave(20)
    agent = torch.stack((rows, torch.zeros_like(rows)), 1)
    target, _ = pairs(("audio", variant), agent, torch.full_like(agent, 6))
    pitch = frame_pitch(time_frames(target).double())[:, 0].view(7, 20)
    assert float(pitch.std(1).max()) < 0.1  # the noise moves no peak
    steps = pitch.mean(1).diff()
    assert float((steps - steps.mean()).abs().max()) < 0.2 and float(steps.mean().abs()) > 0.5


def test_an_audio_fit_saved_before_pitches_were_read_still_loads(walk, pairs) -> None:
    """A translator saved with the linear reader alone loads, and reads as it did."""
    info = GridNav(GridNavConfig(size=7), 1).scene_info
    space = get_family("audio").observation_space(info)
    target, source = pairs(("audio", 2), *walk((1, 5), 40, torch.Generator().manual_seed(0)))
    translator = FrameValueTranslator(space, 8)
    translator.tonal = False  # the linear reader, as before pitches were read
    fit_translator(translator, target, source, AlignConfig())
    older = {k: v for k, v in translator.state_dict().items()
             if k not in ("reads_pitch", "origin") and not k.startswith("readings.")}  # fmt: skip
    loaded = FrameValueTranslator(space, 8)
    loaded.load_state_dict(older)
    assert not bool(loaded.reads_pitch)
    with torch.no_grad():
        torch.testing.assert_close(loaded(target), translator(target))
