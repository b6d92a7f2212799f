"""The calls a process worker holds back by ``max_queued_tasks``.

A process worker keeps its cap itself rather than through the submission queue
stage (``middleware/_queue.py``), so that a capped worker keeps the direct path
(no chain, no task per call): at most ``max_queued_tasks`` calls are with the
child, and the rest wait here in the order the queue stage would start them,
highest priority first, first come first served within a level
(:class:`~aioconc._heap.PriorityHeap`).  A held call that is cancelled is
skipped when its turn comes and never runs.
"""

from __future__ import annotations

import heapq
from typing import TYPE_CHECKING

from ..._heap import PriorityHeap

if TYPE_CHECKING:
    from ..._call import Call

__all__ = ["HeldCalls"]


class HeldCalls(PriorityHeap["Call"]):
    """One process worker's held-back calls; used under the worker's lock.

    ``take_all()`` ends them (the worker stopped or died);
    ``take_all_in_order()`` sends them all (a graceful stop drains them).
    """

    __slots__ = ()

    def admit(self, calls: list[Call], room: int) -> list[Call]:
        """The calls to send now: ``calls`` join the held ones and as many as
        ``room`` (the places free with the child) leave, in order."""
        if not self and len(calls) == 1 and room > 0:
            return calls  # one call with room for it (every sequential round trip)
        # PriorityHeap.push and take, inlined: this runs for every call beyond
        # the cap, where a method call per call would cost as much as the heap
        # operation itself.
        seq = self._seq
        for call in calls:
            heapq.heappush(self, (call.future.priority, next(seq), call))
        ready: list[Call] = []
        while self and room > 0:
            call = heapq.heappop(self)[2]
            if not call.future.done():  # a held call that was cancelled never runs
                ready.append(call)
                room -= 1
        return ready
