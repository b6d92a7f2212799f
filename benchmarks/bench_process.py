"""Process mode: aioconc vs a raw pipelined ``multiprocessing.Pipe`` vs concurry.

Figures (best of 3 rounds -- 5 without ``--quick`` -- in which the subjects take
turns, so that a load spike on a shared machine falls on all of them alike):

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
import math
import multiprocessing
import os
import sys
import threading
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _echo_child(conn: Any) -> None:
    while True:
        msg = conn.recv()
        if msg is None:
            return
        conn.send(msg[1][0])


# ---------------------------------------------------------------------------
# Subjects: one way each of making the same calls
# ---------------------------------------------------------------------------


class RawPipe:
    """A child echoing over a ``multiprocessing.Pipe``: the raw primitive."""

    def __init__(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, theirs = ctx.Pipe()
        self.child = ctx.Process(target=_echo_child, args=(theirs,), daemon=True)
        self.child.start()
        self.conn.send(("f", (0,), {}))
        self.conn.recv()

    def burst(self, n: int) -> float:
        conn = self.conn
        t0 = time.perf_counter()

        def send_all() -> None:
            for i in range(n):
                conn.send(("f", (i,), {}))

        sender = threading.Thread(target=send_all)
        sender.start()
        for _ in range(n):
            conn.recv()
        sender.join()
        return n / (time.perf_counter() - t0)

    def round_trip(self, n: int) -> float:
        conn = self.conn
        t0 = time.perf_counter()
        for i in range(n):
            conn.send(("f", (i,), {}))
            conn.recv()
        return (time.perf_counter() - t0) / n * 1e6

    def close(self) -> None:
        self.conn.send(None)
        self.child.join(10)


class Handle:
    """A worker handle of aioconc or concurry (the same calls, the same API)."""

    def __init__(self, cls: Any, **options: Any) -> None:
        self.cls, self.options = cls, options
        t0 = time.perf_counter()
        self.handle = self.start()
        # The first worker of the process: for aioconc it also starts the fork server.
        self.first = (time.perf_counter() - t0) * 1e3

    def start(self) -> Any:
        handle = self.cls.options(mode="process", **self.options).init()
        handle.f(0).result()
        return handle

    def start_up(self) -> float:
        t0 = time.perf_counter()
        handle = self.start()
        elapsed = (time.perf_counter() - t0) * 1e3
        handle.stop()
        return elapsed

    def burst(self, n: int) -> float:
        f = self.handle.f
        t0 = time.perf_counter()
        futures = [f(i) for i in range(n)]
        for fut in futures:
            fut.result()
        return n / (time.perf_counter() - t0)

    def round_trip(self, n: int) -> float:
        f = self.handle.f
        t0 = time.perf_counter()
        for i in range(n):
            f(i).result()
        return (time.perf_counter() - t0) / n * 1e6

    def close(self) -> None:
        self.handle.stop()


def _aioconc_class() -> Any:
    from aioconc import Worker

    class Echo(Worker):
        def f(self, x: Any) -> Any:
            return x

    return Echo


try:  # at module level: concurry's children import it from here by name
    from concurry import Worker as _ConcurryWorker

    class ConcurryEcho(_ConcurryWorker):  # type: ignore[misc]
        def f(self, x: Any) -> Any:
            return x

except ImportError:  # pragma: no cover - concurry is optional
    ConcurryEcho = None  # type: ignore[assignment,misc]


def measure(subjects: dict[str, Any], sizes: dict[str, tuple[int, int]], rounds: int) -> Any:
    """Best burst and round trip of each subject over ``rounds`` rounds in which
    the subjects take turns, so a load spike falls on all of them alike."""
    best: dict[str, dict[str, float]] = {name: {"burst": 0.0, "rt": math.inf} for name in subjects}
    for _ in range(rounds):
        for name, subject in subjects.items():
            n_burst, n_rt = sizes[name]
            best[name]["burst"] = max(best[name]["burst"], subject.burst(n_burst))
            best[name]["rt"] = min(best[name]["rt"], subject.round_trip(n_rt))
    for name, subject in subjects.items():
        if isinstance(subject, Handle):
            best[name]["first"] = subject.first
        subject.close()
        if isinstance(subject, Handle):
            best[name]["start"] = min(subject.start_up() for _ in range(3))
    return best


# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls (< 60 s)")
    parser.add_argument("--no-concurry", action="store_true", help="skip concurry")
    args = parser.parse_args()
    n_burst, n_rt = (5000, 500) if args.quick else (50000, 3000)
    echo = _aioconc_class()
    subjects: dict[str, Any] = {
        "aioconc": Handle(echo),  # first: its first worker starts the fork server
        "raw": RawPipe(),
        "direct": Handle(echo, max_queued_tasks=0),
    }
    sizes = dict.fromkeys(subjects, (n_burst, n_rt))
    if not args.no_concurry and ConcurryEcho is not None:
        subjects["concurry"] = Handle(ConcurryEcho)
        sizes["concurry"] = (max(n_burst // 50, 100), max(n_rt // 10, 50))
    best = measure(subjects, sizes, rounds=3 if args.quick else 5)
    raw, ours, direct, theirs = best["raw"], best["aioconc"], best["direct"], best.get("concurry")

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
