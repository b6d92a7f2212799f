"""CONFORMANCE "Retries" (229-246): the retry stage, on a fake backend and in every mode.

Backoff never waits on the wall clock here: the stage's sleep is replaced by
:class:`InstantSleep` (records each wait, returns at once) or :class:`GatedSleep`
(records each wait and returns when the test releases it).
"""

from __future__ import annotations

import asyncio
import pickle
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from aioconc import Future, RetryValidationError, Worker, _retrying
from aioconc._call import Call
from aioconc._options import resolve_options
from aioconc.middleware import stages_for
from aioconc.middleware._retry import retry_stage
from aioconc.testing import FakeBackend

# ---------------------------------------------------------------------------
# Controlled time
# ---------------------------------------------------------------------------


class InstantSleep:
    """A backoff sleep that records the wait and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(0)


class GatedSleep:
    """A backoff sleep that records the wait and returns when ``release()`` is called.

    Thread-safe: the sleep runs on a worker's home loop, the test in its own thread.
    """

    def __init__(self) -> None:
        self.delays: list[float] = []
        self.entered = threading.Event()
        self.cancelled = threading.Event()
        self._waiting: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._released = False
        self._lock = threading.Lock()

    async def __call__(self, delay: float) -> None:
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        with self._lock:
            self.delays.append(delay)
            if self._released:
                return
            self._waiting.append((loop, waiter))
        self.entered.set()
        try:
            await waiter
        except asyncio.CancelledError:
            self.cancelled.set()
            raise

    def release(self) -> None:
        with self._lock:
            self._released = True
            waiting, self._waiting = self._waiting, []
        for loop, waiter in waiting:
            if not loop.is_closed():
                loop.call_soon_threadsafe(_resolve, waiter)


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


@pytest.fixture
def instant(monkeypatch: pytest.MonkeyPatch) -> InstantSleep:
    """The module-wide backoff sleep, replaced by an instant one."""
    sleep = InstantSleep()
    monkeypatch.setattr(_retrying, "sleep", sleep)
    return sleep


@pytest.fixture
def gated(monkeypatch: pytest.MonkeyPatch) -> Iterator[GatedSleep]:
    """The module-wide backoff sleep, replaced by a gated one (released at teardown)."""
    sleep = GatedSleep()
    monkeypatch.setattr(_retrying, "sleep", sleep)
    yield sleep
    sleep.release()


# ---------------------------------------------------------------------------
# The stage on a fake backend
# ---------------------------------------------------------------------------

METHODS = frozenset({"work", "other"})


def fake(
    handler: Callable[[Call], Any], sleep: Any = None, worker_class: str = "Fake", **options: Any
) -> Any:
    """A FakeBackend handle whose chain is the retry stage for ``options``."""
    resolved = resolve_options([{"mode": "asyncio", **options}], mode_specific={})
    stage = retry_stage(resolved, METHODS, worker_class=worker_class, sleep=sleep or InstantSleep())
    assert stage is not None
    return FakeBackend(handler).handle(stages=[stage])


class FailTimes:
    """A handler that raises ``exc`` for its first ``n`` calls, then returns the count."""

    def __init__(self, n: int, exc: type[BaseException] = ValueError) -> None:
        self.n = n
        self.exc = exc
        self.calls = 0

    def __call__(self, call: Call) -> int:
        self.calls += 1
        if self.calls <= self.n:
            raise self.exc(f"attempt {self.calls}")
        return self.calls


def test_num_retries_gives_up_to_n_plus_1_attempts() -> None:
    handler = FailTimes(3)
    handle = fake(handler, num_retries=3)
    fut = handle.work()
    assert fut.result(10) == 4
    assert fut.attempts == 4
    handle.stop()


def test_last_exception_propagates_when_retries_run_out() -> None:
    handler = FailTimes(10)
    handle = fake(handler, num_retries=2)
    fut = handle.work()
    with pytest.raises(ValueError, match="attempt 3"):
        fut.result(10)
    assert handler.calls == 3
    assert fut.attempts == 3
    handle.stop()


def test_retry_on_limits_retries_to_listed_types() -> None:
    handler = FailTimes(1, exc=KeyError)
    handle = fake(handler, num_retries=3, retry_on=[ValueError])
    with pytest.raises(KeyError):
        handle.work().result(10)
    assert handler.calls == 1
    handler = FailTimes(1, exc=ValueError)
    handle2 = fake(handler, num_retries=3, retry_on=[ValueError])
    assert handle2.work().result(10) == 2
    handle.stop()
    handle2.stop()


def test_retry_on_callable_gets_the_exception_and_context() -> None:
    seen: list[dict[str, Any]] = []

    def only_transient(exception: BaseException, **ctx: Any) -> bool:
        seen.append({"exception": exception, **ctx})
        return "attempt" in str(exception)

    handler = FailTimes(2)
    handle = fake(handler, worker_class="Api", num_retries=5, retry_on=only_transient)
    assert handle.work(1, k=2).result(10) == 3
    assert [s["attempt"] for s in seen] == [1, 2]
    first = seen[0]
    assert isinstance(first["exception"], ValueError)
    assert first["method_name"] == "work"
    assert first["args"] == (1,)
    assert first["kwargs"] == {"k": 2}
    assert first["worker_class"] == "Api"
    assert 0 <= seen[0]["elapsed_time"] <= seen[1]["elapsed_time"]
    handle.stop()


def test_retry_on_callable_that_raises_means_no_retry() -> None:
    def broken(exception: BaseException, **ctx: Any) -> bool:
        raise RuntimeError("filter bug")

    handler = FailTimes(1)
    handle = fake(handler, num_retries=3, retry_on=[broken])
    with pytest.raises(ValueError, match="attempt 1"):
        handle.work().result(10)
    assert handler.calls == 1
    handle.stop()


def test_retry_until_validators_get_result_and_context_and_all_must_pass() -> None:
    calls: list[tuple[Any, dict[str, Any]]] = []

    def positive(result: int, **ctx: Any) -> bool:
        calls.append((result, ctx))
        return result > 0

    def at_least_three(result: int, **ctx: Any) -> bool:
        return result >= 3

    counter = iter(range(1, 100))
    handle = fake(lambda call: next(counter), num_retries=5, retry_until=[positive, at_least_three])
    fut = handle.work("x")
    assert fut.result(10) == 3
    assert fut.attempts == 3
    assert [c[0] for c in calls] == [1, 2, 3]
    assert calls[0][1]["attempt"] == 1
    assert calls[0][1]["method_name"] == "work"
    assert calls[0][1]["args"] == ("x",)
    handle.stop()


def test_retry_validation_error_after_the_last_attempt() -> None:
    counter = iter(range(1, 100))
    handle = fake(lambda call: next(counter), num_retries=2, retry_until=lambda r, **ctx: r > 10)
    with pytest.raises(RetryValidationError) as info:
        handle.work().result(10)
    err = info.value
    assert err.attempts == 3
    assert err.all_results == [1, 2, 3]
    assert len(err.validation_errors) == 3
    assert err.method_name == "work"
    assert "work" in str(err)
    handle.stop()


def test_retry_until_applies_with_zero_retries() -> None:
    handler = FailTimes(0)
    handle = fake(handler, num_retries=0, retry_until=lambda r, **ctx: False)
    with pytest.raises(RetryValidationError) as info:
        handle.work().result(10)
    assert info.value.attempts == 1
    assert info.value.all_results == [1]
    assert handler.calls == 1
    handle.stop()


def test_a_raising_validator_is_a_failed_validation() -> None:
    def broken(result: Any, **ctx: Any) -> bool:
        raise ZeroDivisionError("validator bug")

    handle = fake(FailTimes(0), num_retries=1, retry_until=broken)
    with pytest.raises(RetryValidationError) as info:
        handle.work().result(10)
    assert info.value.attempts == 2
    assert "ZeroDivisionError" in info.value.validation_errors[0]
    handle.stop()


def test_exception_on_the_last_attempt_wins_over_validation() -> None:
    handler = FailTimes(1)
    handle = fake(handler, num_retries=0, retry_until=lambda r, **ctx: True)
    with pytest.raises(ValueError):
        handle.work().result(10)
    handle.stop()


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        ("linear", [0.5, 1.0, 1.5, 2.0]),
        ("exponential", [0.5, 1.0, 2.0, 4.0]),
        ("fibonacci", [0.5, 0.5, 1.0, 1.5]),
    ],
)
def test_backoff_without_jitter(algorithm: str, expected: list[float]) -> None:
    sleep = InstantSleep()
    options: dict[str, Any] = {"retry_algorithm": algorithm, "retry_wait": 0.5, "retry_jitter": 0}
    handle = fake(FailTimes(4), sleep=sleep, num_retries=4, **options)
    assert handle.work().result(10) == 5
    assert sleep.delays == expected
    handle.stop()


def test_backoff_with_jitter_lies_between_zero_and_the_computed_wait() -> None:
    sleep = InstantSleep()
    handle = fake(FailTimes(8), sleep=sleep, num_retries=8, retry_wait=1.0, retry_jitter=0.3)
    assert handle.work().result(10) == 9
    computed = [2.0 ** (a - 1) for a in range(1, 9)]
    assert len(sleep.delays) == 8
    assert all(0 <= d <= c for d, c in zip(sleep.delays, computed))
    assert sleep.delays != computed  # drawn, not the computed value itself
    handle.stop()


def test_per_method_dicts_use_star_for_unnamed_methods() -> None:
    handler = FailTimes(100)
    handle = fake(handler, num_retries={"*": 0, "work": 2}, retry_jitter={"*": 0.3, "other": 0})
    with pytest.raises(ValueError):
        handle.other().result(10)
    assert handler.calls == 1
    with pytest.raises(ValueError):
        handle.work().result(10)
    assert handler.calls == 4
    handle.stop()


def test_per_method_retry_until() -> None:
    handle = fake(lambda call: 0, retry_until={"*": None, "work": [lambda r, **ctx: r > 0]})
    assert handle.other().result(10) == 0
    with pytest.raises(RetryValidationError):
        handle.work().result(10)
    handle.stop()


def test_no_stage_without_retries_or_validators() -> None:
    options = resolve_options([{"mode": "thread"}], mode_specific={})
    assert retry_stage(options, METHODS) is None
    assert stages_for(options, METHODS) == []
    per_method = resolve_options(
        [{"mode": "thread", "num_retries": {"*": 0, "work": 0}}], mode_specific={}
    )
    assert retry_stage(per_method, METHODS) is None


def test_invalid_retry_options_fail_when_the_worker_is_made() -> None:
    before = set(threading.enumerate())
    with pytest.raises(ValueError, match="retry_wait"):
        Flaky.options(mode="thread", num_retries=2, retry_wait=0).init()
    started = [t for t in threading.enumerate() if t not in before and "Flaky" in t.name]
    for thread in started:  # no worker thread is left behind
        thread.join(10)
        assert not thread.is_alive()


def test_module_sleep_is_used_when_the_stage_has_none(instant: InstantSleep) -> None:
    options = resolve_options(
        [{"mode": "asyncio", "num_retries": 1, "retry_jitter": 0}], mode_specific={}
    )
    stage = retry_stage(options, METHODS)
    assert stage is not None
    handle = FakeBackend(FailTimes(1)).handle(stages=[stage])
    assert handle.work().result(10) == 2
    assert instant.delays == [1.0]
    handle.stop()


# -- cancellation and fatal exceptions ------------------------------------------


def test_cancel_during_backoff_ends_cancelled_without_another_attempt() -> None:
    sleep = GatedSleep()
    handler = FailTimes(100)
    handle = fake(handler, sleep=sleep, num_retries=5)
    fut = handle.work()
    assert sleep.entered.wait(10)
    assert fut.cancel()
    assert sleep.cancelled.wait(10)  # the backoff itself was cancelled
    assert fut.cancelled()
    assert fut.status == "CANCELLED"
    assert handler.calls == 1
    sleep.release()
    handle.stop()


def test_a_cancelled_attempt_is_never_retried() -> None:
    def cancelled(call: Call) -> Any:
        raise asyncio.CancelledError

    backend = FakeBackend(cancelled)
    options = resolve_options([{"mode": "asyncio", "num_retries": 3}], mode_specific={})
    stage = retry_stage(options, METHODS, sleep=InstantSleep())
    assert stage is not None
    handle = backend.handle(stages=[stage])
    fut = handle.work()
    with pytest.raises(asyncio.CancelledError):
        fut.result(10)
    assert fut.cancelled()
    assert len(backend.workers[0].calls) == 1
    handle.stop()


@pytest.mark.parametrize("exc", [SystemExit, KeyboardInterrupt])
def test_system_exit_and_keyboard_interrupt_are_never_retried(exc: type[BaseException]) -> None:
    handler = FailTimes(1, exc=exc)
    handle = fake(handler, num_retries=3, retry_on=[BaseException])
    with pytest.raises(exc):
        handle.work().result(10)
    assert handler.calls == 1
    handle.stop()


def test_retry_validation_error_survives_pickling() -> None:
    err = RetryValidationError(
        "m failed", attempts=2, all_results=[1], validation_errors=["a"], method_name="m"
    )
    copy = pickle.loads(pickle.dumps(err))
    assert isinstance(copy, RetryValidationError)
    assert (copy.attempts, copy.all_results, copy.validation_errors) == (2, [1], ["a"])
    assert copy.method_name == "m"


# ---------------------------------------------------------------------------
# Real workers, in every mode retries apply to
# ---------------------------------------------------------------------------


def _count_and_fail(calls: dict[str, int], n: int, key: str) -> int:
    count = calls[key] = calls.get(key, 0) + 1
    if count <= n:
        raise ConnectionError(f"{key} attempt {count}")
    return count


class Flaky(Worker):
    """Fails a given number of times per key, then succeeds; counts every call."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}

    def fail_times(self, n: int, key: str = "k") -> int:
        return _count_and_fail(self.calls, n, key)

    async def afail_times(self, n: int, key: str = "a") -> int:
        await asyncio.sleep(0)
        # Not self.fail_times(): a call to an own method is retried inside the
        # worker (test_concurry_compat), and this test counts the handle's attempts.
        return _count_and_fail(self.calls, n, key)

    def count(self, key: str = "k") -> int:
        return self.calls.get(key, 0)

    def ping(self) -> str:
        return "pong"


@pytest.fixture
def mode(worker_mode: str) -> str:
    if worker_mode == "ray":
        pytest.skip("CONFORMANCE 230 lists sync, thread, asyncio and process")
    return worker_mode


@pytest.mark.parametrize("method", ["fail_times", "afail_times"])
def test_retries_work_in_every_mode(mode: str, instant: InstantSleep, method: str) -> None:
    with Flaky.options(mode=mode, num_retries=3, retry_jitter=0).init() as handle:
        fut = getattr(handle, method)(2)
        assert fut.result(30) == 3
        assert fut.attempts == 3
        assert instant.delays == [1.0, 2.0]
        with pytest.raises(ConnectionError, match="attempt 4"):
            getattr(handle, method)(10, key="never").result(30)


def test_retry_until_and_its_error_reach_the_caller_in_every_mode(
    mode: str, instant: InstantSleep
) -> None:
    with Flaky.options(
        mode=mode, num_retries={"*": 0, "fail_times": 1}, retry_until=lambda r, **ctx: r > 5
    ).init() as handle:
        with pytest.raises(RetryValidationError) as info:
            handle.fail_times(0).result(30)
        assert info.value.attempts == 2
        assert info.value.all_results == [1, 2]
        assert info.value.method_name == "fail_times"
        with pytest.raises(RetryValidationError) as info:
            handle.ping().result(30)
        assert info.value.attempts == 1


def test_retry_context_names_the_worker_class(mode: str, instant: InstantSleep) -> None:
    seen: list[str] = []

    def record(exception: BaseException, **ctx: Any) -> bool:
        seen.append(ctx["worker_class"])
        return True

    with Flaky.options(mode=mode, num_retries=1, retry_on=record).init() as handle:
        assert handle.fail_times(1).result(30) == 2
    assert seen == ["Flaky"]


def test_worker_serves_other_calls_during_a_2s_backoff(mode: str, gated: GatedSleep) -> None:
    options = {"num_retries": 1, "retry_wait": 2.0, "retry_jitter": 0}
    with Flaky.options(mode=mode, **options).init() as handle:
        slow: Future[int] = handle.fail_times(1)
        assert gated.entered.wait(10)
        assert gated.delays == [2.0]
        assert not slow.done()
        # The worker is free while the first call waits out its backoff.
        assert handle.ping().result(30) == "pong"
        assert handle.count().result(30) == 1
        assert not slow.done()
        gated.release()
        assert slow.result(30) == 2


def test_cancel_during_backoff_with_a_real_worker(mode: str, gated: GatedSleep) -> None:
    with Flaky.options(mode=mode, num_retries=3).init() as handle:
        fut = handle.fail_times(10)
        assert gated.entered.wait(10)
        assert fut.cancel()
        assert gated.cancelled.wait(10)
        assert fut.cancelled()
        with pytest.raises(asyncio.CancelledError):
            fut.result(10)
        assert handle.count().result(30) == 1  # no attempt after the cancel


@pytest.mark.anyio
async def test_awaited_retries_on_the_running_loop(instant: InstantSleep) -> None:
    async with Flaky.options(mode="asyncio", num_retries=2, retry_jitter=0).init() as handle:
        assert await handle.afail_times(2) == 3
        assert instant.delays == [1.0, 2.0]
