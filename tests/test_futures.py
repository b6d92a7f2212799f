"""CONFORMANCE "Futures" (64-83), with futures made by workers in every mode."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from typing import Any

import pytest

from aioconc import BaseFuture, Future, SyncFuture, worker, wrap_future
from aioconc._proxy import WorkerHandle

from ._workers import Counter

worker(Counter)


@pytest.fixture
def handle(worker_mode: str) -> Any:
    with Counter.options(mode=worker_mode).init() as h:  # type: ignore[attr-defined]
        yield h


def blocked(
    handle: WorkerHandle,
    worker_mode: str,
    gate: threading.Event,
    value: Any = 1,
    entered: Any = None,
) -> Any:
    method = handle.await_for if worker_mode == "asyncio" else handle.wait_for
    return method(gate, value, entered)


def test_result_timeout_then_later_completion(
    worker_mode: str, handle: WorkerHandle, gate: threading.Event
) -> None:
    if worker_mode == "sync":
        pytest.skip("sync futures are done at once")
    fut = blocked(handle, worker_mode, gate, "later")
    with pytest.raises(TimeoutError):
        fut.result(timeout=0.05)
    gate.set()
    assert fut.result(10) == "later"


def test_cancelled_future_raises_cancelled_error(
    worker_mode: str, handle: WorkerHandle, gate: threading.Event
) -> None:
    if worker_mode == "sync":
        pytest.skip("sync futures are done at once")
    first = blocked(handle, worker_mode, gate)
    # A worker that runs calls one at a time queues the second call behind the
    # first; an interruptible one (asyncio) lets the running call be cancelled.
    serial = not handle._worker.capabilities.interruptible
    second = handle.record("never") if serial else first
    assert second.cancel()
    assert second.cancelled() and second.done()
    with pytest.raises(concurrent.futures.CancelledError):
        second.result()
    with pytest.raises(concurrent.futures.CancelledError):
        second.exception()
    assert second.record().status == "CANCELLED"
    gate.set()
    assert handle.inc().result(10) == 1  # later calls still complete
    if worker_mode == "threads":
        # In process mode "never" was already sent and may still have run.
        assert handle.record("after").result(10) == ["after"]  # "never" never ran


def test_done_after_success_and_failure_and_cancel_false_when_done(
    handle: WorkerHandle,
) -> None:
    ok, bad = handle.inc(), handle.fail()
    ok.result(10)
    bad.exception(10)
    assert ok.done() and bad.done()
    assert not ok.cancel() and not ok.cancelled()
    assert not bad.cancel() and not bad.cancelled()


def test_running_is_true_while_the_call_executes(
    worker_mode: str, handle: WorkerHandle, gate: threading.Event, entered: Any
) -> None:
    if worker_mode == "sync":
        pytest.skip("sync futures are done at once")
    fut = blocked(handle, worker_mode, gate, entered=entered)
    assert entered.wait(10)  # the method is running
    assert fut.running()
    gate.set()
    fut.result(10)
    assert not fut.running()


def test_running_call_cancel_returns_false_or_interrupts(
    worker_mode: str, handle: WorkerHandle, gate: threading.Event, entered: Any
) -> None:
    if worker_mode == "sync":
        pytest.skip("sync futures are done at once")
    fut = blocked(handle, worker_mode, gate, entered=entered)
    assert entered.wait(10)  # the method is running
    cancelled = fut.cancel()
    # Only a backend that can interrupt a running call (asyncio tasks) cancels it.
    assert cancelled == handle._worker.capabilities.interruptible
    gate.set()
    assert handle.inc().result(10) == 1


def test_done_callback_called_once_with_the_future(handle: WorkerHandle) -> None:
    seen: list[Any] = []
    fired = threading.Event()
    fut = handle.inc()

    def callback(f: Any) -> None:
        seen.append(f)
        fired.set()

    fut.add_done_callback(callback)
    assert fired.wait(10)
    fut.result()
    late: list[Any] = []
    fut.add_done_callback(late.append)  # already done: called at once
    assert seen == [fut] and late == [fut]


def test_setters_are_not_supported_and_uuid_is_a_string(handle: WorkerHandle) -> None:
    fut = handle.inc()
    for call in (
        lambda: fut.set_result(1),
        lambda: fut.set_exception(ValueError()),
        fut.set_running_or_notify_cancel,
    ):
        with pytest.raises(NotImplementedError):
            call()
    assert isinstance(fut.uuid, str) and fut.uuid == fut.task_id
    assert fut.uuid != handle.inc().uuid


@pytest.mark.anyio
@pytest.mark.asyncio_only
async def test_await_future(handle: WorkerHandle) -> None:
    assert await handle.inc() == 1
    with pytest.raises(ValueError):
        await handle.fail()
    aio = handle.inc().as_asyncio_future()
    assert isinstance(aio, asyncio.Future)
    assert await aio == 2


@pytest.mark.anyio
async def test_awaiting_a_long_call_uses_little_cpu(
    worker_mode: str, gate: threading.Event
) -> None:
    if worker_mode == "sync":
        pytest.skip("sync calls run inline")
    with Counter.options(mode=worker_mode).init() as handle:  # type: ignore[attr-defined]
        fut = blocked(handle, worker_mode, gate, "slept")
        timer = threading.Timer(1.0, gate.set)
        timer.start()
        cpu = time.process_time()
        assert await fut == "slept"
        assert time.process_time() - cpu < 0.1


def test_wrap_future_forms() -> None:
    mine: Future[int] = SyncFuture(result_value=1)
    assert wrap_future(mine) is mine
    cf: concurrent.futures.Future[int] = concurrent.futures.Future()
    wrapped = wrap_future(cf)
    assert isinstance(wrapped, BaseFuture) and not wrapped.done()
    cf.set_result(7)
    assert wrapped.result(1) == 7
    value = wrap_future("plain")
    assert value.done() and value.result() == "plain"
    coro = asyncio.sleep(0)
    with pytest.raises(RuntimeError):
        wrap_future(coro)


@pytest.mark.anyio
@pytest.mark.asyncio_only
async def test_wrap_asyncio_future_and_coroutine() -> None:
    loop = asyncio.get_running_loop()
    af: asyncio.Future[str] = loop.create_future()
    wrapped = wrap_future(af)
    af.cancel()
    with pytest.raises(concurrent.futures.CancelledError):
        await wrapped
    assert wrapped.cancelled()
    coro_future = wrap_future(asyncio.sleep(0, "slept"))
    assert await coro_future == "slept"


def test_sync_future() -> None:
    fut = SyncFuture(result_value=3)
    assert fut.done() and fut.result() == 3 and not fut.cancel()
    failed = SyncFuture(exception_value=KeyError("k"))
    assert isinstance(failed.exception(), KeyError)
    with pytest.raises(TypeError):
        SyncFuture(exception_value="not an exception")  # type: ignore[arg-type]


@pytest.mark.anyio
@pytest.mark.asyncio_only
async def test_blocking_on_the_home_loop_is_refused_not_deadlocked() -> None:
    with Counter.options(mode="asyncio").init() as handle:  # type: ignore[attr-defined]
        gate = threading.Event()
        fut = handle.await_for(gate)
        with pytest.raises(RuntimeError, match="await"):
            fut.result()
        gate.set()
        await fut


@pytest.mark.anyio
@pytest.mark.asyncio_only
async def test_asyncio_combinators_take_calls_directly(worker_mode: str) -> None:
    with Counter.options(mode=worker_mode).init() as handle:  # type: ignore[attr-defined]
        done_first = handle.inc()
        await done_first  # already finished when handed to gather below
        assert await asyncio.gather(done_first, handle.inc(), handle.inc()) == [1, 2, 3]
        assert await asyncio.wait_for(handle.inc(), 10) == 4
        assert await asyncio.shield(handle.inc()) == 5
        # Must wake at once (a callback registered on the loop runs on the loop).
        done, pending = await asyncio.wait_for(asyncio.wait([handle.inc(), handle.inc()]), 5)
        assert not pending
        assert sorted(f.result() for f in done) == [6, 7]
        failed = await asyncio.gather(handle.fail(), return_exceptions=True)
        assert isinstance(failed[0], ValueError)


@pytest.mark.anyio
@pytest.mark.asyncio_only
async def test_asyncio_wait_for_timeout_cancels_an_asyncio_call() -> None:
    gate = threading.Event()
    with Counter.options(mode="asyncio").init() as handle:  # type: ignore[attr-defined]
        fut = handle.await_for(gate)
        # asyncio.wait_for itself raises here, not aioconc: on 3.10 that is
        # asyncio.TimeoutError, which only became the builtin in 3.11.
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(fut, 0.05)
        assert fut.cancelled()
        gate.set()
        assert await handle.inc() == 1
