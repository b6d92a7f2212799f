"""Process mode in detail: aioconc against a raw pipelined ``multiprocessing.Pipe`` and concurry.

Figures, timed as every benchmark is (``_timing.in_turns``: a warm-up, then the
subjects take turns, 3 rounds -- 5 without ``--quick`` -- best kept):

* burst: submit N calls to one worker, then collect every result (calls/s);
* round trip: one call and its result, one at a time (µs);
* start-up: ``init()`` plus the first call's result (ms), once warm, and the
  very first worker of the process ("first start-up": for aioconc it includes
  starting the fork server, for concurry its multiprocessing start-up).

The raw primitive is a child process echoing over a ``multiprocessing.Pipe``:
the burst sends from a thread while the main thread receives (sending N before
receiving any would fill the pipe both ways and deadlock), the round trip is
``send`` then ``recv``.  aioconc is measured with its default options (which
put the submission queue, ``max_queued_tasks=100``, in the path) and with
``max_queued_tasks=0`` (the direct path to the backend).  The rows print as the
main benchmark's table, with SPEC.md §2's targets::

    python -m benchmarks.bench_process [--quick] [--no-concurry]
"""

from __future__ import annotations

import argparse
import functools
import multiprocessing
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ._run import targets
from ._subjects import _ConcurryBench
from ._table import UNITS, Row, format_table
from ._timing import in_turns
from ._workers import _AioconcBench

__all__ = ["Figures", "RawPipe", "WorkerHandle", "main", "measure"]

TARGETS = targets("process")  # the main benchmark's: SPEC.md §2, process mode


def _echo_child(conn: Any) -> None:
    """The raw pipe's child: answer each call message with its argument, until None."""
    while (msg := conn.recv()) is not None:
        conn.send(msg[1][0])


# ---------------------------------------------------------------------------
# Subjects: one way each of making the same calls; each method does the work once
# ---------------------------------------------------------------------------


class RawPipe:
    """A child echoing over a ``multiprocessing.Pipe``: the raw primitive."""

    label = "multiprocessing.Pipe"

    def __init__(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, theirs = ctx.Pipe()
        self.child = ctx.Process(target=_echo_child, args=(theirs,), daemon=True)
        self.child.start()
        self.conn.send(("ping", (0,), {}))
        self.conn.recv()

    def burst(self, n: int) -> float:
        """Send ``n`` calls from a thread while this one receives the replies; seconds."""
        conn = self.conn

        def send_all() -> None:
            for i in range(n):
                conn.send(("ping", (i,), {}))

        t0 = time.perf_counter()
        sender = threading.Thread(target=send_all)
        sender.start()
        for _ in range(n):
            conn.recv()
        sender.join()
        return time.perf_counter() - t0

    def round_trip(self, n: int) -> float:
        """``n`` calls, each sent and answered before the next; seconds."""
        conn = self.conn
        t0 = time.perf_counter()
        for i in range(n):
            conn.send(("ping", (i,), {}))
            conn.recv()
        return time.perf_counter() - t0

    def close(self) -> None:
        """Stop the child and wait for it."""
        self.conn.send(None)
        self.child.join(10)


class WorkerHandle:
    """A process worker of aioconc or concurry (the same calls, the same API)."""

    def __init__(self, label: str, cls: Any, **options: Any) -> None:
        self.label, self.cls, self.options = label, cls, options
        t0 = time.perf_counter()
        self.handle = self._start()
        # The first worker of the process: for aioconc it also starts the fork server.
        self.first_s = time.perf_counter() - t0

    def _start(self) -> Any:
        handle = self.cls.options(mode="process", **self.options).init()
        handle.ping(0).result()
        return handle

    def start_up(self) -> float:
        """Seconds for ``init()`` and the first call's result (the stop is not timed)."""
        t0 = time.perf_counter()
        handle = self._start()
        elapsed = time.perf_counter() - t0
        handle.stop()
        return elapsed

    def burst(self, n: int) -> float:
        """Submit ``n`` calls, then collect every result; seconds."""
        ping = self.handle.ping
        t0 = time.perf_counter()
        futures = [ping(i) for i in range(n)]
        for fut in futures:
            fut.result()
        return time.perf_counter() - t0

    def round_trip(self, n: int) -> float:
        """``n`` calls, each collected before the next is made; seconds."""
        ping = self.handle.ping
        t0 = time.perf_counter()
        for i in range(n):
            ping(i).result()
        return time.perf_counter() - t0

    def close(self) -> None:
        """Stop the worker."""
        self.handle.stop()


# ---------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Figures:
    """What one subject measured, in the rows' units (NaN: not measured)."""

    burst_per_s: float
    round_trip_us: float
    startup_ms: float = float("nan")
    first_ms: float = float("nan")


def measure(
    subjects: Sequence[RawPipe | WorkerHandle], sizes: Sequence[tuple[int, int]], rounds: int
) -> list[Figures]:
    """Burst, round trip and start-up of each subject (``sizes``: burst n, round trip n).

    Closes every subject.
    """
    try:
        bursts = in_turns(
            [functools.partial(s.burst, n) for s, (n, _) in zip(subjects, sizes)], rounds
        )
        trips = in_turns(
            [functools.partial(s.round_trip, k) for s, (_, k) in zip(subjects, sizes)], rounds
        )
    finally:
        for s in subjects:
            s.close()
    workers = [s for s in subjects if isinstance(s, WorkerHandle)]
    startups = iter(in_turns([w.start_up for w in workers], 3))
    out = []
    for s, (n, k), b, rt in zip(subjects, sizes, bursts, trips):
        if isinstance(s, WorkerHandle):
            out.append(Figures(n / b, 1e6 * rt / k, 1e3 * next(startups), 1e3 * s.first_s))
        else:
            out.append(Figures(n / b, 1e6 * rt / k))
    return out


# (figure, Figures attribute, baseline kind); the targets are TARGETS["figure/kind"].
_FIGURES = (
    ("burst", "burst_per_s", "raw"),
    ("round trip", "round_trip_us", "raw"),
    ("burst", "burst_per_s", "concurry"),
    ("start-up", "startup_ms", "concurry"),
    ("first start-up", "first_ms", "concurry"),
)


def _rows(
    mode: str, ours: Figures, baselines: dict[str, tuple[str, Figures]], *, first: bool
) -> Iterator[Row]:
    """One aioconc variant's rows against each ``kind: (label, figures)`` baseline.

    ``first``: the variant measured first, whose first worker also started the fork
    server, gets the first start-up row.
    """
    for figure, attr, kind in _FIGURES:
        if kind not in baselines or (figure == "first start-up" and not first):
            continue
        label, base = baselines[kind]
        unit = UNITS[figure.removeprefix("first ")]
        target = TARGETS.get(f"{figure}/{kind}")
        yield Row(mode, figure, unit, getattr(ours, attr), label, getattr(base, attr), target)


def main(argv: Sequence[str] | None = None) -> int:
    """Measure and print the rows; returns the exit code (1 when ``--check`` finds a miss)."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_process", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--quick", action="store_true", help="fewer calls (< 60 s)")
    parser.add_argument("--no-concurry", action="store_true", help="leave concurry out")
    parser.add_argument("--check", action="store_true", help="exit with 1 when a target is missed")
    args = parser.parse_args(argv)
    n_burst, n_rt = (5000, 500) if args.quick else (50000, 3000)
    # aioconc first: its first worker starts the fork server.
    subjects: list[RawPipe | WorkerHandle] = [
        WorkerHandle("aioconc", _AioconcBench),
        RawPipe(),
        WorkerHandle("aioconc max_queued_tasks=0", _AioconcBench, max_queued_tasks=0),
    ]
    sizes = [(n_burst, n_rt)] * len(subjects)
    if not args.no_concurry and _ConcurryBench is not None:
        subjects.append(WorkerHandle("concurry", _ConcurryBench))
        sizes.append((max(n_burst // 50, 100), max(n_rt // 10, 50)))
    ours, raw, direct, *rest = measure(subjects, sizes, rounds=3 if args.quick else 5)
    baselines = {"raw": (RawPipe.label, raw)}
    if rest:
        baselines["concurry"] = ("concurry", rest[0])
    rows = [
        *_rows("process", ours, baselines, first=True),
        *_rows("process max_queued_tasks=0", direct, baselines, first=False),
    ]
    notes = ["first start-up: the process's first worker (aioconc's also starts the fork server)"]
    print(format_table(rows, notes if rest else ()))
    return 1 if args.check and any(row.met is False for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
