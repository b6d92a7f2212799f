"""What ``self.limits`` is inside a worker (``limits_for``): CONFORMANCE items 222-228."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from aioconc import Worker
from aioconc._enums import ExecutionMode
from aioconc.limits import CallLimit, LimitPool, LimitSet, ResourceLimit, limits_for

LIMITS = [CallLimit(window=60, capacity=10), ResourceLimit(key="c", capacity=1)]


@pytest.mark.parametrize("mode", list(ExecutionMode))
@pytest.mark.parametrize("pool", [False, True])
@pytest.mark.parametrize("given", [None, []])
def test_no_limits_gives_an_empty_set_that_never_blocks(
    mode: ExecutionMode, pool: bool, given: Any
) -> None:
    limits = limits_for(given, mode, pool)
    assert isinstance(limits, LimitSet) and len(limits) == 0
    with limits.acquire() as acq:
        assert acq.successful


@pytest.mark.parametrize("mode", ["sync", "asyncio", "thread", "process", "ray"])
def test_limit_objects_give_a_single_worker_a_private_set(mode: str) -> None:
    first = limits_for(LIMITS, mode, pool=False)
    second = limits_for(LIMITS, mode, pool=False)
    assert isinstance(first, LimitSet) and not first.shared
    assert first is not second
    with first.acquire():
        assert second.try_acquire().successful  # private: no state in common


@pytest.mark.parametrize("mode", ["thread", "process", "ray"])
def test_limit_objects_give_a_pool_one_shared_set(mode: str) -> None:
    limits = limits_for(LIMITS, mode, pool=True)
    assert isinstance(limits, LimitSet)
    assert limits.shared and limits.mode is ExecutionMode(mode)
    assert limits.limits == LIMITS


def test_shared_set_is_the_same_object_for_every_worker() -> None:
    shared = LimitSet(LIMITS, shared=True, mode="thread")
    for mode in ("sync", "asyncio", "thread"):
        for pool in (False, True):
            assert limits_for(shared, mode, pool) is shared


def test_non_shared_set_warns_and_is_copied_for_one_worker() -> None:
    private = LimitSet(LIMITS, config={"a": 1})
    with pytest.warns(UserWarning, match="private"):
        limits = limits_for(private, "thread", pool=False)
    assert isinstance(limits, LimitSet)
    assert limits is not private and limits.limits == LIMITS and limits.config == {"a": 1}


def test_non_shared_set_for_a_pool_raises() -> None:
    with pytest.raises(ValueError, match="shared=True"):
        limits_for(LimitSet(LIMITS), "thread", pool=True)


@pytest.mark.parametrize(
    ("set_mode", "worker_mode"),
    [
        ("thread", "process"),
        ("sync", "ray"),
        ("process", "thread"),
        ("ray", "process"),
        ("process", "ray"),
    ],
)
def test_shared_set_of_another_mode_raises(set_mode: str, worker_mode: str) -> None:
    shared = LimitSet(LIMITS, shared=True, mode=set_mode)
    with pytest.raises(ValueError, match="not compatible"):
        limits_for(shared, worker_mode, pool=False)
    with pytest.raises(ValueError, match="not compatible"):
        limits_for([shared], worker_mode, pool=True)


def test_list_of_shared_sets_becomes_a_limit_pool() -> None:
    sets = [LimitSet(LIMITS, shared=True, mode="thread", config={"i": i}) for i in range(2)]
    limits = limits_for(sets, "thread", pool=True, worker_index=1)
    assert isinstance(limits, LimitPool)
    assert limits.limit_sets == sets and limits.worker_index == 1
    assert limits.try_acquire().config == {"i": 1}


def test_list_with_a_private_set_raises() -> None:
    with pytest.raises(ValueError, match="must be shared"):
        limits_for([LimitSet(LIMITS)], "thread", pool=False)


def test_limit_pool_passes_through_after_checks() -> None:
    pool = LimitPool([LimitSet(LIMITS, shared=True, mode="process")])
    assert limits_for(pool, "process", pool=True) is pool
    with pytest.raises(ValueError, match="not compatible"):
        limits_for(pool, "thread", pool=True)


@pytest.mark.parametrize("bad", [[CallLimit(window=1, capacity=1), "x"], "limits", 3])
def test_other_values_raise(bad: Any) -> None:
    with pytest.raises(ValueError, match="limits"):
        limits_for(bad, "thread", pool=False)


class _Holder(Worker):
    """Takes the shared set as an argument: no limits wiring needed."""

    def __init__(self, limits: LimitSet) -> None:
        self.limits = limits

    def hold(self, entered: threading.Event, gate: threading.Event) -> bool:
        with self.limits.acquire():
            entered.set()
            return gate.wait(30)

    def try_take(self) -> bool:
        acq = self.limits.try_acquire()
        acq.release()
        return acq.successful


def test_shared_set_is_enforced_across_thread_workers() -> None:
    shared = limits_for(
        LimitSet([ResourceLimit(key="c", capacity=1)], shared=True, mode="thread"),
        "thread",
        pool=False,
    )
    assert isinstance(shared, LimitSet)
    one = _Holder.options(mode="thread").init(shared)
    two = _Holder.options(mode="thread").init(shared)
    entered, gate = threading.Event(), threading.Event()
    try:
        held = one.hold(entered, gate)
        assert entered.wait(10)
        assert two.try_take().result(10) is False  # the other worker holds the unit
        gate.set()
        assert held.result(10) is True
        assert two.try_take().result(10) is True
    finally:
        gate.set()
        one.stop()
        two.stop()
