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
A future's state is the future's own business: the bridge asks it to copy its
outcome (:class:`Finished` is what it needs of one, declared here, below the
future).  :class:`Inner` is what a future waits on while another call runs on
its behalf; its ``read_while_waiting`` lets a blocked thread finish the future itself.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, Protocol

from ._runtime import inbox_for, running_loop

__all__ = [
    "Finished",
    "Inner",
    "Mirrored",
    "WaitHere",
    "_LoopBridge",
    "_OnLoop",
    "_Waiter",
    "_cancel_aio",
    "mirror",
]

WaitHere = Callable[[Any, "float | None"], None]


class Finished(Protocol):
    """A finished :class:`~aioconc.Future`, as far as a bridge needs one."""

    def _copy_to(self, target: asyncio.Future[Any], cancel_as_error: bool) -> None: ...


class Mirrored(Finished, Protocol):
    """A :class:`~aioconc.Future`, as far as mirroring it into an ``asyncio.Future`` needs."""

    def done(self) -> bool: ...

    def add_done_callback(self, fn: Callable[[Any], Any]) -> None: ...

    def _on_target_done(self, target: asyncio.Future[Any]) -> None: ...


class Inner(Protocol):
    """What a future's ``_inner`` is: the attempt, sent call or task it waits on.

    ``read_while_waiting(future, deadline)``, when not None, is called by a thread about
    to block in ``result()``: it may finish the future in that thread (a
    process worker's caller reads the result from the socket itself, one
    thread hop fewer) and returns when it can do no more (``deadline`` on the
    ``time.monotonic()`` clock passed, or someone else is finishing it); the
    thread then waits as usual.  None: the thread just waits.
    """

    def done(self) -> bool: ...

    def cancel(self) -> bool: ...

    @property
    def read_while_waiting(self) -> WaitHere | None: ...


class _OnLoop:
    """A done-callback registered on an event loop: run there, whatever thread finishes."""

    __slots__ = ("fn", "loop")
    threadsafe = True

    def __init__(self, loop: asyncio.AbstractEventLoop, fn: Callable[[Any], Any]) -> None:
        self.loop = loop
        self.fn = fn

    def __call__(self, future: Any) -> None:
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

    def __call__(self, future: Finished) -> None:
        if running_loop() is self.loop:
            future._copy_to(self.target, self.cancel_as_error)
        else:
            self.inbox.post(future._copy_to, self.target, self.cancel_as_error)


def _cancel_aio(aio: asyncio.Future[Any]) -> None:
    # Always a loop turn later: a task cancelled before its first step would
    # never enter the code that records the cancellation in the future.
    loop = aio.get_loop()
    if running_loop() is loop:
        loop.call_soon(aio.cancel)
    elif not loop.is_closed():
        inbox_for(loop).post(aio.cancel)


def mirror(future: Mirrored, cancel_as_error: bool) -> asyncio.Future[Any]:
    """An ``asyncio.Future`` on the running loop that gets ``future``'s outcome.

    Cancelling it cancels ``future`` (``_on_target_done``); see
    ``Future.as_asyncio_future``.  Raises ``RuntimeError`` outside a running loop.
    """
    loop = asyncio.get_running_loop()
    target: asyncio.Future[Any] = loop.create_future()
    if future.done():
        future._copy_to(target, cancel_as_error)
        return target
    target.add_done_callback(future._on_target_done)
    future.add_done_callback(_LoopBridge(loop, target, cancel_as_error))
    return target
