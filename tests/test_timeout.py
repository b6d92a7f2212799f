"""Per-call timeouts and cancellation through the chain (issue 6, SPEC "real cancellation").

A timed-out call here always waits on something that never comes (an event the
test opens only afterwards), so the only way it can end is its deadline: the
limits are small, and nothing asserts how long anything took.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from aioconc import Worker, _retrying
from aioconc._backends import get_backend
from aioconc._call import Call
from aioconc._enums import ExecutionMode
from aioconc._exceptions import AioconcError, CallTimeoutError
from aioconc._options import resolve_options
from aioconc.middleware import stages_for
from aioconc.middleware._retry import retry_stage
from aioconc.middleware._timeout import timeout_stage
from aioconc.testing import FakeBackend

SHORT = 0.05  # seconds; only ever waited out by calls that cannot finish


# ---------------------------------------------------------------------------
# The stage on a fake backend
# ---------------------------------------------------------------------------


class Hang:
    """A handler that waits forever (until cancelled) and records the cancellation."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.cancelled = threading.Event()
        self.calls: list[Call] = []

    async def __call__(self, call: Call) -> Any:
        self.calls.append(call)
        self.started.set()
        try:
            await asyncio.get_running_loop().create_future()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise


def test_deadline_fails_the_call_with_call_timeout_error_and_cancels_the_attempt() -> None:
    hang = Hang()
    handle = FakeBackend(hang).handle(stages=[timeout_stage(SHORT)])
    fut = handle.work()
    with pytest.raises(CallTimeoutError, match=r"work\(\).*0\.05 s") as info:
        fut.result(30)
    assert isinstance(info.value, TimeoutError)
    assert isinstance(info.value, AioconcError)
    assert hang.cancelled.wait(10)  # the attempt's coroutine was really cancelled
    assert fut.status == "FAILURE"
    handle.stop()


def test_per_call_timeout_overrides_the_workers() -> None:
    hang = Hang()
    handle = FakeBackend(hang).handle(stages=[timeout_stage(3600)])
    with pytest.raises(CallTimeoutError, match=r"0\.05 s"):
        handle.work.options(timeout=SHORT)().result(30)
    handle.stop()
    quick = FakeBackend(lambda call: "done").handle(stages=[timeout_stage(SHORT)])
    assert quick.work.options(timeout=3600)().result(30) == "done"
    quick.stop()


def test_no_limit_passes_calls_through() -> None:
    handle = FakeBackend(lambda call: call.args).handle(stages=[timeout_stage(None)])
    assert handle.work(1, 2).result(30) == (1, 2)
    handle.stop()


def test_a_call_that_ran_inline_past_its_deadline_times_out() -> None:
    def blocks_the_loop(call: Call) -> str:
        time.sleep(0.2)  # the work itself: a loop-blocking call, as in sync mode
        return "late"

    handle = FakeBackend(blocks_the_loop).handle(stages=[timeout_stage(0.01)])
    with pytest.raises(CallTimeoutError):
        handle.work().result(30)
    handle.stop()


def test_invalid_timeouts_are_rejected() -> None:
    for bad in (0, -1.0, True):
        with pytest.raises(ValueError, match="timeout"):
            timeout_stage(bad)
    handle = FakeBackend(lambda call: 1).handle(stages=[timeout_stage(None)])
    with pytest.raises(ValueError, match="timeout"):
        handle.work.options(timeout=0)
    handle.stop()


def test_cancel_is_not_turned_into_a_timeout() -> None:
    hang = Hang()
    handle = FakeBackend(hang).handle(stages=[timeout_stage(3600)])
    fut = handle.work()
    assert hang.started.wait(10)
    assert fut.cancel()
    assert hang.cancelled.wait(10)
    assert fut.cancelled()
    handle.stop()


def test_on_timeout_hook_gets_the_call_and_its_errors_are_only_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    hang = Hang()
    seen: list[Call] = []

    def hook(call: Call) -> None:
        seen.append(call)
        raise RuntimeError("hook bug")

    handle = FakeBackend(hang).handle(stages=[timeout_stage(SHORT, on_timeout=hook)])
    with caplog.at_level(logging.ERROR, logger="aioconc"), pytest.raises(CallTimeoutError):
        handle.work("arg").result(30)
    assert len(seen) == 1
    assert seen[0].method == "work"
    assert seen[0].args is hang.calls[0].args  # how a backend finds its attempt
    assert "on_timeout hook" in caplog.text
    handle.stop()


def test_the_deadline_applies_per_attempt_inside_retries() -> None:
    attempts: list[int] = []

    async def first_hangs(call: Call) -> str:
        attempts.append(1)
        if len(attempts) == 1:
            await asyncio.get_running_loop().create_future()
        return f"attempt {len(attempts)}"

    async def no_wait(delay: float) -> None:
        pass

    options = resolve_options([{"mode": "asyncio", "num_retries": 2}], mode_specific={})
    retry = retry_stage(options, {"work"}, sleep=no_wait)
    assert retry is not None
    handle = FakeBackend(first_hangs).handle(stages=[retry, timeout_stage(SHORT)])
    fut = handle.work()
    assert fut.result(30) == "attempt 2"
    assert fut.attempts == 2
    handle.stop()


def test_stages_for_adds_the_timeout_stage_when_needed() -> None:
    def options(**kw: Any) -> Any:
        return resolve_options([{"mode": "thread", **kw}], mode_specific={})

    assert stages_for(options(), ["m"]) == []  # no policy: the direct path
    assert len(stages_for(options(timeout=1.0), ["m"])) == 1
    # With any other stage, the timeout stage is there for per-call timeouts.
    assert len(stages_for(options(num_retries=1), ["m"])) == 2


# ---------------------------------------------------------------------------
# Real workers
# ---------------------------------------------------------------------------


class Sleepy(Worker):
    """Methods that wait for the test, and a log of what ran."""

    def __init__(self) -> None:
        self.log: list[Any] = []
        self.cancelled = False

    def record(self, item: Any) -> list[Any]:
        self.log.append(item)
        return list(self.log)

    def wait_for(self, gate: threading.Event, value: Any = None) -> Any:
        if not gate.wait(30):
            raise RuntimeError("gate never opened")
        return value

    async def hang(self, started: threading.Event, done: threading.Event) -> None:
        started.set()
        try:
            await asyncio.get_running_loop().create_future()
        except asyncio.CancelledError:
            self.cancelled = True
            done.set()
            raise

    def nap(self, seconds: float) -> str:
        time.sleep(seconds)
        return "awake"

    def ping(self) -> str:
        return "pong"


@pytest.fixture
def gated_mode(worker_mode: str) -> str:
    """Modes where a test's threading.Event reaches the method (shared memory) and a
    call can wait on it without blocking the caller (not sync mode's inline calls)."""
    caps = get_backend(ExecutionMode(worker_mode)).capabilities
    if not caps.shares_memory or caps.blocking_dispatch:
        pytest.skip("needs a shared-memory worker that does not run calls inline")
    return worker_mode


@pytest.fixture
def opened(gate: threading.Event) -> Iterator[threading.Event]:
    yield gate
    gate.set()


def test_per_call_timeout_on_a_worker_without_policy(gated_mode: str, opened: Any) -> None:
    with Sleepy.options(mode=gated_mode).init() as handle:
        with pytest.raises(CallTimeoutError, match="wait_for"):
            handle.wait_for.options(timeout=SHORT)(opened).result(30)
        # Calls without a timeout keep the direct path to the backend.
        assert handle._dispatch == handle._worker.dispatch
        opened.set()
        assert handle.ping().result(30) == "pong"


def test_worker_timeout_option_and_per_call_override(gated_mode: str, opened: Any) -> None:
    with Sleepy.options(mode=gated_mode, timeout=SHORT).init() as handle:
        with pytest.raises(CallTimeoutError):
            handle.wait_for(opened).result(30)
        opened.set()
        assert handle.wait_for.options(timeout=3600)(opened, "v").result(30) == "v"
        assert handle.ping().result(30) == "pong"


def test_a_timed_out_call_that_has_not_started_never_runs(gated_mode: str, opened: Any) -> None:
    with Sleepy.options(mode=gated_mode).init() as handle:
        busy = handle.wait_for(opened, "first")  # occupies the worker's one thread
        with pytest.raises(CallTimeoutError):
            handle.record.options(timeout=SHORT)("never").result(30)
        opened.set()
        assert busy.result(30) == "first"
        assert handle.record("after").result(30) == ["after"]


def test_a_running_thread_call_is_dropped_and_the_worker_keeps_serving(
    gated_mode: str, opened: Any
) -> None:
    with Sleepy.options(mode=gated_mode, timeout=SHORT).init() as handle:
        fut = handle.wait_for(opened, "late")
        with pytest.raises(CallTimeoutError):
            fut.result(30)
        opened.set()
        assert handle.ping().result(30) == "pong"
        assert fut.exception(30).__class__ is CallTimeoutError  # the late result was dropped


def test_a_graceful_stop_lets_the_calls_with_a_per_call_timeout_through(worker_mode: str) -> None:
    # A worker with no chain sends them through a timeout-only chain made on
    # first use: a graceful stop waits until each has gone through it, so none
    # reaches the worker after it closed.
    handle = Sleepy.options(mode=worker_mode).init()
    ping = handle.ping.options(timeout=3600)
    futures = [ping() for _ in range(50)]
    handle.stop(graceful=True)
    assert [fut.result(30) for fut in futures] == ["pong"] * 50


def test_sync_mode_call_past_its_deadline_times_out() -> None:
    with Sleepy.options(mode="sync", timeout=0.01).init() as handle:
        with pytest.raises(CallTimeoutError):
            handle.nap(0.2).result(30)
        assert handle.ping().result(30) == "pong"


def test_cancel_of_a_running_asyncio_call_with_a_chain_cancels_its_coroutine() -> None:
    started, done = threading.Event(), threading.Event()
    with Sleepy.options(mode="asyncio", timeout=3600).init() as handle:
        fut = handle.hang(started, done)
        assert started.wait(10)
        assert fut.cancel()
        assert done.wait(10)
        assert fut.cancelled()
        assert handle.ping().result(30) == "pong"


def test_timeout_of_a_running_asyncio_call_cancels_its_coroutine() -> None:
    started, done = threading.Event(), threading.Event()
    with Sleepy.options(mode="asyncio").init() as handle:
        with pytest.raises(CallTimeoutError):
            handle.hang.options(timeout=SHORT)(started, done).result(30)
        assert done.wait(10)


def test_timed_out_attempts_are_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    async def no_wait(delay: float) -> None:
        pass

    monkeypatch.setattr(_retrying, "sleep", no_wait)
    gate = threading.Event()
    with Sleepy.options(mode="thread", num_retries=1, timeout=SHORT).init() as handle:
        fut = handle.wait_for(gate)
        with pytest.raises(CallTimeoutError):
            fut.result(30)
        assert fut.attempts == 2
        gate.set()


@pytest.mark.anyio
async def test_awaited_call_times_out_on_the_running_loop() -> None:
    started, done = threading.Event(), threading.Event()
    async with Sleepy.options(mode="asyncio").init() as handle:
        with pytest.raises(CallTimeoutError):
            await handle.hang.options(timeout=SHORT)(started, done)
        assert done.is_set()
        assert await handle.ping() == "pong"
