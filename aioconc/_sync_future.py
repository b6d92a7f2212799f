"""``SyncFuture``: a :class:`~aioconc.Future` that is finished when it is made."""

from __future__ import annotations

from typing import Any, TypeVar

from ._future import _FAILURE, _SUCCESS, PRIORITY_NORMAL, Future, _now

__all__ = ["SyncFuture"]

T = TypeVar("T")


class SyncFuture(Future[T]):
    """A future that is finished when it is made, from a value or an exception.

    The futures of sync-mode calls are ``SyncFuture``s too (the call has run by
    the time it is returned).  Raises ``TypeError`` when ``exception_value`` is
    not an exception.
    """

    __slots__ = ()

    def __init__(
        self, result_value: Any = None, exception_value: BaseException | None = None
    ) -> None:
        # Every slot set directly, not through Future.__init__: making one of
        # these is on the hot path of code that wraps plain values.
        self._callbacks = self._aio = self._loop = self._inner = self._task_id = None
        self._stats = None
        self._asyncio_future_blocking = self.worker = self.started_at = None
        self.priority = PRIORITY_NORMAL
        self.attempts = 0
        self.submitted_at = self.completed_at = _now()
        if exception_value is None:
            self._result = result_value
            self._exception = None
            self._state = _SUCCESS
        elif isinstance(exception_value, BaseException):
            self._result = None
            self._exception = exception_value
            self._state = _FAILURE
        else:
            raise TypeError(
                f"exception_value must be an exception, not {type(exception_value).__name__}"
            )

    @classmethod
    def pending(cls, priority: int = PRIORITY_NORMAL, worker: str | None = None) -> SyncFuture[T]:
        """A not yet finished one, for a call that a sync-mode worker runs inline."""
        fut = cls.__new__(cls)
        Future.__init__(fut, priority, worker)
        return fut
