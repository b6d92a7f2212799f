"""Run a bare coroutine as a task of the loop running in this thread, any loop.

``async_wait``/``async_gather`` and ``wrap_future`` take coroutines as asyncio
does; under trio there is no ``ensure_future``, so the coroutine runs in a task
of trio's system nursery and a library :class:`~aioconc.Future` stands for it.
"""

from __future__ import annotations

import asyncio
import contextvars
import importlib
import threading
from typing import Any

import anyio

from ._anyloop import current_inbox
from ._future import Future
from ._runtime import Inbox, running_loop

__all__ = ["start_awaitable"]


def start_awaitable(awaitable: Any) -> Any:
    """Run ``awaitable`` as a task of the loop running in this thread; its handle.

    Under asyncio: the ``asyncio.Task`` (``asyncio.ensure_future``).  Under
    trio: a library :class:`~aioconc.Future` finished by a task in trio's
    system nursery, which, like an asyncio task, outlives the caller's scope
    (until ``trio.run`` ends) and runs in a copy of the caller's context;
    cancelling the future cancels the task.

    Raises ``RuntimeError`` outside a running loop.
    """
    if running_loop() is not None:
        return asyncio.ensure_future(awaitable)
    inbox = current_inbox()  # RuntimeError outside any loop
    # The one loop other than asyncio's that anyio runs is trio's; its system
    # nursery is the one place a task may outlive the scope that started it.
    trio = importlib.import_module("trio")  # typed as Any: trio < 0.23 has no stubs
    task = _TrioTask(inbox, trio.CancelScope())
    future: Future[Any] = Future()
    future._inner = task
    context = contextvars.copy_context()
    trio.lowlevel.spawn_system_task(task.run, awaitable, future, context=context)
    return future


class _TrioTask:
    """A coroutine run for a future under trio; the future's ``_inner``, so that
    cancelling the future cancels the task (from any thread)."""

    __slots__ = ("inbox", "scope", "thread")
    read_while_waiting = None  # a thread blocked on the future just waits: the task runs in trio

    def __init__(self, inbox: Inbox, scope: Any) -> None:
        self.inbox = inbox
        # trio's own scope: anyio's CancelScope.cancel() passes trio a reason,
        # which trio before 0.32 (what anyio's own trio extra asks for) rejects.
        self.scope = scope
        self.thread = threading.get_ident()

    def done(self) -> bool:
        return False  # the future decides: it is finished only by run()

    def cancel(self) -> bool:
        if threading.get_ident() == self.thread:
            self.scope.cancel()
        else:
            self.inbox.post(self.scope.cancel)
        return True

    async def run(self, awaitable: Any, future: Future[Any]) -> None:
        if future.done():  # cancelled before it began: it never runs, as in asyncio
            close = getattr(awaitable, "close", None)
            if close is not None:
                close()
            return
        with self.scope:
            try:
                value = await awaitable
            except anyio.get_cancelled_exc_class():
                future._set_cancelled()
                raise  # ours is absorbed by the scope; trio's shutdown goes on
            except BaseException as exc:  # a task's failure is its future's, as in asyncio
                future._set_exception(exc)
            else:
                future._set_result(value)
