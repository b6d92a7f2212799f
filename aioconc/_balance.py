"""Load balancers: which worker of a pool takes the next call.

Each balancer picks an index from the pool's per-worker counts (``active``:
calls in flight now, ``total``: calls ever sent).  ``full`` marks workers whose
submission queue is at its cap: a pick that lands on one moves on to the next
worker that has room.  The pool holds its lock around ``pick``, so balancers
keep no lock of their own.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

from ._enums import LoadBalancingAlgorithm

__all__ = ["Balancer", "make_balancer"]

Full = Callable[[int], bool] | None


class Balancer:
    """Base: counts dispatches; subclasses choose the index."""

    algorithm = "Base"

    def __init__(self) -> None:
        self.dispatched = 0

    def pick(self, active: Sequence[int], total: Sequence[int], full: Full = None) -> int:
        """Return the index of the worker for the next call (and count it)."""
        self.dispatched += 1
        index = self._choose(active, total)
        if full is not None and full(index):
            n = len(active)
            for step in range(1, n):
                candidate = (index + step) % n
                if not full(candidate):
                    return candidate
        return index

    def _choose(self, active: Sequence[int], total: Sequence[int]) -> int:
        raise NotImplementedError

    def stats(self, active: Sequence[int], total: Sequence[int]) -> dict[str, Any]:
        """concurry's statistics record: always ``algorithm`` and ``total_dispatched``."""
        return {"algorithm": self.algorithm, "total_dispatched": self.dispatched}


class RoundRobin(Balancer):
    """Workers 0, 1, ..., N-1, 0, ... in turn."""

    algorithm = "RoundRobin"

    def __init__(self) -> None:
        super().__init__()
        self._next = 0

    def _choose(self, active: Sequence[int], total: Sequence[int]) -> int:
        index = self._next % len(active)
        self._next = index + 1
        return index

    def stats(self, active: Sequence[int], total: Sequence[int]) -> dict[str, Any]:
        return {**super().stats(active, total), "offset": 0}


class LeastActive(Balancer):
    """The worker with the fewest calls in flight; ties go to the lowest index."""

    algorithm = "LeastActiveLoad"

    def _choose(self, active: Sequence[int], total: Sequence[int]) -> int:
        return min(range(len(active)), key=active.__getitem__)

    def stats(self, active: Sequence[int], total: Sequence[int]) -> dict[str, Any]:
        return {
            **super().stats(active, total),
            "active_calls": dict(enumerate(active)),
            "total_active": sum(active),
        }


class LeastTotal(Balancer):
    """The worker that was sent the fewest calls so far; ties go to the lowest index."""

    algorithm = "LeastTotalLoad"

    def _choose(self, active: Sequence[int], total: Sequence[int]) -> int:
        return min(range(len(total)), key=total.__getitem__)

    def stats(self, active: Sequence[int], total: Sequence[int]) -> dict[str, Any]:
        return {
            **super().stats(active, total),
            "total_calls": dict(enumerate(total)),
            "sum_total_calls": sum(total),
        }


class Random(Balancer):
    """A worker chosen uniformly at random."""

    algorithm = "Random"

    def __init__(self, rng: random.Random | None = None) -> None:
        super().__init__()
        self._rng = rng or random.Random()

    def _choose(self, active: Sequence[int], total: Sequence[int]) -> int:
        return self._rng.randrange(len(active))


_BALANCERS: dict[LoadBalancingAlgorithm, type[Balancer]] = {
    LoadBalancingAlgorithm.RoundRobin: RoundRobin,
    LoadBalancingAlgorithm.LeastActiveLoad: LeastActive,
    LoadBalancingAlgorithm.LeastTotalLoad: LeastTotal,
    LoadBalancingAlgorithm.Random: Random,
}


def make_balancer(algorithm: LoadBalancingAlgorithm | str) -> Balancer:
    """A new balancer for ``algorithm`` (a member or any alias: "rr", "least_active", ...).

    Raises ``ValueError`` for an unknown name.
    """
    return _BALANCERS[LoadBalancingAlgorithm(algorithm)]()
