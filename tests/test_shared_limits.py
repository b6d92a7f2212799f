"""Limits shared across process workers (state in the parent) and Ray workers
(state in one actor): CONFORMANCE 225, 284 and issue 6's sharing.

Admission times are taken in the workers with ``time.monotonic()`` (one system
clock for every process on the machine).  A grant reaches its worker a little
after the parent decided it, so window checks allow ``SLACK`` for that delivery:
a window of ``1 - SLACK`` seconds of worker timestamps holds only admissions
the parent made within one second.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from aioconc import (
    LimitSet,
    RateLimit,
    RateLimitAlgorithm,
    ResourceLimit,
    SerializationError,
    Worker,
    WorkerCrashedError,
    _retrying,
    gather,
)

SLACK = 0.15


class Stamper(Worker):
    """Takes one unit of the shared limit "calls" per call."""

    def pid(self) -> int:
        return os.getpid()

    def stamp(self) -> tuple[int, float]:
        with self.limits.acquire({"calls": 1}) as acq:
            acq.update(usage={"calls": 1})
            return os.getpid(), time.monotonic()


class Slots(Worker):
    """Uses a shared ResourceLimit "slot" (and whatever else the set holds)."""

    def __init__(self, spare: LimitSet | None = None) -> None:
        self.spare = spare

    def hold(self, seconds: float) -> tuple[float, float]:
        with self.limits.acquire():
            start = time.monotonic()
            time.sleep(seconds)  # the work done while holding the slot
            return start, time.monotonic()

    def hold_then_die(self) -> None:
        self.limits.acquire()  # never released: the process dies holding it
        os._exit(3)

    def keep(self) -> bool:
        self.limits.acquire()  # never released by the worker itself
        return True

    def take(self, timeout: float | None = None) -> bool:
        with self.limits.acquire(timeout=timeout):
            return True

    def try_take(self) -> bool:
        acquisition = self.limits.try_acquire()
        acquisition.release()
        return acquisition.successful

    def from_threads(self, n: int, seconds: float) -> list[tuple[float, float]]:
        spans: list[tuple[float, float]] = []

        def run() -> None:
            spans.append(self.hold(seconds))

        threads = [threading.Thread(target=run) for _ in range(n)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return spans

    async def from_coroutines(self, n: int, seconds: float) -> list[tuple[float, float]]:
        async def one() -> tuple[float, float]:
            async with await self.limits.async_acquire():
                start = time.monotonic()
                await asyncio.sleep(seconds)
                return start, time.monotonic()

        return list(await asyncio.gather(*(one() for _ in range(n))))

    async def give_up_waiting(self) -> str:
        try:
            await asyncio.wait_for(self.limits.async_acquire(), 0.05)
        except asyncio.TimeoutError:  # what wait_for raises; the builtin only from 3.11
            return "gave up"
        return "acquired"

    def available(self) -> float:
        available: float = self.limits.get_stats()["slot"]["available"]
        return available

    def spare_available(self) -> float:
        assert self.spare is not None
        with self.spare.acquire():
            available: float = self.spare.get_stats()["slot"]["available"]
        return available

    def use(self, limit_set: LimitSet) -> None:
        """Receives a shared set as a call argument (refused: it can't be pickled)."""


def _max_in_window(stamps: list[float], width: float) -> int:
    """The most stamps in any window ``[s, s + width)`` starting at a stamp."""
    best = 0
    for i in range(len(stamps)):
        end = stamps[i] + width
        best = max(best, sum(1 for s in stamps[i:] if s < end))
    return best


def _disjoint(spans: list[tuple[float, float]]) -> bool:
    spans = sorted(spans)
    return all(prev[1] <= nxt[0] for prev, nxt in itertools.pairwise(spans))


def _slot_set(mode: str = "process") -> LimitSet:
    return LimitSet([ResourceLimit(key="slot", capacity=1)], shared=True, mode=mode)


# ---------------------------------------------------------------------------
# Process workers: the state lives in the parent
# ---------------------------------------------------------------------------


def _stamps_from_four_processes(
    limits: LimitSet, calls: int, before: Callable[[], None] = lambda: None
) -> list[float]:
    with Stamper.options(mode="process", max_workers=4, limits=limits).init() as pool:
        assert len(set(gather([pool.pid() for _ in range(4)], timeout=60))) == 4  # all up
        before()
        results = gather([pool.stamp() for _ in range(calls)], timeout=60)
    assert len({pid for pid, _ in results}) == 4  # every process took its share
    return sorted(stamp for _, stamp in results)


def _per_second() -> LimitSet:
    # One algorithm spends the wall-clock seconds: the parent serves a shared
    # set with the same state objects as an in-process one, whatever their
    # algorithm, and test_limit_algorithms.py checks each algorithm's bound on a
    # virtual clock.  The sliding window, the default, has the strictest bound.
    limit = RateLimit(
        key="calls", window=1, capacity=20, algorithm=RateLimitAlgorithm.SlidingWindow
    )
    return LimitSet([limit], shared=True, mode="process")


def test_no_second_admits_more_than_20_across_a_four_process_pool() -> None:
    """RateLimit(capacity=20, window=1) shared by 4 processes, saturated by 50 calls.

    Once the four processes are up, the parent takes the burst allowance (20
    units) itself, as a client that came just before the pool would, so that
    what is measured is the rate the four processes get together: no 1-second
    window of the run holds more than 20 of their calls.
    """
    limits = _per_second()

    def spend_the_burst() -> None:
        with limits.acquire({"calls": 20}) as earlier:
            earlier.update(usage={"calls": 20})

    stamps = _stamps_from_four_processes(limits, 50, before=spend_the_burst)
    assert _max_in_window(stamps, 1.0 - SLACK) <= 20
    # 50 calls at 20 per second after a spent second: at least two seconds.
    assert stamps[-1] - stamps[0] >= 2.0 - SLACK


def test_a_fresh_limit_caps_every_second_across_a_four_process_pool() -> None:
    """The same pool on a fresh limit: the sliding window's bound holds pool-wide.

    It caps every second at 20 from the first call (the bucket algorithms and
    GCRA would start with a burst of 20 on top of their rate, and a fixed
    window admits 20 more at its next boundary: test_limit_algorithms.py).
    """
    stamps = _stamps_from_four_processes(_per_second(), 50)
    assert _max_in_window(stamps, 1.0 - SLACK) <= 20
    # 50 calls at 20 per second: 20, 20 a second later, 10 a second after that.
    assert stamps[-1] - stamps[0] >= 2.0 - SLACK


def test_a_resource_limit_is_held_by_one_process_at_a_time() -> None:
    slots = _slot_set()
    with Slots.options(mode="process", max_workers=3, limits=slots).init() as pool:
        spans = gather([pool.hold(0.02) for _ in range(9)], timeout=60)
    assert _disjoint(spans)
    assert slots.get_stats()["slot"]["available"] == 1


def test_threads_and_coroutines_of_a_process_worker_share_the_parents_state() -> None:
    slots = _slot_set()
    with (
        Slots.options(mode="process", limits=slots).init() as first,
        Slots.options(mode="process", limits=slots).init() as second,
    ):
        threads = first.from_threads(4, 0.02)
        coroutines = second.from_coroutines(4, 0.02)
        spans = threads.result(60) + coroutines.result(60)
    assert len(spans) == 8
    assert _disjoint(spans)


def test_a_process_that_dies_holding_a_resource_gives_it_back() -> None:
    slots = _slot_set()
    with (
        Slots.options(mode="process", limits=slots).init() as doomed,
        Slots.options(mode="process", limits=slots).init() as survivor,
    ):
        with pytest.raises(WorkerCrashedError):
            doomed.hold_then_die().result(30)
        assert slots.get_stats()["slot"]["available"] == 1
        assert survivor.take(timeout=30).result(30) is True


def test_timeout_try_acquire_and_an_abandoned_wait_in_a_process_worker() -> None:
    slots = _slot_set()
    with Slots.options(mode="process", limits=slots).init() as handle:
        held = slots.acquire()  # the parent holds the only slot
        with pytest.raises(TimeoutError, match="could not acquire"):
            handle.take(timeout=0.05).result(30)
        assert handle.try_take().result(30) is False
        assert handle.give_up_waiting().result(30) == "gave up"
        assert handle.available().result(30) == 0  # a round trip after the abandon
        assert slots._backend.waiting == 0  # type: ignore[attr-defined]
        held.release()
        assert handle.try_take().result(30) is True
        assert handle.available().result(30) == 1


def test_the_parent_sees_a_childs_release_before_that_calls_result() -> None:
    # Whichever thread reads the socket serves the release before the result.
    slots = _slot_set()
    with Slots.options(mode="process", limits=slots).init() as handle:
        for _ in range(50):
            assert handle.take().result(30) is True
            acquisition = slots.try_acquire()
            assert acquisition.successful
            acquisition.release()


def test_a_shared_set_reaches_a_process_worker_as_a_constructor_argument() -> None:
    spare = _slot_set()
    with Slots.options(mode="process").init(spare) as handle:
        assert handle.spare_available().result(30) == 0  # read while holding it
    assert spare.get_stats()["slot"]["available"] == 1


def test_a_shared_set_cannot_be_a_call_argument() -> None:
    slots = _slot_set()
    with (
        Slots.options(mode="process").init() as handle,
        pytest.raises(SerializationError, match="cannot be pickled"),
    ):
        handle.use(slots).result(30)


def test_a_set_of_another_mode_is_refused_by_a_process_worker() -> None:
    wrong = _slot_set("ray")
    with pytest.raises(SerializationError, match="mode='process'"):
        Slots.options(mode="process").init(wrong)


# ---------------------------------------------------------------------------
# Ray workers: the state lives in one actor
# ---------------------------------------------------------------------------


@pytest.fixture
def _ray(_ray_session: Any) -> None:
    pytest.importorskip("ray")


@pytest.mark.usefixtures("_ray")
def test_a_rate_limit_holds_across_ray_workers_and_the_driver() -> None:
    limits = LimitSet([RateLimit(key="calls", window=1, capacity=10)], shared=True, mode="ray")
    with Stamper.options(mode="ray", max_workers=2, limits=limits).init() as pool:
        results = gather([pool.stamp() for _ in range(25)], timeout=120)
        # The driver now reads the actor's state: the last window's admissions.
        assert limits.get_stats()["calls"]["current_requests"] >= 5
    stamps = sorted(stamp for _, stamp in results)
    assert len({pid for pid, _ in results}) == 2
    assert _max_in_window(stamps, 1.0 - SLACK) <= 10
    assert stamps[-1] - stamps[0] >= 2.0 - SLACK


@pytest.mark.usefixtures("_ray")
def test_a_resource_limit_is_held_by_one_ray_worker_at_a_time() -> None:
    slots = _slot_set("ray")
    with (
        Slots.options(mode="ray", limits=slots).init() as first,
        Slots.options(mode="ray", limits=slots).init() as second,
    ):
        futures = [first.hold(0.02) for _ in range(3)] + [second.hold(0.02) for _ in range(3)]
        coroutines = first.from_coroutines(3, 0.02)
        spans = gather(futures, timeout=120) + coroutines.result(120)
        held = slots.acquire()  # the driver shares the state too
        assert second.try_take().result(60) is False
        held.release()
        assert second.try_take().result(60) is True
    assert _disjoint(spans)


@pytest.mark.usefixtures("_ray")
def test_a_stopped_ray_worker_gives_back_the_resources_it_held() -> None:
    slots = _slot_set("ray")
    handle = Slots.options(mode="ray", limits=slots).init()
    assert handle.keep().result(60) is True
    assert not slots.try_acquire().successful
    handle.stop()
    with slots.acquire(timeout=60):  # granted once the limit actor hears of the stop
        pass


# ---------------------------------------------------------------------------
# Every mode
# ---------------------------------------------------------------------------


class Transient(Exception):
    pass


class FlakyInLimits(Worker):
    def __init__(self) -> None:
        self.tries = 0

    def flaky(self) -> int:
        with self.limits.acquire():
            self.tries += 1
            if self.tries < 3:
                raise Transient(f"attempt {self.tries}")
            return self.tries

    def available(self) -> float:
        available: float = self.limits.get_stats()["slot"]["available"]
        return available


def test_a_shared_set_holds_across_workers_and_pools_in_every_mode(worker_mode: str) -> None:
    """CONFORMANCE 225: one shared set, two single workers and a pool of two
    (sync and asyncio workers are single: a third worker stands in for the pool)."""
    slots = _slot_set(worker_mode)
    pool_size = 1 if worker_mode in ("sync", "asyncio") else 2
    with (
        Slots.options(mode=worker_mode, limits=slots).init() as first,
        Slots.options(mode=worker_mode, limits=slots).init() as second,
        Slots.options(mode=worker_mode, max_workers=pool_size, limits=slots).init() as pool,
    ):
        futures = [h.hold(0.01) for h in (first, second, pool, pool) for _ in range(2)]
        spans = gather(futures, timeout=120)
        assert second.available().result(60) == 1
    assert _disjoint(spans)


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The retry stage's backoff sleep, replaced by one that records and returns."""
    delays: list[float] = []

    async def sleep(delay: float) -> None:
        delays.append(delay)

    monkeypatch.setattr(_retrying, "sleep", sleep)
    return delays


def test_an_exception_inside_an_acquisition_is_retried_in_every_mode(
    worker_mode: str, no_backoff: list[float]
) -> None:
    """CONFORMANCE 245: each attempt releases the limit as the exception leaves the
    block, and the retry acquires it again."""
    limits = [ResourceLimit(key="slot", capacity=1)]
    with FlakyInLimits.options(
        mode=worker_mode, limits=limits, num_retries=3, retry_on=[Transient]
    ).init() as handle:
        future = handle.flaky()
        assert future.result(60) == 3
        assert future.attempts == 3
        assert handle.available().result(60) == 1
        assert len(no_backoff) == 2
