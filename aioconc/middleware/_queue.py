"""The submission queue: a cap on calls in flight, held-back calls by priority.

::

    call ─► SubmissionQueue stage ─┬─ a slot is free ──────────────► next(call)
                                   └─ all slots taken ─► held back (heap of
                                        (priority, sequence)) until release()
                                        hands a finished call's slot on

``max_queued_tasks=N`` gives each worker N slots (a pool of W workers: N * W,
and the pool sends a released call to a worker with a free slot).  A call
beyond the cap has already returned its future; it waits here, on the home
loop, never in the caller's thread.  Held-back calls start highest priority
first (level 0, "critical", first), first come first served within a level
(``aioconc/_heap.py``, the order a process worker holds its calls in too).
A held-back call that is cancelled is dropped from the heap and never runs;
the handle's ``stop()`` cancels whatever is still held back.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._enums import ExecutionMode
from .._future import Future
from .._heap import PriorityHeap
from .._runtime import inbox_for, running_loop

if TYPE_CHECKING:
    from .._call import Call
    from .._chain import Handler
    from .._options import Options

__all__ = ["QueueStatistics", "SubmissionQueue", "queue_applies"]

# Calls in these modes run inline or on the caller's own loop: there is no
# worker-side backlog to bound (CONFORMANCE 143), as concurry does.
_UNQUEUED_MODES = frozenset({ExecutionMode.Sync, ExecutionMode.Asyncio})


def queue_applies(options: Options) -> bool:
    """Whether ``options`` ask for a submission queue that has an effect."""
    return (
        bool(options.max_queued_tasks)
        and not options.blocking
        and options.mode not in _UNQUEUED_MODES
    )


@dataclass(frozen=True)
class QueueStatistics:
    """A snapshot of a submission queue."""

    capacity: int
    in_flight: int
    held: int


class SubmissionQueue:
    """A chain stage bounding calls in flight to ``per_worker * workers``.

    Use it as a stage (``queue(next) -> handler``); ``on_stop(graceful)`` is
    the handle's stop hook.  All its state lives on the home loop.
    """

    def __init__(self, per_worker: int) -> None:
        if per_worker < 1:
            raise ValueError(f"max_queued_tasks must be at least 1, got {per_worker}")
        self.per_worker = per_worker
        self.workers = 1  # a pool sets its size here
        self._in_flight = 0
        self._held: PriorityHeap[asyncio.Future[None]] = PriorityHeap()
        self._n_held = 0  # live (not cancelled) entries of _held
        self._handing = 0  # released calls whose task has not resumed yet
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drained: list[Future[None]] = []

    @property
    def capacity(self) -> int:
        """How many calls may be in flight at once."""
        return self.per_worker * self.workers

    # -- the stage -------------------------------------------------------------

    def __call__(self, next_handler: Handler) -> Handler:
        async def queued(call: Call) -> Any:
            await self.acquire(call.future.priority)
            try:
                return await next_handler(call)
            finally:
                self.release()

        return queued

    async def acquire(self, priority: int) -> None:
        """Take a slot, waiting behind the held-back calls of higher or equal priority."""
        if self._in_flight < self.capacity and not self._n_held:
            self._in_flight += 1
            return
        loop = self._loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._held.push(priority, waiter)
        self._n_held += 1
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.cancelled():
                self._n_held -= 1
                self._check_drained()
            else:
                self._handing -= 1
                self.release()  # the slot was handed over just as we were cancelled
            raise
        self._handing -= 1
        if self._drained:
            # Checked once this task has handed its call on (it does so before
            # it next yields), so a graceful stop closes the backend after it.
            loop.call_soon(self._check_drained)

    def release(self) -> None:
        """Give a finished call's slot to the next held-back call, or free it."""
        held = self._held
        while held:
            waiter = held.take()
            if not waiter.done():  # cancelled waiters are skipped: they never run
                self._n_held -= 1
                self._handing += 1
                waiter.set_result(None)  # the slot passes on; in_flight is unchanged
                self._check_drained()
                return
        self._in_flight -= 1
        self._check_drained()

    # -- stop and statistics ---------------------------------------------------

    def bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Name the home loop the stage runs on (before any call has come)."""
        self._loop = loop

    def on_stop(self, graceful: bool) -> Future[None] | None:
        """The handle's stop hook.

        Not ``graceful``: cancel every held-back call (they never run).
        ``graceful``: return a future that finishes once every call handed to
        the chain so far has gone on to the backend (None without a loop).
        """
        loop = self._loop
        if loop is None or loop.is_closed():
            return None
        if not graceful:
            if running_loop() is loop:
                self._cancel_held()
            else:
                inbox_for(loop).post(self._cancel_held)
            return None
        drained: Future[None] = Future()
        # Through the loop's inbox: behind every call posted before the stop.
        if running_loop() is loop:
            self._watch(drained)
        else:
            inbox_for(loop).post(self._watch, drained)
        return drained

    def statistics(self) -> QueueStatistics:
        """How many calls are in flight and held back now."""
        return QueueStatistics(self.capacity, self._in_flight, self._n_held)

    def _cancel_held(self) -> None:
        for waiter in self._held.take_all():
            waiter.cancel()
        self._check_drained()

    def _watch(self, drained: Future[None]) -> None:
        self._drained.append(drained)
        # A loop turn later: the tasks of calls that reached the loop before
        # the stop take their first step (to the backend, or into the heap) first.
        assert self._loop is not None
        self._loop.call_soon(self._check_drained)

    def _check_drained(self) -> None:
        if self._drained and not self._n_held and not self._handing:
            waiting, self._drained = self._drained, []
            for fut in waiting:
                fut._set_result(None)

    def __repr__(self) -> str:
        stats = self.statistics()
        return f"<SubmissionQueue in_flight={stats.in_flight}/{stats.capacity} held={stats.held}>"
