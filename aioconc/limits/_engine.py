"""The limit engine: several limit states taken atomically, with FIFO waiters.

A ``LimitSet`` talks to its state through the small ``LimitBackend`` protocol.
``LocalLimitEngine`` is the in-process implementation: the states of
``_algorithms.py`` behind one ``threading.Lock``.  A process child or a Ray actor
will get a client that speaks the same protocol to an engine living on the
parent's loop or in an actor; the algorithms and refunds stay the same.

How a request is served:

* All or nothing.  A request is granted only when every one of its keys fits at
  once; nothing is held while it waits.
* FIFO.  A request that shares a key with an earlier waiter queues behind it,
  so a large request is not starved by a stream of small ones.  Requests with
  no key in common with the blocked ones do not wait for them.
* No polling.  For each waiter the engine computes when it will fit.  An async
  waiter sleeps on a future of its own loop with one ``loop.call_later`` timer
  for that instant; a sync waiter blocks on its own ``Condition`` with that
  exact timeout.  A release, a refund or a timer re-serves the queue and wakes
  exactly the waiters whose state changed.  A waiter that needs a resource
  release (wait = inf) has no timer at all.

The clock is injected (``clock``, monotonic seconds; ``time.monotonic`` by
default).  Async waits schedule their timers on the running loop, whose
``time()`` must run on the same clock -- true for asyncio and uvloop with the
default clock; tests pass ``clock=loop.time`` of a virtual-time loop.  A test
that moves an injected clock by hand calls ``recheck()`` afterwards.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import math
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import anyio

from .._anyloop import current_inbox
from .._runtime import running_loop
from ._algorithms import RateState, ResourceState
from ._definitions import Limit, make_state

__all__ = ["LimitBackend", "LocalLimitEngine"]

Amounts = Mapping[str, float]


class LimitBackend(Protocol):
    """What a ``LimitSet`` needs from wherever its state lives.

    Amounts are already validated (known keys, within capacity).  ``acquire``
    and ``async_acquire`` raise ``TimeoutError`` when ``timeout`` passes first.
    ``waiting`` is how many requests are queued here (0 for a client whose
    requests queue where the state lives).
    """

    @property
    def waiting(self) -> int: ...

    def try_acquire(self, amounts: Amounts) -> bool: ...

    def acquire(self, amounts: Amounts, timeout: float | None) -> None: ...

    async def async_acquire(self, amounts: Amounts, timeout: float | None) -> None: ...

    def release(self, amounts: Amounts, used: Amounts) -> None: ...

    def stats(self) -> dict[str, dict[str, Any]]: ...


# ---------------------------------------------------------------------------
# Waiters
# ---------------------------------------------------------------------------


class _Waiter:
    """A queued request; ``notify`` is called under the engine lock."""

    __slots__ = ("amounts", "granted", "keys", "ready_at")

    def __init__(self, amounts: Amounts) -> None:
        self.amounts = amounts
        # A zero amount takes nothing, so it cannot conflict with anyone.
        self.keys = frozenset(key for key, amount in amounts.items() if amount > 0)
        self.granted = False
        self.ready_at = math.inf

    def notify(self) -> None:
        raise NotImplementedError


class _SyncWaiter(_Waiter):
    __slots__ = ("cond",)

    def __init__(self, amounts: Amounts, lock: threading.Lock) -> None:
        super().__init__(amounts)
        # Its own Condition over the engine lock: waking one waiter wakes no other.
        self.cond = threading.Condition(lock)

    def notify(self) -> None:
        self.cond.notify()


class _AsyncWaiter(_Waiter):
    __slots__ = ("fut", "loop")

    def __init__(self, amounts: Amounts, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(amounts)
        self.loop = loop
        self.fut: asyncio.Future[None] | None = None

    def notify(self) -> None:
        fut = self.fut
        if fut is None or fut.done():
            return  # the waiter re-reads its state under the lock before sleeping
        if running_loop() is self.loop:
            _wake(fut)
        else:
            # A closed loop raises RuntimeError: nobody is left there to wake.
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon_threadsafe(_wake, fut)


class _AnyioWaiter(_Waiter):
    """An async waiter on a loop that is not asyncio's (trio, through anyio)."""

    __slots__ = ("event", "inbox", "thread")

    def __init__(self, amounts: Amounts) -> None:
        super().__init__(amounts)
        self.inbox = current_inbox()
        self.thread = threading.get_ident()
        self.event = anyio.Event()

    def notify(self) -> None:
        if threading.get_ident() == self.thread:
            self.event.set()
        else:
            self.inbox.post(self.event.set)


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


# ---------------------------------------------------------------------------
# The engine
# ---------------------------------------------------------------------------


class LocalLimitEngine:
    """The state of a set of limits in this process, safe across threads and loops."""

    def __init__(self, limits: list[Limit], clock: Callable[[], float] | None = None) -> None:
        # make_state raises TypeError for a kind of limit it cannot enforce.
        states: dict[str, RateState | ResourceState] = {lim.key: make_state(lim) for lim in limits}
        self._states = states
        self._clock = clock or time.monotonic
        self._lock = threading.Lock()
        self._waiters: collections.deque[_Waiter] = collections.deque()
        # How many queued waiters use each key: a new request sharing one queues.
        self._queued: collections.Counter[str] = collections.Counter()
        # Notified whenever a waiter is queued (lets tests wait for that, not sleep).
        self.queued = threading.Condition(self._lock)

    @property
    def waiting(self) -> int:
        """How many requests are queued now."""
        return len(self._waiters)

    # -- the LimitBackend protocol -------------------------------------------

    def try_acquire(self, amounts: Amounts) -> bool:
        """Take ``amounts`` now if they fit and no earlier waiter needs them."""
        with self._lock:
            return self._admit(amounts, self._clock())

    def acquire(self, amounts: Amounts, timeout: float | None) -> None:
        """Block the calling thread until ``amounts`` are taken.

        Raises ``TimeoutError`` once ``timeout`` seconds pass first.
        """
        with self._lock:
            now = self._clock()
            if self._admit(amounts, now):
                return
            deadline = _deadline(now, timeout, amounts)
            waiter = _SyncWaiter(amounts, self._lock)
            self._enqueue(waiter)
            try:
                while not waiter.granted:
                    now = self._clock()
                    if now >= deadline:
                        raise TimeoutError(_timeout_message(timeout, amounts))
                    until = min(waiter.ready_at, deadline)
                    waiter.cond.wait(None if until == math.inf else until - now)
                    if not waiter.granted:
                        self._serve()  # woken by time: the state may fit now
            except BaseException:
                self._abandon(waiter)
                raise

    async def async_acquire(self, amounts: Amounts, timeout: float | None) -> None:
        """Wait on the running loop, without blocking it, until ``amounts`` are taken.

        Raises ``TimeoutError`` once ``timeout`` seconds pass first; on
        cancellation nothing stays taken.
        """
        loop = running_loop()
        if loop is None:  # trio, or another loop anyio knows
            await self._acquire_elsewhere(amounts, timeout)
            return
        with self._lock:
            now = self._clock()
            if self._admit(amounts, now):
                return
            deadline = _deadline(now, timeout, amounts)
            waiter = _AsyncWaiter(amounts, loop)
            self._enqueue(waiter)
        try:
            while True:
                with self._lock:
                    if waiter.granted:
                        return
                    now = self._clock()
                    if now >= deadline:
                        raise TimeoutError(_timeout_message(timeout, amounts))
                    until = min(waiter.ready_at, deadline)
                    fut = waiter.fut = loop.create_future()
                timer = None if until == math.inf else loop.call_later(until - now, _wake, fut)
                try:
                    await fut
                finally:
                    if timer is not None:
                        timer.cancel()
                with self._lock:
                    if not waiter.granted:
                        self._serve()
        except BaseException:
            with self._lock:
                self._abandon(waiter)
            raise

    async def _acquire_elsewhere(self, amounts: Amounts, timeout: float | None) -> None:
        # async_acquire on a loop that is not asyncio's: the same queue, woken
        # through an anyio.Event; timers are anyio's (relative, so any clock works).
        with self._lock:
            now = self._clock()
            if self._admit(amounts, now):
                return
            deadline = _deadline(now, timeout, amounts)
            waiter = _AnyioWaiter(amounts)
            self._enqueue(waiter)
        try:
            while True:
                with self._lock:
                    if waiter.granted:
                        return
                    now = self._clock()
                    if now >= deadline:
                        raise TimeoutError(_timeout_message(timeout, amounts))
                    until = min(waiter.ready_at, deadline)
                    waiter.event = anyio.Event()
                with anyio.move_on_after(None if until == math.inf else until - now):
                    await waiter.event.wait()
                with self._lock:
                    if not waiter.granted:
                        self._serve()
        except BaseException:
            with self._lock:
                self._abandon(waiter)
            raise

    def release(self, amounts: Amounts, used: Amounts) -> None:
        """Return held resources and refund the unused part of rate limits."""
        with self._lock:
            self._return(amounts, used)
            if self._waiters:
                self._serve()

    def stats(self) -> dict[str, dict[str, Any]]:
        """Per key, the live state of its limit."""
        with self._lock:
            now = self._clock()
            return {key: state.stats(now) for key, state in self._states.items()}

    def recheck(self) -> None:
        """Serve the queue again: call after moving an injected clock by hand."""
        with self._lock:
            self._serve()
            for waiter in self._waiters:
                waiter.notify()  # sync waiters recompute their timeout from the clock

    # -- under the lock ------------------------------------------------------

    def _check(self, amounts: Amounts, now: float) -> float:
        longest = 0.0
        for key, amount in amounts.items():
            if amount:
                longest = max(longest, self._states[key].wait(now, amount))
        return longest

    def _take(self, amounts: Amounts, now: float) -> None:
        for key, amount in amounts.items():
            if amount:  # taking nothing must leave no trace (a sliding log entry)
                self._states[key].take(now, amount)

    def _admit(self, amounts: Amounts, now: float) -> bool:
        if self._queued and any(a > 0 and k in self._queued for k, a in amounts.items()):
            return False  # FIFO: an earlier waiter needs one of these keys
        if self._check(amounts, now) > 0.0:
            return False
        self._take(amounts, now)
        return True

    def _enqueue(self, waiter: _Waiter) -> None:
        self._waiters.append(waiter)
        self._queued.update(waiter.keys)
        self._serve()
        self.queued.notify_all()

    def _dequeue(self, waiter: _Waiter) -> None:
        self._waiters.remove(waiter)
        self._queued.subtract(waiter.keys)
        self._queued += collections.Counter()  # drops the keys that reached zero

    def _abandon(self, waiter: _Waiter) -> None:
        """A waiter leaves by timeout, cancellation or interrupt: undo what it got."""
        if waiter.granted:
            self._give_back(waiter.amounts)
        else:
            self._dequeue(waiter)
            self._serve()

    def _give_back(self, amounts: Amounts) -> None:
        """Give back everything in ``amounts`` as unused (lock held)."""
        self._return(amounts, dict.fromkeys(amounts, 0))
        self._serve()

    def _return(self, amounts: Amounts, used: Amounts) -> None:
        """Release resources; refund what rate limits took beyond ``used`` (lock held;
        a key missing from ``used`` was used in full)."""
        now = self._clock()
        for key, amount in amounts.items():
            state = self._states[key]
            if isinstance(state, ResourceState):
                state.release(amount)
            else:
                unused = amount - used.get(key, amount)
                if unused > 0:
                    state.refund(now, unused)

    def _serve(self) -> None:
        """Grant queued requests in order; re-time the ones that must wait."""
        if not self._waiters:
            return
        now = self._clock()
        blocked: set[str] = set()
        for waiter in list(self._waiters):
            if blocked.isdisjoint(waiter.keys):
                delay = self._check(waiter.amounts, now)
                if delay <= 0.0:
                    self._take(waiter.amounts, now)
                    waiter.granted = True
                    self._dequeue(waiter)
                    waiter.notify()
                    continue
                ready_at = now + delay
                if not math.isclose(ready_at, waiter.ready_at, rel_tol=0.0, abs_tol=1e-9):
                    waiter.ready_at = ready_at
                    waiter.notify()
            else:
                # Behind an earlier waiter: it is woken again when that one goes.
                waiter.ready_at = math.inf
            blocked |= waiter.keys

    def __repr__(self) -> str:
        return f"<LocalLimitEngine keys={sorted(self._states)} waiting={self.waiting}>"


def _deadline(now: float, timeout: float | None, amounts: Amounts) -> float:
    if timeout is None:
        return math.inf
    if timeout <= 0:
        raise TimeoutError(_timeout_message(timeout, amounts))
    return now + timeout


def _timeout_message(timeout: float | None, amounts: Amounts) -> str:
    return f"could not acquire {dict(amounts)} within {timeout} s"
