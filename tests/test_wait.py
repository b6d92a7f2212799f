"""wait(): CONFORMANCE items 84-95."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from typing import Any

import pytest

from aioconc._future import Future
from aioconc._wait import ALL_COMPLETED, FIRST_COMPLETED, FIRST_EXCEPTION, gather, wait
from tests._wait_helpers import MakeFuture
from tests._wait_helpers import future_factory as future_factory

SLOW = 5.0  # long enough never to finish during a test; cancelled at teardown


def test_constants_are_the_names() -> None:
    assert (ALL_COMPLETED, FIRST_COMPLETED, FIRST_EXCEPTION) == (
        "ALL_COMPLETED",
        "FIRST_COMPLETED",
        "FIRST_EXCEPTION",
    )


def test_all_completed_returns_every_future_done(future_factory: MakeFuture) -> None:
    futures = [future_factory(i, delay=0.01 * i) for i in range(5)]
    done, not_done = wait(futures)
    assert done == set(futures)
    assert not_done == set()
    assert all(isinstance(f, Future) for f in done)


@pytest.mark.parametrize("shape", ["list", "tuple", "set", "dict", "single", "positional"])
def test_accepted_input_shapes(future_factory: MakeFuture, shape: str) -> None:
    futures = [future_factory(i) for i in range(3)]
    if shape == "single":
        done, not_done = wait(futures[0])
        assert done == {futures[0]}
        return
    args: dict[str, Any] = {
        "list": (futures,),
        "tuple": (tuple(futures),),
        "set": (set(futures),),
        "dict": ({f"k{i}": f for i, f in enumerate(futures)},),
        "positional": tuple(futures),
    }
    done, not_done = wait(*args[shape])
    assert done == set(futures)
    assert not not_done


@pytest.mark.parametrize("func", [wait, gather])
@pytest.mark.parametrize("collection", [list, tuple, set, dict])
def test_collection_plus_extra_futures_is_refused(
    future_factory: MakeFuture, func: Any, collection: type
) -> None:
    f1, f2 = future_factory(1), future_factory(2)
    first = {"a": f1} if collection is dict else collection([f1])
    with pytest.raises(ValueError, match="not both"):
        func(first, f2)


def test_first_completed_returns_after_one(future_factory: MakeFuture) -> None:
    fast, slow = future_factory("fast"), future_factory("slow", delay=SLOW)
    start = time.monotonic()
    done, not_done = wait([slow, fast], return_when=FIRST_COMPLETED)
    assert time.monotonic() - start < 2.0
    assert done == {fast}
    assert not_done == {slow}


def test_first_exception_returns_on_a_failure(future_factory: MakeFuture) -> None:
    ok = future_factory(1)
    bad = future_factory(exc=ValueError("boom"))
    slow = future_factory(2, delay=SLOW)
    done, not_done = wait([ok, bad, slow], return_when="first_exception")
    assert bad in done
    assert slow in not_done
    assert isinstance(bad.exception(), ValueError)


def test_first_exception_returns_when_all_succeed(future_factory: MakeFuture) -> None:
    futures = [future_factory(i, delay=0.01 * i) for i in range(4)]
    done, not_done = wait(futures, return_when=FIRST_EXCEPTION, timeout=10)
    assert done == set(futures)
    assert not not_done


def test_first_exception_ignores_cancellation(future_factory: MakeFuture) -> None:
    cancelled, slow = future_factory(delay=SLOW), future_factory(delay=SLOW)
    if not cancelled.cancel():
        pytest.skip("this kind of future cannot be cancelled while pending")
    with pytest.raises(TimeoutError):
        wait([cancelled, slow], return_when=FIRST_EXCEPTION, timeout=0.1)


def test_timeout_raises_and_future_finishes_later(
    future_factory: MakeFuture, gate: threading.Event
) -> None:
    later = future_factory("later", delay=SLOW)
    with pytest.raises(TimeoutError):
        wait([later], timeout=0.05)
    gate.set()
    assert later.result(timeout=10) == "later"


def test_timeout_zero_with_everything_done_returns(future_factory: MakeFuture) -> None:
    f = future_factory(1)
    f.result(timeout=10)
    done, not_done = wait([f], timeout=0)
    assert done == {f}
    assert not not_done


def test_plain_values_count_as_done(future_factory: MakeFuture) -> None:
    f = future_factory(1)
    done, not_done = wait([f, 2, "three", None])
    assert len(done) == 4
    assert not not_done
    assert sorted(str(d.result()) for d in done) == ["1", "2", "None", "three"]


def test_mixed_kinds(future_factory: MakeFuture) -> None:
    cf: concurrent.futures.Future[int] = concurrent.futures.Future()
    threading.Timer(0.01, cf.set_result, (7,)).start()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pooled = pool.submit(int, "8")
        done, not_done = wait([future_factory(1), cf, pooled, 9], timeout=10)
    assert sorted(f.result() for f in done) == [1, 7, 8, 9]
    assert not not_done


def test_duplicate_futures(future_factory: MakeFuture) -> None:
    f = future_factory(1, delay=0.01)
    assert wait([f, f, f]) == ({f}, set())


def test_empty_input() -> None:
    assert wait([]) == (set(), set())
    assert wait({}) == (set(), set())


def test_recurse_waits_inside_nested_collections(future_factory: MakeFuture) -> None:
    inner = [future_factory(i, delay=0.01) for i in range(3)]
    done, not_done = wait([[inner[0], inner[1]], {"x": inner[2]}], recurse=True)
    assert set(inner) <= done
    assert not not_done
    # without recurse a nested list is a plain value
    done, _ = wait([[future_factory(delay=SLOW)]], timeout=1)
    assert isinstance(next(iter(done)).result(), list)


def test_progress_callable(future_factory: MakeFuture) -> None:
    calls: list[tuple[int, int, float]] = []
    futures = [future_factory(i, delay=0.01 * i) for i in range(3)]
    wait(futures, progress=lambda c, t, e: calls.append((c, t, e)))
    assert [(c, t) for c, t, _ in calls] == [(1, 3), (2, 3), (3, 3)]
    assert all(e >= 0 for _, _, e in calls)


def test_progress_bar_options(future_factory: MakeFuture) -> None:
    pytest.importorskip("aioconc.progress")
    done, _ = wait([future_factory(1)], progress={"disable": True})
    assert len(done) == 1


def test_progress_bad_kind_is_refused(future_factory: MakeFuture) -> None:
    pytest.importorskip("aioconc.progress")
    with pytest.raises(ValueError):
        wait([future_factory(1)], progress=42)


@pytest.mark.parametrize("polling", ["fixed", "adaptive", "exponential", "progressive", "Fixed"])
def test_polling_names_accepted(future_factory: MakeFuture, polling: str) -> None:
    assert len(wait([future_factory(1)], polling=polling)[0]) == 1


def test_bad_polling_and_return_when_are_refused(future_factory: MakeFuture) -> None:
    with pytest.raises(ValueError):
        wait([future_factory(1)], polling="sometimes")
    with pytest.raises(ValueError):
        wait([future_factory(1)], return_when="WHENEVER")


def test_completion_noticed_within_10ms(future_factory: MakeFuture) -> None:
    latencies = []
    for _ in range(5):
        f = future_factory(1, delay=0.02)
        finished: list[float] = []
        f.add_done_callback(lambda _f, finished=finished: finished.append(time.perf_counter()))
        wait([f])
        latencies.append(time.perf_counter() - finished[0])
    assert sorted(latencies)[2] < 0.01


def test_waiting_burns_no_cpu(future_factory: MakeFuture) -> None:
    f = future_factory(1, delay=0.5)
    cpu = time.process_time()
    wait([f])
    assert time.process_time() - cpu < 0.1


def test_coroutines_are_refused_without_warning() -> None:
    async def coro() -> int:
        return 1

    with pytest.raises(RuntimeError, match="async_wait"):
        wait([coro(), coro()])


def test_blocking_on_own_loop_is_refused() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        pending = loop.create_future()
        with pytest.raises(RuntimeError, match="async_wait"):
            wait([pending], timeout=1)
        with pytest.raises(RuntimeError, match="async_gather"):
            gather([1, loop.create_future()], timeout=1)

    asyncio.run(main())


def test_many_futures_burst(future_factory: MakeFuture) -> None:
    futures = [future_factory(i) for i in range(300)]
    done, not_done = wait(futures, timeout=30)
    assert len(done) == 300
    assert not not_done
