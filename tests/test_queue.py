"""CONFORMANCE "Submission queue" (140-146) and priorities of held-back calls."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import CancelledError
from typing import Any

import pytest

from aioconc import Worker, temp_config
from aioconc._runtime import inbox_for
from aioconc.config import resolve
from aioconc.middleware import stages_for
from aioconc.middleware._queue import SubmissionQueue
from aioconc.testing import FakeBackend


class Log(Worker):
    """Records the order in which calls ran."""

    def __init__(self) -> None:
        self.log: list[Any] = []

    def add(self, item: Any) -> None:
        self.log.append(item)

    def hold(self, gate: threading.Event, item: Any = "gate") -> None:
        self.log.append(item)
        if not gate.wait(30):
            raise TimeoutError("gate never opened")

    def add_to(self, sink: list[Any], item: Any) -> None:
        sink.append(item)

    def add_here(self, sink: list[Any], item: Any) -> None:
        sink.append((threading.get_ident(), item))

    def entries(self) -> list[Any]:
        return list(self.log)

    async def ahold(self, event: asyncio.Event) -> None:
        await event.wait()


def flush(handle: Any) -> None:
    """Wait until every call made so far on ``handle`` has reached its queue.

    Each call is posted to the home loop's inbox, which starts the call's chain
    as a task; the task's first step takes the call into a slot or the heap.  A
    callback posted behind the calls schedules the event behind those first
    steps, so it is set once they have all run (the queue's graceful stop
    counts on the same order).
    """
    loop = getattr(handle, "_chain_loop", None) or handle._loop
    reached = threading.Event()
    inbox_for(loop).post(loop.call_soon, reached.set)
    assert reached.wait(10), "the home loop never ran the calls"


def held(handle: Any) -> int:
    queue = getattr(handle, "_queue", None)
    if queue is None:
        queue = next(
            h.__self__ for h in handle._stop_hooks if isinstance(h.__self__, SubmissionQueue)
        )
    return int(queue.statistics().held)


def test_cap_holds_calls_back_and_they_all_finish_in_order(gate: threading.Event) -> None:
    with Log.options(mode="thread", max_queued_tasks=2).init() as w:
        first = w.hold(gate)
        second = w.hold(gate, "gate2")
        rest = [w.add(i) for i in range(5)]  # returned at once, held back
        assert not any(f.done() for f in rest)
        flush(w)
        assert held(w) == 5
        gate.set()
        for f in [first, second, *rest]:
            f.result(10)
        assert w.entries().result() == ["gate", "gate2", 0, 1, 2, 3, 4]


def test_priority_burst_high_calls_run_next(gate: threading.Event) -> None:
    with Log.options(mode="thread", max_queued_tasks=1).init() as w:
        first = w.hold(gate)
        low = w.add.options(priority="low")
        high = w.add.options(priority="high")
        futures = [low(("low", i)) for i in range(1000)]
        futures += [high(("high", i)) for i in range(10)]
        flush(w)
        assert held(w) == 1010
        gate.set()
        first.result(10)
        for f in futures:
            f.result(30)
        log = w.entries().result()
        assert log[1:11] == [("high", i) for i in range(10)]
        assert log[11:] == [("low", i) for i in range(1000)]


def test_priorities_across_a_pool(gate: threading.Event) -> None:
    with Log.options(mode="thread", max_workers=2, max_queued_tasks=1).init() as p:
        blocked = [p.hold(gate), p.hold(gate)]
        sink: list[Any] = []
        lows = [p.add_here.options(priority=3)(sink, "low") for _ in range(20)]
        highs = [p.add_here.options(priority="critical")(sink, "high") for _ in range(5)]
        flush(p)
        assert p.statistics().held == 25
        gate.set()
        for f in [*blocked, *lows, *highs]:
            f.result(30)
        # Every high call was handed to a worker before any low one, and each
        # worker runs what it is handed in order: on every worker, its high
        # calls ran before its low ones (across workers the threads' timing,
        # not the queue, decides what logs first).
        by_worker: dict[int, list[str]] = {}
        for ident, kind in sink:
            by_worker.setdefault(ident, []).append(kind)
        assert len(sink) == 25
        for kinds in by_worker.values():
            assert kinds == sorted(kinds)  # "high" < "low": every high first


def test_cancelled_held_back_call_never_runs(gate: threading.Event) -> None:
    with Log.options(mode="thread", max_queued_tasks=1).init() as w:
        first = w.hold(gate)
        victim = w.add("never")
        flush(w)
        assert victim.cancel()
        gate.set()
        first.result(10)
        assert w.add("after").result(10) is None
        assert "never" not in w.entries().result()
        with pytest.raises(CancelledError):
            victim.result()


def test_stop_cancels_held_back_calls(gate: threading.Event) -> None:
    w = Log.options(mode="thread", max_queued_tasks=1).init()
    running = w.hold(gate)
    waiting = [w.add(i) for i in range(3)]
    flush(w)
    w.stop(timeout=0)
    for f in waiting:
        with pytest.raises(CancelledError):
            f.result(10)
    gate.set()
    with pytest.raises(CancelledError):
        running.result(10)


def test_graceful_exit_runs_held_back_calls_first(gate: threading.Event) -> None:
    w = Log.options(mode="thread", max_queued_tasks=1).init()
    first = w.hold(gate)
    waiting = [w.add(i) for i in range(3)]
    flush(w)
    gate.set()
    w.stop(graceful=True)
    assert first.result(10) is None
    assert [f.result(10) for f in waiting] == [None] * 3


def test_defaults_per_mode() -> None:
    assert resolve("sync", "max_queued_tasks") is None
    assert resolve("asyncio", "max_queued_tasks") is None
    assert resolve("thread", "max_queued_tasks") is None
    assert resolve("process", "max_queued_tasks") == 100
    assert resolve("ray", "max_queued_tasks") == 3
    w = Log.options(mode="thread").init()
    try:
        assert w.max_queued_tasks is None
    finally:
        w.stop()


def test_temp_config_changes_the_default(gate: threading.Event) -> None:
    with temp_config(thread_max_queued_tasks=1):
        w = Log.options(mode="thread").init()
    try:
        assert w.max_queued_tasks == 1
        first = w.hold(gate)
        second = w.add(1)
        flush(w)
        assert held(w) == 1
        gate.set()
        first.result(10)
        second.result(10)
    finally:
        w.stop()


def test_pool_reports_the_per_worker_cap() -> None:
    with Log.options(mode="thread", max_workers=3, max_queued_tasks=2).init() as p:
        assert p.get_pool_stats()["max_queued_tasks"] == 2
        assert p._queue.capacity == 6


@pytest.mark.parametrize(
    "options", [{"mode": "sync"}, {"mode": "asyncio"}, {"mode": "thread", "blocking": True}]
)
def test_no_queue_in_sync_asyncio_or_blocking_mode(options: dict[str, Any]) -> None:
    from aioconc._options import resolve_options

    resolved = resolve_options([{**options, "max_queued_tasks": 1}], mode_specific={})
    assert stages_for(resolved, set()) == []


@pytest.mark.anyio
@pytest.mark.asyncio_only
async def test_asyncio_mode_ignores_the_cap() -> None:
    event = asyncio.Event()
    w = Log.options(mode="asyncio", max_queued_tasks=1).init()
    async with w:
        calls = [w.ahold(event) for _ in range(3)]
        await asyncio.sleep(0)
        assert all(f.running() for f in calls)  # all three run at once
        event.set()
        await asyncio.gather(*calls)


@pytest.mark.anyio
@pytest.mark.asyncio_only
async def test_queue_stage_alone_over_a_fake_backend() -> None:
    release = asyncio.Event()
    two_started = asyncio.Event()
    started: list[int] = []

    async def handler(call: Any) -> Any:
        started.append(call.args[0])
        if len(started) == 2:
            two_started.set()
        await release.wait()
        return call.args[0]

    queue = SubmissionQueue(2)
    handle = FakeBackend(handler).handle(stages=[queue])
    futures = [handle.run(i) for i in range(5)]
    # The handlers start a step after their chains reach the queue, and this
    # task wakes behind the handlers already scheduled: a third call let
    # through would be in started by then.
    await two_started.wait()
    assert started == [0, 1] and queue.statistics().held == 3
    assert "in_flight=2/2 held=3" in repr(queue)
    release.set()
    assert await asyncio.gather(*futures) == [0, 1, 2, 3, 4]
    assert queue.statistics().in_flight == 0


def test_queue_rejects_a_zero_cap() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        SubmissionQueue(0)


@pytest.mark.anyio
@pytest.mark.asyncio_only
async def test_graceful_hook_with_nothing_held_finishes_a_turn_later() -> None:
    queue = SubmissionQueue(1)
    assert queue.on_stop(True) is None  # no loop yet: nothing can be held
    queue.bind_loop(asyncio.get_running_loop())
    drained = queue.on_stop(True)
    assert drained is not None and not drained.done()
    await drained
