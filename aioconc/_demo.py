"""``python -m aioconc demo``: the whole library in six short parts, in plain text.

1. one worker in every available mode, and where each call ran (pid, thread);
2. a pool ``map`` over a few hundred items, with a progress bar;
3. a rate-limited batch, and how many calls started in each second;
4. a process worker killed in the middle of a batch: its calls fail at once
   with ``WorkerCrashedError`` and the pool starts a worker in its place;
5. ``await`` inside ``asyncio.run``;
6. the task records of calls that succeeded, failed, were retried or cancelled.

A local Ray takes seconds to start, so the Ray row of part 1 comes last.  A
mode that is not available is skipped with a note.  Output is plain text (no
colour, no cursor movement) unless stderr is a terminal and ``NO_COLOR`` is
unset, in which case part 2 shows tqdm's bar there.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from . import CallLimit, TaskRecord, TaskWorker, Worker, WorkerCrashedError, gather, wait

__all__ = ["MODES", "Where", "run_demo"]

MODES = ("sync", "asyncio", "thread", "process", "ray")

UNAVAILABLE = (NotImplementedError, ImportError, ValueError)
"""What creating a worker of a mode that is not built (or not installed) raises."""

MAP_ITEMS = 300
RATE = 20  # calls per second in part 3
RATE_CALLS = 3 * RATE
CRASH_CALLS = 24


class Where(Worker):
    """A worker that says where it runs."""

    def __init__(self, factor: int = 2) -> None:
        self.factor = factor
        self.calls = 0

    def where(self, x: int) -> tuple[int, str, int]:
        """Return (pid, thread name, ``x * factor``)."""
        return os.getpid(), threading.current_thread().name, x * self.factor

    async def awhere(self, x: int) -> tuple[int, str, int]:
        """The same, from a coroutine."""
        await asyncio.sleep(0)
        return os.getpid(), threading.current_thread().name, x * self.factor

    def pid(self) -> int:
        """This worker's process id."""
        return os.getpid()

    def work(self, x: int, seconds: float = 0.0) -> tuple[int, int]:
        """Take ``seconds``, then return (pid, ``x * x``)."""
        if seconds:
            time.sleep(seconds)
        return os.getpid(), x * x

    def limited(self, x: int) -> float:
        """Take one call from the worker's limits; return when it started."""
        with self.limits.acquire():  # type: ignore[attr-defined]  # set on the instance at start
            return time.time()

    def flaky(self, x: int) -> int:
        """Fail on the first call of this worker, succeed after."""
        self.calls += 1
        if self.calls == 1:
            raise ConnectionError("first call fails")
        return x


def square_where(x: int) -> tuple[int, int]:
    """(pid, ``x * x``): the function part 2 maps, after a moment's work."""
    time.sleep(0.002)
    return os.getpid(), x * x


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [" | ".join(str(c).ljust(w) for c, w in zip(row, widths)) for row in [header, *rows]]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def _heading(n: int, title: str) -> None:
    print()
    print(f"[{n}/6] {title}")


# ---------------------------------------------------------------------------
# 1. every mode
# ---------------------------------------------------------------------------


def _run_mode(mode: str) -> list[str]:
    """Start a worker in ``mode``, make one call, stop it; return the table row."""
    t0 = time.perf_counter()
    with Where.options(mode=mode).init(factor=2) as w:
        pid, thread, value = w.where(21).result(timeout=120)
        elapsed = time.perf_counter() - t0
    return [mode, str(pid), thread, str(value), f"{1e3 * elapsed:.1f}"]


def _try_mode(mode: str) -> tuple[list[str] | None, str | None, bool]:
    """(row, note, failed) for one mode."""
    try:
        return _run_mode(mode), None, False
    except UNAVAILABLE as exc:
        return None, f"{mode}: skipped, not available here ({type(exc).__name__}: {exc})", False
    except Exception as exc:  # report it, carry on with the other modes
        return None, f"{mode}: FAILED ({type(exc).__name__}: {exc})", True


HEADER = ["mode", "pid", "thread name", "result", "time (ms)"]


def _modes(modes: Sequence[str], title: str) -> bool:
    """Print the table of ``modes``; True when one failed."""
    print()
    print(title)
    rows, notes, failed = [], [], False
    for mode in modes:
        row, note, bad = _try_mode(mode)
        if row:
            rows.append(row)
        if note:
            notes.append(note)
        failed |= bad
    if rows:
        print(_table(HEADER, rows))
        print("(time: start the worker, make one call, get its result)")
    for note in notes:
        print(f"  {note}")
    return failed


# ---------------------------------------------------------------------------
# 2. a pool map with a progress bar
# ---------------------------------------------------------------------------


def _text_progress(total: int) -> Callable[[int, int, float], None]:
    """A progress callback printing a plain-text bar at every quarter."""
    shown: set[int] = set()

    def report(done: int, _total: int, elapsed: float) -> None:
        quarter = 4 * done // total
        if quarter in shown or (done != total and 4 * done % total >= 4):
            return
        shown.add(quarter)
        bar = "#" * (20 * done // total)
        print(f"  [{bar:<20}] {done}/{total} items, {elapsed:.2f} s", flush=True)

    return report


def _pool_map(mode: str) -> None:
    _heading(2, f"a pool of 2 {mode} workers maps over {MAP_ITEMS} items, in order")
    fancy = sys.stderr.isatty() and not os.environ.get("NO_COLOR")
    progress: Any = {"desc": "map", "unit": "item"} if fancy else _text_progress(MAP_ITEMS)
    with TaskWorker.options(mode=mode, max_workers=2).init() as pool:
        t0 = time.perf_counter()
        results = list(pool.map(square_where, range(MAP_ITEMS), progress=progress))
        elapsed = time.perf_counter() - t0
    by_pid = Counter(pid for pid, _ in results)
    squares = [value for _, value in results]
    ordered = squares == [x * x for x in range(MAP_ITEMS)]
    print(f"  {len(results)} results in {elapsed:.2f} s, in order: {ordered}")
    print("  items per worker: " + ", ".join(f"pid {p}: {n}" for p, n in sorted(by_pid.items())))


# ---------------------------------------------------------------------------
# 3. a rate-limited batch
# ---------------------------------------------------------------------------


def _rate_limited() -> None:
    _heading(3, f"{RATE_CALLS} calls on 4 thread workers sharing a limit of {RATE} calls/s")
    limits = [CallLimit(window=1, capacity=RATE, algorithm="sliding_window")]
    with Where.options(mode="thread", max_workers=4, limits=limits).init() as pool:
        starts = sorted(gather([pool.limited(i) for i in range(RATE_CALLS)], timeout=60))
    first = starts[0]
    # Seconds counted from half a second before the first call: the limiter
    # admits a group of calls at the start of each second, and half a second
    # either side keeps a thread's wake-up jitter from moving a call across.
    per_second = Counter(int(t - first + 0.5) for t in starts)
    counts = [per_second[s] for s in range(max(per_second) + 1)]
    took = starts[-1] - first
    print(f"  calls started in each second: {counts}")
    print(
        f"  {RATE_CALLS} calls took {took:.2f} s: the first {RATE} at once, then {RATE} per second"
    )


# ---------------------------------------------------------------------------
# 4. a crash in the middle of a batch
# ---------------------------------------------------------------------------


def _crash() -> list[tuple[str, Any]]:
    """Kill one worker of a process pool mid-batch; return two of the batch's futures."""
    _heading(4, f"a process worker is killed (SIGKILL) in the middle of a batch of {CRASH_CALLS}")
    with Where.options(mode="process", max_workers=2).init() as pool:
        before = {pool.pid().result(timeout=60) for _ in range(2)}
        victim = min(before)
        batch = [pool.work(i, 0.05) for i in range(CRASH_CALLS)]
        ended: dict[int, float] = {}
        for i, fut in enumerate(batch):
            fut.add_done_callback(lambda _, i=i: ended.setdefault(i, time.perf_counter()))
        wait(batch, return_when="FIRST_COMPLETED", timeout=60)
        killed_at = time.perf_counter()
        os.kill(victim, signal.SIGKILL)
        wait(batch, timeout=60)
        crashed = [i for i, f in enumerate(batch) if isinstance(f.exception(), WorkerCrashedError)]
        ok = [i for i, f in enumerate(batch) if f.exception() is None]
        latest = max((ended[i] for i in crashed), default=killed_at) - killed_at
        after = {pool.pid().result(timeout=60) for _ in range(4)}
        stats = pool.statistics()
        print(
            f"  killed pid {victim} after the batch's first result; {len(ok)} calls succeeded "
            "(before the kill, or on the other worker)"
        )
        print(
            f"  {len(crashed)} calls failed with WorkerCrashedError, the last "
            f"{1e3 * latest:.0f} ms after the kill"
        )
        if crashed:
            print(f"  e.g.: {batch[crashed[0]].exception()}")
        print(
            f"  the pool replaced it: workers now {sorted(after)}, new {sorted(after - before)}, "
            f"replaced={stats.replaced}"
        )
        return [(f"work({i}) [4]", batch[i]) for i in (ok[:1] + crashed[:1])]


# ---------------------------------------------------------------------------
# 5. await inside asyncio.run
# ---------------------------------------------------------------------------


async def _awaited() -> list[tuple[str, Any]]:
    """Inside ``asyncio.run``: await calls of an asyncio and a thread worker."""
    _heading(5, "inside asyncio.run(...): await")
    futures: list[tuple[str, Any]] = []
    async with Where.options(mode="asyncio").init() as w:
        _, thread, value = await w.awhere(21)
        print(f"  await w.awhere(21)  [asyncio] -> {value} on thread {thread!r}")
    async with Where.options(mode="thread", num_retries=1, retry_wait=0.01).init() as w:
        results = await asyncio.gather(*(w.where(i) for i in range(3)))
        threads = sorted({t for _, t, _ in results})
        values = [v for _, _, v in results]
        print(
            f"  await asyncio.gather(w.where(0..2))  [thread] -> {values} on {', '.join(threads)}"
        )
        retried = w.flaky(7)
        print(f"  await w.flaky(7)  [thread, num_retries=1] -> {await retried}")
        futures.append(("flaky(7) [5]", retried))
        blocker = w.work(0, 0.2)
        cancelled = w.where(9)  # waits behind the blocker: a thread worker runs calls in order
        cancelled.cancel()
        await blocker
        futures.append(("where(9) [5], cancelled", cancelled))
    return futures


# ---------------------------------------------------------------------------
# 6. task records
# ---------------------------------------------------------------------------


def _records(futures: Sequence[tuple[str, Any]]) -> None:
    _heading(6, "the task records of some of those calls")
    rows = []
    for label, fut in futures:
        record: TaskRecord = fut.record()
        took = (
            f"{1e3 * (record.completed_at - record.started_at).total_seconds():.1f}"
            if record.completed_at and record.started_at and record.attempts
            else "-"  # never started
        )
        outcome = record.error or repr(record.result)
        rows.append(
            [label, record.task_id, str(record.status), str(record.attempts), took, outcome[:50]]
        )
    header = ["call [part]", "task_id", "status", "attempts", "ran (ms)", "result / error"]
    print(_table(header, rows))
    print(f"  as JSON: {futures[0][1].record().model_dump_json()[:110]}...")


def run_demo() -> int:
    """Print the demo to stdout; return the exit code (1 when a part failed)."""
    t0 = time.perf_counter()
    print(f"aioconc demo — caller: pid {os.getpid()}, thread {threading.current_thread().name!r}")
    local = [m for m in MODES if m != "ray"]
    failed = _modes(local, "[1/6] one worker in every mode, and where its call ran")
    try:
        _pool_map("process")
        _rate_limited()
        crash_futures = _crash()
        later = asyncio.run(_awaited())
        _records([*crash_futures, *later])
    except UNAVAILABLE as exc:  # no process mode here: the later parts need it
        print(f"  skipped: {type(exc).__name__}: {exc}")
    # Last, as starting a local Ray takes seconds (overlapping it with the
    # parts above made Ray's own shutdown at exit take many seconds more).
    failed |= _modes(["ray"], "[1/6, continued] Ray (a local Ray starts when none is connected)")
    print()
    print(f"demo done in {time.perf_counter() - t0:.1f} s")
    return 1 if failed else 0
