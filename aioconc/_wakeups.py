"""How a finished future reaches whoever waits: threads, event loops, bridges.

A :class:`~aioconc._future.Future` is finished in whatever thread runs the call;
these are the done-callbacks that carry the news on from there:

* :class:`_Waiter` wakes a thread blocked in ``result()`` (a lock it releases);
* :class:`_OnLoop` runs a callback registered inside an event loop on that loop;
* :class:`_LoopBridge` copies the outcome into an ``asyncio.Future`` of a loop
  (what ``await`` and ``as_asyncio_future()`` wait on), through the loop's
  :class:`~aioconc._runtime.Inbox` when it comes from another thread, so a burst
  of completions costs one wake-up.

Each carries ``threadsafe = True``: the future calls it in the finishing thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from ._exceptions import CancelledError
from ._record import TaskStatus
from ._runtime import inbox_for, running_loop

if TYPE_CHECKING:
    from ._future import Future

__all__ = ["_LoopBridge", "_OnLoop", "_Waiter", "_cancel_aio", "_copy_outcome"]

_SUCCESS = TaskStatus.SUCCESS
_FAILURE = TaskStatus.FAILURE


class _OnLoop:
    """A done-callback registered on an event loop: run there, whatever thread finishes."""

    __slots__ = ("fn", "loop")
    threadsafe = True

    def __init__(self, loop: asyncio.AbstractEventLoop, fn: Callable[[Any], Any]) -> None:
        self.loop = loop
        self.fn = fn

    def __call__(self, future: Future[Any]) -> None:
        if running_loop() is self.loop:
            self.fn(future)
        elif not self.loop.is_closed():
            inbox_for(self.loop).post(self.fn, future)


class _Waiter:
    """Wakes one thread blocked in ``result()``/``exception()``."""

    __slots__ = ("lock",)
    threadsafe = True

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.lock.acquire()

    def __call__(self, _future: Any) -> None:
        self.lock.release()


class _LoopBridge:
    """Copies a finished future's outcome into an ``asyncio.Future`` on its loop."""

    __slots__ = ("cancel_as_error", "inbox", "loop", "target")
    threadsafe = True

    def __init__(
        self, loop: asyncio.AbstractEventLoop, target: asyncio.Future[Any], cancel_as_error: bool
    ) -> None:
        self.loop = loop
        self.inbox = inbox_for(loop)
        self.target = target
        self.cancel_as_error = cancel_as_error

    def __call__(self, future: Future[Any]) -> None:
        if running_loop() is self.loop:
            _copy_outcome(future, self.target, self.cancel_as_error)
        else:
            self.inbox.post(_copy_outcome, future, self.target, self.cancel_as_error)


def _cancel_aio(aio: asyncio.Future[Any]) -> None:
    # Always a loop turn later: a task cancelled before its first step would
    # never enter the code that records the cancellation in the future.
    loop = aio.get_loop()
    if running_loop() is loop:
        loop.call_soon(aio.cancel)
    elif not loop.is_closed():
        inbox_for(loop).post(aio.cancel)


def _copy_outcome(
    source: Future[Any], target: asyncio.Future[Any], cancel_as_error: bool = False
) -> None:
    # cancel_as_error: for ``await future``, a cancelled call surfaces as our
    # CancelledError (the same exception result() raises), not as a
    # cancellation of the bridge future.
    if target.done():
        return
    state = source._state
    if state is _SUCCESS:
        target.set_result(source._result)
    elif state is _FAILURE:
        target.set_exception(cast(BaseException, source._exception))
    elif cancel_as_error:
        target.set_exception(CancelledError())
    else:
        target.cancel()
