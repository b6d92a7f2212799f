"""CONFORMANCE "Pools and load balancing" (119-139): pools over thread (and process) workers."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from concurrent.futures import CancelledError
from typing import Any

import pytest

from aioconc import Worker, WorkerStoppedError, temp_config
from aioconc._backends import available_modes
from aioconc._balance import make_balancer
from aioconc._enums import ExecutionMode
from aioconc._options import resolve_options
from aioconc._pool import PoolHandle, start_pool
from aioconc._proxy import WorkerHandle
from aioconc.testing import FakeBackend

POOL_MODES = ["threads"] + (["processes"] if ExecutionMode.Processes in available_modes() else [])


class Member(Worker):
    """Per-worker state plus ways to block and to find out where a call ran."""

    def __init__(self, barrier: threading.Barrier | None = None) -> None:
        if barrier is not None:
            barrier.wait(30)  # passes only if every pool worker is being built at once
        self.n = 0

    def inc(self) -> int:
        self.n += 1
        return self.n

    def ident(self) -> int:
        return id(self)

    def pid(self) -> int:
        return os.getpid()

    def block(self, gate: threading.Event) -> int:
        if not gate.wait(30):
            raise TimeoutError("gate never opened")
        return id(self)

    def meet(self, barrier: threading.Barrier) -> int:
        barrier.wait(30)
        return id(self)

    def fail(self) -> None:
        raise ValueError("bad call")


def pool(**options: Any) -> Any:
    return Member.options(mode="thread", **options).init()


def test_max_workers_above_one_builds_a_pool_with_the_same_call_surface() -> None:
    with pool(max_workers=3) as p:
        assert isinstance(p, PoolHandle)
        assert p.inc().result() == 1
        assert p.blocking is False and p.mode == "Threads"


@pytest.mark.parametrize("size", [None, 0, 1])
def test_max_workers_none_zero_or_one_builds_one_worker(size: int | None) -> None:
    handle = pool(max_workers=size)
    try:
        assert isinstance(handle, WorkerHandle)
    finally:
        handle.stop()


@pytest.mark.parametrize("mode", ["sync", "asyncio"])
def test_sync_and_asyncio_reject_pools_and_on_demand(mode: str) -> None:
    with pytest.raises(ValueError, match="max_workers"):
        Member.options(mode=mode, max_workers=2).init()
    with pytest.raises(ValueError, match="on_demand"):
        Member.options(mode=mode, on_demand=True).init()


def test_round_robin_is_the_default_and_each_worker_keeps_its_state() -> None:
    with pool(max_workers=3) as p:
        idents = [p.ident().result() for _ in range(4)]
        assert len(set(idents[:3])) == 3 and idents[3] == idents[0]
        counts = [p.inc().result() for _ in range(6)]
        assert counts == [1, 1, 1, 2, 2, 2]
        assert p.get_pool_stats()["load_balancer"]["algorithm"] == "RoundRobin"


def test_pool_stats_and_worker_stats() -> None:
    with pool(max_workers=2, max_queued_tasks=4) as p:
        stats = p.get_pool_stats()
        assert set(stats) == {
            "total_workers",
            "max_workers",
            "on_demand",
            "on_demand_active",
            "load_balancer",
            "stopped",
            "max_queued_tasks",
        }
        assert stats["total_workers"] == 2 and stats["max_queued_tasks"] == 4
        assert p.get_worker_stats(1) == {"worker_id": 1, "stopped": False}
        with pytest.raises(IndexError):
            p.get_worker_stats(2)
    assert p.get_pool_stats()["stopped"] is True


def test_least_active_picks_the_idlest_worker(gate: threading.Event) -> None:
    with pool(max_workers=3, load_balancing="least_active") as p:
        first = p.block(gate)
        second = p.block(gate)
        assert p.get_pool_stats()["load_balancer"]["active_calls"] == {0: 1, 1: 1, 2: 0}
        third = p.ident().result()  # the only idle worker takes it
        assert p.get_pool_stats()["load_balancer"]["active_calls"] == {0: 1, 1: 1, 2: 0}
        gate.set()
        assert len({first.result(), second.result(), third}) == 3
        assert p.get_pool_stats()["load_balancer"]["total_active"] == 0


def test_least_total_picks_the_worker_sent_fewest_calls() -> None:
    with pool(max_workers=3, load_balancing="least_total") as p:
        idents = [p.ident().result() for _ in range(6)]
        assert idents[:3] == idents[3:] and len(set(idents)) == 3
        stats = p.get_pool_stats()["load_balancer"]
        assert stats["total_calls"] == {0: 2, 1: 2, 2: 2}
        assert stats["total_dispatched"] == 6


def test_random_spreads_calls_and_counts_them() -> None:
    with pool(max_workers=2, load_balancing="rand") as p:
        assert [p.inc().result() > 0 for _ in range(20)] == [True] * 20
        stats = p.get_pool_stats()["load_balancer"]
        assert stats == {"algorithm": "Random", "total_dispatched": 20}


@pytest.mark.parametrize("name", ["round_robin", "least_active", "least_total", "random"])
def test_every_balancer_reports_algorithm_and_total_dispatched(name: str) -> None:
    balancer = make_balancer(name)
    for _ in range(3):
        balancer.pick([0, 0], [0, 0])
    assert balancer.stats([0, 0], [0, 0])["total_dispatched"] == 3
    assert "algorithm" in balancer.stats([0, 0], [0, 0])


def test_calls_run_concurrently_on_a_pool() -> None:
    barrier = threading.Barrier(3)
    with pool(max_workers=3) as p:
        ran_on = [f.result() for f in [p.meet(barrier) for _ in range(3)]]
        assert len(set(ran_on)) == 3


def test_a_failing_call_leaves_the_others_alone() -> None:
    with pool(max_workers=2) as p:
        futures = [p.fail(), p.inc(), p.inc()]
        with pytest.raises(ValueError, match="bad call"):
            futures[0].result()
        assert [f.result() for f in futures[1:]] == [1, 1]


def test_on_demand_makes_a_fresh_worker_per_call() -> None:
    with pool(on_demand=True, max_workers=2) as p:
        assert [p.inc().result() for _ in range(4)] == [1, 1, 1, 1]
        stats = p.get_pool_stats()
        assert stats["total_workers"] == 0 and stats["on_demand"] is True


def test_on_demand_never_blocks_the_caller(gate: threading.Event) -> None:
    with pool(on_demand=True, max_workers=1) as p:
        first = p.block(gate)
        second = p.inc()  # waits for the one slot, in the background
        assert not second.done()
        gate.set()
        assert isinstance(first.result(), int) and second.result() == 1


def test_on_demand_slot_wait_is_bounded(gate: threading.Event) -> None:
    with temp_config(thread_pool_on_demand_slot_max_wait=0):
        p = pool(on_demand=True, max_workers=1)
    try:
        first = p.block(gate)
        second = p.inc()
        with pytest.raises(RuntimeError, match="on-demand worker slot"):
            second.result(10)
        gate.set()
        first.result()
    finally:
        gate.set()
        p.stop()


def test_pool_workers_start_concurrently() -> None:
    # Each __init__ waits for all three: only a concurrent start gets past it.
    barrier = threading.Barrier(3)
    with Member.options(mode="thread", max_workers=3).init(barrier) as p:
        assert p.ready.done() and p.inc().result() == 1


def test_stop_stops_every_worker_and_later_calls_raise() -> None:
    before = {t.ident for t in threading.enumerate()}
    p = pool(max_workers=3)
    assert p.inc().result() == 1
    p.stop()
    with pytest.raises(WorkerStoppedError, match="stopped"):
        p.inc()
    left = [t for t in threading.enumerate() if t.ident not in before and t.is_alive()]
    assert [t for t in left if t.name.startswith("aioconc-Member")] == []


def test_repr_and_statistics_show_live_state(gate: threading.Event) -> None:
    with pool(max_workers=2) as p:
        running = p.block(gate)
        assert p.statistics().in_flight == 1
        assert "workers=2" in repr(p) and "in_flight=1" in repr(p) and "ready" in repr(p)
        gate.set()
        running.result()
    assert "stopped" in repr(p)


def test_a_crashed_worker_is_replaced_and_the_pool_keeps_serving() -> None:
    backend = FakeBackend(lambda call: call.method)
    options = resolve_options([{"mode": "thread", "max_workers": 2}], mode_specific={})
    p = start_pool(Member, (), {}, options, {"inc"}, backend=backend)
    replaced = threading.Event()
    p._replace_hooks.append(lambda index: replaced.set())
    try:
        backend.workers[0].closed._set_result(None)  # the worker ended on its own
        assert replaced.wait(10)
        assert len(backend.workers) == 3 and p.statistics().replaced == 1
        assert [p.inc().result() for _ in range(4)] == ["inc"] * 4
        assert backend.workers[0].calls == []  # the dead one gets nothing more
    finally:
        p.stop()


@pytest.mark.skipif("processes" not in POOL_MODES, reason="process mode not available yet")
def test_a_killed_process_worker_is_replaced() -> None:
    p = Member.options(mode="process", max_workers=2).init()
    replaced = threading.Event()
    p._replace_hooks.append(lambda index: replaced.set())
    try:
        pids = {p.pid().result() for _ in range(2)}
        victim = min(pids)
        os.kill(victim, signal.SIGKILL)
        assert replaced.wait(10)
        results = [p.pid() for _ in range(6)]
        assert all(r.result(30) != victim for r in results)
        assert len({r.result() for r in results}) == 2
    finally:
        p.stop()


@pytest.mark.anyio
@pytest.mark.asyncio_only
async def test_pool_in_async_code() -> None:
    p = Member.options(mode="thread", max_workers=2).init()
    async with p:
        assert await p.inc() == 1
        assert sorted(await asyncio.gather(p.inc(), p.inc(), p.inc())) == [1, 2, 2]
    assert p.get_pool_stats()["stopped"]


def test_stop_cancels_calls_waiting_for_an_on_demand_slot(gate: threading.Event) -> None:
    p = pool(on_demand=True, max_workers=1)
    first = p.block(gate)
    waiting = p.inc()
    p.stop(timeout=0)
    with pytest.raises(CancelledError):
        waiting.result(10)
    gate.set()
    with pytest.raises(CancelledError):
        first.result(10)


def test_per_call_timeout_on_a_pool(gate: threading.Event) -> None:
    with pool(max_workers=2) as p:
        late = p.block.options(timeout=0.05)(gate)
        with pytest.raises(TimeoutError):
            late.result(10)
        gate.set()
        assert p.inc().result(10) == 1
