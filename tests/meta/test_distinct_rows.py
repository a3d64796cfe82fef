"""The trunk runs once per distinct observation and not on padding, and the meta-gradient is
still ``higher``'s (:func:`metaxm.meta.policy_gradient.distinct_rows`)."""

from __future__ import annotations

import pytest
import torch

from metaxm.meta.maml import adapted_names
from metaxm.meta.policy_gradient import PGBatch, distinct_rows
from tests.meta.test_maml import SPACES, _agent, _problem, trunk_rows_against_higher

torch.set_num_threads(1)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32, torch.float64, torch.int64])
def test_distinct_rows_puts_every_row_back(dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(0)
    values = (torch.rand(5, 3, 7, generator=g) * 200).to(dtype)  # 5 distinct rows, 21 values
    picks = torch.randint(0, 5, (40,), generator=g)
    rows = values[picks]
    first, inverse = distinct_rows(rows)
    assert torch.equal(rows[first][inverse], rows)
    assert len(first) == len(picks.unique())
    assert bool((first[inverse] <= torch.arange(len(rows))).all())  # each value's first row


def test_distinct_rows_leaves_rows_that_rarely_repeat() -> None:
    rows = torch.rand(40, 6, generator=torch.Generator().manual_seed(1))
    assert distinct_rows(rows) is None  # all distinct: run as they are
    half = torch.cat((rows[:21], rows[:19]))  # 21 distinct of 40: more than half
    assert distinct_rows(half) is None
    assert distinct_rows(torch.cat((rows[:20], rows[:20]))) is not None


def test_distinct_rows_tells_rows_apart_by_their_bytes() -> None:
    rows = torch.tensor([[0.0, 1.0], [-0.0, 1.0], [0.0, 1.0], [0.0, 1.0]])
    first, inverse = distinct_rows(rows)
    assert inverse.tolist()[0] == inverse.tolist()[2] != inverse.tolist()[1]
    assert torch.equal(rows[first][inverse].view(torch.int32), rows.view(torch.int32))


def _repeated(batch: PGBatch, copies: int) -> PGBatch:
    """``batch`` whose every task plays the first few observations of task 0 over and over."""
    n, steps = batch.mask.shape
    obs = batch.obs[0, :copies].repeat(n, -(-steps // copies), *[1] * (batch.obs.dim() - 2))
    return batch._replace(obs=obs[:, :steps].contiguous())


@pytest.mark.parametrize("family", ["text", "pixels"])
def test_repeated_observations_give_higher_s_meta_gradient(family: str) -> None:
    """Episodes that show a few observations over and over: the encoder runs on each distinct,
    unpadded one once, and the meta-gradient is ``higher``'s, which runs every row."""
    rows, _ = trunk_rows_against_higher(family, lambda b: _repeated(b, 3))
    assert rows == [3, 3, 3]  # one pass per batch, each on its 3 distinct observations


def test_padding_is_not_run_and_reads_zero() -> None:
    from metaxm.meta.policy_gradient import functional_policy

    agent = _agent().float()  # the vector encoder reads float32
    policy = functional_policy(agent, "vector", adapted_names(agent, "adapter", "vector"))
    (batch,), _ = _problem(agent, "vector", SPACES["vector"], inner=1)
    batch = batch.to(torch.float32)
    rows: list[int] = []
    hook = agent.encoders["vector"].register_forward_hook(
        lambda _m, args, _out: rows.append(len(args[0]))
    )
    masked = policy.features(batch.obs, mask=batch.mask)
    whole = policy.features(batch.obs)
    hook.remove()
    live = batch.mask > 0
    assert rows == [int(live.sum()), live.numel()]
    torch.testing.assert_close(masked[live], whole[live])  # float32: GEMM blocks may differ
    assert bool((masked[~live] == 0).all()) and bool((~live).any())
