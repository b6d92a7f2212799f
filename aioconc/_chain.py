"""The middleware chain: policy stages folded once around a backend's attempt.

The path of one call::

    handle.method(*args)            _handle.py  Call + Future
       │
       ├─ chain is None ─────────► backend.dispatch(call)        the fast path
       │
       └─ ChainRunner.dispatch ──► home loop: Task(chain(call))
                                      queue ─► retry ─► timeout ─► attempt
                                                                             │
                                              backend.dispatch(call.attempt()) ◄┘

A stage is a factory ``make(next) -> handler`` where ``handler`` is
``async def (call) -> value`` and awaits ``next(call)`` (or not).  Stages that
a worker's options switch off are simply absent: a worker with no retries,
limits, queue bound or timeout has no chain at all and its calls go straight to
the backend.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from ._future import Future
from ._runtime import inbox_for, running_loop, task_in_context

if TYPE_CHECKING:
    from ._call import Call
    from ._stats import CallCounters

__all__ = ["ChainRunner", "Handler", "Stage", "attempt_handler", "build_chain"]

Handler = Callable[["Call"], Awaitable[Any]]
Stage = Callable[[Handler], Handler]


def build_chain(stages: Sequence[Stage], terminal: Handler) -> Handler | None:
    """Fold ``stages`` (outermost first) around ``terminal``; None when there are none."""
    if not stages:
        return None
    handler = terminal
    for make in reversed(stages):
        handler = make(handler)
    return handler


def attempt_handler(
    dispatch: Callable[[Call], None], attempts: CallCounters | None = None
) -> Handler:
    """The chain's innermost handler: one attempt, with a fresh future, given to ``dispatch``
    (a backend worker's).

    ``attempts`` counts the attempts handed to the worker (what is in flight).
    """

    async def attempt(call: Call) -> Any:
        one = call.attempt()
        if attempts is not None:
            attempts.submit(one.future)
        outer = call.future
        outer.attempts += 1
        outer._inner = one  # the outer call is as cancellable as this attempt
        try:
            dispatch(one)
            return await one.future
        finally:
            outer._inner = None

    return attempt


class ChainRunner:
    """Runs each call's chain as a task on the worker's home loop."""

    __slots__ = ("_chain", "_drained", "_inbox", "_loop", "_running")

    def __init__(self, chain: Handler, loop: asyncio.AbstractEventLoop) -> None:
        self._chain = chain
        self._loop = loop
        self._inbox = inbox_for(loop)
        self._running = 0  # chains started and not yet finished
        self._drained: list[Future[None]] = []

    def dispatch(self, call: Call) -> None:
        """Start ``call``'s chain on the home loop; thread-safe and non-blocking."""
        if running_loop() is self._loop:
            self._start(call)
        else:
            self._inbox.post(self._start, call)

    def on_stop(self, graceful: bool) -> Future[None] | None:
        """A graceful stop's wait: finishes once every call dispatched so far has
        gone through its chain (so none reaches the backend after it closes)."""
        if not graceful:
            return None
        drained: Future[None] = Future()
        # Through the same inbox, so the calls posted before this are started first.
        if running_loop() is self._loop:
            self._when_idle(drained)
        else:
            self._inbox.post(self._when_idle, drained)
        return drained

    def _when_idle(self, drained: Future[None]) -> None:
        if self._running == 0:
            drained._set_result(None)
        else:
            self._drained.append(drained)

    def _start(self, call: Call) -> None:
        fut = call.future
        if not fut._start():
            return
        fut.attempts = 0
        self._running += 1
        task = task_in_context(self._loop, self._run(call), call.context)
        task.add_done_callback(functools.partial(self._ended, fut))
        fut._bind_task(task)

    def _ended(self, fut: Future[Any], task: asyncio.Task[None]) -> None:
        self._running -= 1
        if task.cancelled():
            fut._set_cancelled()  # cancelled before its first step: _run never saw it
        if self._running == 0 and self._drained:
            waiting, self._drained = self._drained, []
            for drained in waiting:
                drained._set_result(None)

    async def _run(self, call: Call) -> None:
        fut = call.future
        try:
            result = await self._chain(call)
        except asyncio.CancelledError as cancelled:
            fut._set_cancelled(cancelled)  # may be the awaiting task's (Future.__await__)
        except BaseException as exc:
            fut._set_exception(exc)
        else:
            fut._set_result(result)
