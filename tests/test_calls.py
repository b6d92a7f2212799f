"""CONFORMANCE "Calling methods" (44-63), in every mode."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from aioconc import Future, Worker, async_gather, worker
from aioconc._proxy import WorkerHandle

from ._workers import Counter

worker(Counter)


@pytest.fixture
def handle(worker_mode: str) -> Any:
    with Counter.options(mode=worker_mode).init() as h:  # type: ignore[attr-defined]
        yield h


def test_call_returns_future_before_method_finishes(
    worker_mode: str, handle: WorkerHandle, gate: threading.Event
) -> None:
    if worker_mode == "sync":
        pytest.skip("sync mode runs the call inline")
    fut = handle.wait_for(gate, "v")
    assert isinstance(fut, Future)
    assert not fut.done()
    gate.set()
    assert fut.result(10) == "v"


def test_result_is_the_return_value(handle: WorkerHandle) -> None:
    assert handle.echo(1, k=2).result() == ((1,), {"k": 2})


@pytest.mark.parametrize("method", ["fail", "afail"])
def test_exception_keeps_type_and_message(handle: WorkerHandle, method: str) -> None:
    fut = getattr(handle, method)("bad input")
    expected = ValueError if method == "fail" else KeyError
    with pytest.raises(expected, match="bad input"):
        fut.result()
    exc = fut.exception()
    assert isinstance(exc, expected)
    assert fut.record().status == "FAILURE"


def test_sync_mode_is_done_at_return_and_raises_only_in_result() -> None:
    with Counter.options(mode="sync").init() as handle:  # type: ignore[attr-defined]
        fut = handle.fail()
        assert fut.done()
        with pytest.raises(ValueError):
            fut.result()


def test_missing_and_non_callable_and_private_names(handle: WorkerHandle) -> None:
    with pytest.raises(AttributeError):
        handle.no_such_method()
    with pytest.raises(AttributeError):
        handle.constant()
    with pytest.raises(AttributeError):
        handle._private()


def test_calls_run_in_submission_order(handle: WorkerHandle) -> None:
    futures = [handle.record(i) for i in range(200)]
    assert futures[-1].result(10) == list(range(200))


def test_state_persists_and_is_not_shared(worker_mode: str, handle: WorkerHandle) -> None:
    assert [handle.inc().result() for _ in range(3)] == [1, 2, 3]
    with Counter.options(mode=worker_mode).init() as other:  # type: ignore[attr-defined]
        assert other.inc().result() == 1
    assert handle.inc().result() == 4


def test_async_methods_run_to_completion_in_every_mode(handle: WorkerHandle) -> None:
    assert handle.ainc().result(10) == 1
    assert handle.ainc().result(10) == 2


class Concurrent(Worker):
    def __init__(self, n: int) -> None:
        self.n = n
        self.arrived = 0
        self.all_here: asyncio.Event | None = None

    async def meet(self) -> int:
        # Completes only if all n calls are running at the same time.
        if self.all_here is None:
            self.all_here = asyncio.Event()
        self.arrived += 1
        if self.arrived == self.n:
            self.all_here.set()
        await asyncio.wait_for(self.all_here.wait(), 10)
        return self.arrived

    def block(self, gate: threading.Event) -> str:
        gate.wait(10)
        return "unblocked"

    async def quick(self) -> str:
        return "quick"


def test_asyncio_async_methods_run_concurrently() -> None:
    with Concurrent.options(mode="asyncio").init(5) as handle:
        assert [f.result(10) for f in [handle.meet() for _ in range(5)]] == [5] * 5


def test_asyncio_sync_methods_do_not_block_async_methods(gate: threading.Event) -> None:
    with Concurrent.options(mode="asyncio").init(1) as handle:
        blocked = handle.block(gate)
        assert handle.quick().result(10) == "quick"
        assert not blocked.done()
        gate.set()
        assert blocked.result(10) == "unblocked"


def test_blocking_returns_values_and_raises_directly(worker_mode: str) -> None:
    with Counter.options(mode=worker_mode, blocking=True).init() as h:  # type: ignore[attr-defined]
        assert h.inc() == 1
        with pytest.raises(ValueError, match="boom"):
            h.fail()


def test_handle_reports_resolved_options(worker_mode: str) -> None:
    options = {"mode": worker_mode, "max_queued_tasks": 4, "unwrap_futures": False}
    with Counter.options(**options).init() as h:  # type: ignore[attr-defined]
        assert h.blocking is False
        assert h.max_queued_tasks == 4
        assert h.unwrap_futures is False


class Names(Worker):
    def copy(self) -> str:
        return "my copy"

    def json(self) -> str:
        return "my json"


def test_methods_named_like_framework_attributes_stay_reachable(worker_mode: str) -> None:
    with Names.options(mode=worker_mode).init() as handle:
        assert handle.copy().result() == "my copy"
        assert handle.json().result() == "my json"


@pytest.mark.parametrize("method", ["exit", "interrupt"])
def test_system_exit_fails_only_that_call(handle: WorkerHandle, method: str) -> None:
    fut = getattr(handle, method)()
    with pytest.raises((SystemExit, KeyboardInterrupt)):
        fut.result(10)
    assert handle.inc().result(10) == 1


@pytest.mark.anyio
async def test_calls_can_be_awaited(handle: WorkerHandle) -> None:
    assert await handle.inc() == 1
    assert await handle.ainc() == 2
    with pytest.raises(ValueError):
        await handle.fail()
    results = await async_gather([handle.inc() for _ in range(50)])  # any loop, trio's too
    assert results == list(range(3, 53))


def test_task_record_follows_the_call(
    worker_mode: str, handle: WorkerHandle, gate: threading.Event
) -> None:
    fut = handle.inc()
    fut.result(10)
    record = fut.record()
    assert record.status == "SUCCESS"
    assert record.result == 1
    assert record.attempts == 1
    assert record.worker is not None and record.worker.startswith("Counter")
    assert record.submitted_at <= record.started_at <= record.completed_at  # type: ignore[operator]
    assert '"status":"SUCCESS"' in record.model_dump_json()
    if worker_mode != "sync":
        pending = handle.wait_for(gate)
        assert pending.status in ("PENDING", "STARTED")
        gate.set()
        pending.result(10)
