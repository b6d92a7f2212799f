"""Pool benchmarks: CPU-bound ``map`` on processes, trivial ``map`` on threads.

Prints two ratios (targets from SPEC.md §2 and issue 5)::

    cpu map   2-process pool vs sync mode, a CPU-bound function      target >= 1.7x
    tiny map  2-thread pool, 20,000 trivial items, vs concurry 0.13.2  target >= 3x

Each timing is the best of a few repeats; subjects take turns so the shared
machine's drift falls on both alike.  ``--quick`` runs smaller sizes (< 60 s).

    python benchmarks/bench_pool.py [--quick]
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if importlib.util.find_spec("aioconc") is None:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aioconc.task import Executor


def burn(n: int) -> int:
    """CPU-bound work: a sum of squares in pure Python."""
    total = 0
    for i in range(n):
        total += i * i
    return total


def tiny(x: int) -> int:
    return x


def best(fn: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def cpu_map(items: int, work: int, repeats: int) -> tuple[float, float]:
    """Seconds for sync mode and for a 2-process pool to map ``burn`` over ``items``."""
    args = [work] * items
    sync = Executor("sync")
    pool = Executor("process", max_workers=2)
    try:
        list(pool.map(burn, [10, 10]))  # warm up both workers
        sync_s = pool_s = float("inf")
        for _ in range(repeats):
            sync_s = min(sync_s, best(lambda: list(sync.map(burn, args)), 1))
            pool_s = min(pool_s, best(lambda: list(pool.map(burn, args)), 1))
    finally:
        sync.stop()
        pool.stop()
    return sync_s, pool_s


def tiny_map(items: int, repeats: int) -> tuple[float, float | None]:
    """Seconds for aioconc and concurry 2-thread pools to map ``tiny`` over ``items``."""
    ours = Executor("thread", max_workers=2)
    try:
        import concurry
    except ImportError:
        theirs = None
    else:
        theirs = concurry.Executor(mode="thread", max_workers=2)
    try:
        list(ours.map(tiny, range(100)))
        if theirs is not None:
            list(theirs.map(tiny, range(100)))
        ours_s = theirs_s = float("inf")
        for _ in range(repeats):
            ours_s = min(ours_s, best(lambda: list(ours.map(tiny, range(items))), 1))
            if theirs is not None:
                theirs_s = min(theirs_s, best(lambda: list(theirs.map(tiny, range(items))), 1))
    finally:
        ours.stop()
        if theirs is not None:
            theirs.stop()
    return ours_s, (theirs_s if theirs is not None else None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, under a minute")
    args = parser.parse_args(argv)
    items, work, repeats = (12, 1_000_000, 2) if args.quick else (24, 2_000_000, 3)
    tiny_items = 20_000

    sync_s, pool_s = cpu_map(items, work, repeats)
    print(
        f"cpu map   sync {sync_s:.3f} s   2-process pool {pool_s:.3f} s   "
        f"speed-up {sync_s / pool_s:.2f}x   (target >= 1.7x)"
    )
    ours_s, theirs_s = tiny_map(tiny_items, repeats)
    if theirs_s is None:
        print(f"tiny map  aioconc {ours_s:.3f} s   concurry not installed")
    else:
        print(
            f"tiny map  aioconc {ours_s:.3f} s   concurry {theirs_s:.3f} s   "
            f"ratio {theirs_s / ours_s:.2f}x   (target >= 3x)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
