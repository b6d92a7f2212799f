"""What one call is, as it travels from a handle through the chain to a backend."""

from __future__ import annotations

import contextvars
from typing import Any, ClassVar

from ._future import Future

__all__ = ["Call"]


class Call:
    """One call of a worker method: the method's name, its arguments and its future.

    ``timeout`` is this call's own time limit in seconds (None: the worker's
    option applies).  A retry makes a fresh ``Call`` per attempt (with a fresh
    future), so a backend may finish ``future`` however it likes.

    ``context`` is a copy of the caller's ``contextvars`` taken when the call is
    made (as ``asyncio.to_thread`` takes one): backends that run the method in
    this process run it inside that copy, so the method sees the caller's
    values and its own changes stay with the call; process and Ray backends
    send the values of the variables registered with ``carry_context`` from it
    (:mod:`aioconc._carry`).
    """

    __slots__ = ("args", "context", "future", "kwargs", "method", "timeout")

    def __init__(
        self,
        method: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        future: Future[Any],
        timeout: float | None = None,
        context: contextvars.Context | None = None,
    ) -> None:
        self.method = method
        self.args = args
        self.kwargs = kwargs
        self.future = future
        self.timeout = timeout
        self.context = contextvars.copy_context() if context is None else context

    # While a chain runs a call as an attempt, the attempt is what the outer
    # call's future waits on (its ``_inner``): the outer call is then exactly
    # as cancellable as the attempt, and a thread blocked on the outer call
    # just waits (no ``read_while_waiting``), as it does on any call a chain runs.
    read_while_waiting: ClassVar[None] = None

    def done(self) -> bool:
        """Whether this call's future is done."""
        return self.future.done()

    def cancel(self) -> bool:
        """Cancel this call's future (see :meth:`Future.cancel`)."""
        return self.future.cancel()

    def attempt(self) -> Call:
        """A copy of this call with a fresh future, for one more attempt."""
        fut: Future[Any] = Future(priority=self.future.priority, worker=self.future.worker)
        # A copy per attempt: an attempt abandoned by a timeout may still be
        # running in its context when the next one enters its own.
        return Call(self.method, self.args, self.kwargs, fut, self.timeout, self.context.copy())

    def __repr__(self) -> str:
        return f"<Call {self.method} {self.future.task_id}>"
