"""The handle a user holds: method calls become futures, plus the lifecycle.

``handle.method`` is looked up once per name (``__getattr__`` is the only
dynamic attribute access in aioconc; the bound caller it builds is cached on the
handle, so later look-ups are ordinary attribute reads).  Calling it builds a
:class:`~aioconc._call.Call` and hands it to the chain, or straight to the
backend when the worker has no middleware.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import weakref
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

from ._anyloop import wait_quietly
from ._call import Call
from ._chain import ChainRunner, Handler, attempt_handler, build_chain
from ._exceptions import WorkerStoppedError
from ._future import Future
from ._options import parse_priority
from ._runtime import running_loop
from ._stats import CallCounters, CallStatistics
from ._sync_future import SyncFuture
from ._unwrap import defer, needs_unwrap

if TYPE_CHECKING:
    from ._backends._base import BackendWorker, StartHere
    from ._options import Options

__all__ = ["BaseHandle", "MethodCaller", "WorkerHandle"]

_MISSING = object()
_names = itertools.count(1)


def worker_name(cls: type[Any]) -> str:
    """A readable, unique name for a new worker of ``cls``."""
    return f"{cls.__name__}-{next(_names)}"


def stopped_message(handle: Any) -> str:
    """The error text of a call to a stopped handle or pool (concurry's wording first)."""
    return f"{handle._kind} is stopped: {handle._name} takes no more calls; start a new one"


class MethodCaller:
    """``handle.method``: calling it submits one call and returns its future.

    With ``blocking=True`` the call waits and returns the value (or raises).
    Raises ``WorkerStoppedError`` (a ``RuntimeError``) after ``stop()``.
    ``handle.method.options(priority=..., timeout=...)`` gives a caller with
    per-call options.
    """

    __slots__ = ("_handle", "_here", "_name", "_priority", "_timeout")

    def __init__(self, handle: Any, name: str, priority: int, timeout: float | None = None) -> None:
        self._handle = handle
        self._name = name
        self._priority = priority
        self._timeout = timeout
        # The backend's own path for a call made where the worker lives, when it
        # has one and nothing stands between (no chain, no per-call timeout).
        self._here: StartHere | None = handle._start_here if timeout is None else None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        handle = self._handle
        if handle._stopped:
            raise WorkerStoppedError(stopped_message(handle))
        fut: Future[Any] = handle._new_future(self._priority, handle._name)
        fut._stats = stats = handle._stats  # the call counts itself out when it ends
        next(stats._submitted)
        timeout = self._timeout
        if handle._unwrap and (args or kwargs) and needs_unwrap(args, kwargs):
            dispatch = handle._dispatch if timeout is None else handle._timed_dispatch()
            defer(Call(self._name, args, kwargs, fut, timeout), dispatch)  # once inputs are done
        else:
            here = self._here
            if here is None or not here(self._name, args, kwargs, fut):
                dispatch = handle._dispatch if timeout is None else handle._timed_dispatch()
                dispatch(Call(self._name, args, kwargs, fut, timeout))
        if handle._blocking:
            return fut.result()
        return fut

    def options(
        self, *, priority: int | str | None = None, timeout: float | None = None
    ) -> MethodCaller:
        """This method with per-call options: ``priority`` ("critical", "high",
        "normal", "low" or 0-3) and ``timeout`` in seconds.

        Raises ``ValueError`` for an unknown priority or a non-positive timeout.
        """
        level = self._priority if priority is None else parse_priority(priority)
        if timeout is not None and not timeout > 0:
            raise ValueError(f"timeout must be positive, got {timeout!r}")
        return MethodCaller(self._handle, self._name, level, timeout)

    def __repr__(self) -> str:
        return f"<method {self._name} of {self._handle._name}>"


StopHook = Callable[[bool], "Future[None] | None"]


def run_stop_hooks(hooks: list[StopHook], graceful: bool) -> list[Future[None]]:
    """Tell every hook a stop begins; the waits (drains) not finished yet."""
    waits = []
    for hook in hooks:
        drained = hook(graceful)
        if drained is not None and not drained.done():
            waits.append(drained)
    return waits


def _setting(name: str) -> Any:
    def read(self: BaseHandle) -> float:
        try:
            return self._options.settings[name]
        except KeyError:
            raise AttributeError(
                f"{name!r} is not a setting of {self._options.mode} mode"
            ) from None

    return property(read, doc=f"The resolved ``{name}`` of this mode, in seconds.")


class BaseHandle:
    """The resolved options a handle or pool reports (CONFORMANCE 60), read-only.

    The per-mode timeouts of the configuration (``command_queue_timeout`` for
    thread workers, ``result_queue_timeout`` for process workers, ...) read back
    as they were when the worker was made; a mode without one raises
    ``AttributeError``.  Assigning any public attribute raises ``AttributeError``:
    options are given to ``.options(...)`` before the worker starts.
    """

    _kind = "Worker"  # how errors name it ("Worker pool" for pools)
    # What a call's future is made by: a SyncFuture for a worker that runs calls
    # inline (sync mode), as concurry users check with isinstance.
    _new_future: Callable[..., Future[Any]] = Future
    # The backend's path for a call made where the worker lives (see
    # BackendWorker.start_here): a single worker with no chain may have one.
    _start_here: StartHere | None = None
    _blocking: bool
    _cls: type[Any] | None
    _options: Options

    def __setattr__(self, name: str, value: Any) -> None:
        if not name.startswith("_"):
            raise AttributeError(
                f"cannot set {name!r}: a worker handle's settings are frozen once it is made; "
                "pass them to .options(...) instead"
            )
        object.__setattr__(self, name, value)

    def _timed_dispatch(self) -> Callable[[Call], None]:
        """Where this handle's calls with a per-call timeout go."""
        raise NotImplementedError

    @property
    def worker_cls(self) -> type[Any] | None:
        """The worker class this handle runs."""
        return self._cls

    @property
    def mp_context(self) -> str:
        """The multiprocessing start method (process mode only, else ``AttributeError``)."""
        try:
            return str(self._options.extra["mp_context"])
        except KeyError:
            raise AttributeError(
                f"'mp_context' is not a setting of {self._options.mode} mode"
            ) from None

    command_queue_timeout = _setting("command_queue_timeout")
    result_queue_timeout = _setting("result_queue_timeout")
    result_queue_cleanup_timeout = _setting("result_queue_cleanup_timeout")
    loop_ready_timeout = _setting("loop_ready_timeout")
    thread_ready_timeout = _setting("thread_ready_timeout")
    sync_queue_timeout = _setting("sync_queue_timeout")
    on_demand_cleanup_timeout = _setting("on_demand_cleanup_timeout")
    on_demand_slot_max_wait = _setting("on_demand_slot_max_wait")

    @property
    def blocking(self) -> bool:
        """Whether calls return values instead of futures."""
        return self._blocking

    @property
    def max_queued_tasks(self) -> int | None:
        """The in-flight cap per worker (None: unbounded)."""
        return self._options.max_queued_tasks

    @property
    def unwrap_futures(self) -> bool:
        """Whether futures passed as arguments are replaced by their results."""
        return self._options.unwrap_futures


class WorkerHandle(BaseHandle):
    """A started worker: call its methods, then ``stop()`` it (or use ``with``).

    Every method call returns a :class:`~aioconc.Future` (the value itself with
    ``blocking=True``).  ``async with`` waits for ``__init__`` on entry and
    drains in-flight calls on exit.
    """

    def __init__(
        self,
        cls: type[Any] | None,
        name: str,
        options: Options,
        worker: BackendWorker,
        chain: Handler | None,
    ) -> None:
        self._cls = cls
        self._name = name
        self._options = options
        self._worker = worker
        self._stopped = False
        self._blocking = options.blocking
        if worker.capabilities.blocking_dispatch:
            self._new_future = SyncFuture.pending
        # A backend that resolves argument futures itself (ray) gets them as they are.
        self._unwrap = options.unwrap_futures and not worker.capabilities.unwraps_futures
        self._init_kwargs: dict[str, Any] = {}
        self._stats = CallCounters()
        self._attempts: CallCounters | None = None  # the chain's attempts, when it has one
        # Called with ``graceful`` when the handle stops (the submission queue's
        # hook: it cancels held-back calls, or returns a future that finishes
        # once they have all been handed to the backend).
        self._stop_hooks: list[StopHook] = []
        self._chain_loop: asyncio.AbstractEventLoop | None = None
        if chain is None:
            self._dispatch: Callable[[Call], None] = worker.dispatch
            self._start_here = worker.start_here
        else:
            loop = self._chain_loop = worker.home or _home_for_chain()
            runner = ChainRunner(chain, loop)
            self._dispatch = runner.dispatch
            self._stop_hooks.append(runner.on_stop)  # graceful: let every chain finish
        # Where calls with a per-call timeout go: the chain, which then has a
        # timeout stage (see middleware.stages_for); made on first use otherwise.
        self._timed: Callable[[Call], None] | None = None if chain is None else self._dispatch
        # A handle dropped without stop() still lets its worker finish what it
        # was given and end: no thread or process outlives the last reference.
        self._finalizer = weakref.finalize(self, worker.begin_close, True)

    # -- method access ------------------------------------------------------

    def __getattr__(self, name: str) -> MethodCaller:
        if name.startswith("_"):
            raise AttributeError(name)
        # No class: every name is a method (aioconc.testing's fake workers).
        attr = getattr(self._cls, name, _MISSING) if self._cls is not None else len
        if attr is _MISSING:
            raise AttributeError(f"{self._name} has no method {name!r}")
        if not callable(attr):
            raise AttributeError(f"{name!r} of {self._name} is not a method")
        method = MethodCaller(self, name, self._options.priority)
        self.__dict__[name] = method  # later look-ups skip __getattr__
        return method

    @property
    def mode(self) -> str:
        """The execution mode's name."""
        return self._options.mode.name

    # -- lifecycle ------------------------------------------------------------

    @property
    def ready(self) -> Future[None]:
        """Finishes when the worker's ``__init__`` has run (fails with its exception)."""
        return self._worker.ready

    def stop(self, timeout: float | None = None, *, graceful: bool = False) -> None:
        """Stop the worker; idempotent.

        Calls that have not started are cancelled (with ``graceful=True`` they
        run first).  The running call gets up to ``timeout`` seconds (default:
        the ``stop_timeout`` option) to finish; whatever is still pending then
        is cancelled.  Later calls raise ``WorkerStoppedError``.  On the
        worker's own event loop this cannot wait: use ``await astop()``.
        """
        if self._stopped:
            return
        self._stopped = True
        self._finalizer.detach()
        worker = self._worker
        wait = self._options.stop_timeout if timeout is None else timeout
        for drained in self._run_stop_hooks(graceful):
            if running_loop() is not self._chain_loop:  # there, waiting would deadlock
                with contextlib.suppress(TimeoutError):
                    drained.result(wait)
        worker.begin_close(graceful)
        if worker.closed.done():
            return
        if worker.home is not None and running_loop() is worker.home:
            if not graceful:
                worker.force_close()
            return
        try:
            worker.closed.result(wait)
        except TimeoutError:
            worker.force_close()

    async def astop(self, timeout: float | None = None, *, graceful: bool = True) -> None:
        """Stop the worker without blocking the loop; drains in-flight calls first.

        Waits up to ``timeout`` seconds (default: ``stop_timeout``), then
        cancels whatever is still pending.  Idempotent.
        """
        if self._stopped:
            return
        self._stopped = True
        self._finalizer.detach()
        worker = self._worker
        wait = self._options.stop_timeout if timeout is None else timeout
        for drained in self._run_stop_hooks(graceful):
            await wait_quietly(drained, wait)  # on any loop (asyncio, uvloop, trio)
        worker.begin_close(graceful)
        if not await wait_quietly(worker.closed, wait):
            worker.force_close()

    def _run_stop_hooks(self, graceful: bool) -> list[Future[None]]:
        return run_stop_hooks(self._stop_hooks, graceful)

    def _timed_dispatch(self) -> Callable[[Call], None]:
        """The dispatch of calls with a per-call timeout.

        A worker with no chain gets, on first use, a chain of the timeout stage
        alone: its other calls keep the direct path to the backend.
        """
        timed = self._timed
        if timed is None:
            from .middleware._timeout import timeout_stage

            worker = self._worker
            stage = timeout_stage(None, on_timeout=worker.on_timeout)
            chain = build_chain([stage], attempt_handler(worker))
            assert chain is not None  # one stage: never the empty chain
            loop = worker.home or _home_for_chain()
            timed = self._timed = ChainRunner(chain, loop).dispatch
        return timed

    def __enter__(self) -> WorkerHandle:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop(graceful=True)

    async def __aenter__(self) -> WorkerHandle:
        await self._worker.ready
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.astop()

    def __await__(self) -> Generator[Any, None, WorkerHandle]:
        """``await handle`` waits for ``__init__`` and returns the handle."""
        yield from self._worker.ready.__await__()
        return self

    def statistics(self) -> CallStatistics:
        """A frozen snapshot of this worker's calls: counts by outcome, latencies."""
        attempts = self._attempts
        if attempts is not None:  # calls the chain has not handed on are queued
            return self._stats.snapshot(in_flight=attempts.unfinished)
        # A backend that holds capped calls itself (process mode) says how many.
        return self._stats.snapshot(queued=self._worker.held_calls)

    def __repr__(self) -> str:
        state = "stopped" if self._stopped else ("ready" if self.ready.done() else "starting")
        st = self.statistics()
        return (
            f"<{type(self).__name__} {self._name} mode={self.mode} {state} "
            f"in_flight={st.in_flight} queued={st.queued} completed={st.completed} "
            f"failed={st.failed}>"
        )


def _home_for_chain() -> asyncio.AbstractEventLoop:
    from ._runtime import home_loop

    return home_loop()
