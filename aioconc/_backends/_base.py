"""The contract every backend implements, and the pieces they share.

A backend module (``_backends/_<mode>.py``, or ``_backends/<mode>/_worker.py``
for the process and Ray families) exposes one object, ``backend``, with:

* ``option_names`` — the mode-specific options it accepts (anything else given
  to ``options()`` makes ``init()`` raise ``ValueError``);
* ``start(spec) -> BackendWorker`` — begins starting one worker and returns at
  once; ``worker.ready`` finishes when the user's ``__init__`` has run (or
  fails with its exception).

A :class:`BackendWorker` runs single attempts:

* ``dispatch(call)`` — thread-safe and non-blocking: run ``call`` once and
  finish ``call.future``.  It is the whole hot path when a worker has no
  middleware, so backends keep it to a queue put or a loop hand-off;
* ``begin_close(graceful)`` — stop taking calls; unless ``graceful``, cancel
  the calls that have not started; finish ``closed`` once everything ended;
* ``force_close()`` — after the stop timeout: end whatever is still pending
  (cancel it, terminate what can be terminated), never block.

and has three hooks that a backend may not care about; :class:`WorkerBase`,
which every backend worker inherits, gives their defaults:

* ``start_inline`` — a :data:`StartHere` that runs a call made where the worker
  lives at once (asyncio mode's eager start), or None (the default: every call
  goes by ``dispatch``);
* ``on_timeout(call)`` — told by the timeout stage that it gave up on ``call``
  (process mode may kill the child), or None (the default: the call is dropped);
* ``held_calls`` — how many calls the worker holds back itself for
  ``max_queued_tasks`` (``queues_natively``); 0 by default.

The front end reads each hook once per handle, never per call.  Differences
between modes are capabilities or methods here, never an ``if mode ==``
elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from .._future import Future
from .._runtime import background_loop, running_loop

if TYPE_CHECKING:
    from .._call import Call
    from .._options import Options

__all__ = [
    "Backend",
    "BackendWorker",
    "Capabilities",
    "ClassBackend",
    "StartHere",
    "WorkerBase",
    "WorkerSpec",
    "construct",
    "run_coroutine_blocking",
]


@dataclass(frozen=True)
class Capabilities:
    """What a backend's workers can do; read by the front end instead of the mode."""

    needs_pickling: bool = False
    shares_memory: bool = True
    interruptible: bool = False  # cancel() can stop a running call
    blocking_dispatch: bool = False  # dispatch() runs the call before returning (sync)
    unwraps_futures: bool = False  # dispatch() resolves argument futures itself (ray: as refs)
    scales_out: bool = False  # workers are cluster resources: max_workers=0 on demand = no cap
    queues_natively: bool = False  # the worker enforces max_queued_tasks itself (no chain stage)
    bounds_start: bool = False  # the worker fails ``ready`` itself after start_timeout


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a backend needs to start one worker."""

    cls: type[Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    name: str
    options: Options
    extra: dict[str, Any] = field(default_factory=dict)
    limits: Any = None  # what ``self.limits`` is in the worker (a LimitSet or LimitPool)


StartHere = Callable[[str, tuple[Any, ...], dict[str, Any], Future[Any]], bool]
"""A worker's ``start_inline(method, args, kwargs, future)``: runs the call at once
when it is made where the worker lives (True); False leaves it to ``dispatch``."""


class BackendWorker(Protocol):
    """One running worker of some backend (see the module docstring)."""

    capabilities: Capabilities
    ready: Future[None]
    closed: Future[None]

    def dispatch(self, call: Call) -> None: ...

    def begin_close(self, graceful: bool) -> None: ...

    def force_close(self) -> None: ...

    @property
    def home(self) -> asyncio.AbstractEventLoop | None: ...

    @property
    def start_inline(self) -> StartHere | None: ...

    @property
    def on_timeout(self) -> Callable[[Call], None] | None: ...

    @property
    def held_calls(self) -> int: ...


class WorkerBase:
    """The defaults of :class:`BackendWorker`'s hooks, for a backend that has no use for them."""

    # None: no path for calls made where the worker lives; all go by dispatch().
    start_inline: StartHere | None = None
    # None: a call the timeout stage gave up on is only dropped.
    on_timeout: Callable[[Call], None] | None = None

    @property
    def held_calls(self) -> int:
        """Calls the worker holds back itself (``queues_natively``): none."""
        return 0


class Backend(Protocol):
    """A mode: knows its options and starts workers."""

    option_names: frozenset[str]
    capabilities: Capabilities

    def start(self, spec: WorkerSpec) -> BackendWorker: ...


class ClassBackend:
    """A backend whose ``start(spec)`` is simply ``worker_cls(spec)``."""

    def __init__(self, worker_cls: Any, option_names: frozenset[str] = frozenset()) -> None:
        self.worker_cls = worker_cls
        self.option_names = option_names
        self.capabilities: Capabilities = worker_cls.capabilities

    def start(self, spec: WorkerSpec) -> Any:
        return self.worker_cls(spec)


# ---------------------------------------------------------------------------
# Shared helpers
# ---------------------------------------------------------------------------

_constructing = threading.local()


def is_constructing() -> bool:
    """True while :func:`construct` builds a user instance in this thread."""
    return getattr(_constructing, "depth", 0) > 0


def construct(
    cls: type[Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    limits: Any = None,
    retries: Any = None,
) -> Any:
    """Build the user's instance, bypassing auto-init (``Cls(...)`` returning a handle).

    ``self.limits`` is set before ``__init__`` runs (so ``__init__`` can use it)
    and again after it if it is gone (model classes replace their ``__dict__``
    while validating; an ``__init__`` that sets its own is left alone).  With no
    ``limits`` it is an empty ``LimitSet`` whose ``acquire()`` succeeds at once.
    ``retries`` (from :func:`internal_retries`) gives the methods with a retry
    policy their wrapper for internal calls (``aioconc._retrying``).
    """
    if limits is None:
        from ..limits import LimitSet

        limits = LimitSet([])
    _constructing.depth = getattr(_constructing, "depth", 0) + 1
    try:
        # What type.__call__ does, with the attribute set in between.
        instance = cls.__new__(cls, *args, **kwargs)
        if not isinstance(instance, cls):
            return instance
        _set_limits(instance, limits)
        type(instance).__init__(instance, *args, **kwargs)
        if not hasattr(instance, "limits"):  # __init__ replaced __dict__ (a model class)
            _set_limits(instance, limits)
        if retries:
            from .._retrying import install

            install(instance, retries)
        return instance
    finally:
        _constructing.depth -= 1


def internal_retries(spec: WorkerSpec) -> dict[str, Any] | None:
    """The retry policies of ``spec``'s methods for calls made inside the worker, or None."""
    options = spec.options
    if options.num_retries == 0 and options.retry_until is None:
        return None  # nothing to retry (a per-method dict is never 0 or None)
    from .._retrying import policies

    methods = {
        name
        for name in dir(spec.cls)
        if not name.startswith("_") and callable(getattr(spec.cls, name, None))
    }
    return policies(options, methods) or None


def _set_limits(instance: Any, limits: Any) -> None:
    if "limits" in type(instance).__dict__ or getattr(instance, "limits", None) is limits:
        return  # the class defines its own ``limits``: leave it alone
    # A class with __slots__ and no __dict__ gets no self.limits.
    with contextlib.suppress(AttributeError):
        object.__setattr__(instance, "limits", limits)


_private_loops = threading.local()


def run_coroutine_blocking(coro: Any) -> Any:
    """Run an ``async def`` method's coroutine to completion from synchronous code.

    In a thread with no running loop, a private per-thread loop runs it; under a
    running loop (sync mode called from async code) it runs on the background
    loop while this thread waits; on the background loop itself, on a fresh loop
    in a helper thread.
    """
    here = running_loop()
    if here is not None:
        if here is background_loop():
            # On the background loop itself (a sync worker's call run by its
            # middleware chain): waiting for it there would deadlock.
            return _run_on_helper_thread(coro)
        return asyncio.run_coroutine_threadsafe(coro, background_loop()).result()
    loop: asyncio.AbstractEventLoop | None = getattr(_private_loops, "loop", None)
    if loop is None or loop.is_closed():
        loop = _private_loops.loop = asyncio.new_event_loop()
    return loop.run_until_complete(coro)


def _run_on_helper_thread(coro: Any) -> Any:
    outcome: list[Any] = []

    context = contextvars.copy_context()  # the call's: asyncio.run's task copies it

    def run() -> None:
        try:
            outcome.append((True, context.run(asyncio.run, coro)))
        except BaseException as exc:
            outcome.append((False, exc))

    thread = threading.Thread(target=run, name="aioconc-sync-coroutine", daemon=True)
    thread.start()
    thread.join()
    ok, value = outcome[0]
    if not ok:
        raise value
    return value


def close_private_loop() -> None:
    """Close this thread's private loop, if :func:`run_coroutine_blocking` made one."""
    loop: asyncio.AbstractEventLoop | None = getattr(_private_loops, "loop", None)
    if loop is not None and not loop.is_closed():
        loop.close()
    _private_loops.loop = None
