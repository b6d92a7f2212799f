"""Pools: several workers of one class behind the call surface of one handle.

::

    pool.method(*a) ─► MethodCaller ─► Call ─┬─ no stages: _send ─► balancer.pick ─► worker i
                                             │
                                             └─ ChainRunner (home loop)
                                                  queue ─► ... ─► _attempt ─► balancer.pick
                                                                  (a worker with a free slot)
    on_demand=True:                           ... ─► _on_demand_attempt: wait for a slot,
                                                  start a fresh worker, run the call, close it

Workers start concurrently (``backend.start`` returns at once; the pool waits
for every ``ready`` together).  A worker whose ``closed`` finishes while the
pool is not stopping has crashed: the pool starts a replacement in its slot and
keeps serving.  With ``max_queued_tasks`` the submission queue is pool-wide
(N slots per worker), so held-back calls start highest priority first across
the whole pool, each on a worker with a free slot.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import os
import sys
import threading
import weakref
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import config
from ._backends import get_backend
from ._backends._base import WorkerSpec
from ._balance import make_balancer
from ._chain import Handler, Stage, build_chain
from ._future import Future
from ._handle import BaseHandle
from ._runtime import home_loop
from ._stats import CallCounters, CallStatistics
from .limits._worker_limits import limits_for
from .middleware._queue import SubmissionQueue
from .middleware._stages import stages_for

if TYPE_CHECKING:
    from ._backends._base import Backend, BackendWorker
    from ._call import Call
    from ._options import Options
    from .middleware._timeout import OnTimeout

__all__ = ["PoolHandle", "PoolStatistics", "start_pool"]

log = logging.getLogger("aioconc")
_pool_ids = itertools.count(1)
_MISSING = object()


@dataclass(frozen=True)
class PoolStatistics(CallStatistics):
    """A snapshot of a pool: its calls (as a worker's), workers, replacements.

    ``per_worker`` has each worker slot's figures for the attempts it ran;
    without retries they add up to the pool's.  ``held`` is ``queued``.
    """

    workers: int
    on_demand_active: int
    held: int
    dispatched: int
    replaced: int
    stopped: bool
    per_worker: tuple[CallStatistics, ...]


def _all_ready(workers: list[BackendWorker]) -> Future[None]:
    """A future that finishes when every worker is ready, or fails with the first error."""
    done: Future[None] = Future()
    left = [len(workers)]
    lock = threading.Lock()
    if not workers:
        done._set_result(None)

    def on_ready(fut: Future[None]) -> None:
        error = fut._failure()
        if error is not None:
            done._set_exception(error)
            return
        with lock:
            left[0] -= 1
            last = left[0] == 0
        if last:
            done._set_result(None)

    for worker in workers:
        worker.ready.add_done_callback(on_ready)
    return done


class PoolHandle(BaseHandle):
    """A pool of workers with the call surface of one handle.

    ``pool.method(*a)`` returns a future (the value with ``blocking=True``);
    the load balancer picks the worker.  ``stop()``/``astop()``, ``with`` and
    ``async with`` work as on a single handle.  Calls after ``stop()`` raise
    ``WorkerStoppedError``.
    """

    _kind = "Worker pool"
    _noun = "pool"

    def __init__(
        self,
        cls: type[Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        options: Options,
        methods: Collection[str],
        backend: Backend,
    ) -> None:
        super().__init__(
            cls, f"{cls.__name__}-pool-{next(_pool_ids)}", options, backend.capabilities
        )
        self._backend = backend
        self._spec_parts = (cls, args, kwargs)
        # One self.limits for the whole pool: a limit of N means N across its workers.
        self._limits = limits_for(options.limits, options.mode, pool=True)
        self._init_kwargs = kwargs
        self._on_demand = options.on_demand
        self._lock = threading.Lock()
        self._balancer = make_balancer(options.load_balancing)
        self._replaced = 0
        self._replace_hooks: list[Callable[[int], Any]] = []
        # Slots whose worker failed to start (a replacement Ray actor no node can
        # place): they take calls only when no other slot can.
        self._benched: set[int] = set()
        self._workers: list[BackendWorker] = []
        self._on_demand_live: set[BackendWorker] = set()
        # Every chain of the pool runs here, the timeout-only one too.
        self._loop = self._chain_loop = home_loop()
        size = 0 if self._on_demand else (options.max_workers or 1)
        self._active = [0] * size
        self._total = [0] * size
        self._worker_stats = [CallCounters() for _ in range(size)]
        self._queue: SubmissionQueue | None = None
        stages = stages_for(options, methods, worker_class=cls.__name__)
        if self._on_demand:
            self._dispatch = self._on_demand_dispatch(stages)
        else:
            self._dispatch = self._fixed_dispatch(stages, size)
            # Started all at once: the pool is ready in about one start-up time.
            self._workers = [self._start_one() for _ in range(size)]
            for index, worker in enumerate(self._workers):
                self._watch(index, worker)
        self._ready = _all_ready(list(self._workers))
        self._finalizer = weakref.finalize(self, _close_all, list(self._workers))

    def _fixed_dispatch(self, stages: list[Stage], size: int) -> Callable[[Call], None]:
        """Where calls go in a pool of ``size`` long-lived workers."""
        for stage in stages:
            if isinstance(stage, SubmissionQueue):  # pool-wide: N slots per worker
                self._queue = stage
                stage.workers = size
                stage.bind_loop(self._loop)
                self._stop_hooks.append(stage.on_stop)
        chain = build_chain(stages, self._attempt)
        if chain is None:
            return self._send
        self._timed = self._run_chains(chain, self._loop)  # it has a timeout stage
        return self._timed

    def _on_demand_dispatch(self, stages: list[Stage]) -> Callable[[Call], None]:
        """Where calls go in a pool that starts a worker per call."""
        # On-demand workers live for one call: a per-worker cap means nothing.
        stages = [s for s in stages if not isinstance(s, SubmissionQueue)]
        # max_workers=0: no cap where workers are cluster resources (Ray),
        # else one fewer than this machine's CPUs.
        unbounded = self._capabilities.scales_out
        default = sys.maxsize if unbounded else max(1, (os.cpu_count() or 2) - 1)
        self._slots = asyncio.Semaphore(self._options.max_workers or default)
        self._slot_wait = float(config.resolve(self._options.mode, "pool_on_demand_slot_max_wait"))
        chain = build_chain(stages, self._on_demand_attempt)
        dispatch = self._run_chains(chain or self._on_demand_attempt, self._loop)
        self._timed = None if chain is None else dispatch
        return dispatch

    # -- workers -------------------------------------------------------------

    def _start_one(self) -> BackendWorker:
        cls, args, kwargs = self._spec_parts
        name = f"{self._name}-{next(_pool_ids)}"
        spec = WorkerSpec(
            cls, args, kwargs, name, self._options, dict(self._options.extra), self._limits
        )
        return self._backend.start(spec)

    def _watch(self, index: int, worker: BackendWorker) -> None:
        # Through a weak reference: a running worker must not keep a dropped
        # pool alive (its finalizer is what closes the workers then).
        ref = weakref.ref(self)

        def on_closed(_: Future[None]) -> None:
            pool = ref()
            if pool is not None:
                pool._on_closed(index, worker)

        worker.closed.add_done_callback(on_closed)

    def _on_closed(self, index: int, worker: BackendWorker) -> None:
        # A worker that ends while the pool runs has crashed: replace it.  One
        # whose start failed is not replaced (the next one would fail too); its
        # slot takes no more calls while another slot can.
        if self._stopped or not worker.ready.done():
            return
        if worker.ready._failure() is not None:
            with self._lock:
                if self._workers[index] is worker:
                    self._benched.add(index)
            return
        with self._lock:
            if self._stopped or self._workers[index] is not worker:
                return
            fresh = self._start_one()
            self._workers[index] = fresh
            self._active[index] = 0
            self._replaced += 1
        log.warning("worker %d of %s ended unexpectedly; replaced it", index, self._name)
        self._watch(index, fresh)
        for hook in list(self._replace_hooks):
            hook(index)

    def _members(self) -> list[BackendWorker]:
        return list(self._workers) + list(self._on_demand_live)

    def _members_home(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def _abandon_start(self, timed_out: bool) -> None:
        self.stop(0)

    # -- dispatch ------------------------------------------------------------

    def _full(self, index: int) -> bool:
        if self._benched and index in self._benched:
            return True
        queue = self._queue
        return queue is not None and self._active[index] >= queue.per_worker

    def _pick(self) -> tuple[int, BackendWorker]:
        with self._lock:
            index = self._balancer.pick(self._active, self._total, self._full)
            self._active[index] += 1
            self._total[index] += 1
            self._worker_stats[index].count_in()
            return index, self._workers[index]

    def _finished(self, index: int) -> Callable[[Future[Any]], None]:
        def finished(fut: Future[Any]) -> None:
            ok = None if fut.cancelled() else fut._failure() is None
            with self._lock:
                self._active[index] = max(0, self._active[index] - 1)
                self._worker_stats[index].finished(fut, ok)

        return finished

    def _send(self, call: Call) -> None:
        """The fast path (no middleware): hand ``call`` to the balancer's worker."""
        index, worker = self._pick()
        call.future.add_done_callback(self._finished(index))
        worker.dispatch(call)

    async def _attempt(self, call: Call) -> Any:
        """The chain's last handler: one attempt on the balancer's worker."""
        one = call.attempt()
        call.future.attempts += 1
        index, worker = self._pick()
        one.future.add_done_callback(self._finished(index))
        worker.dispatch(one)
        return await one.future

    async def _on_demand_attempt(self, call: Call) -> Any:
        """One attempt on a fresh worker, once one of the on-demand slots is free."""
        try:
            if self._slots.locked():
                await asyncio.wait_for(self._slots.acquire(), self._slot_wait)
            else:
                await self._slots.acquire()
        except (TimeoutError, asyncio.TimeoutError):
            raise RuntimeError(
                f"timed out after {self._slot_wait} s waiting for an on-demand worker slot "
                f"of {self._name} (pool_on_demand_slot_max_wait)"
            ) from None
        try:
            if self._abort:
                raise asyncio.CancelledError  # a non-graceful stop() came first
            with self._lock:
                self._balancer.dispatched += 1
            worker = self._start_one()
            self._on_demand_live.add(worker)
            try:
                await worker.ready
                one = call.attempt()
                call.future.attempts += 1
                worker.dispatch(one)
                return await one.future
            finally:
                self._on_demand_live.discard(worker)
                worker.begin_close(True)
        finally:
            self._slots.release()

    def _timeout_only(self) -> tuple[Handler, OnTimeout | None, asyncio.AbstractEventLoop]:
        terminal = self._on_demand_attempt if self._on_demand else self._attempt
        return terminal, None, self._loop

    # -- statistics ------------------------------------------------------------

    @property
    def max_workers(self) -> int | None:
        """The pool's size (the on-demand concurrency bound for on-demand pools)."""
        return self._options.max_workers

    def get_pool_stats(self) -> dict[str, Any]:
        """concurry's pool statistics: sizes, balancer, queue cap, stopped."""
        with self._lock:
            balancer = self._balancer.stats(list(self._active), list(self._total))
        return {
            "total_workers": len(self._workers),
            "max_workers": self._options.max_workers,
            "on_demand": self._on_demand,
            "on_demand_active": len(self._on_demand_live),
            "load_balancer": balancer,
            "stopped": self._stopped,
            "max_queued_tasks": self._options.max_queued_tasks,
        }

    def get_worker_stats(self, worker_id: int) -> dict[str, Any]:
        """``{"worker_id": i, "stopped": bool}``; ``IndexError`` when ``i`` is out of range."""
        if not 0 <= worker_id < len(self._workers):
            raise IndexError(
                f"worker id {worker_id} out of range (pool size: {len(self._workers)})"
            )
        return {"worker_id": worker_id, "stopped": self._stopped}

    def statistics(self) -> PoolStatistics:
        """A frozen snapshot of the pool's live state and its calls' figures."""
        with self._lock:
            per_worker = tuple(stats.snapshot() for stats in self._worker_stats)
        if self._on_demand:
            calls = self._stats.snapshot(in_flight=len(self._on_demand_live))
        else:
            calls = self._stats.snapshot(in_flight=sum(w.in_flight for w in per_worker))
        return PoolStatistics(
            **dataclasses.asdict(calls),
            workers=len(self._workers),
            on_demand_active=len(self._on_demand_live),
            held=calls.queued,
            dispatched=self._balancer.dispatched,
            replaced=self._replaced,
            stopped=self._stopped,
            per_worker=per_worker,
        )

    def __repr__(self) -> str:
        stats = self.statistics()
        size = "on_demand" if self._on_demand else f"workers={stats.workers}"
        return (
            f"<{type(self).__name__} {self._name} mode={self.mode} {size} "
            f"balancer={self._balancer.algorithm} in_flight={stats.in_flight} "
            f"held={stats.held} completed={stats.completed} failed={stats.failed} "
            f"{self._state()}>"
        )


def _close_all(workers: list[BackendWorker]) -> None:
    # A pool dropped without stop() lets its workers finish and end.
    for worker in workers:
        worker.begin_close(True)


def start_pool(
    cls: type[Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    options: Options,
    methods: Collection[str],
    *,
    backend: Backend | None = None,
) -> PoolHandle:
    """Start a pool of ``cls`` workers (or an on-demand pool) and return its handle.

    Outside a running loop this waits until every worker is ready and raises
    the first ``__init__`` error (after stopping the others); inside one,
    ``await pool`` does.  ``backend`` replaces the mode's backend (tests).
    """
    pool_cls: type[PoolHandle] = getattr(cls, "_aioconc_pool_class", PoolHandle)
    pool = pool_cls(cls, args, kwargs, options, methods, backend or get_backend(options.mode))
    pool._wait_started()
    return pool
