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
import contextlib
import dataclasses
import itertools
import logging
import os
import sys
import threading
import time
import weakref
from collections.abc import Callable, Collection, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import config
from ._anyloop import in_async_code, wait_quietly
from ._backends import get_backend
from ._backends._base import WorkerSpec
from ._balance import make_balancer
from ._chain import ChainRunner, build_chain
from ._exceptions import WaitTimeoutError
from ._future import Future
from ._proxy import BaseHandle, MethodCaller, StopHook, run_stop_hooks
from ._runtime import home_loop, running_loop
from ._stats import CallCounters, CallStatistics
from .limits import limits_for
from .middleware import stages_for
from .middleware._queue import SubmissionQueue
from .middleware._timeout import timeout_stage

if TYPE_CHECKING:
    from ._backends._base import Backend, BackendWorker
    from ._call import Call
    from ._options import Options

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

    def __init__(
        self,
        cls: type[Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        options: Options,
        methods: Collection[str],
        backend: Backend,
    ) -> None:
        self._cls = cls
        self._name = f"{cls.__name__}-pool-{next(_pool_ids)}"
        self._options = options
        self._backend = backend
        self._spec_parts = (cls, args, kwargs)
        # One self.limits for the whole pool: a limit of N means N across its workers.
        self._limits = limits_for(options.limits, options.mode, pool=True)
        self._init_kwargs = kwargs
        self._stopped = False
        self._blocking = options.blocking
        # A backend that resolves argument futures itself (ray) gets them as they are.
        self._unwrap = options.unwrap_futures and not backend.capabilities.unwraps_futures
        self._stop_hooks: list[StopHook] = []
        self._on_demand = options.on_demand
        self._abort = False
        self._lock = threading.Lock()
        self._balancer = make_balancer(options.load_balancing)
        self._replaced = 0
        self._replace_hooks: list[Callable[[int], Any]] = []
        # Slots whose worker failed to start (a replacement Ray actor no node can
        # place): they take calls only when no other slot can.
        self._benched: set[int] = set()
        self._workers: list[BackendWorker] = []
        self._on_demand_live: set[BackendWorker] = set()
        self._loop = home_loop()
        size = 0 if self._on_demand else (options.max_workers or 1)
        self._active = [0] * size
        self._total = [0] * size
        self._stats = CallCounters()
        self._worker_stats = [CallCounters() for _ in range(size)]
        stages = stages_for(options, methods, worker_class=cls.__name__)
        self._timed: Callable[[Call], None] | None = None
        self._queue: SubmissionQueue | None = None
        for stage in stages:
            if isinstance(stage, SubmissionQueue):
                self._queue = stage
        if self._on_demand:
            # On-demand workers live for one call: a per-worker cap means nothing.
            stages = [s for s in stages if not isinstance(s, SubmissionQueue)]
            self._queue = None
            # max_workers=0: no cap where workers are cluster resources (Ray),
            # else one fewer than this machine's CPUs.
            unbounded = self._backend.capabilities.scales_out
            default = sys.maxsize if unbounded else max(1, (os.cpu_count() or 2) - 1)
            self._slots = asyncio.Semaphore(options.max_workers or default)
            self._slot_wait = float(config.resolve(options.mode, "pool_on_demand_slot_max_wait"))
            chain = build_chain(stages, self._on_demand_attempt)
            runner = ChainRunner(chain or self._on_demand_attempt, self._loop)
            self._dispatch: Callable[[Call], None] = runner.dispatch
            self._stop_hooks.append(runner.on_stop)
            self._timed = None if chain is None else self._dispatch
        else:
            if self._queue is not None:
                self._queue.workers = size
                self._queue.bind_loop(self._loop)
                self._stop_hooks.append(self._queue.on_stop)
            chain = build_chain(stages, self._attempt)
            if chain is None:
                self._dispatch = self._send
            else:
                runner = ChainRunner(chain, self._loop)
                self._dispatch = runner.dispatch
                self._stop_hooks.append(runner.on_stop)  # graceful: every chain finishes
            self._timed = None if chain is None else self._dispatch
            # Started all at once: the pool is ready in about one start-up time.
            self._workers = [self._start_one() for _ in range(size)]
            for index, worker in enumerate(self._workers):
                self._watch(index, worker)
        self._ready: Future[None] = _all_ready(list(self._workers))
        self._finalizer = weakref.finalize(self, _close_all, list(self._workers))

    @property
    def ready(self) -> Future[None]:
        """Finishes when every worker's ``__init__`` has run (fails with the first error)."""
        return self._ready

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

    # -- dispatch ------------------------------------------------------------

    def __getattr__(self, name: str) -> MethodCaller:
        if name.startswith("_"):
            raise AttributeError(name)
        attr = getattr(self._cls, name, _MISSING)
        if attr is _MISSING:
            raise AttributeError(f"{self._name} has no method {name!r}")
        if not callable(attr):
            raise AttributeError(f"{name!r} of {self._name} is not a method")
        method = MethodCaller(self, name, self._options.priority)
        self.__dict__[name] = method
        return method

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

    def _timed_dispatch(self) -> Callable[[Call], None]:
        """Where calls with a per-call timeout go (see ``WorkerHandle._timed_dispatch``)."""
        timed = self._timed
        if timed is None:
            terminal = self._on_demand_attempt if self._on_demand else self._attempt
            chain = build_chain([timeout_stage(None)], terminal)
            assert chain is not None  # one stage: never the empty chain
            timed = self._timed = ChainRunner(chain, self._loop).dispatch
        return timed

    # -- statistics ------------------------------------------------------------

    @property
    def mode(self) -> str:
        """The execution mode's name."""
        return self._options.mode.name

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
        state = "stopped" if stats.stopped else ("ready" if self.ready.done() else "starting")
        size = "on_demand" if self._on_demand else f"workers={stats.workers}"
        return (
            f"<{type(self).__name__} {self._name} mode={self.mode} {size} "
            f"balancer={self._balancer.algorithm} in_flight={stats.in_flight} "
            f"held={stats.held} completed={stats.completed} failed={stats.failed} {state}>"
        )

    # -- lifecycle -------------------------------------------------------------

    def _begin_stop(self, graceful: bool) -> list[Future[None]]:
        self._stopped = True
        self._abort = not graceful
        self._finalizer.detach()
        return run_stop_hooks(self._stop_hooks, graceful)

    def _close_members(self, graceful: bool) -> list[BackendWorker]:
        members = list(self._workers) + list(self._on_demand_live)
        for worker in members:
            worker.begin_close(graceful)
        return members

    def stop(self, timeout: float | None = None, *, graceful: bool = False) -> None:
        """Stop every worker; idempotent.  See ``WorkerHandle.stop``.

        Whatever has not ended ``timeout`` seconds (default ``stop_timeout``)
        after the stop began is cancelled.
        """
        if self._stopped:
            return
        wait = self._options.stop_timeout if timeout is None else timeout
        on_home = running_loop() is self._loop
        for drained in self._begin_stop(graceful):
            if not on_home:
                with contextlib.suppress(TimeoutError):
                    drained.result(wait)
        members = self._close_members(graceful)
        if on_home:
            if not graceful:
                for worker in members:
                    worker.force_close()
            return
        for worker in members:
            try:
                worker.closed.result(wait)
            except TimeoutError:
                worker.force_close()
                wait = 0.0

    async def astop(self, timeout: float | None = None, *, graceful: bool = True) -> None:
        """Stop every worker without blocking the loop, draining in-flight calls first."""
        if self._stopped:
            return
        wait = self._options.stop_timeout if timeout is None else timeout
        for drained in self._begin_stop(graceful):
            await wait_quietly(drained, wait)  # on any loop (asyncio, uvloop, trio)
        members = self._close_members(graceful)
        # The workers close side by side: one deadline for all of them.
        deadline = None if wait is None else time.monotonic() + wait
        for worker in members:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not await wait_quietly(worker.closed, left):
                for member in members:
                    member.force_close()
                return

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop(graceful=True)

    async def __aenter__(self) -> Any:
        await self.ready
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.astop()

    def __await__(self) -> Generator[Any, None, Any]:
        """``await pool`` waits for every worker's ``__init__`` and returns the pool."""
        yield from self.ready.__await__()
        return self


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
    ready = pool.ready
    if not ready.done() and not in_async_code():  # in async code: never block its loop
        bounded = pool._backend.capabilities.bounds_start  # fails ``ready`` itself
        timeout = None if bounded else options.extra.get("start_timeout")
        try:
            ready.result(timeout)
        except TimeoutError:
            pool.stop(0)
            raise WaitTimeoutError(
                f"starting pool {pool._name} timed out after {timeout} s"
            ) from None
        except BaseException:
            pass  # raised below
    error = ready._failure()
    if error is not None:
        pool.stop(0)
        raise error
    return pool
