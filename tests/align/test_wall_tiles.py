"""The pixels translator's wall reading (``metaxm.align.wall_tiles``): on real ``pixels``
renders of a GridNav with inner walls, the source's wall channels read by looking beside the
agent, from pairs."""

from __future__ import annotations

import pytest
import torch

from metaxm.align.action_readers import source_answers
from metaxm.align.colour_moments import ColourMomentTranslator
from metaxm.align.fewshot import default_source
from metaxm.align.pairs import render_pairs
from metaxm.align.translation_context import translation_context
from metaxm.build import make_env
from metaxm.spec import load_spec

VARIANT = 4


def _pairs(spec, tasks: int, seed: int, steps: int = 1) -> tuple[torch.Tensor, torch.Tensor]:  # noqa: ANN001
    """Random walks of ``steps`` steps on ``tasks`` tasks (as k episodes give them), each
    step's state in ``pixels:VARIANT`` and the source."""
    env = make_env(spec, "pixels", VARIANT, num_envs=tasks, seed=seed)
    env.reset()
    g = torch.Generator().manual_seed(seed)
    views = [("pixels", VARIANT), default_source(spec)]
    target, source = [], []
    for _ in range(steps):
        env.step(torch.randint(4, (tasks,), generator=g))
        pair = render_pairs(env.world.scene(), views, env.world.scene_info, g).obs
        target.append(pair[0])
        source.append(pair[1])
    return torch.cat(target), torch.cat(source)


def _fitted(spec, context) -> ColourMomentTranslator:  # noqa: ANN001
    """The pixels translator fitted from four episodes' pairs (30 steps on each of 4 tasks)."""
    target, source = _pairs(spec, 4, seed=1, steps=30)
    space = make_env(spec, "pixels", VARIANT, num_envs=1).observation_space
    translator = ColourMomentTranslator(space, source.shape[1])
    translator.prepare(context)
    translator.start(target, source)
    return translator


@pytest.fixture(scope="module")
def walled():  # noqa: ANN201
    spec = load_spec("tasks/gridnav.yaml", ["world.walls=true"])
    return spec, translation_context(spec, "pixels", seed=0)


def test_the_walls_beside_the_agent_are_read_by_looking(walled) -> None:  # noqa: ANN001
    """Fitted from four episodes' pairs, the translation gives every source wall channel exactly on
    fresh states where nothing hides the agent (a least-squares routing of the colours'
    moments, which is all it had, missed them on most), and the agent's and goal's channels
    too. A translator saved before it read walls loads, and reads none."""
    spec, context = walled
    translator = _fitted(spec, context)
    assert bool(translator.walls.active)
    target, truth = _pairs(spec, 256, seed=9)
    with torch.no_grad():
        read = translator(target)
    _, walls = source_answers(*context.moves)
    told = ~walls[0].isnan()
    seen = translator._match(target)[..., int(translator.walls.agent)].sum(1)
    whole = seen == translator.walls.whole  # the occluder hides the agent on the others
    assert int(whole.sum()) > 128
    torch.testing.assert_close(read[whole][:, told], truth[whole][:, told], atol=1e-4, rtol=0)
    # the agent's channels exactly, and the goal's but where the occluder or the agent hides
    # it: the walls' colour, many tiles that move from task to task, is left out of the
    # routing (with it in, only tasks with as many wall tiles as the most common are fitted)
    agent = (context.feature_map()[:, :2].abs() > 0.1).any(1)
    torch.testing.assert_close(read[whole][:, agent], truth[whole][:, agent], atol=1e-3, rtol=0)
    goal = (context.feature_map()[:, 2:4].abs() > 0.1).any(1)
    off = (read[whole][:, goal] - truth[whole][:, goal]).abs().gt(1e-3).any(1)
    assert float(off.float().mean()) <= 0.02
    translator.walls.active.fill_(False)  # the routing alone: what it read before
    with torch.no_grad():
        routed = translator(target)
    assert (
        float((routed[whole][:, told] - truth[whole][:, told]).abs().gt(0.5).float().mean()) > 0.5
    )
    old = {k: v for k, v in translator.state_dict().items() if not k.startswith("walls.")}
    loaded = ColourMomentTranslator(translator.space, translator.out_dim)
    loaded.load_state_dict(old)
    assert not bool(loaded.walls.active)


def test_without_inner_walls_nothing_is_read_by_looking() -> None:
    """In a world without inner walls the source tells no walls: nothing is fitted, and the
    translator is the routing of the colours' moments it was."""
    spec = load_spec("tasks/gridnav.yaml")
    translator = _fitted(spec, translation_context(spec, "pixels", seed=0))
    assert not bool(translator.walls.active)
    target, _ = _pairs(spec, 16, seed=9)
    with torch.no_grad():
        torch.testing.assert_close(
            translator(target), translator.moments(target) @ translator.routing
        )


def test_a_walk_alone_reads_the_walls_by_looking(walled) -> None:  # noqa: ANN001
    """No pair, no reward (``selfread``): four random episodes give the agent's colour and
    geometry from its moves, each wall channel's offset from how its action moved the agent,
    and the wall's colour from the moves that did not move it; the translation then gives
    every source wall channel exactly on fresh states where nothing hides the agent, and the
    agent's to the context's map. The walls' features are neither the agent's nor the goal's
    (before, with them among the goal's, the reader refused)."""
    from metaxm.align.selffit import record_transitions
    from metaxm.align.walk_features import goal_pairing
    from metaxm.align.wall_tiles import agent_features, wall_features

    spec, context = walled
    assert wall_features(context) == [4, 5, 6, 7] and agent_features(context) == [0, 1]
    assert goal_pairing(context, [0, 1]) is None  # the walls among the features to pair
    assert goal_pairing(context, [0, 1], wall_features(context)) == {2: 0, 3: 1}
    env = make_env(spec, "pixels", VARIANT, num_envs=4, seed=3)
    g = torch.Generator().manual_seed(3)
    data = record_transitions(env, "pixels", lambda obs: torch.randint(4, (len(obs),), generator=g))
    space = make_env(spec, "pixels", VARIANT, num_envs=1).observation_space
    _, source = _pairs(spec, 1, seed=1)
    translator = ColourMomentTranslator(space, source.shape[1])
    translator.prepare(context)
    assert translator.start_unpaired(data.obs, data.actions, data.first, data.second)
    assert bool(translator.walls.active)
    target, truth = _pairs(spec, 256, seed=9)
    with torch.no_grad():
        read = translator(target)
    seen = translator._match(target)[..., int(translator.walls.agent)].sum(1)
    whole = seen == translator.walls.whole
    _, walls = source_answers(*context.moves)
    told = ~walls[0].isnan()
    torch.testing.assert_close(read[whole][:, told], truth[whole][:, told], atol=1e-4, rtol=0)
    agent = (context.feature_map()[:, :2].abs() > 0.1).any(1)  # rendered through the
    # context's ridge map from features to the source (a small shrinkage), as without walls
    torch.testing.assert_close(read[whole][:, agent], truth[whole][:, agent], atol=0.05, rtol=0)
