"""Tiny specs and a tiny agent for the alignment tests (GridNav 3x3 or 4x4, vector variants)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from metaxm.spec import Spec, spec_from_dict


def tiny_spec(**sections: Any) -> Spec:
    """GridNav 4x4 through two vector variants, a small agent, no wandb, no progress bar."""
    data: dict[str, Any] = {
        "seed": 0,
        "world": {"name": "gridnav", "size": 4, "horizon": 12},
        "modalities": {"train": {"vector": 2}, "heldout_variants": {"vector": 1}},
        "agent": {"latent_dim": 16, "encoder_width": 32, "hidden": 32, "adapter_rank": 2},
        "train": {"num_envs": 4, "log_interval": 1, "checkpoint_interval": 2, "eval_episodes": 0},
        "log": {"mode": "disabled", "progress": False},
        "align": {"batch_size": 32, "views": 2, "eval_states": 64, "fit_iters": 20},
    }
    for key, value in sections.items():
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    return spec_from_dict(data)


@pytest.fixture
def make_spec() -> Callable[..., Spec]:
    """:func:`tiny_spec`, with sections merged over its defaults."""
    return tiny_spec


def save_source_run(spec: Spec, path: Path) -> None:
    """A run folder at ``path`` holding a fresh agent of ``spec``: what a meta-learned fit's
    trainer loads from ``train.init_from``."""
    from metaxm.nn.agent import build_agent
    from metaxm.run.checkpoint import checkpoint_path, save_checkpoint

    save_checkpoint(
        checkpoint_path(path, 1), {"trainer": {"agent": build_agent(spec).state_dict()}}
    )


def resumes_exactly(trainer_cls: type, spec: Spec, trainer: Any) -> dict[str, Any]:
    """Assert that a fresh ``trainer_cls(spec)`` loaded with ``trainer``'s state takes the same
    next update as ``trainer`` does, and counts the same steps; the state it was loaded with."""
    state = copy.deepcopy(trainer.state_dict())
    expected = trainer.update()
    again = trainer_cls(spec)
    again.load_state_dict(state)
    assert again.update() == expected
    assert again.env_steps == trainer.env_steps > 0
    return state


@pytest.fixture
def source_run() -> Callable[[Spec, Path], None]:
    """:func:`save_source_run`."""
    return save_source_run


@pytest.fixture
def resumes() -> Callable[..., dict[str, Any]]:
    """:func:`resumes_exactly`."""
    return resumes_exactly


class TextEncode(torch.nn.Module):
    """An agent's text encoding as a module's forward (what ``higher`` patches)."""

    def __init__(self, agent: torch.nn.Module) -> None:
        super().__init__()
        self.agent = agent

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.agent.encode(obs, "text")


@pytest.fixture
def text_encode() -> type[TextEncode]:
    """:class:`TextEncode`, for the meta-gradient tests against ``higher``."""
    return TextEncode


def gridnav_walk(goal: tuple[int, int], steps: int, g: torch.Generator) -> tuple[torch.Tensor, ...]:
    """One episode on GridNav 7x7: (steps, 2) cells of an agent walking at random from a random
    cell, beside the fixed goal's (steps, 2)."""
    pos, rows = torch.randint(0, 7, (2,), generator=g), []
    for _ in range(steps):
        rows.append(pos)
        move = torch.tensor([[1, 0], [-1, 0], [0, 1], [0, -1]])[torch.randint(4, (), generator=g)]
        pos = (pos + move).clamp(0, 6)
    return torch.stack(rows), torch.tensor(goal).expand(steps, 2)


def gridnav_pairs(
    target: tuple[str, int], agent: torch.Tensor, goal: torch.Tensor, seed: int = 0
) -> list[torch.Tensor]:
    """GridNav 7x7 states (agent and goal cells, (B, 2) each) rendered in ``target`` and in the
    source modality ``vector:0``: [target obs, source obs]."""
    from metaxm.align.pairs import render_pairs
    from metaxm.envs import GridNav, GridNavConfig

    world = GridNav(GridNavConfig(size=7), len(agent))
    world.set_tasks({"goal": goal})
    world.pos = agent.clone()
    g = torch.Generator().manual_seed(seed)
    return render_pairs(world.scene(), [target, ("vector", 0)], world.scene_info, g).obs


@pytest.fixture(scope="session")
def walk() -> Callable[..., tuple[torch.Tensor, ...]]:
    """:func:`gridnav_walk`."""
    return gridnav_walk


@pytest.fixture(scope="session")
def pairs() -> Callable[..., list[torch.Tensor]]:
    """:func:`gridnav_pairs`."""
    return gridnav_pairs


def gridnav_states() -> tuple[torch.Tensor, torch.Tensor]:
    """All 2,352 states of a GridNav 7x7 (an agent anywhere but on the goal): agent and goal
    cells, (2352, 2) each."""
    cells = torch.cartesian_prod(torch.arange(7), torch.arange(7))  # (49, 2)
    agent, goal = cells.repeat_interleave(49, 0), cells.repeat(49, 1)
    apart = (agent != goal).any(1)
    return agent[apart], goal[apart]


@pytest.fixture(scope="session")
def candidates() -> torch.Tensor:
    """The source modality's (``vector:0``) observations of all 2,352 states of a GridNav 7x7
    (:func:`gridnav_states`): what a translation context's ``sources`` holds."""
    return gridnav_pairs(("vector", 1), *gridnav_states())[1]


@pytest.fixture(scope="session")
def features() -> torch.Tensor:
    """The GridNav features of the same states as :func:`candidates`, (2352, 4)."""
    return torch.cat(gridnav_states(), 1).float() / 3.0 - 1.0


def gridnav_seek(translator, decode, family: tuple[str, int], start, goal, horizon=30) -> bool:  # noqa: ANN001
    """One GridNav 7x7 episode in ``family`` from ``start`` to ``goal`` of a source policy
    that walks (row first, then column) to the goal it reads in the translation (``decode``:
    source observation -> features); True where it reaches the goal within ``horizon``."""
    pos, goal = torch.tensor(start), torch.tensor(goal)
    begin = getattr(translator, "begin", None)
    if begin is not None:
        begin()
    for _ in range(horizon):
        target = gridnav_pairs(family, pos[None], goal[None], 7)[0]
        with torch.no_grad():
            read = (translator(target).double() @ decode)[0]  # the features it reads
        cells = ((read + 1.0) * 3.0).round().long().clamp(0, 6)
        delta = cells[2:] - cells[:2]
        step = torch.zeros(2, dtype=torch.long)
        axis = 0 if delta[0] != 0 else 1
        step[axis] = delta[axis].sign()
        pos = (pos + step).clamp(0, 6)
        if bool((pos == goal).all()):
            return True
    return False


@pytest.fixture(scope="session")
def seek() -> Callable[..., bool]:
    """:func:`gridnav_seek`."""
    return gridnav_seek


@pytest.fixture(scope="session")
def tasks() -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """39 GridNav 7x7 (start, goal) pairs, start and goal apart."""
    g = torch.Generator().manual_seed(3)
    cells = [tuple(c) for c in torch.randint(0, 7, (80, 2), generator=g).tolist()]
    return [(s, t) for s, t in zip(cells[::2], cells[1::2], strict=True) if s != t]


@pytest.fixture(scope="session")
def moves() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The source's (``vector:0``) answers to one random action in 2,000 random GridNav 7x7
    states (the steps onto the goal left out): a translation context's ``moves``."""
    from metaxm.envs.gridnav import MOVES

    g = torch.Generator().manual_seed(8)
    agent, goal = (torch.randint(0, 7, (2000, 2), generator=g) for _ in range(2))
    action = torch.randint(0, 4, (2000,), generator=g)
    moved = (agent + torch.tensor(MOVES)[action]).clamp(0, 6)
    kept = (agent != goal).any(1) & (moved != goal).any(1)
    before = gridnav_pairs(("vector", 1), agent[kept], goal[kept], 9)[1]
    after = gridnav_pairs(("vector", 1), moved[kept], goal[kept], 10)[1]  # fresh noise
    return before, action[kept], after


def gridnav_episodes(
    view: tuple[str, int], count: int, seed: int,
    walk: Callable[[torch.Generator], Callable[[], int]] | None = None,
) -> tuple[torch.Tensor, ...]:  # fmt: skip
    """``count`` GridNav 7x7 episodes in ``view`` (30 steps or to the goal): the target's
    observations, the actions and the transitions, nothing else. ``walk(g)`` gives each
    episode's source of actions; default: uniformly random."""
    from metaxm.envs.gridnav import MOVES

    g = torch.Generator().manual_seed(seed)
    obs, actions, first, second = [], [], [], []
    for _ in range(count):
        goal = torch.randint(0, 7, (2,), generator=g)
        pos = torch.randint(0, 7, (2,), generator=g)
        while bool((pos == goal).all()):
            pos = torch.randint(0, 7, (2,), generator=g)
        draw = walk(g) if walk is not None else None
        for t in range(30):
            action = draw() if draw is not None else int(torch.randint(0, 4, (), generator=g))
            step_seed = 1000 * seed + len(obs)  # fresh noise at every step
            obs.append(gridnav_pairs(view, pos[None], goal[None], step_seed)[0][0])
            actions.append(action)
            pos = (pos + torch.tensor(MOVES[action])).clamp(0, 6)
            if bool((pos == goal).all()):
                break
            if t < 29:
                first.append(len(obs) - 1)
                second.append(len(obs))
    return torch.stack(obs), torch.tensor(actions), torch.tensor(first), torch.tensor(second)


def gridnav_played(pairs, view, start, goal, actions, seed=0):  # noqa: ANN001, ANN201
    """One episode of ``actions`` from ``start`` in ``view`` (fresh noise at every step): the
    target's observations and the source's (``vector:0``) of each state the actions were taken
    in, the transitions, and whether each action ended the episode (onto ``goal``)."""
    from metaxm.envs.gridnav import MOVES

    pos, goal = torch.tensor(start), torch.tensor(goal)
    cells, ended = [], []
    for action in actions:
        cells.append(pos)
        pos = (pos + torch.tensor(MOVES[action])).clamp(0, 6)
        ended.append(bool((pos == goal).all()))
        if ended[-1]:
            break
    obs = [pairs(view, c[None], goal[None], seed + n) for n, c in enumerate(cells)]
    rows = torch.arange(len(cells))
    target, source = (torch.cat([o[i] for o in obs]).double() for i in range(2))
    acted = torch.tensor(actions[: len(cells)])
    return target, source, acted, rows[:-1], rows[1:], torch.tensor(ended)


@pytest.fixture(scope="session")
def episodes() -> Callable[..., tuple[torch.Tensor, ...]]:
    """:func:`gridnav_episodes`."""
    return gridnav_episodes
