"""asyncio mode on the caller's loop: an ``async def`` call's first step runs at once."""

from __future__ import annotations

import asyncio
import contextvars
import sys
from typing import Any

import pytest

from aioconc import Worker
from aioconc._private_asyncio import tasks_by_loop

pytestmark = pytest.mark.anyio

INLINE = tasks_by_loop is not None
"""First steps run inline: asyncio's private record of current tasks is usable here
(and AIOCONC_NO_PRIVATE_ASYNCIO is not set).  The rest holds either way."""

inline_only = pytest.mark.skipif(not INLINE, reason="no eager start: calls start in their tasks")

step: contextvars.ContextVar[str] = contextvars.ContextVar("step", default="caller")


@pytest.fixture(
    params=[
        pytest.param(("asyncio", {}), id="asyncio"),
        pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop"),
    ]
)
def anyio_backend(request: pytest.FixtureRequest) -> Any:
    return request.param  # these tests are about asyncio's own tasks


class Methods(Worker):
    def __init__(self) -> None:
        self.nested: Any = None

    async def at_once(self, x: int) -> int:
        return x

    async def task_of_call(self) -> Any:
        first = asyncio.current_task()
        await asyncio.sleep(0)
        return first, asyncio.current_task()

    async def times_out(self) -> str:
        try:
            async with asyncio.timeout(0.01):  # type: ignore[attr-defined]
                await asyncio.sleep(30)
        except TimeoutError:
            return "timed out"
        return "slept"

    async def group(self) -> int:
        async with asyncio.TaskGroup() as tg:  # type: ignore[attr-defined]
            parts = [tg.create_task(self.at_once(i)) for i in range(4)]
        return sum(p.result() for p in parts)

    async def fails_at_once(self) -> None:
        raise KeyError("at once")

    async def sets_then_suspends(self) -> str:
        step.set("method")
        await asyncio.sleep(0)
        return step.get()

    async def calls_itself(self, handle: Any) -> int:
        # A call made from inside another call's first step, on the same worker.
        return int(await handle.at_once(41)) + 1

    async def forever(self, started: asyncio.Event) -> None:
        started.set()
        await asyncio.sleep(30)


@inline_only
async def test_a_method_that_does_not_suspend_is_done_when_the_call_returns() -> None:
    async with Methods.options(mode="asyncio").init() as w:
        fut = w.at_once(7)
        assert fut.done()
        assert await fut == 7
        failed = w.fails_at_once()
        assert failed.done()
        with pytest.raises(KeyError):
            await failed


@pytest.mark.skipif(INLINE, reason="the eager start is on")
async def test_without_the_eager_start_a_call_starts_in_a_task_of_its_own() -> None:
    async with Methods.options(mode="asyncio").init() as w:
        fut = w.at_once(7)
        assert not fut.done()  # nothing ran inline
        assert await fut == 7
        failed = w.fails_at_once()
        assert not failed.done()
        with pytest.raises(KeyError):
            await failed


async def test_calls_done_at_once_are_gathered_as_asyncio_futures() -> None:
    async with Methods.options(mode="asyncio").init() as w:
        futs = [w.at_once(i) for i in range(5)]
        assert all(asyncio.isfuture(f) for f in futs)  # gather wraps no task around them
        before = len(asyncio.all_tasks())
        gathered = asyncio.gather(*futs)
        assert len(asyncio.all_tasks()) == before
        assert await gathered == [0, 1, 2, 3, 4]
        done, pending = await asyncio.wait(futs)
        assert done == set(futs) and not pending
        failed = w.fails_at_once()
        results = await asyncio.gather(failed, w.at_once(5), return_exceptions=True)
        assert isinstance(results[0], KeyError) and results[1] == 5


async def test_a_done_callback_on_a_call_done_at_once_runs_a_loop_turn_later() -> None:
    async with Methods.options(mode="asyncio").init() as w:
        fut = w.at_once(3)
        seen: list[Any] = []
        fut.add_done_callback(seen.append)
        assert seen == []  # never inside the registering code (asyncio.gather relies on it)
        await asyncio.sleep(0)
        assert seen == [fut]


async def test_a_call_done_at_once_serves_another_thread_s_loop() -> None:
    async with Methods.options(mode="asyncio").init() as w:
        fut = w.at_once(8)
        if not INLINE:
            await fut  # done in its task, a loop turn later: then it serves any loop

        async def elsewhere() -> list[Any]:
            assert fut.get_loop() is asyncio.get_running_loop()
            done, _ = await asyncio.wait([fut])
            return [await fut, *(await asyncio.gather(fut)), len(done)]

        assert await asyncio.to_thread(asyncio.run, elsewhere()) == [8, 8, 1]


async def test_the_method_runs_in_a_task_of_its_own_from_its_first_line() -> None:
    async with Methods.options(mode="asyncio").init() as w:
        first, later = await w.task_of_call()
        assert first is later
        assert first is not asyncio.current_task()


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.timeout and TaskGroup: 3.11+")
async def test_timeouts_and_task_groups_in_the_first_step_belong_to_the_call() -> None:
    async with Methods.options(mode="asyncio").init() as w:
        assert await w.times_out() == "timed out"  # the caller is not cancelled
        assert await w.group() == 6


async def test_context_set_in_the_first_step_stays_with_the_call() -> None:
    async with Methods.options(mode="asyncio").init() as w:
        assert await w.sets_then_suspends() == "method"
        assert step.get() == "caller"


async def test_a_call_made_inside_another_s_first_step() -> None:
    async with Methods.options(mode="asyncio").init() as w:
        assert await w.calls_itself(w) == 42


async def test_cancelling_the_awaiting_task_cancels_a_suspended_call() -> None:
    async with Methods.options(mode="asyncio").init() as w:
        started = asyncio.Event()
        fut = w.forever(started)
        if INLINE:
            assert started.is_set()  # its first step ran inside the call
        await started.wait()
        waiter = asyncio.ensure_future(_await(fut))
        await asyncio.sleep(0)  # the waiter now awaits the call
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert fut.cancelled()


async def test_cancel_of_a_call_suspended_in_its_first_step() -> None:
    async with Methods.options(mode="asyncio").init() as w:
        started = asyncio.Event()
        fut = w.forever(started)
        if INLINE:
            assert started.is_set()  # its first step ran inside the call
        await started.wait()
        assert fut.cancel()
        assert fut.cancelled()
        assert await w.at_once(1) == 1  # the worker serves on


async def test_no_task_of_the_worker_is_left_after_it_stops() -> None:
    before = asyncio.all_tasks()
    async with Methods.options(mode="asyncio").init() as w:
        for i in range(3):
            assert await w.at_once(i) == i
        await w.task_of_call()
        assert await w.at_once(3) == 3  # a spare task waits for the next call
    await asyncio.sleep(0)  # a cancelled spare task ends on its next step
    assert {t for t in asyncio.all_tasks() - before if not t.done()} == set()


async def _await(fut: Any) -> Any:
    return await fut
