"""``metaxm bench envs|maml|sensory [--quick] [--json FILE]``: side-by-side timings.

``envs`` times the batched TaskEnv against gymnasium's ``SyncVectorEnv`` over single envs for
every world x registered family (see :mod:`metaxm.bench.envs` for exactly what is timed);
``maml`` the vmapped meta-gradient against higher (:mod:`metaxm.bench.maml`); ``sensory`` an
RL^2 training update with the sensory encoder against the MLP encoder
(:mod:`metaxm.bench.sensory`).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

HELP = (
    "benchmarks: 'envs' times batched worlds against gymnasium's SyncVectorEnv; 'maml' times "
    "the vmapped MAML meta-gradient against higher and a per-task loop; 'sensory' times "
    "training with the sensory encoder against the MLP encoder"
)
WHAT = ("envs", "maml", "sensory")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("what", choices=WHAT, help="which benchmark to run")
    parser.add_argument(
        "--quick", action="store_true", help="short timings (well under a minute in all)"
    )
    parser.add_argument("--json", metavar="FILE", help="also write the records as JSON")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads for every side (default: 1)"
    )
    parser.add_argument(
        "--worlds", nargs="+", metavar="WORLD", help="envs: worlds (default: the batched ones)"
    )
    parser.add_argument(
        "--families", nargs="+", metavar="FAMILY", help="envs: modality families (default: all)"
    )
    parser.add_argument("--variant", type=int, default=0, help="envs: family variant (default: 0)")
    parser.add_argument(
        "--batches", nargs="+", type=int, metavar="B", help="envs: batch sizes (default: 1 64 1024)"
    )


def run(args: argparse.Namespace) -> int:

    from metaxm.errors import ConfigError
    from metaxm.run.rundir import check_result_path

    if args.json is not None:
        check_result_path(args.json, "--json")  # before the benchmark runs
        if Path(args.json).is_file() and not _a_bench_result(Path(args.json)):
            raise ConfigError(
                f"--json {args.json} exists and holds no metaxm bench result; choose another "
                "file (an earlier bench result is replaced)"
            )
    if args.threads > 1024:
        raise ConfigError(f"--threads: need at most 1024, got {args.threads}")
    if not 0 <= args.variant < 2**31:
        raise ConfigError(f"--variant: need 0 to 2**31 - 1, got {args.variant}")
    if args.batches and not all(1 <= b <= 65536 for b in args.batches):
        raise ConfigError(f"--batches: need 1 to 65536 each, got {args.batches}")
    if args.what != "envs":
        given = [
            flag for flag, value in (("--worlds", args.worlds), ("--families", args.families),
                                     ("--variant", args.variant), ("--batches", args.batches))
            if value
        ]  # fmt: skip
        if given:
            raise ConfigError(
                f"{given[0]}: only for bench envs; bench {args.what} times one fixed setting"
            )
    if args.what == "maml":
        return run_maml(quick=args.quick, json_path=args.json, threads=args.threads)
    if args.what == "sensory":
        return run_sensory(quick=args.quick, json_path=args.json, threads=args.threads)
    return run_envs(
        quick=args.quick,
        json_path=args.json,
        threads=args.threads,
        worlds=args.worlds,
        families=args.families,
        batches=args.batches,
        variant=args.variant,
    )


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run the block with ``threads`` torch threads (checked first), restored afterwards."""
    import torch

    from metaxm.errors import ConfigError

    if threads < 1:
        raise ConfigError(f"--threads: need at least 1, got {threads}")
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def run_envs(
    quick: bool = False,
    json_path: str | None = None,
    threads: int = 1,
    worlds: list[str] | None = None,
    families: list[str] | None = None,
    batches: list[int] | None = None,
    variant: int = 0,
) -> int:
    """Run ``bench envs``, printing the table as rows arrive; also used by ``metaxm main``."""
    import os

    import torch

    from metaxm.bench import envs as bench
    from metaxm.errors import ConfigError

    try:  # before the table's header: a wrong name is one line
        bench.check_choice(worlds, families, batches or bench.DEFAULT_BATCHES)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    with torch_threads(threads):
        mode = "quick" if quick else "full"
        print(
            f"bench envs ({mode}): env steps/s; torch threads = {torch.get_num_threads()} for "
            "the TaskEnv, the gymnasium VectorEnv and SyncVectorEnv alike"
        )
        if hasattr(os, "getloadavg"):
            load, cores = os.getloadavg()[0], os.cpu_count()
            print(
                f"load average {load:.1f} on {cores} cores: wall-clock rates drop when it is high"
            )
        print(bench.HEADER, flush=True)
        try:
            records = bench.bench_envs(
                worlds=worlds,
                families=families,
                batches=batches or bench.DEFAULT_BATCHES,
                quick=quick,
                variant=variant,
                on_record=lambda r: print(bench.format_row(r), flush=True),
            )
        except ValueError as err:
            raise ConfigError(str(err)) from None
    print(
        "TaskEnv: batched torch env; VectorEnv: the same behind gymnasium's vector API (numpy); "
        "SyncVecEnv: gymnasium.vector.SyncVectorEnv over B MetaxmEnv; ratio = TaskEnv / "
        "SyncVecEnv; cpu-s: per second of this process's CPU time (what an idle core gives)"
    )
    for miss in bench.missed_targets(records):
        print(f"target missed: {miss}")
    if json_path:
        path = bench.write_json(records, json_path)
        print(f"wrote {path}")
    return 0


def run_maml(quick: bool = False, json_path: str | None = None, threads: int = 1) -> int:
    """Run ``bench maml`` (see :mod:`metaxm.bench.maml`), printing the table as rows arrive."""
    import torch

    from metaxm.bench import maml as bench

    with torch_threads(threads):
        print(
            f"bench maml ({'quick' if quick else 'full'}): seconds per meta-gradient of a task "
            f"batch; torch threads = {torch.get_num_threads()} (interop "
            f"{torch.get_num_interop_threads()}) for vmap, loop and higher alike"
        )
        print(bench.HEADER, flush=True)
        records = bench.bench_maml(
            quick, on_record=lambda r: print(bench.format_row(r), flush=True)
        )
    print(
        "vmap: torch.func, tasks under one vmap; loop: the same per task; higher: "
        "higher.innerloop_ctx per task; runs: the one of vmap and loop the case's spec runs "
        "(maml.vectorize); vs higher: its wall-clock speed-up over higher, (CPU): the same in "
        "process CPU time; vmap/loop: vmap's speed-up over the loop; max |dg|: that path's "
        "meta-gradient vs higher's; load: 1-minute load average"
    )
    if json_path:
        print(f"wrote {bench.write_json(records, json_path)}")
    return 0


def run_sensory(quick: bool = False, json_path: str | None = None, threads: int = 1) -> int:
    """Run ``bench sensory`` (see :mod:`metaxm.bench.sensory`), printing rows as they arrive."""
    import torch

    from metaxm.bench import sensory as bench

    with torch_threads(threads):
        print(
            f"bench sensory ({'quick' if quick else 'full'}): env steps/s of RL^2 training "
            "updates, MLP vs sensory encoder on the same spec; torch threads = "
            f"{torch.get_num_threads()}"
        )
        print(bench.HEADER, flush=True)
        records = bench.bench_sensory(
            quick, on_record=lambda r: print(bench.format_row(r), flush=True)
        )
    print(
        "cost: MLP-encoder steps/s over sensory-encoder steps/s (median update, wall clock); "
        "(CPU): the same in process CPU time; load: 1-minute load average"
    )
    for miss in bench.missed_targets(records):
        print(f"target missed: {miss}")
    if json_path:
        print(f"wrote {bench.write_json(records, json_path)}")
    return 0


def _a_bench_result(path: Path) -> bool:
    """Whether ``path`` holds what ``--json`` writes: records (a list, or a mapping's
    ``cases``) that each name their ``threads``."""
    import json

    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    rows = data.get("cases") if isinstance(data, dict) else data
    return (
        isinstance(rows, list)
        and bool(rows)
        and all(isinstance(r, dict) and "threads" in r for r in rows)
    )
