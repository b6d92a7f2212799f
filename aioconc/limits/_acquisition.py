"""The parts of an acquisition: one ``Acquisition`` per limit, and ``AsyncAcquire``.

What ``LimitSet.acquire`` returns, a ``LimitSetAcquisition`` holding one
``Acquisition`` per key taken, is in ``_limit_set.py`` beside the set it gives
back to.  ``AsyncAcquire`` is what ``async_acquire`` returns before it is
awaited or entered.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Generator
from types import TracebackType
from typing import Any, Generic, Protocol, TypeVar

from ._definitions import CallLimit, Limit, ResourceLimit

__all__ = ["Acquisition", "AsyncAcquire"]

logger = logging.getLogger("aioconc.limits")


class Acquisition:
    """The part of an acquisition that concerns one limit.

    Attributes: ``limit`` (the definition), ``requested``, ``successful``,
    ``used`` (``None`` until updated).
    """

    __slots__ = ("_released", "limit", "requested", "successful", "used")

    def __init__(self, limit: Limit, requested: float, successful: bool = True) -> None:
        self.limit = limit
        self.requested = requested
        self.successful = successful
        self.used: float | None = None
        self._released = False

    def update(self, used: float) -> None:
        """Record the units really used.

        Raises ``ValueError`` for negative usage (or usage other than 1 for a
        CallLimit taken implicitly once), ``RuntimeError`` after release.  Usage
        above the request is kept and logged as a warning: it already happened.
        """
        if self._released:
            raise RuntimeError(
                f"Cannot update an already released acquisition (limit {self.limit.key!r})"
            )
        if isinstance(used, bool) or not isinstance(used, (int, float)):
            raise ValueError(f"usage of {self.limit.key!r} must be a number, got {used!r}")
        if used < 0:
            raise ValueError(f"usage of {self.limit.key!r} cannot be negative, got {used}")
        if isinstance(self.limit, CallLimit) and self.requested == 1 and used != 1:
            raise ValueError(
                f"CallLimit {self.limit.key!r} taken implicitly (1 call) must report usage 1, "
                f"got {used}; request more calls explicitly to report partial usage"
            )
        if used > self.requested:
            logger.warning(
                "Usage (%s) of limit %r exceeds requested amount (%s); the excess is not charged",
                used,
                self.limit.key,
                self.requested,
            )
        self.used = used

    @property
    def needs_update(self) -> bool:
        """True when leaving without ``update`` is an error for this limit."""
        if isinstance(self.limit, ResourceLimit):
            return False
        if isinstance(self.limit, CallLimit):
            return self.requested > 1
        return True

    def __repr__(self) -> str:
        return (
            f"<Acquisition {self.limit.key!r} requested={self.requested} used={self.used}"
            f"{'' if self.successful else ' unsuccessful'}>"
        )


class _Exits(Protocol):
    """What ``AsyncAcquire`` yields: an acquisition that leaving the block releases."""

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


A = TypeVar("A", bound=_Exits)


class AsyncAcquire(Generic[A]):
    """What ``async_acquire`` returns: await it, or use it as an async context manager.

    ``acq = await limits.async_acquire(...)``, ``async with
    limits.async_acquire(...) as acq:`` and the older ``async with await
    limits.async_acquire(...) as acq:`` all work.  Nothing is requested until
    it is awaited or entered, so an unused one leaves nothing behind; it can be
    used once.  Raises what the acquisition raises (``TimeoutError``,
    ``ValueError``), and ``RuntimeError`` when used twice.
    """

    __slots__ = ("_acquired", "_start")

    def __init__(self, start: Callable[[], Coroutine[Any, Any, A]]) -> None:
        self._start: Callable[[], Coroutine[Any, Any, A]] | None = start
        self._acquired: A | None = None

    def _coroutine(self) -> Coroutine[Any, Any, A]:
        start = self._start
        if start is None:
            raise RuntimeError("this async_acquire() was already awaited; call it again")
        self._start = None
        return start()

    def __await__(self) -> Generator[Any, None, A]:
        return self._coroutine().__await__()

    async def __aenter__(self) -> A:
        self._acquired = await self._coroutine()
        return self._acquired

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        acquired, self._acquired = self._acquired, None
        if acquired is not None:
            acquired.__exit__(exc_type, exc, tb)

    def __repr__(self) -> str:
        return f"<AsyncAcquire {'pending' if self._start is not None else 'used'}>"
