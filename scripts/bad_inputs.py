"""Adversarial sweep of the ``metaxm`` command line (issue 18): every bad input is run as a real
``python -m metaxm ...`` subprocess, with a timeout, and classified.

    .venv/bin/python scripts/bad_inputs.py            # the full sweep (~40 min on 2 cores)
    .venv/bin/python scripts/bad_inputs.py --quick    # a representative subset (~2 min)
    .venv/bin/python scripts/bad_inputs.py --only yaml --match laughs --keep /tmp/sweep

Categories: YAML attacks on spec files; ``--set`` forms; every numeric field at 1e9, 1e30, -1,
NaN, inf and 0 (with ``--check``) and a few real short runs at the edges of the ranges;
mutations of ``tasks/gridnav.yaml``; ``--out`` paths; damaged and foreign checkpoints; the flags
of adapt, evaluate, render and bench; two writers on one ``--out``; SIGKILL of an evaluation
with worker processes. The inputs come from ``tests/bad_inputs.py``, shared with the fuzz test
(``tests/test_fuzz.py``); the checkpoints from TINY runs trained first (a few seconds each).

Each case runs in a folder of its own, in a session of its own, within an address-space limit.
Its class is one of:

* ``refusal``: exit 2 and one line ``metaxm <cmd>: error: ...`` (or argparse's usage and error),
  nothing written or changed; ``accepted``: exit 0 on an input that makes sense; ``exit-1``: a
  one-line exit 1 (a divergence);
* failures: ``traceback``; ``hang`` (past its timeout); ``silent-acceptance`` (exit 0 on an
  input judged absurd); ``left-behind`` (a refusal that wrote or changed files, or a success
  that wrote outside its output); ``messy-refusal`` (not one line); ``other-exit``;
  ``wrong-refusal`` (a control input refused); ``payload-ran`` (a pickle or YAML payload made
  its marker file); ``orphan`` (a process of the command outlived it); ``corrupt-metrics``
  (both of two writers ran, or ``metrics.jsonl`` differs from a lone run's).

It prints a table of counts per category and class, then each failure with its command, and
exits 1 if there was any failure.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sweep package beside it

from sweep.cases import (  # noqa: E402
    checkpoint_cases,
    flag_cases,
    mutation_cases,
    numeric_cases,
    numeric_run_cases,
    out_cases,
    set_cases,
    yaml_cases,
)
from sweep.core import CLASSES, FAILURES, MARKER, Case, Result, resolve, run_case  # noqa: E402
from sweep.fixtures import build_fixtures  # noqa: E402
from sweep.special import special_cases  # noqa: E402


def all_cases() -> list[Case]:
    return [*yaml_cases(), *set_cases(), *numeric_cases(), *numeric_run_cases(),
            *mutation_cases(), *out_cases(), *checkpoint_cases(), *flag_cases(),
            *special_cases()]  # fmt: skip


def table(results: list[Result]) -> str:
    """Counts per category (rows) and class (columns)."""
    counts: dict[str, Counter] = defaultdict(Counter)
    for r in results:
        counts[r.case.category][r.cls] += 1
    shown = [c for c in CLASSES if any(row[c] for row in counts.values())]
    width = max(len(c) for c in [*counts, "category"]) + 2

    def row(name: str, cells: Counter) -> str:
        values = "".join(f"{cells[c]:>{max(len(c), 5) + 2}}" for c in shown)
        return f"{name:<{width}}{sum(cells.values()):>7}{values}"

    head = f"{'category':<{width}}{'total':>7}"
    head += "".join(f"{c:>{max(len(c), 5) + 2}}" for c in shown)
    total = sum(counts.values(), Counter())
    rule = "-" * len(head)
    return "\n".join([head, rule, *(row(c, counts[c]) for c in counts), rule, row("all", total)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a representative subset (~2 min)")
    parser.add_argument("--only", action="append", metavar="CATEGORY",
                        help="only this category (repeatable): yaml, set, numeric, numeric-run, "
                        "mutation, out, checkpoints, flags, concurrency, orphans")  # fmt: skip
    parser.add_argument("--match", action="append", metavar="TEXT",
                        help="only cases whose name holds TEXT (repeatable)")  # fmt: skip
    parser.add_argument("--keep", metavar="DIR", help="work in DIR (emptied first) and keep it, "
                        "to redo a case by hand; default: a temporary folder")  # fmt: skip
    parser.add_argument("--verbose", action="store_true", help="print every case as it ends")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    work = Path(args.keep or tempfile.mkdtemp(prefix="metaxm-bad-inputs-")).resolve()
    if args.keep:
        shutil.rmtree(work, ignore_errors=True)
    fx = work / "fixtures"
    cases = [c for c in all_cases() if c.quick or not args.quick]
    cases = [c for c in cases if not args.only or c.category in args.only]
    cases = [c for c in cases if not args.match or any(m in c.name for m in args.match)]
    results: list[Result] = []
    try:
        build_fixtures(fx, quick=args.quick)
        print(f"{len(cases)} cases", flush=True)
        for i, case in enumerate(cases):
            case_dir = work / "cases" / f"{i:04d}"
            case_dir.mkdir(parents=True)
            if case.setup is not None:
                case.setup(case_dir)
            t = time.perf_counter()
            cls, detail = run_case(case, case_dir, fx)
            seconds = time.perf_counter() - t
            command = "python -m metaxm " + shlex.join(resolve(case.argv, case_dir, fx))
            results.append(Result(case, cls, detail, command))
            (fx / MARKER).unlink(missing_ok=True)
            if args.verbose or cls in FAILURES:
                print(f"[{i + 1}/{len(cases)}] {seconds:.1f} s {case.category}: {case.name}: {cls}"
                      f"  {detail}", flush=True)  # fmt: skip
            elif (i + 1) % 50 == 0:
                print(f"[{i + 1}/{len(cases)}] {time.perf_counter() - started:.0f} s", flush=True)
            if not args.keep:
                shutil.rmtree(case_dir, ignore_errors=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    failed = [r for r in results if r.cls in FAILURES]
    print(f"\n{table(results)}\n\n{len(results)} inputs in {time.perf_counter() - started:.0f} s "
          f"(fixtures included); {len(failed)} failures")  # fmt: skip
    for r in failed:
        print(f"\n* {r.case.category}: {r.case.name}: {r.cls}: {r.detail}")
        if r.case.special is None:
            print(f"  {r.command}")
    if failed and not args.keep:
        print("\n(the cases' folders are gone: rerun with --keep DIR --only CATEGORY to redo one)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
