"""What code written for concurry relies on, beyond names and signatures (issue 13).

One section per group of the issue: read-only handle settings, concurry's key
phrases in errors and warnings, per-mode settings read back from a handle,
``self.limits`` inside a worker, retries of a worker's calls to its own methods,
small API shapes, and the per-call costs concurry's own suite asserts.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import pickle
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from aioconc import (
    CallLimit,
    Future,
    LimitPool,
    LimitSet,
    RateLimit,
    ResourceLimit,
    RetryValidationError,
    SyncFuture,
    TaskWorker,
    Worker,
    gather,
    global_config,
    temp_config,
    wait,
    worker,
)
from aioconc import async_gather as _async_gather
from aioconc import async_wait as _async_wait


class Plain(Worker):
    def __init__(self, base: int = 0) -> None:
        self.base = base

    def add(self, x: int) -> int:
        return self.base + x


# ---------------------------------------------------------------------------
# 1. A handle's public settings are read-only
# ---------------------------------------------------------------------------


def test_handle_settings_cannot_be_assigned(worker_mode: str) -> None:
    with Plain.options(mode=worker_mode).init(1) as handle:
        for name, value in (("blocking", True), ("worker_cls", Plain), ("anything", 1)):
            with pytest.raises(AttributeError, match="cannot set"):
                setattr(handle, name, value)
        assert handle.blocking is False and handle.worker_cls is Plain
        assert handle.add(2).result(30) == 3  # the handle still works


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_pool_settings_cannot_be_assigned(mode: str) -> None:
    with Plain.options(mode=mode, max_workers=2).init(1) as pool:
        with pytest.raises(AttributeError, match="cannot set"):
            pool.blocking = True
        assert pool.add(1).result(30) == 2


class ModelWorker(Worker, BaseModel):
    """A worker that is also a pydantic model: its fields are the constructor."""

    name: str
    factor: int = 2

    def scaled(self, x: int) -> str:
        return f"{self.name}:{x * self.factor}"


def test_pydantic_model_worker_handle_is_protected(worker_mode: str) -> None:
    with ModelWorker.options(mode=worker_mode).init(name="m", factor=3) as handle:
        assert handle.scaled(2).result(30) == "m:6"
        with pytest.raises(AttributeError):
            handle.blocking = True
        with pytest.raises(AttributeError):
            handle.worker_cls = Plain
        assert handle.worker_cls is ModelWorker


# ---------------------------------------------------------------------------
# 2. Errors and warnings carry concurry's key phrases
# ---------------------------------------------------------------------------


def _tokens(capacity: float = 100) -> LimitSet:
    return LimitSet([RateLimit(key="tokens", window=60, capacity=capacity)])


def test_unknown_limit_keys_are_logged_by_name_and_ignored(caplog: Any) -> None:
    limits = _tokens()
    with (
        caplog.at_level(logging.WARNING, logger="aioconc.limits"),
        limits.acquire({"tokens": 5, "typo": 1}) as acq,
    ):
        assert set(acq.acquisitions) == {"tokens"}
        acq.update(usage={"tokens": 5, "other": 2})
    messages = [r.getMessage() for r in caplog.records]
    assert any("Unknown limit key 'typo'" in m and "Available limit keys" in m for m in messages)
    assert any("Cannot update limit 'other'" in m and "not acquired" in m for m in messages)


def test_usage_above_the_request_is_logged(caplog: Any) -> None:
    with (
        caplog.at_level(logging.WARNING, logger="aioconc.limits"),
        _tokens().acquire({"tokens": 5}) as acq,
    ):
        acq.update(usage={"tokens": 9})
    assert "exceeds requested amount" in caplog.text


def test_limit_request_errors_use_concurrys_phrases() -> None:
    limits = _tokens(10)
    with pytest.raises(ValueError, match=r"Requested amount \(11\) exceeds capacity"):
        limits.acquire({"tokens": 11})
    with pytest.raises(ValueError, match="Must specify requested amount for RateLimit 'tokens'"):
        limits.acquire()
    with (
        pytest.raises(RuntimeError, match="Not all limits in the LimitSet were updated"),
        limits.acquire({"tokens": 1}),
    ):
        pass


def test_retry_exhaustion_message_names_method_and_attempts() -> None:
    handle = Plain.options(mode="sync", num_retries=1, retry_until=lambda r, **ctx: r > 100).init()
    with pytest.raises(RetryValidationError, match="Validation failed for method 'add'") as info:
        handle.add(1).result()
    assert "after 2 attempts" in str(info.value)
    handle.stop()


def test_wait_and_gather_misuse_and_timeouts() -> None:
    done = SyncFuture(result_value=1)
    with pytest.raises(ValueError, match="Cannot provide both a structure"):
        wait([done], done)
    with pytest.raises(ValueError, match="Cannot provide both a structure"):
        gather({"a": done}, done)
    with pytest.raises(ValueError, match="Could not find enum"):
        wait([done], return_when="sometimes")
    never: Future[int] = Future()
    with pytest.raises(TimeoutError, match=r"wait\(\) timed out"):
        wait([never], timeout=0.01)
    with pytest.raises(TimeoutError, match=r"gather\(\) timed out"):
        gather([never], timeout=0.01)


def test_async_wait_and_gather_timeouts_name_the_function() -> None:
    async def main() -> None:
        never = asyncio.get_running_loop().create_future()
        with pytest.raises(TimeoutError, match=r"async_wait\(\) timed out"):
            await _async_wait([never], timeout=0.01)
        with pytest.raises(TimeoutError, match=r"async_gather\(\) timed out"):
            await _async_gather([never], timeout=0.01)

    asyncio.run(main())


def test_pool_misconfiguration_messages() -> None:
    with pytest.raises(ValueError, match="max_workers must be 1 for Sync mode"):
        Plain.options(mode="sync", max_workers=2).init()
    with pytest.raises(ValueError, match="max_workers must be 1 for Asyncio mode"):
        Plain.options(mode="asyncio", max_workers=2).init()
    with pytest.raises(ValueError, match="on_demand mode is not supported for Sync"):
        Plain.options(mode="sync", on_demand=True).init()
    with pytest.raises(ValueError, match="mode parameter is required"):
        Plain.options().init()


def test_per_method_option_without_default_says_what_it_must_include() -> None:
    with pytest.raises(ValueError, match=r"must include '\*' key for default value"):
        Plain.options(mode="sync", num_retries={"add": 2}).init()


def test_calls_after_stop_say_worker_is_stopped(worker_mode: str) -> None:
    handle = Plain.options(mode=worker_mode).init()
    handle.stop()
    with pytest.raises(RuntimeError, match="Worker is stopped"):
        handle.add(1)


def test_calls_after_stop_say_worker_pool_is_stopped() -> None:
    pool = Plain.options(mode="thread", max_workers=2).init()
    pool.stop()
    with pytest.raises(RuntimeError, match="Worker pool is stopped"):
        pool.add(1)


def test_task_worker_without_a_function_says_what_it_requires() -> None:
    with TaskWorker.options(mode="sync").init() as tasks:
        with pytest.raises(TypeError, match=r"submit\(\) requires a callable function"):
            tasks.submit(5)
        with pytest.raises(TypeError, match=r"map\(\) requires a callable function"):
            tasks.map(5, [1])
        with pytest.raises(
            TypeError, match=r"submit\(\) requires a callable function, got NoneType"
        ):
            tasks(1)


def _anti_pattern(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if "anti-pattern" in str(w.message)]


def test_worker_decorator_with_class_keywords_warns_once_as_anti_pattern() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")

        @worker(mode="sync")
        class Mixed(Worker, mode="thread"):
            def ping(self) -> str:
                return "pong"

    found = _anti_pattern(caught)
    assert len(found) == 1
    assert "decorator" in found[0] and "inheritance" in found[0]
    handle = Mixed()
    assert handle.mode == "Sync"  # the decorator's options win
    handle.stop()


def test_worker_decorator_on_a_class_derived_from_configured_one_warns() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")

        class Base(Worker, mode="thread"):
            pass

        @worker(mode="sync")
        class Derived(Base):
            pass

        class Other(Base, mode="sync"):  # keywords only: no warning
            pass

        @worker  # no options: keeps the class keywords, no warning
        class Bare(Worker, mode="sync"):
            def ping(self) -> str:
                return "pong"

    assert len(_anti_pattern(caught)) == 1
    assert Derived is not Other
    handle = Bare()  # still auto-init from its class keywords
    assert handle.ping().result() == "pong"
    handle.stop()


# ---------------------------------------------------------------------------
# 3. Per-mode settings read back from a handle, as resolved at creation
# ---------------------------------------------------------------------------

_SETTING = {
    "threads": ("thread_worker_command_queue_timeout", "command_queue_timeout"),
    "processes": ("process_worker_result_queue_cleanup_timeout", "result_queue_cleanup_timeout"),
    "asyncio": ("asyncio_worker_loop_ready_timeout", "loop_ready_timeout"),
}


def test_per_mode_timeouts_read_back_as_resolved(worker_mode: str) -> None:
    if worker_mode not in _SETTING:
        with Plain.options(mode=worker_mode).init() as handle, pytest.raises(AttributeError):
            _ = handle.command_queue_timeout  # this mode has none
        return
    key, attribute = _SETTING[worker_mode]
    with temp_config(**{key: 7.5}):
        handle = Plain.options(mode=worker_mode).init()
    with temp_config(**{key: 99.0}):  # later changes do not reach a running worker
        assert getattr(handle, attribute) == 7.5
    handle.stop()


def test_pool_reads_back_on_demand_timeouts() -> None:
    with temp_config(
        thread_pool_on_demand_cleanup_timeout=10.0, thread_pool_on_demand_slot_max_wait=120.0
    ):
        pool = Plain.options(mode="thread", max_workers=3).init()
    assert (pool.on_demand_cleanup_timeout, pool.on_demand_slot_max_wait) == (10.0, 120.0)
    pool.stop()


def test_get_defaults_resolves_each_mode_through_the_global_values() -> None:
    with temp_config(global_num_retries=5, thread_num_retries=10):
        thread, ray = global_config.get_defaults("thread"), global_config.get_defaults("ray")
        assert (thread.num_retries, ray.num_retries) == (10, 5)
        assert thread.max_workers == 1 and ray.max_queued_tasks == 3
    assert global_config.get_defaults("thread").num_retries == 0  # a snapshot per call
    with pytest.raises(AttributeError, match="read-only"):
        thread.num_retries = 1


def test_temp_config_key_errors_use_concurrys_phrases() -> None:
    with pytest.raises(ValueError, match="Invalid mode"), temp_config(nomode_max_workers=1):
        pass
    with pytest.raises(ValueError, match="Invalid attribute"), temp_config(thread_nofield=1):
        pass


def test_process_handle_reports_its_mp_context() -> None:
    with Plain.options(mode="process", mp_context="spawn").init() as handle:
        assert handle.mp_context == "spawn"
    with Plain.options(mode="thread").init() as handle, pytest.raises(AttributeError):
        _ = handle.mp_context


# ---------------------------------------------------------------------------
# 4. self.limits inside a worker
# ---------------------------------------------------------------------------


class Inspector(Worker):
    def capacity(self, key: str) -> float:
        return float(self.limits[0][key].capacity)

    def spend_and_report(self, tokens: int) -> tuple[float, bool, bool]:
        with self.limits.acquire({"tokens": tokens}) as acq:
            acq.update(usage={"tokens": tokens})
            limit = self.limits[0]["tokens"]
            stats = limit.get_stats()
            return stats["available"], limit.can_acquire(10), limit.can_acquire(1000)


def test_self_limits_indexes_like_concurrys(worker_mode: str) -> None:
    limits = [
        CallLimit(window=60, capacity=100),
        RateLimit(key="tokens", window=60, capacity=1000, algorithm="token_bucket"),
        ResourceLimit(key="connections", capacity=5),
    ]
    with Inspector.options(mode=worker_mode, limits=limits).init() as handle:
        assert handle.capacity("call_count").result(60) == 100
        assert handle.capacity("connections").result(60) == 5
        available, small, large = handle.spend_and_report(995).result(60)
        assert available == pytest.approx(5, abs=1)  # the set's live state, not a fresh limit
        assert (small, large) == (False, False)


def test_a_limit_read_from_a_set_reports_that_sets_state() -> None:
    limits = LimitSet(
        [RateLimit(key="tokens", window=60, capacity=100)], shared=True, mode="thread"
    )
    assert limits[0] is limits and limits[-1] is limits
    with pytest.raises(IndexError):
        limits[1]
    with pytest.raises(KeyError, match="Limit with key 'nope' not found"):
        limits["nope"]
    with limits.acquire({"tokens": 80}) as acq:
        acq.update(usage={"tokens": 80})
        assert limits["tokens"].get_stats()["available"] == 20
        assert limits["tokens"].can_acquire(20) and not limits["tokens"].can_acquire(21)
    alone = RateLimit(key="tokens", window=60, capacity=100)
    assert alone.can_acquire(100) and not alone.can_acquire(101)  # a fresh limit
    assert limits["tokens"] == alone and hash(limits["tokens"]) == hash(alone)
    assert pickle.loads(pickle.dumps(limits["tokens"])) == alone


# ---------------------------------------------------------------------------
# 5. Retries of a worker's calls to its own methods
# ---------------------------------------------------------------------------


def _succeeded(result: Any, **ctx: Any) -> bool:
    return isinstance(result, dict) and result.get("status") == "success"


class Batch(Worker):
    def __init__(self) -> None:
        self.calls = 0

    async def inner(self, value: int) -> dict[str, Any]:
        self.calls += 1
        return {"value": value, "status": "success" if self.calls >= 3 else "pending"}

    async def outer(self, value: int) -> dict[str, Any]:
        return await self.inner(value)

    async def fan_out(self, n: int) -> list[Any]:
        return list(await asyncio.gather(*(self.inner(i) for i in range(n))))

    def sync_inner(self, value: int) -> int:
        self.calls += 1
        return value

    def sync_outer(self, value: int) -> int:
        return self.sync_inner(value)

    def count(self) -> int:
        return self.calls


_VALIDATED = {
    "retry_until": {"*": None, "inner": _succeeded, "sync_inner": lambda r, **ctx: r > 10},
    "retry_wait": 0.001,
    "retry_jitter": 0,
}


def test_validation_failing_inside_the_worker_ends_in_retry_validation_error(
    worker_mode: str,
) -> None:
    options = {"num_retries": {"*": 0, "inner": 0, "sync_inner": 1}, **_VALIDATED}
    with Batch.options(mode=worker_mode, **options).init() as handle:
        for call in (handle.outer(42), handle.fan_out(2)):
            with pytest.raises(RetryValidationError) as info:
                call.result(60)
            assert (info.value.attempts, info.value.method_name) == (1, "inner")
            assert info.value.all_results[0]["status"] == "pending"
        with pytest.raises(RetryValidationError) as info:
            handle.sync_outer(1).result(60)
        assert (info.value.attempts, info.value.method_name) == (2, "sync_inner")


def test_internal_calls_are_retried_until_valid_and_handle_calls_once(worker_mode: str) -> None:
    options = {"num_retries": {"*": 0, "inner": 5, "sync_inner": 2}, **_VALIDATED}
    with Batch.options(mode=worker_mode, **options).init() as handle:
        assert handle.outer(7).result(60) == {"value": 7, "status": "success"}
        assert handle.count().result(60) == 3
        with pytest.raises(RetryValidationError) as info:
            handle.sync_inner(1).result(60)  # a handle call: retried by the stage alone
        assert info.value.attempts == 3
        assert handle.count().result(60) == 6


class Flaky(Worker):
    """Its ``fetch`` fails until its third attempt; ``load`` calls it internally."""

    def __init__(self) -> None:
        self.attempts = 0

    def fetch(self, key: str) -> str:
        self.attempts += 1
        if self.attempts < 3:
            raise ConnectionError(f"attempt {self.attempts} failed")
        return key.upper()

    def load(self, key: str) -> tuple[str, int]:
        return self.fetch(key), self.attempts


def test_an_internal_call_that_raises_is_retried_in_the_worker(worker_mode: str) -> None:
    options = {"num_retries": {"*": 0, "fetch": 2}, "retry_wait": 0.001, "retry_jitter": 0}
    with Flaky.options(mode=worker_mode, **options).init() as handle:
        # load itself has no retries: fetch's two failures are retried inside the worker.
        assert handle.load("k").result(60) == ("K", 3)
    once = Flaky.options(mode=worker_mode, num_retries={"*": 0, "fetch": 1})
    with once.init() as handle, pytest.raises(ConnectionError, match="attempt 2 failed"):
        handle.load("k").result(60)


def test_retry_validation_error_takes_concurrys_constructor_arguments() -> None:
    by_keyword = RetryValidationError(
        attempts=3, all_results=[1, 2, 3], validation_errors=["a", "b", "c"], method_name="m"
    )
    positional = RetryValidationError(3, [1, 2, 3], ["a", "b", "c"], "m")
    for error in (by_keyword, positional):
        assert (error.attempts, error.all_results, error.method_name) == (3, [1, 2, 3], "m")
        assert error.validation_errors == ["a", "b", "c"]
        assert "m" in str(error) and "3 attempts" in str(error)
    assert RetryValidationError(2, [], []).method_name == "unknown"
    copy = pickle.loads(pickle.dumps(positional))
    assert (copy.attempts, str(copy)) == (3, str(positional))


# ---------------------------------------------------------------------------
# 6. Small API shapes
# ---------------------------------------------------------------------------


def test_a_call_future_is_a_sync_future_exactly_in_sync_mode(worker_mode: str) -> None:
    with Plain.options(mode=worker_mode).init(1) as handle:
        fut = handle.add(1)
        assert isinstance(fut, Future)
        assert isinstance(fut, SyncFuture) == (worker_mode == "sync")
        assert fut.result(30) == 2


def test_sync_future_is_finished_when_made() -> None:
    ok, failed = SyncFuture(result_value=3), SyncFuture(exception_value=KeyError("k"))
    assert ok.done() and ok.result() == 3 and ok.status.name == "SUCCESS"
    assert isinstance(failed.exception(), KeyError)
    with pytest.raises(TypeError, match="must be an exception"):
        SyncFuture(exception_value="not an exception")  # type: ignore[arg-type]


def test_true_capacity_is_one_false_is_rejected() -> None:
    assert RateLimit(key="k", window=1, capacity=True).capacity == 1
    assert CallLimit(window=1, capacity=True).capacity == 1
    assert ResourceLimit(key="r", capacity=True).capacity == 1
    with pytest.raises(ValueError):
        RateLimit(key="k", window=1, capacity=False)
    with pytest.raises(ValueError):
        ResourceLimit(key="r", capacity=False)


def test_limit_pool_is_immutable_once_built() -> None:
    sets = [LimitSet([CallLimit(window=1, capacity=5)], shared=True, mode="thread")]
    pool = LimitPool(sets)
    for name, value in (("load_balancing", "random"), ("limit_sets", []), ("worker_index", 3)):
        with pytest.raises(ValidationError, match="frozen"):  # pydantic's error, as in concurry
            setattr(pool, name, value)
    with pytest.raises(ValidationError, match="frozen"):
        del pool.worker_index
    assert pool.worker_index == 0
    with pytest.raises(TypeError, match="LimitPool indices must be integers"):
        pool["call_count"]  # type: ignore[index]
    assert pool[0]["call_count"].capacity == 5


# ---------------------------------------------------------------------------
# 7. Per-call costs concurry's own suite asserts (µs), with other work running
# ---------------------------------------------------------------------------


def _best_per_call(action: Callable[[], Any], calls: int, rounds: int = 7) -> float:
    """The fastest of ``rounds`` batches, per call: load on a shared machine only adds time."""
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            action()
        best = min(best, (time.perf_counter() - start) / calls)
    return best


def _finished_stdlib_future(value: int) -> concurrent.futures.Future[int]:
    """What a SyncFuture stands in for: a stdlib future finished at once."""
    fut: concurrent.futures.Future[int] = concurrent.futures.Future()
    fut.set_result(value)
    return fut


# These costs are CPU-bound, so they scale with the interpreter (3.10 runs them
# at about half 3.11's speed) and with other load: the bound is concurry's
# budget, or the stdlib future that does the same job, measured alongside.


def test_sync_future_creation_within_concurrys_budget() -> None:
    ours = _best_per_call(lambda: SyncFuture(result_value=1), 20_000)
    bare = _best_per_call(lambda: _finished_stdlib_future(1), 20_000)
    assert ours < 0.7e-6 or ours < bare / 2, (ours, bare)


def test_sync_call_within_concurrys_budget() -> None:
    with Plain.options(mode="sync").init() as handle:
        add = handle.add
        ours = _best_per_call(lambda: add(1).result(), 5_000)
        bare = _best_per_call(lambda: _finished_stdlib_future(1).result(), 5_000)
        assert ours < 5.0e-6 or ours < bare, (ours, bare)


def test_thread_call_within_concurrys_budget() -> None:
    # A thread round trip is mostly the OS scheduling two threads: on a machine
    # loaded beyond its cores even a bare executor misses concurry's 80 µs, so
    # the bound is that budget or twice a ThreadPoolExecutor(1) measured alongside.
    with Plain.options(mode="thread").init() as handle, ThreadPoolExecutor(1) as pool:
        add = handle.add
        ours = _best_per_call(lambda: add(1).result(), 500)
        bare = _best_per_call(lambda: pool.submit(abs, 1).result(), 500)
        assert ours < 80e-6 or ours < 2 * bare, (ours, bare)


def test_asyncio_submission_within_concurrys_budget() -> None:
    with Plain.options(mode="asyncio").init() as handle:
        add = handle.add
        futures: list[Future[int]] = []
        assert _best_per_call(lambda: futures.append(add(1)), 2_000, rounds=3) < 50e-6
        assert gather(futures, timeout=60)[-1] == 1
