"""CONFORMANCE "Limits inside workers" (222-226), through real workers."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from aioconc import LimitSet, RateLimit, ResourceLimit, Worker


class Limited(Worker):
    def keys(self) -> list[str]:
        return sorted(self.limits.get_stats())  # type: ignore[attr-defined]

    def acquire_plain(self) -> bool:
        with self.limits.acquire() as acq:  # type: ignore[attr-defined]
            return bool(acq.successful)

    def hold(self, entered: Any, gate: Any) -> bool:
        with self.limits.acquire(requested={"slot": 1}):  # type: ignore[attr-defined]
            entered.set()
            return bool(gate.wait(30))

    async def async_forms(self) -> list[float]:
        """The slot's availability inside each async form of acquiring it."""
        seen = []
        async with self.limits.async_acquire(requested={"slot": 1}) as acq:  # type: ignore[attr-defined]
            assert acq.successful
            seen.append(self.limits.get_stats()["slot"]["available"])  # type: ignore[attr-defined]
        async with await self.limits.async_acquire(requested={"slot": 1}):  # type: ignore[attr-defined]
            seen.append(self.limits.get_stats()["slot"]["available"])  # type: ignore[attr-defined]
        acq = await self.limits.async_acquire(requested={"slot": 1})  # type: ignore[attr-defined]
        seen.append(self.limits.get_stats()["slot"]["available"])  # type: ignore[attr-defined]
        acq.release()
        seen.append(self.limits.get_stats()["slot"]["available"])  # type: ignore[attr-defined]
        return seen

    def try_slot(self) -> bool:
        acq = self.limits.try_acquire(requested={"slot": 1})  # type: ignore[attr-defined]
        ok = bool(acq.successful)
        acq.release()
        return ok


def test_every_worker_has_limits_that_never_block(worker_mode: str) -> None:
    with Limited.options(mode=worker_mode).init() as handle:
        assert handle.keys().result(60) == []
        assert handle.acquire_plain().result(60) is True


def test_a_list_of_limits_gives_a_single_worker_private_limits(worker_mode: str) -> None:
    limits = [RateLimit(key="tokens", window=60, capacity=100)]
    with Limited.options(mode=worker_mode, limits=limits).init() as handle:
        assert handle.keys().result(60) == ["tokens"]


def test_async_acquire_is_an_async_context_manager_in_every_mode(worker_mode: str) -> None:
    # One keyword (async with limits.async_acquire()) or two (async with await
    # ...), or a plain await: each takes the slot and gives it back.
    limits = [ResourceLimit(key="slot", capacity=1)]
    with Limited.options(mode=worker_mode, limits=limits).init() as handle:
        assert handle.async_forms().result(60) == [0, 0, 0, 1]


def test_a_pool_shares_one_set_of_limits(gate: threading.Event) -> None:
    entered = threading.Event()
    limits = [ResourceLimit(key="slot", capacity=1)]
    with Limited.options(mode="thread", max_workers=2, limits=limits).init() as pool:
        held = pool.hold(entered, gate)  # worker 0 takes the only slot
        assert entered.wait(10)
        assert pool.try_slot().result(10) is False  # worker 1 sees it taken
        gate.set()
        assert held.result(10) is True
        assert pool.try_slot().result(10) is True


def test_a_shared_set_is_enforced_across_separate_workers(gate: threading.Event) -> None:
    shared = LimitSet([ResourceLimit(key="slot", capacity=1)], shared=True, mode="thread")
    entered = threading.Event()
    with (
        Limited.options(mode="thread", limits=shared).init() as one,
        Limited.options(mode="thread", limits=shared).init() as two,
    ):
        held = one.hold(entered, gate)
        assert entered.wait(10)
        assert two.try_slot().result(10) is False
        gate.set()
        assert held.result(10) is True


def test_non_shared_set_warns_for_a_worker_and_is_refused_for_a_pool() -> None:
    private = LimitSet([ResourceLimit(key="slot", capacity=1)])
    with (
        pytest.warns(UserWarning, match="shared=True"),
        Limited.options(mode="thread", limits=private).init() as handle,
    ):
        assert handle.keys().result(10) == ["slot"]
    with pytest.raises(ValueError, match="shared"):
        Limited.options(mode="thread", max_workers=2, limits=private).init()
