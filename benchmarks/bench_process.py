"""Process mode: aioconc vs a raw pipelined ``multiprocessing.Pipe`` vs concurry.

Figures (best of 3, one run, same machine):

* burst: submit N calls to one worker, then collect every result (calls/s);
* round trip: one call and its result, one at a time (µs);
* start-up: ``init()`` plus the first call's result (ms), best of 3 once warm,
  and the very first worker of the process ("first": for aioconc it includes
  starting the fork server, for concurry its multiprocessing start-up).

The raw primitive is a child process echoing over a ``multiprocessing.Pipe``:
the burst sends from a thread while the main thread receives (sending N before
receiving any would fill the pipe both ways and deadlock), the round trip is
``send`` then ``recv``.  aioconc is measured with its default options (which
put the submission queue, ``max_queued_tasks=100``, in the path) and with
``max_queued_tasks=0`` (the direct path to the backend).

Usage: ``python benchmarks/bench_process.py [--quick]`` (``--quick`` < 60 s).
The ``__main__`` guard is for multiprocessing and concurry; aioconc needs none.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _echo_child(conn: Any) -> None:
    while True:
        msg = conn.recv()
        if msg is None:
            return
        conn.send(msg[1][0])


def _best(fn: Callable[[], float], repeat: int = 3, *, low: bool = False) -> float:
    values = [fn() for _ in range(repeat)]
    return min(values) if low else max(values)


# ---------------------------------------------------------------------------
# raw Pipe
# ---------------------------------------------------------------------------


def bench_raw(n_burst: int, n_rt: int) -> dict[str, float]:
    ctx = multiprocessing.get_context("spawn")
    ours, theirs = ctx.Pipe()
    child = ctx.Process(target=_echo_child, args=(theirs,), daemon=True)
    child.start()
    ours.send(("f", (0,), {}))
    ours.recv()

    def burst() -> float:
        t0 = time.perf_counter()
        sender = threading.Thread(
            target=lambda: [ours.send(("f", (i,), {})) for i in range(n_burst)]
        )
        sender.start()
        for _ in range(n_burst):
            ours.recv()
        sender.join()
        return n_burst / (time.perf_counter() - t0)

    def round_trip() -> float:
        t0 = time.perf_counter()
        for i in range(n_rt):
            ours.send(("f", (i,), {}))
            ours.recv()
        return (time.perf_counter() - t0) / n_rt * 1e6

    out = {"burst": _best(burst), "rt": _best(round_trip, low=True)}
    ours.send(None)
    child.join(10)
    return out


# ---------------------------------------------------------------------------
# aioconc
# ---------------------------------------------------------------------------


def _aioconc_class() -> Any:
    from aioconc import Worker

    class Echo(Worker):
        def f(self, x: Any) -> Any:
            return x

    return Echo


def bench_aioconc(n_burst: int, n_rt: int, **options: Any) -> dict[str, float]:
    echo = _aioconc_class()

    def start() -> float:
        t0 = time.perf_counter()
        handle = echo.options(mode="process", **options).init()
        handle.f(0).result()
        elapsed = (time.perf_counter() - t0) * 1e3
        handle.stop()
        return elapsed

    t0 = time.perf_counter()
    handle = echo.options(mode="process", **options).init()
    handle.f(0).result()
    first = (time.perf_counter() - t0) * 1e3  # the first worker also starts the fork server

    def burst() -> float:
        t0 = time.perf_counter()
        futures = [handle.f(i) for i in range(n_burst)]
        for fut in futures:
            fut.result()
        return n_burst / (time.perf_counter() - t0)

    def round_trip() -> float:
        t0 = time.perf_counter()
        for i in range(n_rt):
            handle.f(i).result()
        return (time.perf_counter() - t0) / n_rt * 1e6

    out = {"burst": _best(burst), "rt": _best(round_trip, low=True), "first": first}
    handle.stop()
    out["start"] = _best(start, low=True)
    return out


# ---------------------------------------------------------------------------
# concurry
# ---------------------------------------------------------------------------


def _concurry_class() -> Any:
    if ConcurryEcho is None:
        raise ImportError("concurry is not installed")
    return ConcurryEcho


try:  # at module level: concurry's children import it from here by name
    from concurry import Worker as _ConcurryWorker

    class ConcurryEcho(_ConcurryWorker):  # type: ignore[misc]
        def f(self, x: Any) -> Any:
            return x

except ImportError:  # pragma: no cover - concurry is optional
    ConcurryEcho = None  # type: ignore[assignment,misc]


def bench_concurry(n_burst: int, n_rt: int) -> dict[str, float]:
    echo = _concurry_class()

    def start() -> float:
        t0 = time.perf_counter()
        handle = echo.options(mode="process").init()
        handle.f(0).result()
        elapsed = (time.perf_counter() - t0) * 1e3
        handle.stop()
        return elapsed

    t0 = time.perf_counter()
    handle = echo.options(mode="process").init()
    handle.f(0).result()
    first = (time.perf_counter() - t0) * 1e3

    def burst() -> float:
        t0 = time.perf_counter()
        futures = [handle.f(i) for i in range(n_burst)]
        for fut in futures:
            fut.result()
        return n_burst / (time.perf_counter() - t0)

    def round_trip() -> float:
        t0 = time.perf_counter()
        for i in range(n_rt):
            handle.f(i).result()
        return (time.perf_counter() - t0) / n_rt * 1e6

    out = {"burst": _best(burst), "rt": _best(round_trip, low=True), "first": first}
    handle.stop()
    out["start"] = _best(start, low=True)
    return out


# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls (< 60 s)")
    parser.add_argument("--no-concurry", action="store_true", help="skip concurry")
    args = parser.parse_args()
    n_burst, n_rt = (5000, 500) if args.quick else (50000, 3000)
    raw = bench_raw(n_burst, n_rt)
    ours = bench_aioconc(n_burst, n_rt)
    direct = bench_aioconc(n_burst, n_rt, max_queued_tasks=0)
    theirs: dict[str, float] | None = None
    if not args.no_concurry:
        try:
            theirs = bench_concurry(max(n_burst // 50, 100), max(n_rt // 10, 50))
        except ImportError:
            theirs = None

    print(f"{'':28}{'burst calls/s':>15}{'round trip us':>15}{'start-up ms':>13}{'first':>9}")
    rows: list[tuple[str, dict[str, float] | None]] = [
        ("raw multiprocessing.Pipe", raw),
        ("aioconc (defaults)", ours),
        ("aioconc max_queued_tasks=0", direct),
        ("concurry 0.13.2", theirs),
    ]
    for name, row in rows:
        if row is None:
            continue
        start = f"{row['start']:13.1f}{row['first']:9.1f}" if "start" in row else ""
        print(f"{name:28}{row['burst']:15,.0f}{row['rt']:15.1f}{start}")
    print()
    for label, row in (("defaults", ours), ("max_queued_tasks=0", direct)):
        print(f"aioconc {label}:")
        print(f"  burst vs raw Pipe       {row['burst'] / raw['burst']:6.2f}x  (target >= 0.5x)")
        print(f"  round trip vs raw Pipe  {row['rt'] / raw['rt']:6.2f}x  (target <= 2x)")
        if theirs is not None:
            burst = row["burst"] / theirs["burst"]
            start = row["start"] / theirs["start"]
            print(f"  burst vs concurry       {burst:6.1f}x  (target >= 20x)")
            first = row["first"] / theirs["first"]
            print(f"  start-up vs concurry    {start:6.2f}x  (target <= 0.5x)")
            if row is ours:  # measured first: its first worker also started the fork server
                print(f"  first start-up          {first:6.2f}x  (includes the fork server)")


if __name__ == "__main__":
    main()
