"""``LimitSet``: several limits enforced together, taken all at once or not at all.

::

    ls = LimitSet([CallLimit(window=1, capacity=10), RateLimit(key="tokens", window=60,
                   capacity=1000), ResourceLimit(key="conn", capacity=2)])
    with ls.acquire({"tokens": 100}) as acq:      # + 1 call_count, + 1 conn
        acq.update(usage={"tokens": 80})            # 20 tokens refunded (TokenBucket, GCRA)
    async with ls.async_acquire({"tokens": 5}) as acq: ...   # or: acq = await ...

What a request takes: with no request, 1 from every CallLimit and ResourceLimit
(a plain RateLimit then needs an explicit amount: ``ValueError``); with a
request, the named amounts plus 1 from every CallLimit and ResourceLimit not
named.  Unknown keys are ignored with a logged warning.

``mode`` says where the set may be used: "sync", "asyncio" and "thread" sets live
in this process.  A shared "process" set keeps its state in the process that made
it, and the worker processes using it acquire over their own connection to that
process; a shared "ray" set keeps its state in one Ray actor.  The state sits
behind a ``LimitBackend`` (``_engine.py``) -- local, or a client of the remote
state -- so the algorithms, FIFO order and refunds are the same everywhere; this
class validates and builds requests.

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
import math
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, overload

from .. import config as _config
from .._enums import ExecutionMode
from ._acquisition import Acquisition, AsyncAcquire
from ._algorithms import state_class
from ._definitions import CallLimit, Limit, RateLimit, ResourceLimit
from ._engine import LimitBackend, LocalLimitEngine
from ._export import current_exporter

__all__ = ["LimitSet", "LimitSetAcquisition"]

logger = logging.getLogger("aioconc.limits")

_REMOTE_MODES = frozenset({ExecutionMode.Processes, ExecutionMode.Ray})


class LimitSet:
    """Enforce ``limits`` jointly: ``acquire``, ``async_acquire``, ``try_acquire``.

    Parameters:
        limits: ``RateLimit`` / ``CallLimit`` / ``ResourceLimit`` definitions; an
            empty list gives a set that never blocks.
        shared: whether several workers may use this set (see ``limits_for``).
        mode: the worker mode the set is for: "sync", "asyncio", "thread",
            "process" or "ray" (aliases accepted).
        config: any dict, copied onto every acquisition as ``acq.config``.
        mp_context: for process sets; defaults to the configured ``mp_context``.
        clock: (aioconc) monotonic seconds, ``time.monotonic`` by default; async
            waits need a loop whose ``time()`` runs on the same clock.

    Raises:
        TypeError: an item of ``limits`` is not a ``Limit``; ``config`` not a dict.
        ValueError: two limits share a key; an unknown mode; ``shared=False``
            with mode "process" or "ray".
    """

    def __init__(
        self,
        limits: Iterable[Limit],
        shared: bool = False,
        mode: ExecutionMode | str = ExecutionMode.Sync,
        config: Mapping[str, Any] | None = None,
        mp_context: str | None = None,
        *,
        clock: Callable[[], float] | None = None,
    ) -> None:
        given = list(limits)
        limits = []
        by_key: dict[str, Limit] = {}
        for limit in given:
            if not isinstance(limit, Limit) or type(limit) is Limit:
                raise TypeError(
                    f"LimitSet takes RateLimit, CallLimit or ResourceLimit objects, got {limit!r}"
                )
            if limit.key in by_key:
                raise ValueError(f"Duplicate limit key {limit.key!r} in LimitSet")
            # This set's own copy (equal to the one given), so that its
            # get_stats() and can_acquire() report this set's state.
            limit = limit.model_copy()
            limit._owner = self
            limits.append(limit)
            by_key[limit.key] = limit
        parsed = ExecutionMode(ExecutionMode.parse(mode))
        if not shared and parsed in _REMOTE_MODES:
            raise ValueError(
                f"LimitSet(mode={str(mode)!r}) must be shared=True: a private set lives "
                "inside one worker, so only sync, asyncio or thread sets can be private"
            )
        if config is not None and not isinstance(config, Mapping):
            raise TypeError(f"LimitSet config must be a dict, got {type(config).__name__}")
        if mp_context is None and parsed is ExecutionMode.Processes:
            mp_context = _config.resolve(parsed, "mp_context")
        self.limits = limits
        self.shared = bool(shared)
        self.mode = parsed
        self.config: dict[str, Any] = dict(config or {})
        self.mp_context = mp_context
        self._by_key = by_key
        self._implicit = {
            key: 1 for key, limit in by_key.items() if isinstance(limit, (CallLimit, ResourceLimit))
        }
        self._warned: set[str] = set()
        self._backend: LimitBackend = LocalLimitEngine(limits, clock)

    # -- acquiring -----------------------------------------------------------

    def acquire(
        self, requested: Mapping[str, float] | None = None, timeout: float | None = None
    ) -> LimitSetAcquisition:
        """Block until every requested limit fits, take them all, return the acquisition.

        Raises ``TimeoutError`` after ``timeout`` seconds, ``ValueError`` for a
        request that can never be met (see the class docstring).  In async code
        use ``async_acquire``: this blocks the thread, and with it its loop.
        """
        amounts = self._amounts(requested)
        if amounts:
            self._backend.acquire(amounts, timeout)
        return self._acquisition(amounts, True)

    def async_acquire(
        self, requested: Mapping[str, float] | None = None, timeout: float | None = None
    ) -> AsyncAcquire[LimitSetAcquisition]:
        """``acquire`` for async code: waits on the running loop without blocking it.

        Await the result (``acq = await ls.async_acquire()``) or enter it
        (``async with ls.async_acquire() as acq:``).  Raises as ``acquire`` does,
        when awaited.
        """
        return AsyncAcquire(lambda: self._async_acquire(requested, timeout))

    async def _async_acquire(
        self, requested: Mapping[str, float] | None, timeout: float | None
    ) -> LimitSetAcquisition:
        amounts = self._amounts(requested)
        if amounts:
            await self._backend.async_acquire(amounts, timeout)
        return self._acquisition(amounts, True)

    def try_acquire(self, requested: Mapping[str, float] | None = None) -> LimitSetAcquisition:
        """Take the request now or not at all; check ``.successful``. Never blocks."""
        amounts = self._amounts(requested)
        taken = not amounts or self._backend.try_acquire(amounts)
        return self._acquisition(amounts, taken)

    def _acquisition(self, amounts: dict[str, float], successful: bool) -> LimitSetAcquisition:
        parts = {
            key: Acquisition(self._by_key[key], amount, successful)
            for key, amount in amounts.items()
        }
        return LimitSetAcquisition(self, parts, successful, self.config)

    def _release(self, acquisition: LimitSetAcquisition) -> None:
        parts = acquisition.acquisitions
        if not parts:
            return
        amounts = {key: acq.requested for key, acq in parts.items()}
        used = {key: acq.used for key, acq in parts.items() if acq.used is not None}
        self._backend.release(amounts, used)

    # -- requests ------------------------------------------------------------

    def _amounts(self, requested: Mapping[str, float] | None) -> dict[str, float]:
        """The full request: validated amounts per key, implicit limits added."""
        if not requested:
            for key in self._by_key:
                if key not in self._implicit:
                    raise ValueError(
                        f"Must specify requested amount for RateLimit {key!r}: "
                        f"pass acquire(requested={{{key!r}: n}})"
                    )
            return dict(self._implicit)
        if not isinstance(requested, Mapping):
            raise TypeError(f"requested must be a dict of key -> amount, got {requested!r}")
        amounts: dict[str, float] = {}
        for key, amount in requested.items():
            limit = self._by_key.get(key)
            if limit is None:
                self._warn_unknown(key)
                continue
            amounts[key] = _checked(limit, amount)
        for key, amount in self._implicit.items():
            amounts.setdefault(key, amount)
        return amounts

    def _warn_unknown(self, key: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            logger.warning(
                "Unknown limit key %r in acquisition request is ignored. Available limit keys: %s",
                key,
                sorted(self._by_key),
            )

    # -- inspection ----------------------------------------------------------

    @overload
    def __getitem__(self, key: str) -> Limit: ...
    @overload
    def __getitem__(self, key: int) -> LimitSet: ...
    def __getitem__(self, key: str | int) -> Limit | LimitSet:
        """The limit with ``key`` (its ``get_stats()`` reports this set's state).

        ``limit_set[0]`` is the set itself: a set reads like a pool of one, so
        ``self.limits[0]["tokens"]`` works whichever a worker was given.
        Raises ``KeyError`` for an unknown key, ``IndexError`` for another index.
        """
        if isinstance(key, int):
            if key in (0, -1) and not isinstance(key, bool):
                return self
            raise IndexError(f"LimitSet index out of range: {key} (a set is a pool of one)")
        try:
            return self._by_key[key]
        except KeyError:
            raise KeyError(
                f"Limit with key {key!r} not found in LimitSet (keys: {sorted(self._by_key)})"
            ) from None

    def __contains__(self, key: object) -> bool:
        return key in self._by_key

    def __len__(self) -> int:
        return len(self._by_key)

    def get_stats(self) -> dict[str, dict[str, Any]]:
        """Per key, the live statistics of that limit (available, utilization, ...)."""
        stats = self._backend.stats()
        return {key: {"key": key, **stats[key]} for key in self._by_key}

    def __repr__(self) -> str:
        parts = []
        for key, stat in self._backend.stats().items():
            available = stat.get("available")
            shown = "inf" if available == math.inf else f"{available:g}"
            parts.append(f"{key}={shown}/{stat['capacity']:g}")
        kind = "shared" if self.shared else "private"
        return (
            f"<LimitSet {kind} mode={self.mode} {' '.join(parts)} waiting={self._backend.waiting}>"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # A private set travels as its definitions (fresh state where it lands).  A
        # shared one must stay one state: the backend shipping it to a worker
        # installs an exporter that turns it into a client of this state.
        if not self.shared:
            return (LimitSet, (self.limits, False, self.mode, self.config, self.mp_context))
        exporter = current_exporter()
        if exporter is None:
            raise TypeError(
                f"a shared LimitSet (mode={self.mode}) cannot be pickled: its state stays in "
                "the process that made it; hand it to workers with options(limits=...) or "
                "as a constructor argument of a process or Ray worker"
            )
        return exporter(self)

    @classmethod
    def _client(
        cls,
        limits: list[Limit],
        mode: ExecutionMode,
        config: dict[str, Any],
        backend: LimitBackend,
    ) -> LimitSet:
        """A shared set whose state lives elsewhere, reached through ``backend``."""
        limit_set = cls(limits, shared=True, mode=mode, config=config)
        limit_set._backend = backend
        return limit_set


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
            raise RuntimeError("Cannot update an already released acquisition")
        for key, used in usage.items():
            acquisition = self.acquisitions.get(key)
            if acquisition is None:
                if key not in self._warned:
                    self._warned.add(key)
                    logger.warning(
                        "Cannot update limit %r: not acquired in this LimitSet; ignored. "
                        "Available keys: %s",
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
                f"Not all limits in the LimitSet were updated. Missing: {missing}: "
                "RateLimits (and CallLimits requested more than once) need "
                "update(usage=...) with the real usage before release"
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


def _checked(limit: Limit, amount: object) -> float:
    """``amount`` as a valid request for ``limit``, else ``ValueError`` naming the key."""
    key = limit.key
    if isinstance(amount, bool) or not isinstance(amount, (int, float)):
        raise ValueError(f"requested amount for {key!r} must be a number, got {amount!r}")
    if not math.isfinite(amount) or amount < 0:
        raise ValueError(f"requested amount for {key!r} must be finite and >= 0, got {amount}")
    capacity = limit.capacity  # type: ignore[attr-defined]
    if amount > capacity:
        raise ValueError(
            f"Requested amount ({amount}) exceeds capacity ({capacity}) for limit {key!r}: "
            "this request can never be fulfilled"
        )
    if amount != int(amount):
        if isinstance(limit, ResourceLimit):
            raise ValueError(f"ResourceLimit {key!r} takes whole units, got {amount}")
        if isinstance(limit, RateLimit) and state_class(limit.algorithm).integral:
            raise ValueError(
                f"{limit.algorithm} limit {key!r} counts whole units, got {amount}; "
                "use TokenBucket or GCRA for fractional amounts"
            )
    return amount
