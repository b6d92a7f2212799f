"""Held-back calls in the order they may start: highest priority first, then arrival.

Two places hold calls back and must agree on that order: the submission queue
stage (``middleware/_queue.py``, waiters of held calls) and a process worker
(``_backends/process/_held.py``, the calls themselves).  Both use
:class:`PriorityHeap`.

Priority 0 ("critical") comes first; within a level, first come first served.
Entries that were cancelled while held stay in the heap and are skipped by
the holder when they come up: removing them from the middle would cost a
search for every cancel.
"""

from __future__ import annotations

import heapq
import itertools
from typing import TypeVar

__all__ = ["PriorityHeap"]

T = TypeVar("T")


class PriorityHeap(list[tuple[int, int, T]]):
    """Items by ``(priority, arrival)``, kept as a ``heapq`` heap.

    A list, so that ``len()`` and truthiness cost no Python call on hot paths
    (a process worker asks on every call); change it only through the methods
    below, which keep the heap order.
    """

    __slots__ = ("_seq",)

    def __init__(self) -> None:
        super().__init__()
        self._seq = itertools.count()

    def push(self, priority: int, item: T) -> None:
        """Hold ``item`` back at ``priority`` (lower numbers first)."""
        heapq.heappush(self, (priority, next(self._seq), item))

    def take(self) -> T:
        """Remove and return the first item; ``IndexError`` when empty."""
        return heapq.heappop(self)[2]

    def take_all(self) -> list[T]:
        """Remove and return every item, in no particular order (to end them all)."""
        items = [entry[2] for entry in self]
        self.clear()
        return items

    def take_all_in_order(self) -> list[T]:
        """Remove and return every item, in the order they would have started."""
        items = [entry[2] for entry in sorted(self)]
        self.clear()
        return items
