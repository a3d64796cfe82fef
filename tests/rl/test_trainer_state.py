"""What every trainer's checkpoint shares: counters, and the checks that refuse a mismatch."""

from __future__ import annotations

import pytest
import torch

from metaxm.errors import ConfigError
from metaxm.run.loop import make_trainer


@pytest.mark.parametrize("algo", ["ppo", "rl2", "maml"])
def test_counters_round_trip_through_a_checkpoint(make_spec, algo: str) -> None:
    trainer = make_trainer(make_spec(algo=algo))
    trainer.env_steps, trainer.episodes, trainer.updates = 123, 45, 6
    state = trainer.state_dict()
    assert state["counters"] == {"env_steps": 123, "episodes": 45, "updates": 6}
    fresh = make_trainer(make_spec(algo=algo))
    fresh.load_state_dict(state)
    assert (fresh.env_steps, fresh.episodes, fresh.updates) == (123, 45, 6)


@pytest.mark.parametrize("algo", ["ppo", "rl2", "maml"])
def test_a_checkpoint_of_other_families_is_refused(make_spec, algo: str) -> None:
    state = make_trainer(make_spec(algo=algo)).state_dict()
    families = {"train": {"vector": 1, "projected": 1}}
    other = make_trainer(make_spec(algo=algo, modalities=families, maml={"meta_batch": 2}))
    with pytest.raises(ConfigError, match=r"checkpoint trains families \['vector'\], the spec"):
        other.load_state_dict(state)


@pytest.mark.parametrize("algo", ["ppo", "rl2", "maml"])
def test_a_checkpoint_with_one_action_generator_is_refused(make_spec, algo: str) -> None:
    trainer = make_trainer(make_spec(algo=algo))
    state = trainer.state_dict()
    state["generators"]["actions"] = torch.Generator().get_state()  # the old layout
    with pytest.raises(ConfigError, match="predates per-family action generators"):
        make_trainer(make_spec(algo=algo)).load_state_dict(state)
