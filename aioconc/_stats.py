"""Per-handle call statistics: counts by outcome and latency percentiles.

A handle (or pool) owns one :class:`CallCounters`.  Each call's future points at
it; the future counts itself when it finishes, under the futures' own lock (so
counting costs no lock of its own and no done-callback).  Latency is from
submission to completion, kept for the most recent ``WINDOW`` calls.
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass
from typing import Any

__all__ = ["CallCounters", "CallStatistics"]

WINDOW = 2048


@dataclass(frozen=True)
class CallStatistics:
    """A snapshot of a handle's calls.

    ``in_flight`` counts calls handed to a worker and not finished; ``queued``
    the unfinished calls that wait on the caller's side (in the submission
    queue, or for a retry's backoff); ``retried`` counts extra attempts.  The
    latencies (seconds, submission to completion, over the last 2,048 finished
    calls) are None before any call finished.
    """

    submitted: int
    in_flight: int
    queued: int
    completed: int
    failed: int
    cancelled: int
    retried: int
    latency_p50: float | None
    latency_p90: float | None
    latency_p99: float | None

    @property
    def finished(self) -> int:
        """Calls that ended, however they ended."""
        return self.completed + self.failed + self.cancelled


class CallCounters:
    """The live counters behind :class:`CallStatistics` (one per handle)."""

    __slots__ = ("_completed", "_latencies", "_submitted", "cancelled", "failed", "retried")

    def __init__(self) -> None:
        # Calls are counted in by next() on an itertools.count: atomic, so any
        # thread may count one in without a lock (the hot path of every call).
        # Successes likewise: a call that ends in the first step of an
        # ``async def`` method (the eager start) is counted out with no lock.
        self._submitted = itertools.count()
        self._completed = itertools.count()
        self.failed = 0
        self.cancelled = 0
        self.retried = 0
        self._latencies: deque[float] = deque(maxlen=WINDOW)

    @property
    def submitted(self) -> int:
        """How many calls were counted in."""
        # An itertools.count's repr is "count(N)", N the next value: the count.
        return int(repr(self._submitted)[6:-1])

    @property
    def completed(self) -> int:
        """How many calls succeeded."""
        return int(repr(self._completed)[6:-1])

    def submit(self, future: Any) -> None:
        """Count a new call and make ``future`` report its end here."""
        future._stats = self
        next(self._submitted)

    def count_in(self) -> None:
        """Count a call in whose future reports elsewhere (a pool's worker slot)."""
        next(self._submitted)

    def finished(self, future: Any, ok: bool | None) -> None:
        """Called by a finishing future (``ok`` None: cancelled), under the futures' lock.

        (``Future._set_result``, every successful call's path, does the same inline.)"""
        if ok is None:
            self.cancelled += 1
        elif ok:
            next(self._completed)
        else:
            self.failed += 1
        if future.attempts > 1:
            self.retried += future.attempts - 1
        self._latencies.append(future.completed_at - future.submitted_at)

    @property
    def unfinished(self) -> int:
        """Calls counted in and not yet finished."""
        return self.submitted - self.completed - self.failed - self.cancelled

    def snapshot(
        self, *, queued: int | None = None, in_flight: int | None = None
    ) -> CallStatistics:
        """The statistics now.  Of the unfinished calls, ``in_flight`` are with a
        worker (or else ``queued`` are held back): the rest are the other kind."""
        latencies = sorted(self._latencies)
        submitted = self.submitted
        pending = max(0, submitted - self.completed - self.failed - self.cancelled)
        if in_flight is not None:
            in_flight = min(max(0, in_flight), pending)
            queued = pending - in_flight
        else:
            queued = min(max(0, queued or 0), pending)
            in_flight = pending - queued
        return CallStatistics(
            submitted=submitted,
            in_flight=in_flight,
            queued=queued,
            completed=self.completed,
            failed=self.failed,
            cancelled=self.cancelled,
            retried=self.retried,
            latency_p50=_percentile(latencies, 0.50),
            latency_p90=_percentile(latencies, 0.90),
            latency_p99=_percentile(latencies, 0.99),
        )


def _percentile(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
