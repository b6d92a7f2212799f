"""Test helpers: a backend driven by a function, and a fixture over every mode.

``FakeBackend(handler)`` runs each call through ``handler(call)`` (sync or
``async def``) on the worker's home loop, so the chain, futures and handles can
be tested without threads or processes::

    backend = FakeBackend(lambda call: call.args[0] * 2)
    handle = backend.handle()            # a WorkerHandle over the fake
    assert handle.double(21).result() == 42

The pytest plugin (``pytest_plugins = ["aioconc.testing.plugin"]``) provides
the ``worker_mode`` fixture, parametrized over every mode available here.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Sequence
from typing import Any

from .._backends._base import Capabilities, WorkerBase, WorkerSpec
from .._call import Call
from .._chain import Stage, attempt_handler, build_chain
from .._future import Future
from .._options import resolve_options
from .._proxy import WorkerHandle
from .._runtime import home_loop, inbox_for, running_loop

__all__ = ["FakeBackend", "FakeWorker"]


class FakeWorker(WorkerBase):
    """A worker whose every call is ``handler(call)``, run on the home loop."""

    capabilities = Capabilities(interruptible=True)

    def __init__(self, handler: Callable[[Call], Any]) -> None:
        self.ready: Future[None] = Future()
        self.closed: Future[None] = Future()
        self.calls: list[Call] = []
        self._handler = handler
        self._loop = home_loop()
        self._inbox = inbox_for(self._loop)
        self._tasks: set[asyncio.Task[None]] = set()
        self.ready._set_result(None)

    @property
    def home(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def dispatch(self, call: Call) -> None:
        if running_loop() is self._loop:
            self._run(call)
        else:
            self._inbox.post(self._run, call)

    def _run(self, call: Call) -> None:
        self.calls.append(call)
        if not call.future._start():
            return
        task = self._loop.create_task(self._call(call))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        call.future._bind_task(task)

    async def _call(self, call: Call) -> None:
        fut = call.future
        try:
            result = self._handler(call)
            if inspect.isawaitable(result):
                result = await result
        except asyncio.CancelledError:
            fut._set_cancelled()
        except BaseException as exc:
            fut._set_exception(exc)
        else:
            fut._set_result(result)

    def begin_close(self, graceful: bool) -> None:
        if not graceful:
            for task in list(self._tasks):
                self._inbox.post(task.cancel)
        self.closed._set_result(None)

    def force_close(self) -> None:
        self.closed._set_result(None)


class FakeBackend:
    """A backend whose workers run calls through ``handler``."""

    option_names: frozenset[str] = frozenset()
    capabilities = FakeWorker.capabilities

    def __init__(self, handler: Callable[[Call], Any]) -> None:
        self.handler = handler
        self.workers: list[FakeWorker] = []

    def start(self, spec: WorkerSpec | None = None) -> FakeWorker:
        worker = FakeWorker(self.handler)
        self.workers.append(worker)
        return worker

    def handle(self, *, stages: Sequence[Stage] = (), **options: Any) -> WorkerHandle:
        """Start a fake worker and return a handle whose chain is ``stages``."""
        resolved = resolve_options([{"mode": "asyncio", **options}], mode_specific={})
        worker = self.start()
        chain = build_chain(list(stages), attempt_handler(worker.dispatch))
        return WorkerHandle(None, "fake", resolved, worker, chain)
