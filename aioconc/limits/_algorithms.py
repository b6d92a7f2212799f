"""The limit state machines: pure objects driven by an explicit ``now``.

Each state object answers "how long until ``amount`` units could be taken?" and
changes only when told to take, refund or release.  None of them reads a clock,
takes a lock or knows about threads, loops, processes or the limit definitions
(``_definitions.make_state`` builds the state of one), so the same object
serves an in-process ``LimitSet`` today and, later, a limit server on a parent's
loop or inside a Ray actor.  The engine (``_engine.py``) coordinates several of
them atomically and does all the waiting.

The interface of a rate state (``RateState``)::

    wait(now, amount)      -> seconds until ``amount`` fits (0.0: now; inf: never)
    take(now, amount)      consume; only after ``wait`` returned 0.0
    try_take(now, amount)  -> 0.0 after taking, else the seconds to wait (nothing taken)
    refund(now, amount)    give back unused units where the algorithm allows it
    next_ready(now, amount)-> the time at which ``amount`` fits
    stats(now)             -> a dict of the live state

Algorithms, for ``capacity`` C per ``window`` W (rate r = C / W):

* TokenBucket: a bucket of C tokens refilled continuously at r; bursts up to C.
  Refunds give tokens back (never above C).  Fractional amounts allowed.
* LeakyBucket: a meter that fills by each request and drains at r; admits while
  the level stays <= C.  Integral amounts only; no refunds.
* SlidingWindow: a log of admissions; admits while the units admitted in the
  last W seconds stay <= C.  Integral amounts only; no refunds.
* FixedWindow: a counter per aligned window ``[k*W, (k+1)*W)``.  No refunds.
* GCRA: a theoretical arrival time advanced by W / C per unit, with a burst
  tolerance of W (so C units at once).  Refunds move it back.  Fractional ok.

Only the sliding window caps *every* span of W seconds at C.  The bucket
algorithms and GCRA admit a burst of C plus r per second after it (so up to 2C in
the first W), and a fixed window up to 2C across a boundary -- as their
definitions (and concurry's) say.

Why not aiolimiter: ``AsyncLimiter`` is the same leaky-bucket meter, but it is
async-only, reads ``loop.time()`` itself, keeps its own waiters and cannot be
checked without taking, refunded, or taken atomically with other limits, nor
served to another process.  The meter below is the same arithmetic as a pure
object, which the engine can drive from threads, several loops and (later)
other processes.
"""

from __future__ import annotations

import abc
import collections
import math
from typing import Any, ClassVar

from .._enums import RateLimitAlgorithm

__all__ = [
    "FixedWindowState",
    "GCRAState",
    "LeakyBucketState",
    "RateState",
    "ResourceState",
    "SlidingWindowState",
    "TokenBucketState",
    "UnboundedState",
    "state_class",
]

# Float arithmetic on times and rates leaves crumbs (1e-16); a waiter woken at
# the exact computed instant must find its units available, not 1e-16 short.
_EPS = 1e-9


class RateState(abc.ABC):
    """The state of one rate limit; see the module docstring for the interface."""

    __slots__ = ("capacity", "rate", "window")

    name: ClassVar[str]
    refundable: ClassVar[bool] = False
    integral: ClassVar[bool] = False

    def __init__(self, capacity: float, window: float) -> None:
        self.capacity = float(capacity)
        self.window = float(window)
        self.rate = self.capacity / self.window

    @abc.abstractmethod
    def wait(self, now: float, amount: float) -> float:
        """Seconds from ``now`` until ``amount`` could be taken: 0.0 now, inf never."""

    @abc.abstractmethod
    def take(self, now: float, amount: float) -> None:
        """Consume ``amount``; call only when ``wait(now, amount)`` is 0.0."""

    @abc.abstractmethod
    def available(self, now: float) -> float:
        """Units that could be taken at ``now``."""

    def try_take(self, now: float, amount: float) -> float:
        """Take ``amount`` and return 0.0, or return the wait and take nothing."""
        delay = self.wait(now, amount)
        if delay <= 0.0:
            self.take(now, amount)
            return 0.0
        return delay

    def refund(self, now: float, amount: float) -> None:
        """Give back ``amount`` unused units; a no-op unless ``refundable``."""
        return  # counting algorithms keep what was admitted: it already happened

    def next_ready(self, now: float, amount: float = 1.0) -> float:
        """The time (on the same clock as ``now``) at which ``amount`` fits."""
        return now + self.wait(now, amount)

    def stats(self, now: float) -> dict[str, Any]:
        """The live state: algorithm, capacity, window, available units, utilization."""
        available = self.available(now)
        return {
            "algorithm": self.name,
            "capacity": self.capacity,
            "window": self.window,
            "max_rate": self.rate,
            "available": available,
            "utilization": 1.0 - available / self.capacity,
        }

    def _beyond(self, amount: float) -> bool:
        return amount > self.capacity * (1 + _EPS)


class TokenBucketState(RateState):
    """A bucket of ``capacity`` tokens, refilled at ``capacity / window`` per second."""

    __slots__ = ("_stamp", "_tokens")
    name = "token_bucket"
    refundable = True

    def __init__(self, capacity: float, window: float) -> None:
        super().__init__(capacity, window)
        self._tokens = self.capacity
        self._stamp: float | None = None

    def _refill(self, now: float) -> None:
        if self._stamp is not None and now > self._stamp:
            self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
        if self._stamp is None or now > self._stamp:
            self._stamp = now

    def wait(self, now: float, amount: float) -> float:
        if self._beyond(amount):
            return math.inf
        self._refill(now)
        deficit = amount - self._tokens
        return deficit / self.rate if deficit > _EPS * self.capacity else 0.0

    def take(self, now: float, amount: float) -> None:
        self._refill(now)
        self._tokens -= amount

    def refund(self, now: float, amount: float) -> None:
        self._refill(now)
        self._tokens = min(self.capacity, self._tokens + amount)

    def available(self, now: float) -> float:
        self._refill(now)
        return max(0.0, self._tokens)

    def stats(self, now: float) -> dict[str, Any]:
        return {**super().stats(now), "available_tokens": self.available(now)}


class LeakyBucketState(RateState):
    """A meter filled by each admission and drained at ``capacity / window`` per second."""

    __slots__ = ("_level", "_stamp")
    name = "leaky_bucket"
    integral = True

    def __init__(self, capacity: float, window: float) -> None:
        super().__init__(capacity, window)
        self._level = 0.0
        self._stamp: float | None = None

    def _leak(self, now: float) -> None:
        if self._stamp is not None and now > self._stamp:
            self._level = max(0.0, self._level - (now - self._stamp) * self.rate)
        if self._stamp is None or now > self._stamp:
            self._stamp = now

    def wait(self, now: float, amount: float) -> float:
        if self._beyond(amount):
            return math.inf
        self._leak(now)
        excess = self._level + amount - self.capacity
        return excess / self.rate if excess > _EPS * self.capacity else 0.0

    def take(self, now: float, amount: float) -> None:
        self._leak(now)
        self._level += amount

    def available(self, now: float) -> float:
        self._leak(now)
        return max(0.0, self.capacity - self._level)

    def stats(self, now: float) -> dict[str, Any]:
        return {**super().stats(now), "queue_size": self._level}


class SlidingWindowState(RateState):
    """A log of ``(time, units)`` admissions; at most ``capacity`` units in any window."""

    __slots__ = ("_log", "_total")
    name = "sliding_window"
    integral = True

    def __init__(self, capacity: float, window: float) -> None:
        super().__init__(capacity, window)
        self._log: collections.deque[list[float]] = collections.deque()
        self._total = 0.0

    def _expire(self, now: float) -> None:
        log = self._log
        while log and log[0][0] + self.window <= now + _EPS:
            self._total -= log.popleft()[1]

    def wait(self, now: float, amount: float) -> float:
        if self._beyond(amount):
            return math.inf
        self._expire(now)
        need = self._total + amount - self.capacity
        if need <= _EPS * self.capacity:
            return 0.0
        freed = 0.0
        for stamp, units in self._log:  # oldest first: they leave the window first
            freed += units
            if freed >= need - _EPS * self.capacity:
                return max(stamp + self.window - now, 0.0)
        return math.inf  # unreachable while amount <= capacity

    def take(self, now: float, amount: float) -> None:
        self._expire(now)
        if self._log and self._log[-1][0] == now:
            self._log[-1][1] += amount  # one entry per instant keeps bursts small
        else:
            self._log.append([now, amount])
        self._total += amount

    def available(self, now: float) -> float:
        self._expire(now)
        return max(0.0, self.capacity - self._total)

    def stats(self, now: float) -> dict[str, Any]:
        return {**super().stats(now), "current_requests": self._total}


class FixedWindowState(RateState):
    """A counter per aligned window ``[k * window, (k + 1) * window)`` of the clock."""

    __slots__ = ("_count", "_index")
    name = "fixed_window"

    def __init__(self, capacity: float, window: float) -> None:
        super().__init__(capacity, window)
        self._index = -math.inf
        self._count = 0.0

    def _roll(self, now: float) -> None:
        index = math.floor(now / self.window + _EPS)
        if index > self._index:
            self._index, self._count = index, 0.0

    def wait(self, now: float, amount: float) -> float:
        if self._beyond(amount):
            return math.inf
        self._roll(now)
        if self._count + amount <= self.capacity * (1 + _EPS):
            return 0.0
        return max((self._index + 1) * self.window - now, 0.0)

    def take(self, now: float, amount: float) -> None:
        self._roll(now)
        self._count += amount

    def available(self, now: float) -> float:
        self._roll(now)
        return max(0.0, self.capacity - self._count)

    def stats(self, now: float) -> dict[str, Any]:
        return {**super().stats(now), "current_requests": self._count}


class GCRAState(RateState):
    """Generic cell rate: a theoretical arrival time, ``window / capacity`` per unit."""

    __slots__ = ("_interval", "_tat")
    name = "gcra"
    refundable = True

    def __init__(self, capacity: float, window: float) -> None:
        super().__init__(capacity, window)
        self._interval = self.window / self.capacity
        self._tat = -math.inf

    def wait(self, now: float, amount: float) -> float:
        if self._beyond(amount):
            return math.inf
        excess = max(self._tat, now) + amount * self._interval - now - self.window
        return excess if excess > _EPS * self.window else 0.0

    def take(self, now: float, amount: float) -> None:
        self._tat = max(self._tat, now) + amount * self._interval

    def refund(self, now: float, amount: float) -> None:
        self._tat = max(now, self._tat - amount * self._interval)

    def available(self, now: float) -> float:
        backlog = max(0.0, self._tat - now)
        return max(0.0, (self.window - backlog) / self._interval)

    def stats(self, now: float) -> dict[str, Any]:
        return {**super().stats(now), "available_tokens": self.available(now)}


class UnboundedState(RateState):
    """A rate limit of infinite capacity: always admits, keeps no history."""

    __slots__ = ()
    name = "unbounded"

    def wait(self, now: float, amount: float) -> float:
        return 0.0

    def take(self, now: float, amount: float) -> None:
        pass

    def available(self, now: float) -> float:
        return math.inf

    def stats(self, now: float) -> dict[str, Any]:
        return {
            "algorithm": self.name,
            "capacity": self.capacity,
            "window": self.window,
            "max_rate": self.rate,
            "available": math.inf,
            "utilization": 0.0,
        }


class ResourceState:
    """A counting semaphore: at most ``capacity`` units held at once; no time."""

    __slots__ = ("capacity", "held")
    integral: ClassVar[bool] = True

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.held = 0.0

    def wait(self, now: float, amount: float) -> float:
        """0.0 if ``amount`` fits now, else inf: only a release frees units."""
        return 0.0 if self.held + amount <= self.capacity else math.inf

    def take(self, now: float, amount: float) -> None:
        """Hold ``amount`` more units."""
        self.held += amount

    def release(self, amount: float) -> None:
        """Return ``amount`` held units."""
        self.held = max(0.0, self.held - amount)

    def stats(self, now: float) -> dict[str, Any]:
        """Capacity, current usage, available units and utilization."""
        held = int(self.held) if self.held == int(self.held) else self.held
        return {
            "capacity": self.capacity,
            "current_usage": held,
            "available": self.capacity - held,
            "utilization": held / self.capacity,
        }


_RATE_STATES: dict[RateLimitAlgorithm, type[RateState]] = {
    RateLimitAlgorithm.TokenBucket: TokenBucketState,
    RateLimitAlgorithm.LeakyBucket: LeakyBucketState,
    RateLimitAlgorithm.SlidingWindow: SlidingWindowState,
    RateLimitAlgorithm.FixedWindow: FixedWindowState,
    RateLimitAlgorithm.GCRA: GCRAState,
}


def state_class(algorithm: RateLimitAlgorithm) -> type[RateState]:
    """The state class of ``algorithm`` (whatever the capacity: see ``make_state``)."""
    return _RATE_STATES[algorithm]
