"""Asyncio mode: the instance lives on its home loop; ``async def`` methods are tasks.

::

    caller on the home loop ──────────────► _run(call) ──► Task(method(...))
    caller in another thread ──Inbox.post──► _run(call)      (one wake-up per burst)
                                             └─ sync method ─► SerialThread (in order)

``async def`` methods of one worker run concurrently on the home loop, and
``cancel()`` of a running one really cancels its task.  Plain (sync) methods
run one at a time, in order, on a thread of their own, so a slow sync method
never blocks the loop or the ``async def`` methods running on it.

The home loop is the loop running where the worker was created, or aioconc's
background loop when it was created from synchronous code.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from typing import Any

from .._call import Call
from .._future import Future
from .._retrying import unwrapped_method
from .._runtime import home_loop, inbox_for, running_loop
from ._base import Capabilities, ClassBackend, WorkerBase, WorkerSpec, construct, internal_retries
from ._eager import EagerStarter
from ._thread import SerialThread

__all__ = ["backend"]

log = logging.getLogger("aioconc")


# ---------------------------------------------------------------------------
# The worker
# ---------------------------------------------------------------------------


class AsyncioWorker(WorkerBase):
    """A worker whose instance lives on its home loop."""

    capabilities = Capabilities(interruptible=True)

    def __init__(self, spec: WorkerSpec) -> None:
        self.ready: Future[None] = Future()
        self.closed: Future[None] = Future()
        self._spec = spec
        self._loop = home_loop()
        self._inbox = inbox_for(self._loop)
        self._instance: Any = None
        # The calls running as tasks.  Bookkeeping happens in the task itself
        # (no done-callback per call); a task cancelled before its first step
        # leaves a *done* future here, which closing skips.
        self._tasks: dict[Future[Any], asyncio.Task[None]] = {}
        self._methods: dict[str, tuple[Any, bool]] = {}
        self._eager = EagerStarter(self._loop, self._ended, self._tasks)
        # A fresh call made on the home loop starts through here (see _handle.py),
        # unless first steps cannot run inline: then every call goes by dispatch.
        if self._eager.inline:
            self.start_inline = self._eager.start_inline
        self._open = False  # True while the instance is ready and not closing
        self._sync: SerialThread | None = None
        self._closing = False
        self._abort = False
        self._hook_ran = False
        self._on_loop(self._construct)

    @property
    def home(self) -> asyncio.AbstractEventLoop | None:
        return self._loop

    def _on_loop(self, fn: Any, *args: Any) -> None:
        if running_loop() is self._loop:
            fn(*args)
        elif self._loop.is_closed():
            raise RuntimeError("the worker's event loop is closed")
        else:
            self._inbox.post(fn, *args)

    def _construct(self) -> None:
        spec = self._spec
        try:
            retries = internal_retries(spec)
            self._instance = construct(spec.cls, spec.args, spec.kwargs, spec.limits, retries)
        except BaseException as exc:
            self.ready._set_exception(exc)
            self.closed._set_result(None)
        else:
            self._open = True
            self.ready._set_result(None)

    # -- calls ---------------------------------------------------------------

    def dispatch(self, call: Call) -> None:
        if running_loop() is self._loop:
            # _run's hot path, inlined: an async def method of a ready worker.
            entry = self._methods.get(call.method)
            if entry is not None and entry[1] and self._open:
                fut = call.future
                if fut._start():
                    task = self._eager.start(entry[0](*call.args, **call.kwargs), fut, call.context)
                    if task is not None:
                        self._tasks[fut] = task
                return
            self._run(call)
            return
        try:
            self._on_loop(self._run, call)
        except RuntimeError as exc:
            call.future._set_exception(exc)

    def _run(self, call: Call) -> None:
        # The hot path: a cached (bound method, is-async) pair, no other look-ups.
        entry = self._methods.get(call.method)
        if entry is None or not self._open:
            self._run_first(call)
            return
        method, is_async = entry
        if not is_async:
            self._sync_thread().dispatch(call)
            return
        fut = call.future
        if not fut._start():
            return
        # The first step runs now (see _eager.py): a method that does not
        # suspend is done before dispatch returns, with no task switch.
        task = self._eager.start(method(*call.args, **call.kwargs), fut, call.context)
        if task is not None:
            self._tasks[fut] = task

    def _run_first(self, call: Call) -> None:
        fut = call.future
        if (failed := self.ready._failure()) is not None:
            fut._set_exception(failed)
            return
        if self._abort or self.closed.done():
            fut._set_cancelled()
            return
        try:
            method = unwrapped_method(self._instance, call.method)
        except AttributeError as exc:
            fut._set_exception(exc)
            return
        is_async = inspect.iscoroutinefunction(method)
        self._methods[call.method] = (method, is_async)
        if is_async and self._open:
            self._eager.methods[call.method] = method
        self._run(call)

    def _ended(self, fut: Future[Any]) -> None:
        del self._tasks[fut]
        if self._closing:
            self._maybe_closed()

    def _busy(self) -> bool:
        return any(not fut.done() for fut in self._tasks)

    def _sync_thread(self) -> SerialThread:
        if self._sync is None:
            instance = self._instance
            # on_stop=None: the worker's own stop() hook runs once, on the loop.
            self._sync = SerialThread(
                f"aioconc-{self._spec.name}-sync", lambda: instance, on_stop=None
            )
        return self._sync

    # -- closing -------------------------------------------------------------

    def begin_close(self, graceful: bool) -> None:
        try:
            self._on_loop(self._begin_close, graceful)
        except RuntimeError:
            self.force_close()

    def _begin_close(self, graceful: bool) -> None:
        if self._closing:
            return
        self._closing = True
        if not graceful:
            self._open = False
            self._eager.methods.clear()
            self._abort = True
            for fut, task in list(self._tasks.items()):
                fut._set_cancelled()
                task.cancel()
        if self._sync is not None:
            self._sync.begin_close(graceful)
            self._sync.closed.add_done_callback(lambda _: self._on_loop(self._maybe_closed))
        self._maybe_closed()

    def _maybe_closed(self) -> None:
        if self.closed.done() or self._busy():
            return
        if self._sync is not None and not self._sync.closed.done():
            return
        self._eager.retire()
        cleanup = self._run_stop_hook()
        if cleanup is not None:
            cleanup.add_done_callback(lambda _: self.closed._set_result(None))
        else:
            self.closed._set_result(None)

    def _run_stop_hook(self) -> asyncio.Future[Any] | None:
        """Call the worker's own ``stop()`` once; its coroutine becomes a task."""
        hook = getattr(self._instance, "stop", None)
        if self._hook_ran or not callable(hook):
            return None
        self._hook_ran = True
        try:
            result = hook()
        except Exception:
            log.exception("stop() of the worker raised")
            return None
        if inspect.isawaitable(result):
            return asyncio.ensure_future(result, loop=self._loop)
        return None

    def force_close(self) -> None:
        self._abort = True
        self._open = False
        self._eager.methods.clear()
        for fut, task in list(self._tasks.items()):
            fut._set_cancelled()
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                self._on_loop(task.cancel)
        if self._sync is not None:
            self._sync.force_close()
        with contextlib.suppress(RuntimeError):  # the loop is already closed
            self._on_loop(self._eager.retire)
        if running_loop() is self._loop:
            self._run_stop_hook()
        elif not self._loop.is_closed():
            self._inbox.post(self._run_stop_hook)
        self.closed._set_result(None)


# ---------------------------------------------------------------------------
# The backend
# ---------------------------------------------------------------------------


backend = ClassBackend(AsyncioWorker)
