"""``rl2.coverage_bonus``: the reward a step onto a cell new to its episode adds in training."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from metaxm.errors import ConfigError
from metaxm.meta.rl2 import RL2Trainer
from metaxm.meta.trials import TrialState, TrialStats, collect_trials
from metaxm.spec import check_spec, spec_from_dict

BONUS = 0.004


def spec(bonus: float, **world: Any) -> Any:
    return spec_from_dict(
        {
            "seed": 0,
            "world": {"name": "gridnav", "size": 4, "horizon": 6, **world},
            "modalities": {"train": {"vector": 3}, "heldout_variants": {"vector": 1}},
            "algo": "rl2",
            "rl2": {"episodes_per_trial": 2, "coverage_bonus": bonus},
            "agent": {"latent_dim": 8, "encoder_width": 16, "hidden": 16},
            "ppo": {"num_steps": 12, "update_epochs": 1, "num_minibatches": 2},
            "train": {"total_steps": 384, "num_envs": 8, "eval_episodes": 8},
            "log": {"mode": "disabled", "progress": False},
        }
    )


CHUNK, CHUNKS = 4, 6  # short chunks: episodes (horizon 6) run across their boundaries


def chunks(bonus: float) -> tuple[list[Any], TrialState, TrialStats]:
    """Rollout chunks of the same seeded trainer, with the bonus or without."""
    trainer = RL2Trainer(spec(bonus))
    state, out, stats = trainer.states["vector"], [], TrialStats(2)
    for seed in range(CHUNKS):
        rollout, state = collect_trials(
            trainer.agent, trainer.envs["vector"], "vector", state, CHUNK, 2,
            trainer.tasks["vector"], torch.Generator().manual_seed(seed), stats,
            record_state=True, coverage_bonus=bonus,
        )  # fmt: skip
        out.append(rollout)
    return out, state, stats


def test_a_step_onto_a_cell_new_to_the_episode_earns_the_bonus_and_nothing_else_moves() -> None:
    plain, _, plain_stats = chunks(0.0)
    shaped, state, shaped_stats = chunks(BONUS)
    for a, b in zip(plain, shaped, strict=True):  # the same walk: the agent never reads it
        for field in ("obs", "actions", "prev_rewards", "first", "reset"):
            assert torch.equal(getattr(a, field), getattr(b, field)), field
    assert plain_stats.summary() == shaped_stats.summary()  # logged returns: the world's
    steps = CHUNK * CHUNKS
    states = torch.cat([c.state for c in shaped])  # (24, 8, 4): the scene before each step
    first = torch.cat([c.first for c in shaped])
    added = torch.cat([b.rewards - a.rewards for a, b in zip(plain, shaped, strict=True)])
    cells = ((states[..., :2] + 1) * 1.5).round().long()
    cell = cells[..., 0] * 4 + cells[..., 1]
    paid, carried = 0, 0
    for b in range(8):
        for t in range(steps - 1):  # step t's cell onto is step t + 1's, unless step t ended it
            start = max(s for s in range(t + 1) if s == 0 or first[s, b])
            if first[t + 1, b]:
                expected = 0.0
            else:
                expected = BONUS * float(bool((cell[start : t + 1, b] != cell[t + 1, b]).all()))
                # a revisit of a cell the episode stood on only in an earlier chunk: 0 only if
                # the covered map crossed the chunk boundary
                chunk_start = (t // CHUNK) * CHUNK
                seen_before = cell[start:chunk_start, b] == cell[t + 1, b]
                seen_since = cell[max(start, chunk_start) : t + 1, b] == cell[t + 1, b]
                carried += bool(seen_before.any()) and not bool(seen_since.any())
            assert added[t, b].item() == pytest.approx(expected, abs=1e-7), (t, b)
            paid += expected > 0
    assert paid > 20  # the walks do reach new cells (and revisit others: checked as 0 above)
    assert (added.abs() < 1e-7).sum() > 20
    assert carried > 0  # the case a map dropped at each chunk's start would pay wrongly
    assert state.covered is not None
    restored = TrialState.from_state_dict(state.state_dict(), "cpu")
    assert restored.covered is not None and torch.equal(restored.covered, state.covered)


def test_the_trainer_passes_the_bonus_to_its_rollouts(monkeypatch) -> None:
    import metaxm.meta.rl2 as rl2

    seen = []

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs.get("coverage_bonus"))
        return collect_trials(*args, **kwargs)

    monkeypatch.setattr(rl2, "collect_trials", spy)
    RL2Trainer(spec(BONUS)).update()
    assert seen == [BONUS]


def test_a_bonus_that_pays_as_much_as_a_step_costs_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"rl2.coverage_bonus 0.01 is not below world.step_cost"):
        check_spec(spec(0.01))
    with pytest.raises(ConfigError, match=r"rl2.coverage_bonus 0.004 is not below"):
        check_spec(spec(BONUS, step_cost=0.002))
    check_spec(spec(BONUS))
    cartpole = spec_from_dict(
        {
            "world": {"name": "gym", "env_id": "CartPole-v1"},
            "modalities": {"train": {"vector": 2}},
            "algo": "rl2",
            "rl2": {"coverage_bonus": BONUS},
        }
    )
    with pytest.raises(ConfigError, match="coverage_bonus needs a world whose scenes have"):
        check_spec(cartpole)
    pointnav = spec_from_dict(
        {
            "world": {"name": "pointnav"},
            "modalities": {"train": {"vector": 2}},
            "algo": "rl2",
            "rl2": {"coverage_bonus": BONUS},
        }
    )
    with pytest.raises(ConfigError, match=r"coverage_bonus needs a world that charges a step_cost"):
        check_spec(pointnav)  # a layout, but no step cost to stay under
