"""Any event loop (SPEC §1): futures, lifecycles, waits, limits and cancellation under
trio (through anyio) as under asyncio."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from typing import Any

import anyio
import anyio.lowlevel
import pytest
import trio
import trio.testing

from aioconc import (
    FIRST_COMPLETED,
    LimitSet,
    ResourceLimit,
    Worker,
    async_gather,
    async_wait,
    wrap_future,
)

pytestmark = pytest.mark.anyio


class Jobs(Worker):
    def __init__(self) -> None:
        self.runs = 0

    def double(self, x: int) -> int:
        self.runs += 1
        return 2 * x

    async def adouble(self, x: int) -> int:
        await asyncio.sleep(0)
        return 2 * x

    def count(self) -> int:
        return self.runs

    def wait_for(self, gate: Any) -> bool:
        return bool(gate.wait(30))

    async def forever(self, started: threading.Event, cancelled: threading.Event) -> None:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    def nap(self, seconds: float) -> None:
        time.sleep(seconds)

    async def anap(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


async def _calls(worker: Any) -> list[int]:
    return [await worker.double(1), await worker.adouble(2)]


def test_futures_are_awaitable_under_trio_run(worker_mode: str) -> None:
    async def main() -> list[int]:
        async with Jobs.options(mode=worker_mode).init() as w:
            return await _calls(w)

    assert trio.run(main) == [2, 4]


def test_futures_are_awaitable_under_anyio_run_on_trio(worker_mode: str) -> None:
    async def main() -> list[int]:
        async with Jobs.options(mode=worker_mode).init() as w:
            return await _calls(w)

    assert anyio.run(main, backend="trio") == [2, 4]


@pytest.fixture
def anyio_backend() -> str:
    return "trio"


async def test_waits_and_gathers_under_trio(worker_mode: str) -> None:
    async with Jobs.options(mode=worker_mode).init() as w:
        futures = [w.double(i) for i in range(20)]
        done, not_done = await async_wait(futures, timeout=30)
        assert len(done) == 20
        assert not not_done
        assert await async_gather([w.double(i) for i in range(20)]) == [2 * i for i in range(20)]
        assert await async_gather({"a": w.double(1), "b": w.adouble(2)}) == {"a": 2, "b": 4}


async def test_a_pool_under_trio(worker_mode: str) -> None:
    if worker_mode in {"sync", "asyncio"}:
        pytest.skip("pools are for thread, process and ray workers")
    async with Jobs.options(mode=worker_mode, max_workers=2).init() as pool:
        assert await async_gather([pool.double(i) for i in range(10)]) == list(range(0, 20, 2))


async def test_async_acquire_under_trio() -> None:
    limits = LimitSet([ResourceLimit(key="slot", capacity=1)], shared=True, mode="thread")
    order: list[str] = []

    async def second() -> None:
        async with limits.async_acquire() as acq:
            assert acq.successful
            order.append("second")

    async with trio.open_nursery() as nursery, limits.async_acquire():
        nursery.start_soon(second)
        await trio.testing.wait_all_tasks_blocked()  # the second now waits for the slot
        order.append("first")
    assert order == ["first", "second"]
    with pytest.raises(TimeoutError):
        async with limits.async_acquire(), await limits.async_acquire(timeout=0.05):
            pass


async def test_a_cancel_scope_cancels_a_running_async_def_call() -> None:
    started, cancelled = threading.Event(), threading.Event()
    async with Jobs.options(mode="asyncio").init() as w:
        fut = w.forever(started, cancelled)
        with trio.CancelScope() as scope:
            async with trio.open_nursery() as nursery:

                async def cancel_once_started() -> None:
                    await trio.to_thread.run_sync(started.wait, 10)
                    scope.cancel()

                nursery.start_soon(cancel_once_started)
                await fut
        assert scope.cancelled_caught
        assert fut.cancelled()
        assert await trio.to_thread.run_sync(cancelled.wait, 10)  # the method saw it


async def test_a_cancel_scope_cancels_a_call_waiting_in_the_submission_queue(
    gate: Any,
) -> None:
    async with Jobs.options(mode="thread", max_queued_tasks=1).init() as w:
        running = w.wait_for(gate)  # takes the only place
        queued = w.double(1)  # waits client-side in the submission queue
        with trio.move_on_after(0.1) as scope:
            await queued
        assert scope.cancelled_caught
        assert queued.cancelled()
        gate.set()
        assert await running is True
        assert await w.count() == 0  # the cancelled call never ran


@pytest.mark.parametrize(
    "anyio_backend",
    [
        pytest.param(("asyncio", {}), id="asyncio"),
        pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop"),
        pytest.param(("trio", {}), id="trio"),
    ],
)
@pytest.mark.parametrize("mode", ["asyncio", "thread", "process"])
async def test_awaiting_uses_no_cpu_on_any_loop(mode: str) -> None:
    async with Jobs.options(mode=mode).init() as w:
        await w.double(0)  # start-up paid before measuring
        method = w.anap if mode == "asyncio" else w.nap
        start = time.process_time()
        await method(0.5)
        used = time.process_time() - start
    assert used <= 0.05  # SPEC: <= 0.02 s per 1 s call; loose for a shared machine


# ---------------------------------------------------------------------------
# Bare coroutines in async_wait/async_gather, on every loop
# ---------------------------------------------------------------------------

EVERY_LOOP = pytest.mark.parametrize(
    "anyio_backend",
    [
        pytest.param(("asyncio", {}), id="asyncio"),
        pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop"),
        pytest.param(("trio", {}), id="trio"),
    ],
)

label: contextvars.ContextVar[str] = contextvars.ContextVar("label", default="none")


async def triple(x: int) -> int:
    await anyio.lowlevel.checkpoint()
    return 3 * x


async def broken(message: str) -> None:
    await anyio.lowlevel.checkpoint()
    raise ValueError(message)


async def until_cancelled(started: anyio.Event, cancelled: anyio.Event) -> None:
    started.set()
    try:
        await anyio.sleep(30)
    except anyio.get_cancelled_exc_class():
        cancelled.set()
        raise


@EVERY_LOOP
async def test_async_gather_takes_bare_coroutines() -> None:
    assert await async_gather([triple(i) for i in range(5)]) == [0, 3, 6, 9, 12]
    assert await async_gather(triple(1), triple(2)) == [3, 6]
    assert await async_gather({"a": triple(1), "b": 7}) == {"a": 3, "b": 7}
    async with Jobs.options(mode="thread").init() as w:  # mixed with calls
        assert await async_gather([triple(1), w.double(2)]) == [3, 4]


@EVERY_LOOP
async def test_a_coroutine_s_failure_comes_back_as_in_asyncio() -> None:
    with pytest.raises(ValueError, match="boom"):
        await async_gather([triple(1), broken("boom")])
    results = await async_gather([triple(1), broken("kept")], return_exceptions=True)
    assert results[0] == 3
    assert isinstance(results[1], ValueError)
    assert str(results[1]) == "kept"


@EVERY_LOOP
async def test_async_wait_reports_a_coroutine_by_its_task_which_cancels_it() -> None:
    started, cancelled = anyio.Event(), anyio.Event()
    fast = triple(2)
    done, not_done = await async_wait(
        [fast, until_cancelled(started, cancelled)], return_when=FIRST_COMPLETED, timeout=30
    )
    assert len(done) == 1
    assert len(not_done) == 1
    assert [handle.result() for handle in done] == [6]
    (slow,) = not_done
    with anyio.fail_after(10):
        await started.wait()  # the slow one runs on while nobody waits for it
    assert slow.cancel()
    with anyio.fail_after(10):
        await cancelled.wait()
    assert slow.cancelled()


@EVERY_LOOP
async def test_async_gather_timeout_cancels_its_coroutines() -> None:
    started, cancelled = anyio.Event(), anyio.Event()
    with pytest.raises(TimeoutError):
        await async_gather([until_cancelled(started, cancelled)], timeout=0.05)
    with anyio.fail_after(10):
        await cancelled.wait()


async def test_a_trio_cancel_scope_around_async_gather_cancels_its_coroutines() -> None:
    started, cancelled = anyio.Event(), anyio.Event()
    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(async_gather, [until_cancelled(started, cancelled)])
            await started.wait()
            scope.cancel()
    assert scope.cancelled_caught
    with anyio.fail_after(10):
        await cancelled.wait()


@EVERY_LOOP
async def test_a_coroutine_sees_the_caller_s_context() -> None:
    async def read() -> str:
        await anyio.lowlevel.checkpoint()
        return label.get()

    token = label.set("mine")
    try:
        assert await async_gather([read(), read()]) == ["mine", "mine"]
    finally:
        label.reset(token)


@EVERY_LOOP
async def test_wrap_future_schedules_a_coroutine_on_the_running_loop() -> None:
    assert await wrap_future(triple(5)) == 15
