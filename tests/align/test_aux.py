"""The auxiliary alignment loss inside PPO: off by default, on with a weight, resumable."""

from __future__ import annotations

import copy

import pytest
import torch

from metaxm.align.aux import AuxAlignment, prepare_alignment
from metaxm.nn.agent import build_agent
from metaxm.rl.trainer import PPOTrainer

PPO = {"num_steps": 8, "update_epochs": 1, "num_minibatches": 1}


def test_weight_zero_builds_nothing(make_spec) -> None:
    spec = make_spec()
    assert spec.align.weight == 0.0
    assert prepare_alignment(spec, build_agent(spec)) is None
    assert PPOTrainer(make_spec(ppo=PPO)).aligner is None


def test_aux_step_lowers_the_loss_on_its_batches(make_spec) -> None:
    spec = make_spec(align={"weight": 1.0, "batch_size": 64})
    agent = build_agent(spec)
    aux = AuxAlignment.from_spec(spec, agent, seed=0)
    optimizer = torch.optim.Adam(agent.parameters(), lr=0.01)
    first = [aux.step(agent, optimizer)["align_loss"] for _ in range(3)]
    last = [aux.step(agent, optimizer)["align_loss"] for _ in range(25)][-3:]
    assert sum(last) / 3 < sum(first) / 3 - 0.5


def test_ppo_with_aux_loss_reports_it_and_resumes_exactly(make_spec) -> None:
    spec = make_spec(ppo=PPO, align={"weight": 0.5, "batch_size": 16})
    a = PPOTrainer(spec)
    assert isinstance(a.aligner, AuxAlignment)
    metrics = a.update()
    assert metrics["align_loss"] > 0 and "temperature" in metrics
    state = copy.deepcopy(a.state_dict())  # the live tensors change with the next update
    expected = a.update()
    b = PPOTrainer(spec)
    b.load_state_dict(state)
    got = b.update()
    assert got["align_loss"] == pytest.approx(expected["align_loss"], rel=1e-6)
    assert got["policy_loss"] == pytest.approx(expected["policy_loss"], rel=1e-6)
