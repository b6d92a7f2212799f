"""The five rate algorithms as pure state objects, and exact wake-ups on a virtual clock.

``FakeClockLoop`` is an asyncio loop whose clock only moves when the loop would
otherwise sleep (trio's autojump clock): timers fire at once, in order, with
``loop.time()`` reading exactly their deadline.  ``FakeClock`` is a clock moved
by hand, for code that does not run on a loop.  The other limit tests import both.
"""

from __future__ import annotations

import asyncio
import math
import random
import selectors
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from aioconc._enums import RateLimitAlgorithm
from aioconc.limits import LimitSet, RateLimit, ResourceLimit
from aioconc.limits._algorithms import (
    FixedWindowState,
    GCRAState,
    LeakyBucketState,
    RateState,
    ResourceState,
    SlidingWindowState,
    TokenBucketState,
    UnboundedState,
)
from aioconc.limits._definitions import make_state

T = TypeVar("T")

ALGORITHMS = list(RateLimitAlgorithm)


class FakeClock:
    """Monotonic seconds that move only when ``advance`` is called."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class _AutoJumpSelector(selectors.DefaultSelector):  # type: ignore[misc,valid-type]
    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self._clock = clock

    def select(self, timeout: float | None = None) -> Any:
        events = super().select(0)
        if events or timeout == 0:
            return events
        if timeout is None:  # nothing scheduled: wait for another thread for real
            return super().select(None)
        self._clock.advance(timeout)  # the loop would sleep: jump instead
        return []


class FakeClockLoop(asyncio.SelectorEventLoop):
    """An event loop on a virtual clock that jumps to the next timer when idle."""

    def __init__(self) -> None:
        self.clock = FakeClock(100.0)
        super().__init__(_AutoJumpSelector(self.clock))

    def time(self) -> float:
        return self.clock.now


def run_virtual(main: Callable[[FakeClockLoop], Awaitable[T]]) -> T:
    """Run ``main(loop)`` on a fresh ``FakeClockLoop`` and return its result."""
    # By hand rather than asyncio.Runner(loop_factory=...), which is 3.11+.
    loop = FakeClockLoop()
    try:
        return loop.run_until_complete(main(loop))  # type: ignore[arg-type]
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


# -- one state at a time ---------------------------------------------------------------

FIRST_WAIT = {  # capacity 3 per 1 s, 3 taken at t=0: seconds until one more fits
    TokenBucketState: 1 / 3,
    LeakyBucketState: 1 / 3,
    SlidingWindowState: 1.0,
    FixedWindowState: 1.0,
    GCRAState: 1 / 3,
}


@pytest.mark.parametrize("cls", list(FIRST_WAIT))
def test_capacity_then_exact_wait(cls: type[RateState]) -> None:
    state = cls(3, 1.0)
    for _ in range(3):
        assert state.try_take(0.0, 1) == 0.0
    wait = state.try_take(0.0, 1)
    assert wait == pytest.approx(FIRST_WAIT[cls])
    assert state.next_ready(0.0, 1) == pytest.approx(FIRST_WAIT[cls])
    assert state.try_take(wait * 0.99, 1) > 0.0  # not a moment early
    assert state.try_take(wait, 1) == 0.0  # and exactly on time


@pytest.mark.parametrize("cls", list(FIRST_WAIT))
def test_wait_does_not_take(cls: type[RateState]) -> None:
    state = cls(2, 1.0)
    assert state.wait(0.0, 2) == 0.0
    assert state.wait(0.0, 2) == 0.0
    assert state.available(0.0) == pytest.approx(2)


@pytest.mark.parametrize("cls", list(FIRST_WAIT))
def test_more_than_capacity_never_fits(cls: type[RateState]) -> None:
    assert cls(2, 1.0).wait(0.0, 3) == math.inf


@pytest.mark.parametrize(
    ("cls", "refunds"), [(c, c in (TokenBucketState, GCRAState)) for c in FIRST_WAIT]
)
def test_refund_only_where_the_algorithm_allows(cls: type[RateState], refunds: bool) -> None:
    state = cls(100, 60.0)
    state.take(0.0, 50)
    state.refund(0.0, 30)
    assert state.available(0.0) == pytest.approx(80 if refunds else 50)
    assert cls.refundable is refunds


def test_refund_never_exceeds_capacity() -> None:
    for state in (TokenBucketState(10, 1.0), GCRAState(10, 1.0)):
        state.take(0.0, 1)
        state.refund(0.0, 5)
        assert state.available(0.0) == pytest.approx(10)


def test_fixed_window_resets_at_aligned_boundaries() -> None:
    state = FixedWindowState(2, 10.0)
    assert state.try_take(12.0, 2) == 0.0
    assert state.try_take(19.5, 1) == pytest.approx(0.5)  # the window is [10, 20)
    assert state.try_take(20.0, 2) == 0.0


def test_sliding_window_waits_for_enough_old_entries() -> None:
    state = SlidingWindowState(4, 1.0)
    state.take(0.0, 1)
    state.take(0.2, 1)
    state.take(0.4, 2)
    assert state.wait(0.5, 2) == pytest.approx(0.7)  # the first two must leave: at 1.2
    assert state.wait(0.5, 1) == pytest.approx(0.5)  # the first one leaves at 1.0


def test_unbounded_and_resource_states() -> None:
    limit = RateLimit(key="x", window=1, capacity=math.inf)
    state = make_state(limit)
    assert isinstance(state, UnboundedState)
    assert all(state.try_take(0.0, 1e9) == 0.0 for _ in range(3))
    resource = ResourceState(2)
    assert resource.wait(0.0, 2) == 0.0
    resource.take(0.0, 2)
    assert resource.wait(0.0, 1) == math.inf  # only a release frees it
    resource.release(1)
    assert resource.stats(0.0)["current_usage"] == 1


# -- the bound each algorithm promises, on a random stream of requests ----------------


def _admit_greedily(state: RateState, seed: int, horizon: float) -> list[tuple[float, int]]:
    """Requests of 1-3 units arriving at random; each waits its exact time; return grants."""
    rng = random.Random(seed)
    now, grants = 0.0, []
    while now < horizon:
        amount = rng.randint(1, 3)
        now += rng.choice([0.0, 0.0, rng.random() * 0.3])
        wait = state.try_take(now, amount)
        if wait > 0.0:
            now += wait
            assert state.try_take(now, amount) == 0.0  # the computed wait is enough
        grants.append((now, amount))
    return grants


@pytest.mark.parametrize("seed", range(5))
def test_sliding_window_caps_every_window(seed: int) -> None:
    grants = _admit_greedily(SlidingWindowState(10, 1.0), seed, 20.0)
    for start, _ in grants:
        inside = sum(a for t, a in grants if start <= t < start + 1.0 - 1e-9)
        assert inside <= 10


@pytest.mark.parametrize("seed", range(5))
def test_fixed_window_caps_each_aligned_window(seed: int) -> None:
    grants = _admit_greedily(FixedWindowState(10, 1.0), seed, 20.0)
    for index in range(21):
        assert sum(a for t, a in grants if index <= t + 1e-9 < index + 1) <= 10


@pytest.mark.parametrize("cls", [TokenBucketState, LeakyBucketState, GCRAState])
@pytest.mark.parametrize("seed", range(5))
def test_buckets_cap_burst_plus_rate(cls: type[RateState], seed: int) -> None:
    grants = _admit_greedily(cls(10, 1.0), seed, 20.0)
    total = 0
    for now, amount in grants:
        total += amount
        assert total <= 10 + 10 * now + 1e-6  # a burst of C, then C per window
    assert total >= 10 * grants[-1][0] - 10  # and the rate is really delivered


# -- exact wake-ups through a LimitSet on the virtual clock ---------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_waiter_wakes_exactly_when_its_units_fit(algorithm: RateLimitAlgorithm) -> None:
    async def main(loop: FakeClockLoop) -> float:
        ls = LimitSet(
            [RateLimit(key="r", window=1, capacity=4, algorithm=algorithm)], clock=loop.time
        )
        start = loop.time()
        for _ in range(4):
            (await ls.async_acquire({"r": 1})).update(usage={"r": 1})
        acq = await ls.async_acquire({"r": 1})
        acq.update(usage={"r": 1})
        return loop.time() - start

    # Windows wait for the first admissions to leave (the loop starts at t=100, a
    # fixed-window boundary); buckets and GCRA for one unit's worth of rate.
    expected = 1.0 if algorithm in ("SlidingWindow", "FixedWindow") else 0.25
    assert run_virtual(main) == pytest.approx(expected)


def test_resource_waiter_needs_no_timer() -> None:
    async def main(loop: FakeClockLoop) -> float:
        ls = LimitSet([ResourceLimit(key="c", capacity=1)], clock=loop.time)
        held = await ls.async_acquire()
        waiter = asyncio.ensure_future(ls.async_acquire())
        await asyncio.sleep(0)
        assert not waiter.done()
        assert not loop._scheduled  # no timer armed: it waits for the release itself
        held.release()
        (await waiter).release()
        return loop.time()

    assert run_virtual(main) == 100.0


def test_waiters_on_several_loops_and_threads() -> None:
    ls = LimitSet([ResourceLimit(key="c", capacity=2)])
    inside, peak, lock = [0], [0], threading.Lock()

    async def one() -> None:
        async with await ls.async_acquire():
            with lock:
                inside[0] += 1
                peak[0] = max(peak[0], inside[0])
            await asyncio.sleep(0)
            with lock:
                inside[0] -= 1

    async def many() -> None:
        await asyncio.gather(*(one() for _ in range(25)))

    def sync_user() -> None:
        for _ in range(25):
            with ls.acquire():
                with lock:
                    inside[0] += 1
                    peak[0] = max(peak[0], inside[0])
                with lock:
                    inside[0] -= 1

    threads = [threading.Thread(target=asyncio.run, args=(many(),)) for _ in range(3)]
    threads.append(threading.Thread(target=sync_user))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads)
    assert 1 <= peak[0] <= 2
    assert ls.get_stats()["c"]["current_usage"] == 0
