"""LimitSet and its acquisitions: CONFORMANCE items 193-216."""

from __future__ import annotations

import asyncio
import logging
import pickle
import threading
from typing import Any

import anyio
import pytest

from aioconc._enums import ExecutionMode
from aioconc.limits import (
    CallLimit,
    LimitSet,
    LimitSetAcquisition,
    RateLimit,
    ResourceLimit,
)
from tests.test_limit_algorithms import FakeClock, FakeClockLoop, run_virtual


def _tokens(capacity: float = 100, algorithm: str = "token", window: float = 60) -> RateLimit:
    return RateLimit(key="tokens", window=window, capacity=capacity, algorithm=algorithm)


def _wait_queued(ls: LimitSet, count: int = 1) -> None:
    """Block until ``count`` requests wait inside ``ls`` (woken by the engine, no polling)."""
    engine: Any = ls._backend
    with engine.queued:
        assert engine.queued.wait_for(lambda: engine.waiting >= count, timeout=10)


# 193-195 construction ----------------------------------------------------------------


def test_signature_and_attributes() -> None:
    limits = [CallLimit(window=1, capacity=5), ResourceLimit(key="conn", capacity=2)]
    ls = LimitSet(limits, False, "thread", {"region": "eu"}, None)
    assert ls.limits == limits
    assert (ls.shared, ls.mode, ls.config) == (False, ExecutionMode.Threads, {"region": "eu"})


def test_duplicate_keys_raise() -> None:
    with pytest.raises(ValueError, match="duplicate limit key 'call_count'"):
        LimitSet([CallLimit(window=1, capacity=1), CallLimit(window=2, capacity=1)])


def test_non_limits_are_rejected() -> None:
    with pytest.raises(TypeError, match="RateLimit, CallLimit or ResourceLimit"):
        LimitSet([{"key": "x"}])  # type: ignore[list-item]


def test_empty_set_never_blocks() -> None:
    ls = LimitSet(limits=[])
    for _ in range(1000):
        with ls.acquire():
            pass
    assert ls.try_acquire({"anything": 5}).successful


@pytest.mark.parametrize("mode", ["process", "ray"])
def test_remote_modes_must_be_shared(mode: str) -> None:
    with pytest.raises(ValueError, match="shared=True"):
        LimitSet([CallLimit(window=1, capacity=1)], shared=False, mode=mode)
    ls = LimitSet([CallLimit(window=1, capacity=1)], shared=True, mode=mode)
    assert ls.mode is ExecutionMode(mode)


def test_process_set_takes_configured_mp_context() -> None:
    ls = LimitSet([], shared=True, mode="process")
    assert ls.mp_context == "forkserver"
    assert LimitSet([], shared=True, mode="process", mp_context="spawn").mp_context == "spawn"


def test_unknown_mode_raises() -> None:
    with pytest.raises(ValueError, match="ExecutionMode"):
        LimitSet([], mode="threadz")


# 196-199 what is taken -----------------------------------------------------------------


def test_no_request_takes_one_of_each_call_and_resource_limit() -> None:
    ls = LimitSet([CallLimit(window=60, capacity=5), ResourceLimit(key="conn", capacity=3)])
    with ls.acquire() as acq:
        assert {k: a.requested for k, a in acq.acquisitions.items()} == {
            "call_count": 1,
            "conn": 1,
        }
        assert ls.get_stats()["conn"]["current_usage"] == 1
    assert ls.get_stats()["conn"]["current_usage"] == 0
    assert ls.get_stats()["call_count"]["available"] == pytest.approx(4)


def test_no_request_with_a_plain_rate_limit_raises() -> None:
    ls = LimitSet([CallLimit(window=60, capacity=5), _tokens()])
    with pytest.raises(ValueError, match="'tokens'"):
        ls.acquire()
    with pytest.raises(ValueError, match="'tokens'"):
        ls.try_acquire()


def test_named_request_adds_implicit_limits_but_not_other_rate_limits() -> None:
    other = RateLimit(key="other", window=60, capacity=10)
    ls = LimitSet(
        [CallLimit(window=60, capacity=5), _tokens(), other, ResourceLimit(key="c", capacity=1)]
    )
    with ls.acquire({"tokens": 30}) as acq:
        assert {k: a.requested for k, a in acq.acquisitions.items()} == {
            "tokens": 30,
            "call_count": 1,
            "c": 1,
        }
        acq.update(usage={"tokens": 30})
    assert ls.get_stats()["other"]["available"] == 10


def test_waiting_request_holds_nothing() -> None:
    ls = LimitSet([ResourceLimit(key="a", capacity=1), ResourceLimit(key="b", capacity=1)])
    held_a = ls.acquire({"a": 1, "b": 0})
    done = threading.Event()

    def both() -> None:
        ls.acquire({"a": 1, "b": 1}).release()
        done.set()

    thread = threading.Thread(target=both)
    thread.start()
    _wait_queued(ls)
    assert ls.get_stats()["b"]["current_usage"] == 0  # "b" is free while it waits
    held_a.release()
    thread.join(10)
    assert done.is_set()
    assert ls.get_stats()["a"]["current_usage"] == 0


# 197 timeouts --------------------------------------------------------------------------


def test_async_timeout_fires_at_the_deadline() -> None:
    async def main(loop: FakeClockLoop) -> float:
        ls = LimitSet([ResourceLimit(key="c", capacity=1)], clock=loop.time)
        held = await ls.async_acquire()
        start = loop.time()
        with pytest.raises(TimeoutError):
            await ls.async_acquire(timeout=2.5)
        elapsed = loop.time() - start
        held.release()
        assert ls.try_acquire().successful  # the timed-out waiter left nothing behind
        return elapsed

    assert run_virtual(main) == pytest.approx(2.5)


def test_sync_timeout_on_an_injected_clock() -> None:
    clock = FakeClock()
    ls = LimitSet([ResourceLimit(key="c", capacity=1)], clock=clock)
    held = ls.acquire()
    errors: list[BaseException] = []

    def waiter() -> None:
        try:
            ls.acquire(timeout=5)
        except TimeoutError as exc:
            errors.append(exc)

    thread = threading.Thread(target=waiter)
    thread.start()
    _wait_queued(ls)
    clock.advance(6)
    ls._backend.recheck()  # type: ignore[attr-defined]
    thread.join(10)
    assert len(errors) == 1 and "within 5" in str(errors[0])
    held.release()


def test_zero_timeout_fails_at_once_when_busy() -> None:
    ls = LimitSet([ResourceLimit(key="c", capacity=1)])
    with ls.acquire(), pytest.raises(TimeoutError):
        ls.acquire(timeout=0)


def test_sync_rate_wait_on_an_injected_clock() -> None:
    clock = FakeClock()
    ls = LimitSet([_tokens(capacity=10, window=10)], clock=clock)
    ls.acquire({"tokens": 10}).update(usage={"tokens": 10})
    granted_at: list[float] = []

    def waiter() -> None:
        acq = ls.acquire({"tokens": 3})
        granted_at.append(clock())
        acq.update(usage={"tokens": 3})
        acq.release()

    thread = threading.Thread(target=waiter)
    thread.start()
    clock.advance(3)  # before or after the waiter queued: either way it fits now
    ls._backend.recheck()  # type: ignore[attr-defined]
    thread.join(10)
    assert granted_at == [3]


# 200-202 -------------------------------------------------------------------------------


def test_more_than_capacity_raises_at_once() -> None:
    ls = LimitSet([_tokens(capacity=10), ResourceLimit(key="c", capacity=2)])
    with pytest.raises(ValueError, match="exceeds its capacity"):
        ls.acquire({"tokens": 11})
    with pytest.raises(ValueError, match="'c'"):
        ls.try_acquire({"tokens": 1, "c": 3})


@pytest.mark.parametrize("amount", [-1, True, "3", float("nan")])
def test_invalid_amounts_raise(amount: object) -> None:
    ls = LimitSet([_tokens()])
    with pytest.raises(ValueError, match="'tokens'"):
        ls.acquire({"tokens": amount})  # type: ignore[dict-item]


def test_unknown_keys_are_ignored_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    ls = LimitSet([ResourceLimit(key="c", capacity=1)])
    with caplog.at_level(logging.WARNING, logger="aioconc.limits"):
        with ls.acquire({"nope": 3}) as acq:
            assert list(acq.acquisitions) == ["c"]
            acq.update(usage={"ghost": 1})
        ls.acquire({"nope": 1}).release()
    messages = [r.getMessage() for r in caplog.records]
    assert sum("'nope'" in m for m in messages) == 1  # once per key
    assert any("'ghost'" in m for m in messages)


def test_try_acquire_never_blocks() -> None:
    ls = LimitSet([ResourceLimit(key="c", capacity=1)])
    first = ls.try_acquire()
    second = ls.try_acquire()
    assert (first.successful, second.successful) == (True, False)
    with second:  # an unsuccessful acquisition releases nothing
        pass
    assert ls.get_stats()["c"]["current_usage"] == 1
    first.release()
    assert ls.try_acquire().successful


# 203-207 acquisitions --------------------------------------------------------------------


@pytest.mark.anyio
async def test_async_acquire_and_async_with() -> None:
    ls = LimitSet([ResourceLimit(key="c", capacity=1)])
    async with await ls.async_acquire() as acq:
        assert isinstance(acq, LimitSetAcquisition)
        assert not ls.try_acquire().successful
    assert ls.try_acquire().successful


@pytest.mark.anyio
@pytest.mark.asyncio_only
async def test_async_waiter_woken_by_a_release_in_another_thread() -> None:
    ls = LimitSet([ResourceLimit(key="c", capacity=1)])
    held = await ls.async_acquire()
    task = asyncio.ensure_future(ls.async_acquire())
    await asyncio.sleep(0)
    assert not task.done()
    await anyio.to_thread.run_sync(held.release)
    (await task).release()
    assert ls.get_stats()["c"]["current_usage"] == 0


@pytest.mark.anyio
@pytest.mark.asyncio_only
async def test_cancelled_waiter_takes_nothing() -> None:
    ls = LimitSet([ResourceLimit(key="c", capacity=1)])
    held = await ls.async_acquire()
    task = asyncio.ensure_future(ls.async_acquire())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    held.release()
    assert ls.get_stats()["c"]["current_usage"] == 0
    assert ls.try_acquire().successful


def test_update_rules(caplog: pytest.LogCaptureFixture) -> None:
    ls = LimitSet([_tokens(), CallLimit(window=60, capacity=10)])
    acq = ls.acquire({"tokens": 10})
    with pytest.raises(ValueError, match="negative"):
        acq.update(usage={"tokens": -1})
    with pytest.raises(ValueError, match="usage 1"):
        acq.update(usage={"call_count": 0})
    with caplog.at_level(logging.WARNING, logger="aioconc.limits"):
        acq.update(usage={"tokens": 15})
    assert "exceeds" in caplog.text
    acq.release()
    with pytest.raises(RuntimeError, match="already released"):
        acq.update(usage={"tokens": 1})


def test_release_without_update_names_the_keys_and_still_releases() -> None:
    ls = LimitSet(
        [_tokens(), CallLimit(window=60, capacity=10), ResourceLimit(key="c", capacity=1)]
    )
    missing = r"\['call_count', 'tokens'\]"
    with pytest.raises(RuntimeError, match=missing), ls.acquire({"tokens": 5, "call_count": 2}):
        pass
    assert ls.get_stats()["c"]["current_usage"] == 0
    with ls.acquire({"tokens": 5}) as acq:  # CallLimit taken once needs no update
        acq.update(usage={"tokens": 5})


def test_body_exception_releases_and_propagates() -> None:
    ls = LimitSet([_tokens(), ResourceLimit(key="c", capacity=1)])
    with pytest.raises(KeyError, match="boom"), ls.acquire({"tokens": 5}):
        raise KeyError("boom")
    assert ls.get_stats()["c"]["current_usage"] == 0


@pytest.mark.anyio
async def test_body_exception_async_with() -> None:
    ls = LimitSet([ResourceLimit(key="c", capacity=1)])
    with pytest.raises(ZeroDivisionError):
        async with await ls.async_acquire():
            _ = 1 / 0
    assert ls.try_acquire().successful


def test_release_twice_is_harmless() -> None:
    ls = LimitSet([ResourceLimit(key="c", capacity=2)])
    acq = ls.acquire()
    acq.release()
    acq.release()
    assert ls.get_stats()["c"]["current_usage"] == 0


# 208 one holder ---------------------------------------------------------------------------


def test_capacity_one_admits_one_holder_at_a_time() -> None:
    ls = LimitSet([ResourceLimit(key="c", capacity=1)])
    inside, peak, lock = [0], [0], threading.Lock()

    def work() -> None:
        for _ in range(50):
            with ls.acquire():
                with lock:
                    inside[0] += 1
                    peak[0] = max(peak[0], inside[0])
                with lock:
                    inside[0] -= 1

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert peak[0] == 1
    assert ls.get_stats()["c"]["current_usage"] == 0


# 209-211 algorithms through the set ------------------------------------------------------


@pytest.mark.parametrize(
    ("algorithm", "after"),
    [("token", 80), ("gcra", 80), ("sliding", 50), ("leaky", 50), ("fixed", 50)],
)
def test_refunds(algorithm: str, after: float) -> None:
    clock = FakeClock()
    ls = LimitSet([_tokens(algorithm=algorithm)], clock=clock)
    with ls.acquire({"tokens": 50}) as acq:
        acq.update(usage={"tokens": 20})
    assert ls.get_stats()["tokens"]["available"] == pytest.approx(after)


@pytest.mark.parametrize("algorithm", ["leaky", "sliding"])
def test_counting_algorithms_reject_fractions(algorithm: str) -> None:
    ls = LimitSet([_tokens(algorithm=algorithm)])
    with pytest.raises(ValueError, match="whole units"):
        ls.acquire({"tokens": 1.5})
    ls.try_acquire({"tokens": 2.0}).update(usage={"tokens": 2})  # integral floats are fine


@pytest.mark.parametrize("algorithm", ["token", "gcra"])
def test_bucket_algorithms_accept_fractions(algorithm: str) -> None:
    clock = FakeClock()
    ls = LimitSet([_tokens(capacity=2.5, algorithm=algorithm)], clock=clock)
    ls.acquire({"tokens": 1.25}).update(usage={"tokens": 1.25})
    assert ls.try_acquire({"tokens": 1.25}).successful
    assert not ls.try_acquire({"tokens": 0.5}).successful


def test_sliding_window_three_per_second_admits_seven_in_two_seconds() -> None:
    async def main(loop: FakeClockLoop) -> list[float]:
        ls = LimitSet([CallLimit(window=1, capacity=3, algorithm="sliding")], clock=loop.time)
        start, times = loop.time(), []
        for _ in range(7):
            async with await ls.async_acquire():
                times.append(loop.time() - start)
        return times

    assert run_virtual(main) == pytest.approx([0, 0, 0, 1, 1, 1, 2])


# 212-213 ----------------------------------------------------------------------------------


def test_config_is_copied_onto_acquisitions() -> None:
    config = {"region": "us", "key": "k1"}
    ls = LimitSet([], config=config)
    acq = ls.acquire()
    assert acq.config == config
    acq.config["region"] = "eu"
    assert ls.config == config


def test_stats_and_lookup() -> None:
    ls = LimitSet([_tokens(), ResourceLimit(key="c", capacity=2)])
    assert ls["tokens"].capacity == 100
    with pytest.raises(KeyError, match="'nope'"):
        ls["nope"]
    stats = ls.get_stats()
    assert set(stats) == {"tokens", "c"}
    assert stats["tokens"]["available"] == 100 and stats["tokens"]["key"] == "tokens"
    assert stats["c"] == {
        "key": "c",
        "capacity": 2,
        "current_usage": 0,
        "available": 2,
        "utilization": 0.0,
    }
    assert "tokens=100/100" in repr(ls) and "waiting=0" in repr(ls)


# 216 FIFO ---------------------------------------------------------------------------------


def test_large_request_is_not_starved_by_small_ones() -> None:
    async def main(loop: FakeClockLoop) -> list[str]:
        ls = LimitSet([_tokens(capacity=10, window=10)], clock=loop.time)
        (await ls.async_acquire({"tokens": 10})).update(usage={"tokens": 10})
        order: list[str] = []

        async def take(name: str, amount: int) -> None:
            acq = await ls.async_acquire({"tokens": amount})
            acq.update(usage={"tokens": amount})
            order.append(name)

        big = asyncio.ensure_future(take("big", 8))
        await asyncio.sleep(0)
        smalls = [asyncio.ensure_future(take(f"s{i}", 1)) for i in range(5)]
        await asyncio.gather(big, *smalls)
        return order

    assert run_virtual(main) == ["big", "s0", "s1", "s2", "s3", "s4"]


def test_try_acquire_does_not_jump_the_queue() -> None:
    ls = LimitSet([ResourceLimit(key="c", capacity=2)])
    held = ls.acquire({"c": 1})
    thread = threading.Thread(target=lambda: ls.acquire({"c": 2}).release())
    thread.start()
    _wait_queued(ls)
    assert not ls.try_acquire({"c": 1}).successful  # one unit is free, but it is promised
    held.release()
    thread.join(10)
    assert ls.try_acquire({"c": 2}).successful


def test_unrelated_keys_do_not_wait_for_a_blocked_waiter() -> None:
    ls = LimitSet([ResourceLimit(key="a", capacity=1), ResourceLimit(key="b", capacity=1)])
    held = ls.acquire({"a": 1, "b": 0})
    thread = threading.Thread(target=lambda: ls.acquire({"a": 1, "b": 0}).release())
    thread.start()
    _wait_queued(ls)
    assert ls.try_acquire({"a": 0, "b": 1}).successful
    held.release()
    thread.join(10)


# pickling ---------------------------------------------------------------------------------


def test_private_set_pickles_as_its_definitions() -> None:
    ls = LimitSet([_tokens(), ResourceLimit(key="c", capacity=1)], config={"x": 1})
    held = ls.acquire({"tokens": 1})
    copy = pickle.loads(pickle.dumps(ls))
    assert copy.limits == ls.limits and copy.config == {"x": 1}
    assert copy.try_acquire({"tokens": 1}).successful  # fresh state
    held.update(usage={"tokens": 1})
    held.release()


def test_shared_set_refuses_to_pickle() -> None:
    ls = LimitSet([ResourceLimit(key="c", capacity=1)], shared=True, mode="thread")
    with pytest.raises(TypeError, match="shared LimitSet"):
        pickle.dumps(ls)
