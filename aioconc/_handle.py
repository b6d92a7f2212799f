"""What a worker's handle and a pool share: method callers, the submit path, stopping.

``handle.method`` is looked up once per name (``__getattr__`` is the only
dynamic attribute access in aioconc; the :class:`MethodCaller` it builds is
cached on the handle, so later look-ups are ordinary attribute reads).  Calling
it is the one submit sequence of aioconc -- ``submit``/``map`` of task handles
go through it too::

    caller(*args) ─► Future (counted in the handle's CallCounters) + Call
        ├─ start_inline(...)       a single worker's inline path, when it has one
        ├─ _dispatch(call)       the backend's dispatch, or the chain's runner
        └─ _timed_dispatch()     calls with a per-call timeout: the chain, or a
                                 timeout-only chain made on first use

:class:`BaseHandle` also holds what both kinds report (the resolved options,
``statistics()``) and the lifecycle: waiting for ``ready``, ``stop``/``astop``
over the handle's members (one backend worker, or a pool's), ``with`` and
``async with``.  ``_proxy.py`` (one worker) and ``_pool.py`` (a pool) say what
differs.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import time
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any, TypeVar

from ._anyloop import in_async_code, wait_quietly
from ._call import Call
from ._chain import ChainRunner, Handler, build_chain
from ._exceptions import WaitTimeoutError, WorkerStoppedError
from ._future import Future
from ._options import parse_priority
from ._runtime import running_loop
from ._stats import CallCounters, CallStatistics
from ._sync_future import SyncFuture
from ._unwrap import defer, needs_unwrap
from .middleware._timeout import OnTimeout, timeout_stage

if TYPE_CHECKING:
    from ._backends._base import BackendWorker, Capabilities, StartHere
    from ._options import Options

__all__ = ["BaseHandle", "MethodCaller", "stopped_message"]

H = TypeVar("H", bound="BaseHandle")

_MISSING = object()

StopHook = Callable[[bool], "Future[None] | None"]


def stopped_message(handle: BaseHandle) -> str:
    """The error text of a call to a stopped handle or pool (concurry's wording first)."""
    return f"{handle._kind} is stopped: {handle._name} takes no more calls; start a new one"


def run_stop_hooks(hooks: list[StopHook], graceful: bool) -> list[Future[None]]:
    """Tell every hook a stop begins; the waits (drains) not finished yet."""
    waits = []
    for hook in hooks:
        drained = hook(graceful)
        if drained is not None and not drained.done():
            waits.append(drained)
    return waits


class MethodCaller:
    """``handle.method``: calling it submits one call and returns its future.

    With ``blocking=True`` the call waits and returns the value (or raises).
    Raises ``WorkerStoppedError`` (a ``RuntimeError``) after ``stop()``.
    ``handle.method.options(priority=..., timeout=...)`` gives a caller with
    per-call options.
    """

    __slots__ = ("_blocking", "_handle", "_here", "_name", "_priority", "_timeout")

    def __init__(
        self,
        handle: BaseHandle,
        name: str,
        priority: int,
        timeout: float | None = None,
        *,
        blocking: bool | None = None,
        inline: bool = True,
    ) -> None:
        self._handle = handle
        self._name = name
        self._priority = priority
        self._timeout = timeout
        # None: as the handle says; False: the future even on a blocking handle.
        self._blocking = handle._blocking if blocking is None else blocking
        # The backend's own path for a call made where the worker lives, when it
        # has one and nothing stands between (no chain, no per-call timeout).
        self._here: StartHere | None = handle._start_inline if timeout is None and inline else None

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
        if self._blocking:
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


def _setting(name: str) -> Any:
    def read(self: BaseHandle) -> float:
        try:
            return self._options.settings[name]
        except KeyError:
            raise AttributeError(
                f"{name!r} is not a setting of {self._options.mode} mode"
            ) from None

    return property(read, doc=f"The resolved ``{name}`` of this mode, in seconds.")


class BaseHandle(abc.ABC):
    """The base of :class:`~aioconc.WorkerHandle` and :class:`~aioconc._pool.PoolHandle`.

    Method calls, the lifecycle and the resolved options a handle reports
    (CONFORMANCE 60), read-only: the per-mode timeouts of the configuration
    (``command_queue_timeout`` for thread workers, ``result_queue_timeout`` for
    process workers, ...) read back as they were when the worker was made; a
    mode without one raises ``AttributeError``.  Assigning any public attribute
    raises ``AttributeError``: options are given to ``.options(...)`` before the
    worker starts.
    """

    _kind = "Worker"  # how errors name it ("Worker pool" for pools)
    _noun = "worker"  # what a start that timed out names
    # What a call's future is made by: a SyncFuture for a worker that runs calls
    # inline (sync mode), as concurry users check with isinstance.
    _new_future: Callable[..., Future[Any]] = Future
    # The backend's path for a call made where the worker lives (see
    # BackendWorker.start_inline): a single worker with no chain may have one.
    _start_inline: StartHere | None = None
    # Where calls go: the backend's (or a balancer's) dispatch, or a chain's runner.
    _dispatch: Callable[[Call], None]
    _ready: Future[None]
    _finalizer: Any  # weakref.finalize: closes the members of a handle dropped unstopped

    def __init__(
        self, cls: type[Any] | None, name: str, options: Options, capabilities: Capabilities
    ) -> None:
        self._cls = cls
        self._name = name
        self._options = options
        self._capabilities = capabilities
        self._stopped = False
        self._abort = False  # a stop began that is not graceful
        self._blocking = options.blocking
        if capabilities.blocking_dispatch:
            self._new_future = SyncFuture.pending
        # A backend that resolves argument futures itself (ray) gets them as they are.
        self._unwrap = options.unwrap_futures and not capabilities.unwraps_futures
        self._init_kwargs: dict[str, Any] = {}
        self._stats = CallCounters()
        self._attempts: CallCounters | None = None  # the chain's attempts, when it has one
        # Called with ``graceful`` when the handle stops (a chain's runner or the
        # submission queue: they cancel held-back calls, or return a future that
        # finishes once every call has gone through).
        self._stop_hooks: list[StopHook] = []
        self._chain_loop: asyncio.AbstractEventLoop | None = None  # where the chains run
        # Where calls with a per-call timeout go: the chain, which then has a
        # timeout stage (see middleware.stages_for); made on first use otherwise.
        self._timed: Callable[[Call], None] | None = None
        self._submitters: dict[tuple[str, int], MethodCaller] = {}

    # -- what a subclass says --------------------------------------------------

    @abc.abstractmethod
    def _members(self) -> list[BackendWorker]:
        """The backend workers that a stop closes."""
        ...

    @abc.abstractmethod
    def _members_home(self) -> asyncio.AbstractEventLoop | None:
        """The loop on which waiting for the members to close would deadlock, if any."""
        ...

    @abc.abstractmethod
    def _timeout_only(self) -> tuple[Handler, OnTimeout | None, asyncio.AbstractEventLoop]:
        """What a timeout-only chain wraps, the backend's hook for it, and its loop."""
        ...

    @abc.abstractmethod
    def _abandon_start(self, timed_out: bool) -> None:
        """Let go of members that failed to start (``timed_out``: or did not in time)."""
        ...

    def _held_calls(self) -> int:
        """Unfinished calls held back where the statistics cannot see them."""
        return 0

    # -- calls -----------------------------------------------------------------

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

    def _submitter(self, method: str, priority: int) -> MethodCaller:
        """The caller of ``method`` at ``priority`` for ``submit`` and ``map``.

        It returns the future even on a blocking handle (``map`` needs it), and
        its calls go by dispatch: a submitted function never starts inside the
        submitting code.
        """
        key = (method, priority)
        caller = self._submitters.get(key)
        if caller is None:
            caller = MethodCaller(self, method, priority, blocking=False, inline=False)
            self._submitters[key] = caller
        return caller

    def _run_chains(
        self, chain: Handler, loop: asyncio.AbstractEventLoop
    ) -> Callable[[Call], None]:
        """The dispatch that runs ``chain`` for each call on ``loop``.

        A graceful stop waits until every call dispatched so far has gone
        through it, so that none reaches a member after it closed.
        """
        runner = ChainRunner(chain, loop)
        self._stop_hooks.append(runner.on_stop)
        self._chain_loop = loop
        return runner.dispatch

    def _timed_dispatch(self) -> Callable[[Call], None]:
        """The dispatch of calls with a per-call timeout.

        A handle with no chain gets, on first use, a chain of the timeout stage
        alone: its other calls keep their direct path.
        """
        timed = self._timed
        if timed is None:
            terminal, on_timeout, loop = self._timeout_only()
            chain = build_chain([timeout_stage(None, on_timeout=on_timeout)], terminal)
            assert chain is not None  # one stage: never the empty chain
            timed = self._timed = self._run_chains(chain, loop)
        return timed

    # -- the resolved options ----------------------------------------------------

    def __setattr__(self, name: str, value: Any) -> None:
        if not name.startswith("_"):
            raise AttributeError(
                f"cannot set {name!r}: a worker handle's settings are frozen once it is made; "
                "pass them to .options(...) instead"
            )
        object.__setattr__(self, name, value)

    @property
    def worker_cls(self) -> type[Any] | None:
        """The worker class this handle runs."""
        return self._cls

    @property
    def mode(self) -> str:
        """The execution mode's name."""
        return self._options.mode.name

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

    # -- statistics --------------------------------------------------------------

    def statistics(self) -> CallStatistics:
        """A frozen snapshot of the handle's calls: counts by outcome, latencies."""
        attempts = self._attempts
        if attempts is not None:  # calls the chain has not handed on are queued
            return self._stats.snapshot(in_flight=attempts.unfinished)
        return self._stats.snapshot(queued=self._held_calls())

    def _state(self) -> str:
        """How ``__repr__`` says where the handle is in its life."""
        return "stopped" if self._stopped else ("ready" if self._ready.done() else "starting")

    # -- lifecycle -----------------------------------------------------------------

    @property
    def ready(self) -> Future[None]:
        """Finishes when the ``__init__`` of every worker has run (fails with the first error)."""
        return self._ready

    def _wait_started(self) -> None:
        """Outside async code, wait until ``ready`` (never block a running loop there).

        Raises ``WaitTimeoutError`` after the ``start_timeout`` option, and the
        first ``__init__`` error; either way the members are let go first.
        """
        ready = self._ready
        if not ready.done() and not in_async_code():
            # A backend that bounds its start fails ``ready`` with its own, better error.
            bounded = self._capabilities.bounds_start
            timeout = None if bounded else self._options.extra.get("start_timeout")
            try:
                ready.result(timeout)
            except TimeoutError:
                self._abandon_start(timed_out=True)
                raise WaitTimeoutError(
                    f"starting {self._noun} {self._name} timed out after {timeout} s"
                ) from None
            except BaseException:
                pass  # raised below, the same way as an already failed start
        error = ready._failure()
        if error is not None:
            self._abandon_start(timed_out=False)
            raise error

    def stop(self, timeout: float | None = None, *, graceful: bool = False) -> None:
        """Stop the worker (every worker of a pool); idempotent.

        Calls that have not started are cancelled (with ``graceful=True`` they
        run first).  Whatever has not ended ``timeout`` seconds (default: the
        ``stop_timeout`` option) after the stop began is cancelled.  Later calls
        raise ``WorkerStoppedError``.  On the workers' own event loop this cannot
        wait: use ``await astop()``.
        """
        if self._stopped:
            return
        wait = self._options.stop_timeout if timeout is None else timeout
        here = running_loop()
        for drained in self._begin_stop(graceful):
            if here is not self._chain_loop:  # there, waiting would deadlock
                with contextlib.suppress(TimeoutError):
                    drained.result(wait)
        members = self._close_members(graceful)
        if all(member.closed.done() for member in members):
            return  # nothing left to wait for (a sync worker, a failed start)
        home = self._members_home()
        if home is not None and here is home:  # there, waiting would deadlock
            if not graceful:
                for member in members:
                    member.force_close()
            return
        for member in members:
            try:
                member.closed.result(wait)
            except TimeoutError:
                member.force_close()
                wait = 0.0  # the time is up for the members still closing too

    async def astop(self, timeout: float | None = None, *, graceful: bool = True) -> None:
        """Stop without blocking the loop; drains in-flight calls first.

        Waits up to ``timeout`` seconds (default: ``stop_timeout``), then
        cancels whatever is still pending.  Idempotent.
        """
        if self._stopped:
            return
        wait = self._options.stop_timeout if timeout is None else timeout
        for drained in self._begin_stop(graceful):
            await wait_quietly(drained, wait)  # on any loop (asyncio, uvloop, trio)
        members = self._close_members(graceful)
        # The members close side by side: one deadline for all of them.
        deadline = None if wait is None else time.monotonic() + wait
        for member in members:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not await wait_quietly(member.closed, left):
                for each in members:
                    each.force_close()
                return

    def _begin_stop(self, graceful: bool) -> list[Future[None]]:
        self._stopped = True
        self._abort = not graceful
        self._finalizer.detach()
        return run_stop_hooks(self._stop_hooks, graceful)

    def _close_members(self, graceful: bool) -> list[BackendWorker]:
        members = self._members()
        for member in members:
            member.begin_close(graceful)
        return members

    def __enter__(self: H) -> H:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop(graceful=True)

    async def __aenter__(self: H) -> H:
        await self._ready
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.astop()

    def __await__(self: H) -> Generator[Any, None, H]:
        """``await handle`` waits for ``__init__`` (every worker's) and returns the handle."""
        yield from self._ready.__await__()
        return self
