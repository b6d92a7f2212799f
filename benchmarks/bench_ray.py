"""Ray mode against a raw Ray actor: burst and awaited calls per second, best of 5.

    python benchmarks/bench_ray.py [--quick]

* burst: submit N calls to one actor, then collect every result;
* awaited: inside a running loop, ``await`` N calls gathered together.

The aioconc worker runs with ``max_queued_tasks=None`` so that both sides have
every call in flight at once (the default of 3 for Ray workers caps in-flight
calls per worker on purpose).  Raw and aioconc runs take turns, so the shared
machine's drift falls on both alike.  Prints calls/s and the ratio aioconc / raw.
A Ray started here is shut down at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ray

if importlib.util.find_spec("aioconc") is None:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aioconc import worker


@worker
class Echo:
    def echo(self, x: Any) -> Any:
        return x


class RawEcho:
    def echo(self, x: Any) -> Any:
        return x


def best_rates(n: int, runs: list[Callable[[], None]], repeats: int = 5) -> list[float]:
    """Best of ``repeats`` runs of each, in calls per second; the runs take turns."""
    best = [float("inf")] * len(runs)
    for _ in range(repeats):
        for i, run in enumerate(runs):
            start = time.perf_counter()
            run()
            best[i] = min(best[i], time.perf_counter() - start)
    return [n / seconds for seconds in best]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer calls (< 60 s)")
    n = 500 if parser.parse_args().quick else 3000
    started = not ray.is_initialized()
    if started:
        ray.init(include_dashboard=False, logging_level="ERROR")
    try:
        rows = measure(n)
    finally:
        if started:
            ray.shutdown()
    print(f"{'ray mode':<10}{'raw calls/s':>14}{'aioconc calls/s':>18}{'ratio':>8}")
    for name, raw_rate, ours_rate in rows:
        print(f"{name:<10}{raw_rate:>14.0f}{ours_rate:>18.0f}{ours_rate / raw_rate:>8.2f}")


def measure(n: int) -> list[tuple[str, float, float]]:
    """(name, raw calls/s, aioconc calls/s) of the burst and the awaited calls."""
    raw = ray.remote(RawEcho).remote()
    ray.get(raw.echo.remote(0))
    handle = Echo.options(mode="ray", max_queued_tasks=None).init()  # type: ignore[attr-defined]
    handle.echo(0).result()

    def raw_burst() -> None:
        ray.get([raw.echo.remote(i) for i in range(n)])

    def ours_burst() -> None:
        futures = [handle.echo(i) for i in range(n)]
        for fut in futures:
            fut.result()

    async def raw_awaited() -> None:
        await asyncio.gather(*(raw.echo.remote(i) for i in range(n)))

    async def ours_awaited() -> None:
        await asyncio.gather(*(handle.echo(i) for i in range(n)))

    try:
        burst = best_rates(n, [raw_burst, ours_burst])
        awaited = best_rates(
            n, [lambda: asyncio.run(raw_awaited()), lambda: asyncio.run(ours_awaited())]
        )
    finally:
        handle.stop()
        ray.kill(raw)
    return [("burst", *burst), ("awaited", *awaited)]


if __name__ == "__main__":
    main()
