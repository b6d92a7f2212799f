"""async_wait() and async_gather(): CONFORMANCE items 110-118."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time

import pytest

from aioconc._future import Future
from aioconc._wait import FIRST_COMPLETED, FIRST_EXCEPTION, async_gather, async_wait
from tests._wait_helpers import MakeFuture
from tests._wait_helpers import future_factory as future_factory

SLOW = 5.0  # long enough never to finish during a test; cancelled at teardown
pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def double(x: int) -> int:
    await asyncio.sleep(0)
    return 2 * x


async def fail(exc: BaseException) -> None:
    await asyncio.sleep(0)
    raise exc


async def test_gather_coroutines_in_order() -> None:
    assert await async_gather([double(i) for i in range(5)]) == [0, 2, 4, 6, 8]


async def test_gather_dict() -> None:
    assert await async_gather({"a": double(1), "b": double(2)}) == {"a": 2, "b": 4}


async def test_gather_positional_and_empty() -> None:
    assert await async_gather(double(1), double(2)) == [2, 4]
    assert await async_gather([]) == []
    assert await async_gather({}) == {}


async def test_gather_raises_first_failure_in_input_order() -> None:
    with pytest.raises(ValueError):
        await async_gather([double(1), fail(ValueError()), fail(KeyError())])


async def test_gather_return_exceptions() -> None:
    error = ValueError("x")
    assert await async_gather([double(1), fail(error)], return_exceptions=True) == [2, error]


async def test_gather_timeout_cancels_unfinished(future_factory: MakeFuture) -> None:
    never = asyncio.Event()
    task = asyncio.ensure_future(never.wait())
    slow = future_factory(delay=SLOW)
    with pytest.raises(TimeoutError):
        await async_gather([task, slow, double(1)], timeout=0.05)
    await asyncio.wait({task}, timeout=5)
    assert task.cancelled()
    # Cancelled, unless it is a running thread-mode call, which cannot be interrupted.
    assert slow.cancelled() or slow.running()


async def test_gather_cancelled_from_outside_cancels_unfinished() -> None:
    never = asyncio.Event()
    inner = asyncio.ensure_future(never.wait())
    started = asyncio.Event()

    async def run() -> None:
        started.set()
        await async_gather([inner])

    outer = asyncio.ensure_future(run())
    await started.wait()
    outer.cancel()
    await asyncio.wait({outer, inner}, timeout=5)
    assert outer.cancelled()
    assert inner.cancelled()


async def test_gather_plain_values_unchanged() -> None:
    marker = object()
    assert await async_gather([1, "two", marker, None]) == [1, "two", marker, None]


async def test_gather_library_and_concurrent_futures(future_factory: MakeFuture) -> None:
    cf: concurrent.futures.Future[str] = concurrent.futures.Future()
    threading.Timer(0.01, cf.set_result, ("cf",)).start()
    loop_future = asyncio.get_running_loop().create_future()
    loop_future.set_result("asyncio")
    result = await async_gather([future_factory("lib", delay=0.02), cf, loop_future, double(2)])
    assert result == ["lib", "cf", "asyncio", 4]


async def test_gather_fail_fast(future_factory: MakeFuture) -> None:
    start = time.monotonic()
    with pytest.raises(KeyError):
        await async_gather([future_factory(delay=SLOW), fail(KeyError())], fail_fast=True)
    assert time.monotonic() - start < 2.0


async def test_gather_recurse(future_factory: MakeFuture) -> None:
    nested = [[double(1), future_factory(2)], {"x": double(3)}]
    assert await async_gather(nested, recurse=True) == [[2, 2], {"x": 6}]


async def test_gather_progress_callable(future_factory: MakeFuture) -> None:
    calls: list[tuple[int, int]] = []
    futures = [future_factory(i) for i in range(3)]
    assert await async_gather(futures, progress=lambda c, t, e: calls.append((c, t))) == [0, 1, 2]
    assert calls == [(1, 3), (2, 3), (3, 3)]


async def test_gather_cancelled_library_future(future_factory: MakeFuture) -> None:
    f = future_factory(delay=SLOW)
    if not f.cancel():
        pytest.skip("this kind of future cannot be cancelled while pending")
    result = await async_gather([f], return_exceptions=True)
    assert isinstance(result[0], concurrent.futures.CancelledError)


async def test_wait_first_completed(future_factory: MakeFuture) -> None:
    slow = future_factory(delay=SLOW)
    fast = asyncio.ensure_future(double(1))
    done, not_done = await async_wait([slow, fast], return_when=FIRST_COMPLETED)
    assert done == {fast}
    assert not_done == {slow}


async def test_wait_reports_inputs_as_themselves(future_factory: MakeFuture) -> None:
    lib = future_factory(1)
    cf: concurrent.futures.Future[int] = concurrent.futures.Future()
    cf.set_result(2)
    coro = double(3)
    done, not_done = await async_wait([lib, cf, coro, 4])
    assert not not_done
    assert lib in done
    assert cf in done
    tasks = [d for d in done if isinstance(d, asyncio.Task)]
    assert len(tasks) == 1
    assert tasks[0].result() == 6
    plain = [d for d in done if isinstance(d, Future) and d is not lib]
    assert [p.result() for p in plain] == [4]


async def test_wait_timeout(future_factory: MakeFuture) -> None:
    with pytest.raises(TimeoutError):
        await async_wait([future_factory(delay=SLOW)], timeout=0.05)


async def test_wait_first_exception_returns_on_failure(future_factory: MakeFuture) -> None:
    slow = future_factory(delay=SLOW)
    bad = asyncio.ensure_future(fail(ValueError()))
    done, not_done = await async_wait([slow, bad], return_when=FIRST_EXCEPTION)
    assert done == {bad}
    assert not_done == {slow}


async def test_wait_first_exception_returns_when_all_succeed(future_factory: MakeFuture) -> None:
    futures = [future_factory(i, delay=0.01 * i) for i in range(3)]
    done, not_done = await async_wait(futures, return_when=FIRST_EXCEPTION, timeout=10)
    assert done == set(futures)
    assert not not_done


async def test_wait_refuses_collection_plus_extra() -> None:
    with pytest.raises(ValueError):
        await async_wait([1], 2)
    with pytest.raises(ValueError):
        await async_gather({"a": 1}, 2)


async def test_loop_is_not_blocked(future_factory: MakeFuture) -> None:
    gathering = asyncio.ensure_future(async_gather([future_factory(1, delay=0.5)]))
    ran = asyncio.Event()
    asyncio.get_running_loop().call_soon(ran.set)
    await asyncio.wait_for(ran.wait(), timeout=0.25)
    assert not gathering.done()
    assert await gathering == [1]


async def test_completion_noticed_quickly(future_factory: MakeFuture) -> None:
    latencies = []
    for _ in range(5):
        f = future_factory(1, delay=0.02)
        finished: list[float] = []
        f.add_done_callback(lambda _f, finished=finished: finished.append(time.perf_counter()))
        await async_wait([f])
        latencies.append(time.perf_counter() - finished[0])
    assert sorted(latencies)[2] < 0.01


async def test_many_futures_burst(future_factory: MakeFuture) -> None:
    futures = [future_factory(i) for i in range(300)]
    assert await async_gather(futures, timeout=30) == list(range(300))
