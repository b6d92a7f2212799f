"""``python -m aioconc demo``: one small worker in every mode, and where it ran.

Each mode's worker reports its process id and thread name, so the table shows
the difference between the modes at a glance: ``sync`` and ``asyncio`` run in
the caller's process (``sync`` in the caller's own thread), ``thread`` on a
thread of its own, ``process`` in a child process and ``ray`` in a Ray actor.
A mode that is not built yet or whose extra is not installed is skipped with a
note.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Sequence

from . import Worker

__all__ = ["MODES", "Where", "run_demo"]

MODES = ("sync", "asyncio", "thread", "process", "ray")

UNAVAILABLE = (NotImplementedError, ImportError, ValueError)
"""What creating a worker of a mode that is not built (or not installed) raises."""


class Where(Worker):
    """A worker that says where it runs."""

    def __init__(self, factor: int = 2) -> None:
        self.factor = factor

    def where(self, x: int) -> tuple[int, str, int]:
        """Return (pid, thread name, ``x * factor``)."""
        return os.getpid(), threading.current_thread().name, x * self.factor

    async def awhere(self, x: int) -> tuple[int, str, int]:
        """The same, from a coroutine."""
        await asyncio.sleep(0)
        return os.getpid(), threading.current_thread().name, x * self.factor


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [" | ".join(str(c).ljust(w) for c, w in zip(row, widths)) for row in [header, *rows]]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def _run_mode(mode: str) -> list[str]:
    """Start a worker in ``mode``, make one call, stop it; return the table row."""
    t0 = time.perf_counter()
    with Where.options(mode=mode).init(factor=2) as w:
        pid, thread, value = w.where(21).result(timeout=60)
        elapsed = time.perf_counter() - t0
    return [mode, str(pid), thread, str(value), f"{1e3 * elapsed:.1f}"]


async def _awaited() -> list[str]:
    """Inside ``asyncio.run``: await calls of an asyncio and a thread worker."""
    lines = []
    async with Where.options(mode="asyncio").init() as w:
        _, thread, value = await w.awhere(21)
        lines.append(f"  await w.awhere(21)  [asyncio] -> {value} on thread {thread!r}")
    async with Where.options(mode="thread").init() as w:
        results = await asyncio.gather(*(w.where(i) for i in range(3)))
        threads = sorted({t for _, t, _ in results})
        values = [v for _, _, v in results]
        lines.append(
            f"  await asyncio.gather(w.where(0..2))  [thread] -> {values} on {', '.join(threads)}"
        )
        future = w.where(5)
        await future
        record = future.record()
        lines.append(
            f"  task record: task_id={record.task_id} status={record.status} "
            f"attempts={record.attempts} result={record.result}"
        )
    return lines


def run_demo() -> int:
    """Print the demo to stdout; return the exit code (1 when a mode failed)."""
    print(f"aioconc demo — caller: pid {os.getpid()}, thread {threading.current_thread().name!r}")
    rows: list[list[str]] = []
    notes: list[str] = []
    failed = False
    for mode in MODES:
        try:
            rows.append(_run_mode(mode))
        except UNAVAILABLE as exc:
            notes.append(f"{mode}: skipped, not available here ({type(exc).__name__}: {exc})")
        except Exception as exc:  # report it, carry on with the other modes
            failed = True
            notes.append(f"{mode}: FAILED ({type(exc).__name__}: {exc})")
    print()
    print(_table(["mode", "pid", "thread name", "result", "time (ms)"], rows))
    print("(time: start the worker, one call, result)")
    for note in notes:
        print(f"  {note}")
    print()
    print("Inside asyncio.run(...):")
    for line in asyncio.run(_awaited()):
        print(line)
    return 1 if failed else 0
