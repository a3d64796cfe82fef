"""``metaxm bench maml`` on a tiny case: the record, the agreement it reports, the JSON."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from metaxm.bench.maml import Case, bench_case, format_row, write_json

torch.set_num_threads(1)

TINY = Case(
    "tiny",
    {
        "world": {"name": "gridnav", "size": 4, "horizon": 6},
        "modalities": {"train": {"vector": 2}},
        "agent": {"latent_dim": 8, "encoder_width": 8, "hidden": 8},
        "maml": {"meta_batch": 3, "support_episodes": 2, "query_episodes": 2},
    },
    "vector",
)


def test_bench_record_and_json(tmp_path: Path) -> None:
    record = bench_case(TINY, repeats=1)
    assert record.tasks == 3 and record.threads == 1
    assert record.max_abs_grad_diff < 1e-5 and record.max_abs_grad_diff_loop < 1e-5
    for key in ("vmap_s", "higher_s", "loop_s", "vmap_cpu_s", "higher_cpu_s", "loop_cpu_s"):
        assert getattr(record, key) > 0
    assert record.path == "vmap" and record.speedup_vs_higher == record.higher_s / record.vmap_s
    assert "tiny" in format_row(record)
    data = json.loads(write_json([record, record], tmp_path / "b.json").read_text())
    for key in ("vmap_s", "higher_s", "loop_s", "speedup_vs_higher", "max_abs_grad_diff"):
        assert data[key] == getattr(record, key)
    assert len(data["cases"]) == 2


def test_bench_times_the_loop_where_the_spec_runs_it() -> None:
    spec = {**TINY.spec, "maml": {**TINY.spec["maml"], "vectorize": False}}
    record = bench_case(Case("tiny-loop", spec, "vector"), repeats=1)
    assert record.path == "loop" and record.speedup_vs_higher == record.higher_s / record.loop_s
    assert record.speedup_vs_loop == record.loop_s / record.vmap_s
    assert " loop " in format_row(record)
