"""What one call is, as it travels from a handle through the chain to a backend."""

from __future__ import annotations

from typing import Any

from ._future import Future

__all__ = ["Call"]


class Call:
    """One call of a worker method: the method's name, its arguments and its future.

    ``timeout`` is this call's own time limit in seconds (None: the worker's
    option applies).  A retry makes a fresh ``Call`` per attempt (with a fresh
    future), so a backend may finish ``future`` however it likes.
    """

    __slots__ = ("args", "future", "kwargs", "method", "timeout")

    def __init__(
        self,
        method: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        future: Future[Any],
        timeout: float | None = None,
    ) -> None:
        self.method = method
        self.args = args
        self.kwargs = kwargs
        self.future = future
        self.timeout = timeout

    def attempt(self) -> Call:
        """A copy of this call with a fresh future, for one more attempt."""
        fut: Future[Any] = Future(priority=self.future.priority, worker=self.future.worker)
        return Call(self.method, self.args, self.kwargs, fut, self.timeout)

    def __repr__(self) -> str:
        return f"<Call {self.method} {self.future.task_id}>"
