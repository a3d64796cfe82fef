"""What a trainer refuses is refused by ``load_spec`` too, before anything is built or trained:
``metaxm train --check`` said "fine to start" for these, and a main job trained its ``ppo``
stage before its ``maml`` stage was refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from metaxm.cli import main
from metaxm.errors import ConfigError
from metaxm.spec import check_spec, spec_from_dict

BASE = {
    "seed": 1,
    "world": {"name": "gridnav", "size": 4, "horizon": 8},
    "modalities": {"train": {"vector": 1}},
    "log": {"mode": "disabled", "progress": False},
    "main": {"runs": {"ppo": {}}},
}

REFUSED = [
    ({"train": {"freeze": "latent"}}, "train.freeze: latent would keep randomly initialised"),
    ({"algo": "maml", "train": {"freeze": "latent"}}, "train.freeze: MAML meta-learns"),
    (
        {"train": {"freeze": "latent", "init_from": "x"}, "align": {"weight": 1.0}},
        r"train.freeze: latent keeps the encoders and adapters fixed, so align.weight \(1.0\)",
    ),
    (
        {
            "algo": "maml",
            "maml": {"meta_batch": 1},
            "modalities": {"train": {"vector": 1, "projected": 1}},
        },
        r"maml.meta_batch \(1\) must be at least the number of training families \(2\)",
    ),
    ({"algo": "priorfit"}, "algo: priorfit adapts a PPO source agent: set agent.adapters"),
    (
        {"algo": "selffit", "agent": {"adapters": "variant"}},
        "algo: selffit needs train.init_from: the source agent's run",
    ),
    ({"align": {"weight": 1.0}}, r"align.weight > 0 with align.views: 0 pairs every training"),
    ({"agent": {"core": "gru"}}, "agent.core: PPO trains a feed-forward agent"),
]


@pytest.mark.parametrize(("change", "message"), REFUSED)
def test_the_spec_check_refuses_what_the_trainer_would(change: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_spec(spec_from_dict({**BASE, **change}))


def test_check_refuses_it_and_a_main_stage_is_refused_before_any_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({**BASE, "align": {"weight": 1.0}}))
    assert main(["train", str(spec), "--out", str(tmp_path / "run"), "--check"]) == 2
    assert "align.weight > 0 with align.views: 0" in capsys.readouterr().err
    stages = {"ppo": {}, "maml": {"train.init_from": "{out}/ppo", "maml.meta_batch": 1}}
    data = {
        **BASE,
        "modalities": {"train": {"vector": 1, "projected": 1}},
        "main": {"runs": stages},
    }
    spec.write_text(yaml.safe_dump(data, sort_keys=False))
    assert main(["main", str(spec), "--out", str(tmp_path / "job")]) == 2
    err = capsys.readouterr().err
    assert "main.runs.maml: maml.meta_batch (1) must be at least" in err
    assert not (tmp_path / "job").exists()  # nothing trained, nothing written


def test_more_minibatches_than_samples_is_said(caplog: pytest.LogCaptureFixture) -> None:
    """``ppo.num_minibatches: 1000`` on 16 samples ran minibatches of one without a word."""
    from metaxm.rl.trainer import PPOTrainer

    spec = {**BASE, "train": {"num_envs": 2}, "ppo": {"num_steps": 8, "num_minibatches": 1000}}
    with caplog.at_level("WARNING", logger="metaxm.rl.trainer"):
        PPOTrainer(spec_from_dict(spec))
        PPOTrainer(spec_from_dict({**spec, "ppo": {"num_steps": 8, "num_minibatches": 16}}))
    assert [r.getMessage() for r in caplog.records] == [
        "ppo.num_minibatches 1000 is more than the 16 samples a family collects per update "
        "(train.num_envs x ppo.num_steps): each minibatch is one sample"
    ]
