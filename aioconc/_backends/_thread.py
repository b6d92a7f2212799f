"""Thread mode: one dedicated OS thread per worker, for the worker's whole life.

::

    caller threads ──dispatch()──► SimpleQueue ──► worker thread
                                                    runs calls one at a time, in order,
                                                    finishes each Future in place

The worker thread builds the instance (so thread-bound resources created in
``__init__``, such as sqlite3 connections, stay usable) and then runs calls in
submission order.  No event loop is involved: a waiting thread is woken by the
future's lock, an awaiting loop by one hand-off per burst of completions.
``async def`` methods run to completion on a private loop of the worker thread.
"""

from __future__ import annotations

import asyncio
import inspect
import queue
import threading
from types import CoroutineType
from typing import Any

from .._call import Call
from .._future import Future
from .._retrying import unwrapped_method
from ._base import (
    Capabilities,
    ClassBackend,
    WorkerBase,
    WorkerSpec,
    close_private_loop,
    construct,
    internal_retries,
    run_coroutine_blocking,
)

__all__ = ["SerialThread", "backend"]

_STOP = object()


# ---------------------------------------------------------------------------
# The serial executor (also runs asyncio mode's sync methods)
# ---------------------------------------------------------------------------


class SerialThread:
    """A thread that runs calls on one target object, one at a time, in order.

    ``factory`` builds the target on the thread itself; its failure fails
    ``ready`` and every call.  A ``SystemExit`` or ``KeyboardInterrupt`` raised
    by a method fails that call only; the thread keeps serving.
    """

    def __init__(self, name: str, factory: Any, *, on_stop: str | None = "stop") -> None:
        self.ready: Future[None] = Future()
        self.closed: Future[None] = Future()
        self._factory = factory
        self._on_stop = on_stop
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._abort = False
        self._exited = False
        self._current: Call | None = None
        self._init_error: BaseException | None = None
        self._methods: dict[str, Any] = {}  # bound methods of the target, by name
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    # -- the caller's side -----------------------------------------------

    def dispatch(self, call: Call) -> None:
        self._queue.put(call)
        if self._exited:
            # The thread has ended (its __init__ failed, or it stopped between
            # the caller's stopped-check and this put): end the call here.
            self._cancel_queued()

    def begin_close(self, graceful: bool) -> None:
        if not graceful:
            self._abort = True
            self._cancel_queued()
        self._queue.put(_STOP)

    def force_close(self) -> None:
        # A thread cannot be killed: the running call is cancelled from the
        # caller's view (its future ends), the thread finishes it and exits.
        self._abort = True
        self._cancel_queued()
        current = self._current
        if current is not None:
            current.future._set_cancelled()
        self._queue.put(_STOP)

    def _cancel_queued(self) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is _STOP:
                self._queue.put(_STOP)
                return
            if self._init_error is not None:
                item.future._set_exception(self._init_error)
            else:
                item.future._set_cancelled()

    # -- the worker thread ------------------------------------------------

    def _run(self) -> None:
        try:
            target = self._factory()
        except BaseException as exc:
            self._init_error = exc
            self.ready._set_exception(exc)
            self._fail_all(exc)
            return
        self.ready._set_result(None)
        get = self._queue.get
        while True:
            call = get()
            if call is _STOP:
                break
            if self._abort:
                call.future._set_cancelled()
                continue
            self._run_one(target, call)
        self._finish(target)

    def _run_one(self, target: Any, call: Call) -> None:
        fut = call.future
        if not fut._start():
            return  # cancelled before it started: never runs
        self._current = call
        try:
            method = self._methods.get(call.method)
            if method is None:
                method = self._methods[call.method] = unwrapped_method(target, call.method)
            # In the caller's context (a copy), as asyncio.to_thread runs its function.
            result = call.context.run(method, *call.args, **call.kwargs)
            if type(result) is CoroutineType:  # cheaper than inspect.isawaitable per call
                result = call.context.run(run_coroutine_blocking, result)
        except BaseException as exc:
            fut._set_exception(exc)
        else:
            fut._set_result(result)
        finally:
            self._current = None

    def _fail_all(self, exc: BaseException) -> None:
        self._exited = True
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not _STOP:
                item.future._set_exception(exc)
        self.closed._set_result(None)

    def _finish(self, target: Any) -> None:
        hook = getattr(target, self._on_stop, None) if self._on_stop else None
        if callable(hook):
            try:
                result = hook()
                if inspect.isawaitable(result):
                    run_coroutine_blocking(result)
            except BaseException:
                import logging

                logging.getLogger("aioconc").exception("stop() of the worker raised")
        close_private_loop()
        self._exited = True
        self._cancel_queued()
        self.closed._set_result(None)


# ---------------------------------------------------------------------------
# The backend
# ---------------------------------------------------------------------------


class ThreadWorker(SerialThread, WorkerBase):
    """A worker whose instance lives on its own thread."""

    capabilities = Capabilities(shares_memory=True)

    def __init__(self, spec: WorkerSpec) -> None:
        cls, args, kwargs, limits = spec.cls, spec.args, spec.kwargs, spec.limits
        retries = internal_retries(spec)
        super().__init__(
            f"aioconc-{spec.name}", lambda: construct(cls, args, kwargs, limits, retries)
        )

    @property
    def home(self) -> asyncio.AbstractEventLoop | None:
        return None


backend = ClassBackend(ThreadWorker)
