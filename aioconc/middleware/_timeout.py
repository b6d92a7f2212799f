"""The timeout stage: a deadline around each attempt, failing it with ``CallTimeoutError``.

::

    timeout ─► deadline = now + (call.timeout or the worker's timeout)
               next(call) ─┬─ finishes in time ──────────────► its outcome
                           └─ deadline passes ─► cancel the attempt
                                                 on_timeout(call)   (backend hook, optional)
                                                 raise CallTimeoutError

Cancelling the attempt does what the backend can: a call that has not started
never runs; an ``async def`` call in asyncio mode has its task cancelled; a call
running on a thread cannot be interrupted, so it finishes and its result is
dropped.  A backend that can do more (process mode's ``on_timeout="kill"``
replaces the worker) does it in its ``on_timeout(call)`` hook.

A call whose attempt ran inline past its deadline (sync mode: the method runs
before the stage gets a chance to wake) fails the same way, so every mode
reports a late call alike.  Inside the retry stage the deadline applies per
attempt, and ``CallTimeoutError`` is retried like any other exception that
``retry_on`` matches.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

from .._exceptions import CallTimeoutError

if TYPE_CHECKING:
    from .._call import Call
    from .._chain import Handler

__all__ = ["OnTimeout", "timeout_stage"]

log = logging.getLogger("aioconc")

OnTimeout = Callable[["Call"], Any]
"""A backend worker's hook, called on the home loop when one of its calls timed out.

It gets the logical call (the attempt the backend received is a copy sharing the
same ``method`` and the very same ``args`` tuple).  The attempt has already been
cancelled; the hook may end what is still running (kill a process) and must not block.
"""


def timeout_stage(
    default: float | None, *, on_timeout: OnTimeout | None = None
) -> Callable[[Handler], Handler]:
    """The timeout stage: ``call.timeout`` seconds per attempt, else ``default``.

    With neither (``None``), calls pass straight through.  ``on_timeout`` is
    the backend worker's hook (see :data:`OnTimeout`); its errors are logged.

    Raises:
        ValueError: for a ``default`` that is not a positive number.
    """
    if default is not None and (isinstance(default, bool) or not default > 0):
        raise ValueError(f"timeout must be a positive number of seconds, got {default!r}")

    def make(next_: Handler) -> Handler:
        return _Deadline(next_, default, on_timeout)

    return make


class _Expiry:
    """The timer callback: marks the deadline as passed and cancels the waiting task."""

    __slots__ = ("fired", "task")

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self.task = task
        self.fired = False

    def __call__(self) -> None:
        self.fired = True
        self.task.cancel()


def _cancelling(task: asyncio.Task[Any]) -> int:
    # Python 3.11+ counts cancel requests; on 3.10 an external cancel that
    # races the deadline cannot be told apart from ours, and the timeout wins.
    cancelling = getattr(task, "cancelling", None)
    return 0 if cancelling is None else int(cancelling())


def _uncancel(task: asyncio.Task[Any]) -> int:
    # Withdraw our cancel request (3.11+), so asyncio.timeout() and
    # TaskGroup further out see only the requests of others.
    uncancel = getattr(task, "uncancel", None)
    return 0 if uncancel is None else int(uncancel())


class _Deadline:
    """The stage's handler."""

    __slots__ = ("_default", "_next", "_on_timeout")

    def __init__(self, next_: Handler, default: float | None, on_timeout: OnTimeout | None) -> None:
        self._next = next_
        self._default = default
        self._on_timeout = on_timeout

    async def __call__(self, call: Call) -> Any:
        limit = call.timeout if call.timeout is not None else self._default
        if limit is None:
            return await self._next(call)
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - the chain always runs in a task
            raise RuntimeError("the timeout stage must run inside an asyncio task")
        # Our own cancel-then-translate, not asyncio.timeout(): a cancelled
        # attempt surfaces as aioconc's CancelledError subclass, which
        # asyncio.timeout() would not turn into a TimeoutError.
        deadline = loop.time() + limit
        baseline = _cancelling(task)
        expiry = _Expiry(task)
        timer = loop.call_at(deadline, expiry)
        try:
            result = await self._next(call)
        except asyncio.CancelledError:
            # A cancellation that someone else asked for too wins over ours.
            if not expiry.fired or _uncancel(task) > baseline:
                raise
            self._expired(call, limit)
        finally:
            timer.cancel()
        if expiry.fired:  # the attempt absorbed our cancel and returned anyway
            if _uncancel(task) > baseline:
                raise asyncio.CancelledError
            self._expired(call, limit)
        if loop.time() > deadline:  # ran inline, past the deadline (sync mode)
            self._expired(call, limit)
        return result

    def _expired(self, call: Call, limit: float) -> NoReturn:
        hook = self._on_timeout
        if hook is not None:
            try:
                hook(call)
            except Exception:  # the timeout must still be reported
                log.exception("on_timeout hook of %s raised", call.future.worker)
        raise CallTimeoutError(
            f"{call.method}() of {call.future.worker} did not finish within {limit:g} s"
        ) from None
