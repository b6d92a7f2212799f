"""Sync mode: the instance lives in the caller's thread and calls run inline.

There is no loop and no thread: ``dispatch`` runs the method before it
returns, so the future a call returns is already done.  Exceptions are kept in
the future and raised by ``result()``; ``SystemExit`` and ``KeyboardInterrupt``
too, so one bad call does not end the caller's script.  For debugging and tests:
``AIOCONC_FORCE_SYNC=1`` runs every worker this way.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
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
    construct,
    internal_retries,
    run_coroutine_blocking,
)

__all__ = ["backend"]

log = logging.getLogger("aioconc")


# ---------------------------------------------------------------------------
# The worker
# ---------------------------------------------------------------------------


class SyncWorker(WorkerBase):
    """A worker whose calls run inline in the calling thread."""

    capabilities = Capabilities(blocking_dispatch=True)

    def __init__(self, spec: WorkerSpec) -> None:
        self.ready: Future[None] = Future()
        self.closed: Future[None] = Future()
        self._instance: Any = None
        self._methods: dict[str, Any] = {}  # bound methods, looked up once per name
        self._closing = False
        try:
            retries = internal_retries(spec)
            self._instance = construct(spec.cls, spec.args, spec.kwargs, spec.limits, retries)
        except BaseException as exc:
            self.ready._set_exception(exc)
            self.closed._set_result(None)
        else:
            self.ready._set_result(None)

    @property
    def home(self) -> asyncio.AbstractEventLoop | None:
        return None

    def dispatch(self, call: Call) -> None:
        fut = call.future
        method = self._methods.get(call.method)
        if method is None:
            method = self._lookup(call)
            if method is None:
                return
        if not fut._start():
            return
        try:
            # In a copy of the caller's context, as the other in-process modes do:
            # what the method sets stays with the call.
            result = call.context.run(method, *call.args, **call.kwargs)
            if type(result) is CoroutineType:  # cheaper than inspect.isawaitable per call
                result = call.context.run(run_coroutine_blocking, result)
        except BaseException as exc:
            fut._set_exception(exc)
        else:
            fut._set_result(result)

    def _lookup(self, call: Call) -> Any:
        fut = call.future
        if (failed := self.ready._failure()) is not None:
            fut._set_exception(failed)
            return None
        try:
            method = unwrapped_method(self._instance, call.method)
        except AttributeError as exc:
            fut._set_exception(exc)
            return None
        self._methods[call.method] = method
        return method

    def begin_close(self, graceful: bool) -> None:
        if self.closed.done():
            return
        hook = getattr(self._instance, "stop", None)
        if callable(hook):
            try:
                result = hook()
                if inspect.isawaitable(result):
                    run_coroutine_blocking(result)
            except Exception:
                log.exception("stop() of the worker raised")
        self.closed._set_result(None)

    def force_close(self) -> None:
        self.closed._set_result(None)


# ---------------------------------------------------------------------------
# The backend
# ---------------------------------------------------------------------------


backend = ClassBackend(SyncWorker)
