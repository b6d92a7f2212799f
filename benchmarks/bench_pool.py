"""Pool benchmarks: CPU-bound ``map`` on processes, trivial ``map`` on threads.

Two rows, in items per second, printed as the main benchmark's table::

    cpu map   2-process pool vs sync mode, a CPU-bound function     target >= 1.7x (SPEC.md §2)
    tiny map  2-thread pool, 20,000 trivial items, vs concurry      target >= 3x (issue 5)

Timed as every benchmark is (``_timing.in_turns``: a warm-up, then the subjects
take turns, best kept).  ``--quick`` runs smaller sizes (< 60 s)::

    python -m benchmarks.bench_pool [--quick]
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from aioconc.task import Executor

from ._table import Row, Target, format_table
from ._timing import Timing, in_turns, seconds

__all__ = ["burn", "cpu_map", "main", "tiny", "tiny_map"]

CPU_MAP_TARGET = Target(">=", 1.7)  # SPEC.md §2: CPU-bound map on a 2-process pool
TINY_MAP_TARGET = Target(">=", 3.0)  # issue 5 (SPEC.md §2 names no pool-map ratio to concurry)


def burn(n: int) -> int:
    """CPU-bound work: a sum of squares in pure Python."""
    total = 0
    for i in range(n):
        total += i * i
    return total


def tiny(x: int) -> int:
    """Return ``x``: the cheapest item to map."""
    return x


def _mapping(pool: Any, fn: Callable[[int], int], items: Iterable[int]) -> Timing:
    """A timing of ``list(pool.map(fn, items))``."""
    return seconds(lambda: list(pool.map(fn, items)))


def cpu_map(items: int, work: int, repeats: int) -> Row:
    """Sync mode against a 2-process pool mapping ``burn(work)`` over ``items`` items."""
    args = [work] * items
    sync = Executor("sync")
    pool = Executor("process", max_workers=2)
    try:
        list(pool.map(burn, [10, 10]))  # both workers started before the clock runs
        sync_s, pool_s = in_turns([_mapping(sync, burn, args), _mapping(pool, burn, args)], repeats)
    finally:
        sync.stop()
        pool.stop()
    return Row(
        "process", "cpu map", "calls/s", items / pool_s, "sync mode", items / sync_s, CPU_MAP_TARGET
    )


def _concurry_executor() -> Any:
    """concurry's 2-thread executor, or None when concurry is not installed."""
    try:
        concurry: Any = importlib.import_module("concurry")
    except ImportError:
        return None
    return concurry.Executor(mode="thread", max_workers=2)


def tiny_map(items: int, repeats: int, *, with_concurry: bool = True) -> Row:
    """aioconc's and concurry's 2-thread pools mapping ``tiny`` over ``items`` items."""
    ours = Executor("thread", max_workers=2)
    theirs = _concurry_executor() if with_concurry else None
    try:
        pools = [ours] if theirs is None else [ours, theirs]
        for pool in pools:
            list(pool.map(tiny, range(100)))
        times = in_turns([_mapping(pool, tiny, range(items)) for pool in pools], repeats)
    finally:
        ours.stop()
        if theirs is not None:
            theirs.stop()
    if theirs is None:
        return Row("thread", "tiny map", "calls/s", items / times[0], note="concurry left out")
    rates = [items / t for t in times]
    return Row("thread", "tiny map", "calls/s", rates[0], "concurry", rates[1], TINY_MAP_TARGET)


def main(argv: Sequence[str] | None = None) -> int:
    """Measure and print both rows; returns the exit code (1 when ``--check`` finds a miss)."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_pool", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes, under a minute")
    parser.add_argument("--no-concurry", action="store_true", help="leave concurry out")
    parser.add_argument("--check", action="store_true", help="exit with 1 when a target is missed")
    args = parser.parse_args(argv)
    items, work, repeats = (12, 1_000_000, 2) if args.quick else (24, 2_000_000, 3)
    rows = [
        cpu_map(items, work, repeats),
        tiny_map(20_000, repeats, with_concurry=not args.no_concurry),
    ]
    print(format_table(rows))
    return 1 if args.check and any(row.met is False for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
