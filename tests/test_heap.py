"""The held-back order, written once (``aioconc/_heap.py``): priority, then arrival.

The submission queue stage holds its waiters in a ``PriorityHeap``; a process
worker holds its calls in ``HeldCalls``, the same heap with its push and take
inlined on the dispatch path, so the two must agree.
"""

from __future__ import annotations

from typing import Any

from aioconc._backends.process._held import HeldCalls
from aioconc._call import Call
from aioconc._future import Future
from aioconc._heap import PriorityHeap

ARRIVALS = [(2, "a"), (0, "b"), (2, "c"), (1, "d"), (0, "e"), (3, "f")]
ORDER = ["b", "e", "d", "a", "c", "f"]


def _call(priority: int, method: str) -> Call:
    return Call(method, (), {}, Future(priority))


def test_items_leave_by_priority_then_arrival() -> None:
    heap: PriorityHeap[str] = PriorityHeap()
    for priority, item in ARRIVALS:
        heap.push(priority, item)
    assert len(heap) == len(ARRIVALS)
    assert [heap.take() for _ in ARRIVALS] == ORDER
    assert not heap


def test_taking_all_empties_the_heap_in_order_when_asked() -> None:
    heap: PriorityHeap[str] = PriorityHeap()
    for priority, item in ARRIVALS:
        heap.push(priority, item)
    assert heap.take_all_in_order() == ORDER
    assert not heap
    for priority, item in ARRIVALS:
        heap.push(priority, item)
    assert sorted(heap.take_all()) == sorted(ORDER)
    assert not heap


def test_a_process_worker_sends_held_calls_in_the_same_order() -> None:
    held = HeldCalls()
    calls = [_call(priority, method) for priority, method in ARRIVALS]
    assert held.admit(calls, 0) == []  # no room with the child: all held
    sent: list[Any] = []
    while held:
        sent += held.admit([], 2)
    assert [call.method for call in sent] == ORDER


def test_a_held_call_that_was_cancelled_is_skipped_and_its_place_given_on() -> None:
    held = HeldCalls()
    calls = [_call(priority, method) for priority, method in ARRIVALS]
    held.admit(calls, 0)
    calls[1].future.cancel()  # "b", the first in line
    assert [call.method for call in held.admit([], 2)] == ["e", "d"]
    assert [call.method for call in held.take_all_in_order()] == ["a", "c", "f"]


def test_one_call_with_room_goes_straight_through() -> None:
    held = HeldCalls()
    call = _call(2, "m")
    assert held.admit([call], 1) == [call]
    assert not held
