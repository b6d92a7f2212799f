"""CONFORMANCE "Lifecycle" (30-43), in every mode."""

from __future__ import annotations

import threading
from concurrent.futures import CancelledError
from typing import ClassVar

import pytest

from aioconc import Worker, WorkerStoppedError, worker
from aioconc._proxy import WorkerHandle

from ._workers import Counter

worker(Counter)


class SlowInit(Worker):
    built: ClassVar[list[str]] = []

    def __init__(self, tag: str) -> None:
        SlowInit.built.append(tag)

    def ok(self) -> bool:
        return True

    def built_here(self) -> list[str]:
        return list(SlowInit.built)


class BadInit(Worker):
    def __init__(self) -> None:
        raise LookupError("no such thing")

    def ok(self) -> bool:
        return True


def start(mode: str, **options: object) -> WorkerHandle:
    return Counter.options(mode=mode, **options).init()  # type: ignore[attr-defined,no-any-return]


def test_init_returns_after_user_init(worker_mode: str) -> None:
    tag = f"built-{worker_mode}"
    handle = SlowInit.options(mode=worker_mode).init(tag)
    try:
        # Where the instance lives: this process, or the worker's own process.
        shared = handle._worker.capabilities.shares_memory
        assert tag in (SlowInit.built if shared else handle.built_here().result(10))
        assert handle.ready.done()
    finally:
        handle.stop()


def test_failing_init_raises_the_users_exception(worker_mode: str) -> None:
    with pytest.raises(LookupError, match="no such thing"):
        BadInit.options(mode=worker_mode).init()


def test_stop_is_idempotent_and_later_calls_say_stopped(worker_mode: str) -> None:
    handle = start(worker_mode)
    assert handle.inc().result() == 1
    handle.stop()
    handle.stop()
    handle.stop(timeout=1)
    with pytest.raises(RuntimeError, match="stopped"):
        handle.inc()
    with pytest.raises(WorkerStoppedError):
        handle.inc()


def test_context_manager_returns_handle_and_stops_on_error(worker_mode: str) -> None:
    handle = start(worker_mode)

    def use() -> None:
        with handle as entered:
            assert entered is handle
            raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        use()
    with pytest.raises(RuntimeError, match="stopped"):
        handle.inc()


def test_pending_calls_end_cancelled_at_stop(worker_mode: str, gate: threading.Event) -> None:
    if worker_mode == "sync":
        pytest.skip("sync calls finish before the call returns")
    handle = start(worker_mode)
    method = handle.await_for if worker_mode == "asyncio" else handle.wait_for
    running = method(gate, "late")
    # Serial workers (thread, process) queue these behind the running call.
    serial = not handle._worker.capabilities.interruptible
    queued = [handle.record(i) for i in range(3)] if serial else []
    handle.stop(timeout=0.2)
    futures = [running, *queued]
    assert all(f.done() for f in futures)
    for f in futures:
        with pytest.raises(CancelledError):
            f.result()


def test_graceful_stop_delivers_in_flight_results(worker_mode: str, gate: threading.Event) -> None:
    handle = start(worker_mode)
    futures = [handle.record(i) for i in range(5)]
    gate.set()
    slow = handle.wait_for(gate, "done")
    handle.stop(timeout=10, graceful=True)
    assert futures[-1].result(0) == [0, 1, 2, 3, 4]
    assert slow.result(0) == "done"


def test_stop_uses_the_configured_stop_timeout(worker_mode: str, gate: threading.Event) -> None:
    if worker_mode == "sync":
        pytest.skip("sync calls finish before the call returns")
    handle = start(worker_mode, stop_timeout=0.1)
    blocked = handle.wait_for(gate)
    handle.stop()  # returns after ~0.1 s although the call never ends by itself
    assert blocked.cancelled()


def test_user_stop_method_runs_as_cleanup(worker_mode: str, gate: threading.Event) -> None:
    cleaned = gate  # an event that also works from a worker process

    class WithStop(Worker):
        def work(self) -> int:
            return 1

        def stop(self) -> None:
            cleaned.set()

    handle = WithStop.options(mode=worker_mode).init()
    assert handle.work().result() == 1
    handle.stop()
    assert cleaned.is_set()


@pytest.mark.anyio
async def test_async_with_waits_for_init_and_drains(worker_mode: str) -> None:
    async with Counter.options(mode=worker_mode).init(5) as handle:  # type: ignore[attr-defined]
        futures = [handle.inc() for _ in range(3)]
    assert [f.result(0) for f in futures] == [6, 7, 8]
    with pytest.raises(RuntimeError, match="stopped"):
        handle.inc()


@pytest.mark.anyio
async def test_async_with_raises_init_error(worker_mode: str) -> None:
    with pytest.raises(LookupError):
        async with BadInit.options(mode=worker_mode).init():
            pass


@pytest.mark.anyio
async def test_astop_does_not_block_the_loop(worker_mode: str, gate: threading.Event) -> None:
    handle = start(worker_mode)
    assert await handle.inc() == 1
    await handle.astop(timeout=5)
    await handle.astop()  # idempotent
    with pytest.raises(RuntimeError, match="stopped"):
        handle.inc()


@pytest.mark.anyio
async def test_await_handle_waits_for_init(worker_mode: str) -> None:
    handle = await SlowInit.options(mode=worker_mode).init("awaited")
    try:
        assert await handle.ok() is True
    finally:
        await handle.astop()


def test_no_thread_left_after_stop(worker_mode: str) -> None:
    before = set(threading.enumerate())
    handle = start(worker_mode)
    handle.inc().result()
    handle.stop()
    for thread in set(threading.enumerate()) - before:
        if thread.name.startswith("aioconc-Counter"):
            thread.join(5)
            assert not thread.is_alive()


class GatedBadInit(Worker):
    def __init__(self, gate: threading.Event) -> None:
        gate.wait(10)
        raise LookupError("failed after the gate")

    def ok(self) -> bool:
        return True


@pytest.mark.anyio
async def test_init_in_a_loop_never_blocks_and_errors_reach_every_call(
    gate: threading.Event,
) -> None:
    handle = GatedBadInit.options(mode="thread").init(gate)  # returns at once in a loop
    fut = handle.ok()  # queued behind __init__
    gate.set()
    with pytest.raises(LookupError):
        await fut
    with pytest.raises(LookupError):
        await handle.ok()
    with pytest.raises(LookupError):
        await handle


@pytest.mark.anyio
async def test_stop_from_the_home_loop_runs_the_cleanup() -> None:
    cleaned = threading.Event()

    class Cleaning(Worker):
        async def work(self) -> int:
            return 1

        def stop(self) -> None:
            cleaned.set()

    handle = Cleaning.options(mode="asyncio").init()
    assert await handle.work() == 1
    handle.stop()  # on the worker's own loop: cannot wait, must still clean up
    assert cleaned.is_set()
