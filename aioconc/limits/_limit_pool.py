"""``LimitPool``: spread acquisitions over several ``LimitSet``s (e.g. API keys, regions).

Each acquisition goes to one set, chosen round-robin (from ``worker_index``) or
at random; ``acq.config`` tells which set it came from.  The pool itself keeps
no limit state: the sets are shared, and a pool is cheap to make per worker.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ValidationError

from .. import config as _config
from .._enums import LoadBalancingAlgorithm
from ._acquisition import AsyncAcquire
from ._limit_set import LimitSet, LimitSetAcquisition

__all__ = ["LimitPool"]

_BALANCING = (LoadBalancingAlgorithm.RoundRobin, LoadBalancingAlgorithm.Random)


def _frozen(name: str, value: Any) -> ValidationError:
    # pydantic's own error for assigning to a frozen model, as concurry's
    # LimitPool (a frozen model) raises: code catching ValidationError keeps working.
    return ValidationError.from_exception_data(
        "LimitPool", [{"type": "frozen_instance", "loc": (name,), "input": value}]
    )


class LimitPool:
    """Choose one of ``limit_sets`` per acquisition.

    Parameters:
        limit_sets: one or more ``LimitSet``s.
        load_balancing: "round_robin" or "random" (aliases accepted); defaults
            to ``global_config.defaults.limit_pool_load_balancing``.
        worker_index: where round-robin starts; defaults to
            ``global_config.defaults.limit_pool_worker_index``.

    Raises:
        ValueError: no sets, or a balancing other than round-robin and random.
        TypeError: an item is not a ``LimitSet``.

    A pool is immutable once built: assigning an attribute raises
    ``pydantic.ValidationError`` (``frozen_instance``), as concurry's does.
    """

    limit_sets: list[LimitSet]
    load_balancing: LoadBalancingAlgorithm
    worker_index: int
    _counter: itertools.count[int]
    _picks: list[int]

    def __init__(
        self,
        limit_sets: Iterable[LimitSet],
        load_balancing: LoadBalancingAlgorithm | str | None = None,
        worker_index: int | None = None,
    ) -> None:
        sets = list(limit_sets)
        if not sets:
            raise ValueError("LimitPool needs at least one LimitSet")
        for item in sets:
            if not isinstance(item, LimitSet):
                raise TypeError(f"LimitPool takes LimitSet objects, got {item!r}")
        defaults = _config.global_config.defaults
        if load_balancing is None:
            load_balancing = defaults.limit_pool_load_balancing
        balancing = LoadBalancingAlgorithm(LoadBalancingAlgorithm.parse(load_balancing))
        if balancing not in _BALANCING:
            raise ValueError(
                f"Unsupported load balancing algorithm for LimitPool: {balancing.name}; "
                "use round_robin or random"
            )
        if worker_index is None:
            worker_index = defaults.limit_pool_worker_index
        if isinstance(worker_index, bool) or not isinstance(worker_index, int) or worker_index < 0:
            raise ValueError(f"worker_index must be an integer >= 0, got {worker_index!r}")
        set_attr = object.__setattr__  # the pool is immutable once built (see __setattr__)
        set_attr(self, "limit_sets", sets)
        set_attr(self, "load_balancing", balancing)
        set_attr(self, "worker_index", worker_index)
        # next() on itertools.count is atomic under the GIL: no lock on the hot path.
        set_attr(self, "_counter", itertools.count(worker_index))
        set_attr(self, "_picks", [0] * len(sets))

    def __setattr__(self, name: str, value: Any) -> None:
        raise _frozen(name, value)

    def __delattr__(self, name: str) -> None:
        raise _frozen(name, None)

    def _select(self) -> LimitSet:
        if self.load_balancing is LoadBalancingAlgorithm.Random:
            index = random.randrange(len(self.limit_sets))
        else:
            index = next(self._counter) % len(self.limit_sets)
        self._picks[index] += 1
        return self.limit_sets[index]

    def acquire(
        self, requested: Mapping[str, float] | None = None, timeout: float | None = None
    ) -> LimitSetAcquisition:
        """``LimitSet.acquire`` on the next set; raises as that does."""
        return self._select().acquire(requested, timeout)

    def async_acquire(
        self, requested: Mapping[str, float] | None = None, timeout: float | None = None
    ) -> AsyncAcquire[LimitSetAcquisition]:
        """``LimitSet.async_acquire`` on the next set (awaitable and an async
        context manager); raises as that does."""
        return self._select().async_acquire(requested, timeout)

    def try_acquire(self, requested: Mapping[str, float] | None = None) -> LimitSetAcquisition:
        """``LimitSet.try_acquire`` on the next set: never blocks."""
        return self._select().try_acquire(requested)

    def __getitem__(self, index: int) -> LimitSet:
        """The ``index``-th set; ``TypeError`` for a non-integer index."""
        if isinstance(index, bool) or not isinstance(index, int):
            raise TypeError(
                f"LimitPool indices must be integers, not {type(index).__name__}: "
                "use pool[i]['key'] for a limit of the i-th set"
            )
        return self.limit_sets[index]

    def __len__(self) -> int:
        return len(self.limit_sets)

    def get_stats(self) -> dict[str, Any]:
        """The pool's balancing and picks per set, and every set's statistics."""
        return {
            "num_limit_sets": len(self.limit_sets),
            "load_balancing": self.load_balancing.value,
            "worker_index": self.worker_index,
            "balancer_stats": {"algorithm": self.load_balancing.value, "picks": list(self._picks)},
            "limit_sets": [ls.get_stats() for ls in self.limit_sets],
        }

    def __repr__(self) -> str:
        return (
            f"<LimitPool {len(self.limit_sets)} sets {self.load_balancing.name} "
            f"picks={self._picks}>"
        )
