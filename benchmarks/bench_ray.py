"""Ray mode against a raw Ray actor: burst and awaited calls per second.

    python -m benchmarks.bench_ray [--quick]

* burst: submit N calls to one actor, then collect every result (aioconc future
  by future, the raw actor with one ``ray.get`` of the refs);
* awaited: ``asyncio.run`` of ``asyncio.gather`` over N calls.

The aioconc worker runs with ``max_queued_tasks=None`` so that both sides have
every call in flight at once (the default of 3 for Ray workers caps in-flight
calls per worker on purpose).  Timed as every benchmark is
(``_timing.in_turns``: a warm-up, then raw and aioconc take turns, best of 5);
the rows print as the main benchmark's table, with SPEC.md §2's targets.  The
Ray connection made here is closed at the end (a local Ray started here stops).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from typing import Any

from ._run import targets
from ._subjects import local_ray
from ._table import UNITS, Row, format_table
from ._timing import in_turns, seconds
from ._workers import _AioconcBench, _Calls

__all__ = ["main", "measure"]

TARGETS = targets("ray")  # the main benchmark's: SPEC.md §2, ray mode against a raw actor
RAW = "ray actor"


def measure(ray: Any, n: int, repeats: int = 5) -> list[Row]:
    """The burst and awaited rows: ``n`` calls on aioconc's Ray worker and on a raw actor."""
    raw = ray.remote(_Calls).remote()
    ray.get(raw.ping.remote(0))
    handle = _AioconcBench.options(mode="ray", max_queued_tasks=None).init()
    handle.ping(0).result()

    def raw_burst() -> None:
        ray.get([raw.ping.remote(i) for i in range(n)])

    def ours_burst() -> None:
        futures = [handle.ping(i) for i in range(n)]
        for fut in futures:
            fut.result()

    async def raw_awaited() -> None:
        await asyncio.gather(*(raw.ping.remote(i) for i in range(n)))

    async def ours_awaited() -> None:
        await asyncio.gather(*(handle.ping(i) for i in range(n)))

    try:
        burst = in_turns([seconds(ours_burst), seconds(raw_burst)], repeats)
        awaited = in_turns(
            [
                seconds(lambda: asyncio.run(ours_awaited())),
                seconds(lambda: asyncio.run(raw_awaited())),
            ],
            repeats,
        )
    finally:
        handle.stop()
        ray.kill(raw)
    seconds_by_figure = {"burst": burst, "awaited": awaited}  # (aioconc, raw) each
    return [
        Row("ray", figure, UNITS[figure], n / ours, RAW, n / raw_s, TARGETS[f"{figure}/raw"])
        for figure, (ours, raw_s) in seconds_by_figure.items()
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """Measure and print both rows; returns the exit code (1 when ``--check`` finds a miss).

    Raises ``ImportError`` without Ray.
    """
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_ray", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--quick", action="store_true", help="fewer calls (< 60 s)")
    parser.add_argument("--check", action="store_true", help="exit with 1 when a target is missed")
    args = parser.parse_args(argv)
    n = 500 if args.quick else 3000
    ray = local_ray()
    try:
        rows = measure(ray, n)
    finally:
        ray.shutdown()
    print(format_table(rows))
    return 1 if args.check and any(row.met is False for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
