"""Acquisitions: what ``LimitSet.acquire`` returns, and how usage is settled.

``LimitSetAcquisition`` holds one ``Acquisition`` per key taken.  Use it as a
context manager (``with`` or ``async with``); leaving the block releases it:

* ResourceLimits are returned;
* RateLimits refund ``requested - used`` where the algorithm allows (TokenBucket,
  GCRA) -- ``used`` comes from ``update(usage={...})``;
* a RateLimit (or a CallLimit requested more than once) that was not updated
  makes a clean exit raise ``RuntimeError`` naming the keys -- after everything
  is released, so nothing leaks;
* leaving by an exception releases everything (charging the full request where
  no usage was reported) and lets that exception through untouched.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Generator
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ._definitions import CallLimit, Limit, ResourceLimit

if TYPE_CHECKING:
    from ._limit_set import LimitSet

__all__ = ["Acquisition", "AsyncAcquire", "LimitSetAcquisition"]

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
            raise RuntimeError(f"limit {self.limit.key!r} was already released")
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
                "usage %s of limit %r exceeds the %s requested; the excess is not charged",
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


class LimitSetAcquisition:
    """An all-or-nothing acquisition of several limits of one ``LimitSet``.

    Attributes: ``limit_set``, ``acquisitions`` (key -> ``Acquisition``),
    ``successful`` (False only from ``try_acquire``), ``config`` (a copy of the
    set's ``config``).
    """

    __slots__ = ("_released", "_warned", "acquisitions", "config", "limit_set", "successful")

    def __init__(
        self,
        limit_set: LimitSet,
        acquisitions: dict[str, Acquisition],
        successful: bool = True,
        config: dict[str, Any] | None = None,
    ) -> None:
        self.limit_set = limit_set
        self.acquisitions = acquisitions
        self.successful = successful
        self.config = dict(config) if config else {}
        self._warned: set[str] = set()
        self._released = False

    def update(self, usage: dict[str, float]) -> None:
        """Record the units really used, per key.

        Unknown keys are ignored with a logged warning (once per key).  Raises
        ``ValueError`` for invalid usage, ``RuntimeError`` after release.
        """
        if self._released:
            raise RuntimeError("this acquisition was already released")
        for key, used in usage.items():
            acquisition = self.acquisitions.get(key)
            if acquisition is None:
                if key not in self._warned:
                    self._warned.add(key)
                    logger.warning(
                        "update: limit %r was not acquired here and is ignored (acquired: %s)",
                        key,
                        sorted(self.acquisitions),
                    )
                continue
            acquisition.update(used)

    def release(self) -> None:
        """Release everything; then raise ``RuntimeError`` if usage was not reported.

        A second call does nothing.
        """
        missing = self._release()
        if missing:
            raise RuntimeError(
                f"acquisition released without update(usage=...) for {missing}: "
                "RateLimits (and CallLimits requested more than once) need the real usage"
            )

    def _release(self) -> list[str]:
        """Give everything back; return the keys whose usage was required but missing."""
        if self._released:
            return []
        self._released = True
        if not self.successful:
            return []
        for acquisition in self.acquisitions.values():
            acquisition._released = True
        self.limit_set._release(self)
        return sorted(
            key for key, acq in self.acquisitions.items() if acq.needs_update and acq.used is None
        )

    def __enter__(self) -> LimitSetAcquisition:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.release()
        else:
            self._release()  # the body's exception is the one the caller must see

    async def __aenter__(self) -> LimitSetAcquisition:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def __repr__(self) -> str:
        state = "released" if self._released else "held" if self.successful else "unsuccessful"
        taken = {key: acq.requested for key, acq in self.acquisitions.items()}
        return f"<LimitSetAcquisition {state} {taken} config={self.config}>"


class AsyncAcquire:
    """What ``async_acquire`` returns: await it, or use it as an async context manager.

    ``acq = await limits.async_acquire(...)``, ``async with
    limits.async_acquire(...) as acq:`` and the older ``async with await
    limits.async_acquire(...) as acq:`` all work.  Nothing is requested until
    it is awaited or entered, so an unused one leaves nothing behind; it can be
    used once.  Raises what the acquisition raises (``TimeoutError``,
    ``ValueError``), and ``RuntimeError`` when used twice.
    """

    __slots__ = ("_acquired", "_start")

    def __init__(self, start: Callable[[], Coroutine[Any, Any, LimitSetAcquisition]]) -> None:
        self._start: Callable[[], Coroutine[Any, Any, LimitSetAcquisition]] | None = start
        self._acquired: LimitSetAcquisition | None = None

    def _coroutine(self) -> Coroutine[Any, Any, LimitSetAcquisition]:
        start = self._start
        if start is None:
            raise RuntimeError("this async_acquire() was already awaited; call it again")
        self._start = None
        return start()

    def __await__(self) -> Generator[Any, None, LimitSetAcquisition]:
        return self._coroutine().__await__()

    async def __aenter__(self) -> LimitSetAcquisition:
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
