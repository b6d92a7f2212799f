"""``limits_for``: what ``self.limits`` is inside a worker, from its ``limits`` option.

=====================================  ================  ===============================
``options(limits=...)``                one worker        a pool of workers
=====================================  ================  ===============================
None or []                             empty set         empty set (never blocks)
[Limit, ...]                           private set       one shared set for the pool
non-shared LimitSet                    UserWarning,      ValueError
                                       private copy
shared LimitSet                        that set          that set (shared by all)
[shared LimitSet, ...]                 LimitPool         a LimitPool per worker
LimitPool                              that pool         that pool
=====================================  ================  ===============================

A shared set must fit the worker's mode: an in-process set ("sync", "asyncio",
"thread") serves sync, asyncio and thread workers; a "process" set process
workers; a "ray" set Ray workers.  Anything else raises ``ValueError``.

How the worker wiring should use it (the recommendation for the backends):

* Call ``limits_for`` once per single worker, and once per *pool* (not per pool
  worker) for ``[Limit, ...]``, so the pool's workers share one set; for a list
  of sets call it per worker with ``worker_index=i`` so round-robin starts apart.
* Set the attribute before the user's ``__init__`` runs, so ``__init__`` can use
  it too (concurry sets it only after): ``inst = cls.__new__(cls);
  object.__setattr__(inst, "limits", limits); inst.__init__(*args, **kwargs)``,
  and set it again after ``__init__`` if ``__init__`` replaced the instance dict
  (pydantic models do).  ``object.__setattr__`` also gets past frozen models.
* Process and Ray workers: a private set pickles as its definitions (fresh state
  in the child).  A shared "process"/"ray" set does not pickle: the child gets a
  client of the parent's engine (``LimitBackend``) -- the part still to build.
"""

from __future__ import annotations

import warnings
from typing import Any

from .._enums import ExecutionMode
from ._definitions import Limit
from ._limit_pool import LimitPool
from ._limit_set import LimitSet

__all__ = ["limits_for"]

_IN_PROCESS = frozenset({ExecutionMode.Sync, ExecutionMode.Asyncio, ExecutionMode.Threads})


def limits_for(
    limits: Any,
    mode: ExecutionMode | str,
    pool: bool,
    worker_index: int | None = None,
) -> LimitSet | LimitPool:
    """The ``self.limits`` of a worker (or of every worker of a pool) in ``mode``.

    See the module docstring for the rules.  Raises ``ValueError`` for a
    non-shared set given to a pool, a shared set whose mode does not fit, a list
    mixing limits and sets, or a value of another type; ``UserWarning`` when a
    non-shared set is given to a single worker.
    """
    worker_mode = ExecutionMode(ExecutionMode.parse(mode))
    if limits is None:
        return LimitSet([])
    if isinstance(limits, LimitPool):
        for limit_set in limits.limit_sets:
            _check_shared(limit_set, worker_mode)
        return limits
    if isinstance(limits, LimitSet):
        if limits.shared:
            _check_fits(limits, worker_mode)
            return limits
        if pool:
            raise ValueError(
                "a pool of workers needs a shared LimitSet: create it with "
                f"LimitSet(limits=[...], shared=True, mode={_mode_name(worker_mode)!r})"
            )
        warnings.warn(
            "a non-shared LimitSet given to a worker is copied into a private set of that "
            "worker; use shared=True to enforce it across workers",
            UserWarning,
            stacklevel=3,
        )
        return LimitSet(limits.limits, shared=False, config=limits.config)
    if isinstance(limits, (list, tuple)):
        items = list(limits)
        if not items:
            return LimitSet([])
        if all(isinstance(item, Limit) for item in items):
            if pool:
                return LimitSet(items, shared=True, mode=worker_mode)
            return LimitSet(items, shared=False)
        if all(isinstance(item, LimitSet) for item in items):
            for limit_set in items:
                _check_shared(limit_set, worker_mode)
            return LimitPool(items, worker_index=worker_index)
        raise ValueError(
            "limits=[...] must hold only Limit objects or only shared LimitSets, got "
            + ", ".join(sorted({type(item).__name__ for item in items}))
        )
    raise ValueError(
        "limits must be None, a list of Limits, a LimitSet, a list of LimitSets or a "
        f"LimitPool, got {type(limits).__name__}"
    )


def _check_shared(limit_set: LimitSet, worker_mode: ExecutionMode) -> None:
    if not limit_set.shared:
        raise ValueError(
            "every LimitSet in limits=[...] must be shared: create it with "
            f"LimitSet(limits=[...], shared=True, mode={_mode_name(worker_mode)!r})"
        )
    _check_fits(limit_set, worker_mode)


def _check_fits(limit_set: LimitSet, worker_mode: ExecutionMode) -> None:
    set_mode = limit_set.mode
    fits = (set_mode in _IN_PROCESS and worker_mode in _IN_PROCESS) or set_mode is worker_mode
    if not fits:
        raise ValueError(
            f"a LimitSet made for mode {_mode_name(set_mode)!r} is not compatible with a "
            f"{_mode_name(worker_mode)!r} worker: create it with "
            f"mode={_mode_name(worker_mode)!r}"
        )


def _mode_name(mode: ExecutionMode) -> str:
    return {
        ExecutionMode.Sync: "sync",
        ExecutionMode.Asyncio: "asyncio",
        ExecutionMode.Threads: "thread",
        ExecutionMode.Processes: "process",
        ExecutionMode.Ray: "ray",
    }[mode]
