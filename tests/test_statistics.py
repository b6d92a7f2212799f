"""``statistics()`` and the live ``__repr__`` of every handle and pool, in every mode."""

from __future__ import annotations

from typing import Any

import pytest

from aioconc import CallStatistics, Worker
from aioconc.testing import FakeBackend  # noqa: F401  (the fake is tested elsewhere)


class Calc(Worker):
    def __init__(self) -> None:
        self.calls = 0

    def half(self, x: int) -> int:
        if x % 2:
            raise ValueError(f"{x} is odd")
        return x // 2

    def flaky(self) -> int:
        self.calls += 1
        if self.calls < 3:
            raise ConnectionError("try again")
        return self.calls

    def wait(self, gate: Any) -> bool:
        return bool(gate.wait(30))


def _settle(futures: list[Any]) -> None:
    for fut in futures:
        fut.exception()


def test_counts_by_outcome_and_latencies(worker_mode: str) -> None:
    with Calc.options(mode=worker_mode).init() as calc:
        empty = calc.statistics()
        assert isinstance(empty, CallStatistics)
        assert empty.submitted == 0 and empty.latency_p50 is None
        futures = [calc.half(i) for i in range(10)]
        _settle(futures)
        stats = calc.statistics()
    assert (stats.submitted, stats.completed, stats.failed, stats.cancelled) == (10, 5, 5, 0)
    assert stats.in_flight == 0 and stats.queued == 0 and stats.finished == 10
    assert stats.latency_p50 is not None and stats.latency_p99 is not None
    assert 0 <= stats.latency_p50 <= stats.latency_p90 <= stats.latency_p99 < 30


def test_in_flight_and_cancelled(worker_mode: str, gate: Any) -> None:
    if worker_mode == "sync":
        pytest.skip("sync calls finish before the call returns")
    calc = Calc.options(mode=worker_mode).init()
    try:
        running = calc.wait(gate)
        behind = calc.half(2)
        stats = calc.statistics()
        assert stats.submitted == 2
        assert stats.in_flight + stats.queued + stats.completed == 2
        cancelled = behind.cancel()
        gate.set()
        assert running.result(30) is True
        stats = calc.statistics()
        assert stats.cancelled == (1 if cancelled else 0)
        assert stats.finished == 2 and stats.in_flight == 0
        assert "in_flight=0" in repr(calc) and "completed=" in repr(calc)
    finally:
        gate.set()
        calc.stop()


def test_retries_are_counted(worker_mode: str) -> None:
    options = {"num_retries": 3, "retry_wait": 0.001, "retry_jitter": 0}
    with Calc.options(mode=worker_mode, **options).init() as calc:
        assert calc.flaky().result(30) == 3
        stats = calc.statistics()
    assert stats.completed == 1 and stats.failed == 0 and stats.retried == 2


def test_queued_calls_are_reported(worker_mode: str, gate: Any) -> None:
    if worker_mode in {"sync", "asyncio"}:
        pytest.skip("no submission queue in this mode")
    calc = Calc.options(mode=worker_mode, max_queued_tasks=1).init()
    try:
        first = calc.wait(gate)
        held = [calc.half(2) for _ in range(3)]
        stats = calc.statistics()
        assert stats.submitted == 4
        assert stats.queued >= 2  # beyond the cap of one in flight
        assert stats.in_flight + stats.queued + stats.finished == 4
        gate.set()
        _settle([first, *held])
        assert calc.statistics().queued == 0
    finally:
        gate.set()
        calc.stop()


def test_a_pools_statistics_add_up_its_workers(worker_mode: str) -> None:
    if worker_mode in {"sync", "asyncio"}:
        pytest.skip("no pools in this mode")
    with Calc.options(mode=worker_mode, max_workers=2).init() as pool:
        _settle([pool.half(i) for i in range(12)])
        stats = pool.statistics()
    assert (stats.submitted, stats.completed, stats.failed) == (12, 6, 6)
    assert len(stats.per_worker) == 2
    assert sum(w.completed for w in stats.per_worker) == stats.completed
    assert sum(w.failed for w in stats.per_worker) == stats.failed
    assert all(w.submitted > 0 for w in stats.per_worker)
    assert "completed=6" in repr(pool)


def test_a_worker_method_named_statistics_is_refused_at_class_definition() -> None:
    with pytest.raises(TypeError, match="'statistics'"):

        class Reports(Worker):
            def statistics(self) -> dict[str, int]:
                return {}
