"""CONFORMANCE "TaskWorker and Executor" (147-167), "@task" (168-177), map progress."""

from __future__ import annotations

import asyncio
import itertools
import threading
from typing import Any

import pytest

from aioconc import CallLimit, WorkerStoppedError
from aioconc._backends import available_modes
from aioconc._enums import ExecutionMode
from aioconc._pool import PoolHandle
from aioconc.progress import ProgressBar
from aioconc.task import Executor, MapIterator, TaskWorker, task

MODES = [m.name.lower() for m in available_modes() if m is not ExecutionMode.Ray]
POOL_MODES = [m for m in MODES if m in ("threads", "processes")]


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def add(x: int, y: int = 0) -> int:
    return x + y


def square(x: int) -> int:
    return x * x


async def asquare(x: int) -> int:
    await asyncio.sleep(0)
    return x * x


def wait_on(gate: threading.Event, x: Any) -> Any:
    if not gate.wait(30):
        raise TimeoutError("gate never opened")
    return x


def meet(barrier: threading.Barrier, x: int) -> tuple[int, int]:
    barrier.wait(30)
    return x, threading.get_ident()


# -- TaskWorker and Executor ------------------------------------------------


def test_submit_runs_the_function(mode: str) -> None:
    with TaskWorker.options(mode=mode).init() as tw:
        assert tw.submit(add, 1, y=2).result(10) == 3


def test_submit_without_a_function_raises_type_error() -> None:
    with TaskWorker.options(mode="thread").init() as tw:
        with pytest.raises(TypeError, match="callable"):
            tw.submit(42)
        with pytest.raises(TypeError, match="needs a function"):
            tw.submit()
        with pytest.raises(TypeError, match="no bound function"):
            tw(1)


def test_bound_function_submit_call_and_override(mode: str) -> None:
    with TaskWorker.options(mode=mode).init(fn=square) as tw:
        assert tw.submit(3).result(10) == 9
        assert tw(4).result(10) == 16
        assert tw.submit(add, 1, 2).result(10) == 3  # a callable first argument is the function


def test_map_in_order_and_stops_at_the_shortest(mode: str) -> None:
    with TaskWorker.options(mode=mode).init() as tw:
        assert list(tw.map(add, [1, 2, 3], [10, 20])) == [11, 22]
        assert list(tw.map(square, [])) == []


def test_map_with_a_bound_function_passes_tuples_whole() -> None:
    with TaskWorker.options(mode="thread").init(fn=len) as tw:
        assert list(tw.map([(1, 2), (3,), ()])) == [2, 1, 0]


def test_map_starts_submitting_at_once(gate: threading.Event) -> None:
    with TaskWorker.options(mode="thread").init() as tw:
        results = tw.map(wait_on, [gate] * 3, [1, 2, 3])
        assert results.in_flight == 3  # submitted before iteration
        gate.set()
        assert list(results) == [1, 2, 3]


def test_map_timeout_raises_timeout_error(gate: threading.Event) -> None:
    with TaskWorker.options(mode="thread").init() as tw:
        results = tw.map(wait_on, [gate], [1], timeout=0)
        with pytest.raises(TimeoutError):
            next(results)
        gate.set()


def test_map_over_an_endless_iterator_is_bounded() -> None:
    in_flight: list[int] = []
    with Executor("thread", max_workers=2) as ex:
        results = ex.map(square, itertools.count(), buffersize=8)
        taken = []
        for value in results:
            in_flight.append(results.in_flight)
            taken.append(value)
            if len(taken) == 100:
                break
        results.close()
    assert taken == [i * i for i in range(100)]
    assert max(in_flight) <= 8


def test_map_chunksize_batches_items() -> None:
    with Executor("thread", max_workers=2) as ex:
        assert list(ex.map(add, range(10), range(10), chunksize=4)) == list(range(0, 20, 2))
        with pytest.raises(ValueError, match="chunksize"):
            ex.map(square, [1], chunksize=0)
        with pytest.raises(ValueError, match="buffersize"):
            ex.map(square, [1], buffersize=0)


def test_map_raises_the_first_failure_in_order() -> None:
    with Executor("thread") as ex:
        results = ex.map(lambda x: 1 // x, [1, 0, 2])
        assert next(results) == 1
        with pytest.raises(ZeroDivisionError):
            next(results)


def test_map_progress_callable_and_bar() -> None:
    seen: list[tuple[int, int]] = []
    with Executor("thread") as ex:
        out = ex.map(square, range(5), progress=lambda done, total, _: seen.append((done, total)))
        assert list(out) == [0, 1, 4, 9, 16]
        assert seen[-1] == (5, 5)
        bar = ProgressBar(total=3, disable=True)
        assert list(ex.map(square, range(3), progress=bar)) == [0, 1, 4]
        assert bar.status == "success" and bar.n == 3
        assert list(ex.map(square, range(3), progress={"disable": True})) == [0, 1, 4]


def test_submit_accepts_lambdas_and_closures(mode: str) -> None:
    offset = 5
    with TaskWorker.options(mode=mode).init() as tw:
        assert tw.submit(lambda x: x + offset, 1).result(10) == 6


def test_async_functions_run_and_run_concurrently_in_asyncio_mode() -> None:
    async def both(event: asyncio.Event, first: bool) -> bool:
        if first:
            await event.wait()
        else:
            event.set()
        return first

    async def main() -> list[bool]:
        event = asyncio.Event()
        async with TaskWorker.options(mode="asyncio").init() as tw:
            pair = tw.submit(both, event, True), tw.submit(both, event, False)
            return list(await asyncio.gather(*pair))

    assert asyncio.run(main()) == [True, False]
    with TaskWorker.options(mode="thread").init() as tw:
        assert tw.submit(asquare, 3).result(10) == 9
        assert list(tw.map(asquare, [1, 2], chunksize=2)) == [1, 4]


@pytest.mark.parametrize("pool_mode", POOL_MODES)
def test_pool_spreads_submit_and_map(pool_mode: str) -> None:
    with TaskWorker.options(mode=pool_mode, max_workers=2).init() as pool:
        assert isinstance(pool, PoolHandle)
        assert sorted(pool.submit(square, i).result(30) for i in range(4)) == [0, 1, 4, 9]
        assert pool.get_pool_stats()["load_balancer"]["total_dispatched"] == 4


def test_pool_map_runs_items_on_several_workers() -> None:
    barrier = threading.Barrier(2)  # passes only when two items run at once
    with Executor("thread", max_workers=2) as ex:
        out = list(ex.map(meet, [barrier] * 4, range(4)))
        assert [x for x, _ in out] == [0, 1, 2, 3]
        assert len({t for _, t in out}) == 2


def test_map_on_an_on_demand_pool() -> None:
    with Executor("thread", on_demand=True, max_workers=2) as ex:
        assert list(ex.map(square, range(6))) == [0, 1, 4, 9, 16, 25]


def test_executor_shapes() -> None:
    with pytest.raises(TypeError):
        Executor()  # type: ignore[call-arg]
    single = Executor("thread")
    pool = Executor("thread", max_workers=3, load_balancing="least_active")
    blocking = Executor("sync", blocking=True)
    try:
        assert type(single).__name__ == "TaskHandle" and isinstance(pool, PoolHandle)
        assert pool.get_pool_stats()["load_balancer"]["algorithm"] == "LeastActiveLoad"
        assert blocking.submit(add, 2, 3) == 5
    finally:
        for ex in (single, pool, blocking):
            ex.stop()


def test_submit_priority_option(gate: threading.Event) -> None:
    order: list[str] = []
    with Executor("thread", max_queued_tasks=1) as ex:
        first = ex.submit(wait_on, gate, "first")
        low = ex.submit(order.append, "low", priority="low")
        high = ex.submit(order.append, "high", priority="high")
        with pytest.raises(ValueError, match="priority"):
            ex.submit(square, 1, priority="urgent")
        gate.set()
        for f in (first, low, high):
            f.result(10)
    assert order == ["high", "low"]


def test_stopped_task_worker_raises() -> None:
    tw = Executor("thread")
    tw.stop()
    with pytest.raises(WorkerStoppedError, match="stopped"):
        tw.submit(square, 1)
    with pytest.raises(WorkerStoppedError, match="stopped"):
        tw.map(square, [1])


# -- @task --------------------------------------------------------------------


def test_task_returns_futures_and_keeps_metadata(mode: str) -> None:
    @task(mode=mode)
    def cube(x: int) -> int:
        """Cube it."""
        return x**3

    with cube:
        assert cube(2).result(10) == 8
        assert cube.submit(3).result(10) == 27
        assert list(cube.map(range(3))) == [0, 1, 8]
    assert cube.__name__ == "cube" and cube.__doc__ == "Cube it."
    assert cube.__module__ == __name__ and cube.__qualname__.endswith("cube")
    with pytest.raises(RuntimeError, match="stopped"):
        cube(1)


def test_task_needs_a_mode() -> None:
    with pytest.raises(TypeError, match="mode"):
        task()(square)  # type: ignore[call-overload]


def test_task_on_demand_defaults() -> None:
    threaded = task(mode="thread")(square)
    synced = task(mode="sync")(square)
    try:
        assert threaded.handle.get_pool_stats()["on_demand"] is True
        assert list(threaded.map([1, 2, 3])) == [1, 4, 9]
        assert not isinstance(synced.handle, PoolHandle)
    finally:
        threaded.stop()
        synced.stop()


def test_task_persistent_pool() -> None:
    pooled = task(mode="thread", on_demand=False, max_workers=3)(square)
    with pooled:
        assert pooled.handle.get_pool_stats()["total_workers"] == 3
        assert pooled(5).result(10) == 25


def test_task_injects_limits_unless_given() -> None:
    @task(mode="thread", limits=[CallLimit(window=1, capacity=5)])
    def uses(x: int, limits: Any = None) -> bool:
        return limits is not None and hasattr(limits, "acquire")

    with uses:
        assert uses(1).result(10) is True
        assert uses(1, limits=None).result(10) is False


def test_task_blocking_returns_values() -> None:
    with task(mode="thread", blocking=True)(square) as sq:
        assert sq(6) == 36


@pytest.mark.anyio
async def test_async_task_is_awaitable() -> None:
    @task(mode="asyncio")
    async def fetch(x: int) -> int:
        await asyncio.sleep(0)
        return x + 1

    async with fetch:
        assert await fetch(1) == 2
        assert [v async for v in fetch.map(range(3))] == [1, 2, 3]
        assert isinstance(fetch.map([]), MapIterator)
