"""Waiting on aioconc futures from any event loop: asyncio, uvloop, or trio through anyio.

aioconc's own machinery runs on asyncio loops (a worker's home loop is the
running asyncio loop, or aioconc's background loop).  A caller may run another
loop: under ``trio.run`` or ``anyio.run(..., backend="trio")`` there is no
asyncio loop in the thread, so workers made there live on the background loop
and their completions come from other threads.  This module lets such a caller
wait, with anyio's primitives:

* :func:`current_inbox` -- the thread-safe, batched hand-off to the running loop:
  the asyncio loop's :class:`~aioconc._runtime.Inbox`, or one built on anyio's
  event-loop token (one ``run_sync_soon`` per burst of completions);
* :func:`await_elsewhere` -- ``await future`` under a non-asyncio loop: parks
  the task on an ``anyio.Event``; a cancel scope that cancels the awaiting
  task cancels the call (as far as ``Future.cancel`` can);
* :func:`wait_quietly` -- wait for a future up to a timeout without ever
  cancelling it (what ``astop`` needs on every loop).

Running a bare coroutine as a task of whichever loop runs is in ``_coroutine_task.py``.
What these helpers need of a future is :class:`Waitable`, declared here, below
the future (``_future.py`` uses this module).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol

import anyio
import anyio.lowlevel

from ._runtime import Inbox, inbox_for, running_loop

__all__ = [
    "Waitable",
    "await_elsewhere",
    "current_inbox",
    "in_async_code",
    "wait_quietly",
]

_inbox_var: anyio.lowlevel.RunVar[Inbox] = anyio.lowlevel.RunVar("aioconc_inbox")


class Waitable(Protocol):
    """An :class:`~aioconc.Future`, as far as waiting on it from any loop needs one."""

    def done(self) -> bool: ...

    def cancel(self) -> bool: ...

    def add_done_callback(self, fn: Callable[[Any], Any]) -> None: ...

    def remove_done_callback(self, fn: Callable[[Any], Any]) -> int: ...

    def _outcome(self) -> Any: ...


def in_async_code() -> bool:
    """True when an event loop runs in this thread: asyncio's, or one anyio knows (trio)."""
    if running_loop() is not None:
        return True
    try:
        anyio.lowlevel.current_token()
    except Exception:  # anyio's NoEventLoopError (a RuntimeError) or sniffio's
        return False
    return True


def current_inbox() -> Inbox:
    """The batched, thread-safe hand-off to the loop running in this thread.

    Raises ``RuntimeError`` (anyio's ``NoEventLoopError``) outside a running loop.
    """
    loop = running_loop()
    if loop is not None:
        return inbox_for(loop)
    inbox = _inbox_var.get(None)
    if inbox is None:
        token = anyio.lowlevel.current_token()
        backend, native = token.backend_class, token.native_token

        def schedule(fn: Any) -> None:
            backend.run_sync_soon(fn, (), native)

        inbox = Inbox(native, schedule)
        _inbox_var.set(inbox)
    return inbox


class _Wake:
    """A done-callback that sets an ``anyio.Event`` on its loop, from any thread."""

    __slots__ = ("event", "inbox", "thread")
    threadsafe = True

    def __init__(self, event: anyio.Event, inbox: Inbox) -> None:
        self.event = event
        self.inbox = inbox
        self.thread = threading.get_ident()

    def __call__(self, _future: Any) -> None:
        if threading.get_ident() == self.thread:
            self.event.set()
        else:
            self.inbox.post(self.event.set)


async def await_elsewhere(future: Waitable) -> Any:
    """``await future`` under a loop that is not asyncio's (see the module docstring).

    Returns the call's value or raises its exception; if the awaiting task is
    cancelled, the call is cancelled too and the cancellation goes on.
    """
    event = anyio.Event()
    wake = _Wake(event, current_inbox())
    future.add_done_callback(wake)
    try:
        await event.wait()
    except anyio.get_cancelled_exc_class():
        future.remove_done_callback(wake)
        future.cancel()
        raise
    return future._outcome()


async def wait_quietly(future: Waitable, seconds: float | None) -> bool:
    """Wait until ``future`` is done or ``seconds`` pass (None: no limit); True when done.

    Never cancels ``future``, also when the waiting task is cancelled.
    """
    if future.done():
        return True
    event = anyio.Event()
    wake = _Wake(event, current_inbox())
    future.add_done_callback(wake)
    try:
        with anyio.move_on_after(seconds):
            await event.wait()
    finally:
        future.remove_done_callback(wake)
    return future.done()
