"""The ``future_factory`` fixture shared by the wait/gather tests.

``make(value=None, exc=None, delay=0.0)`` returns a library future finished
with ``value`` or ``exc`` after ``delay`` seconds or as soon as the test opens
the ``gate``, whichever comes first (tests that need an order open the gate
when the earlier future is done, rather than trusting a delay).  It is parametrized: futures
finished from a timer thread, and futures made by real workers in asyncio,
thread and process mode (one worker per future, so delays overlap; in process
mode instant calls share one worker).  Sync mode is left out: its futures are
finished before a call returns, and these tests need pending ones.  Process
futures of exceptions are skipped: the exception arrives as a copy, and these
tests check it is the very object.  Everything still pending at teardown is
cancelled and the workers stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from aioconc import Worker
from aioconc._future import Future
from aioconc._proxy import WorkerHandle

MakeFuture = Callable[..., Future[Any]]


def _finish(
    future: Future[Any], value: Any, exc: BaseException | None, gate: Any, delay: float
) -> None:
    if delay:
        gate.wait(delay)
    if exc is not None:
        future._set_exception(exc)
    else:
        future._set_result(value)


async def _gate_opened(gate: Any, delay: float) -> None:
    """Wait for ``gate`` (or ``delay``) in a daemon thread of its own.

    Not asyncio.to_thread: the test's loop would join that executor thread when
    the test ends, before teardown opens the gate, and so wait out ``delay``.
    """
    loop = asyncio.get_running_loop()
    opened = loop.create_future()

    def wait() -> None:
        gate.wait(delay)
        with contextlib.suppress(RuntimeError):  # the test's loop has closed meanwhile
            loop.call_soon_threadsafe(lambda: opened.done() or opened.set_result(None))

    threading.Thread(target=wait, daemon=True).start()
    await opened


class Producer(Worker):
    def __init__(self, gate: threading.Event) -> None:
        self.gate = gate

    def produce(self, value: Any, exc: BaseException | None, delay: float) -> Any:
        if delay:
            self.gate.wait(delay)  # teardown opens the gate: nothing lingers
        if exc is not None:
            raise exc
        return value

    async def aproduce(self, value: Any, exc: BaseException | None, delay: float) -> Any:
        if delay:
            await _gate_opened(self.gate, delay)
        if exc is not None:
            raise exc
        return value


@pytest.fixture(params=["timer", "asyncio", "threads", "processes"])
def future_factory(request: pytest.FixtureRequest, gate: threading.Event) -> Iterator[MakeFuture]:
    # ``gate`` (conftest) works across processes too; teardown opens it.
    kind: str = request.param
    made: list[Future[Any]] = []
    workers: list[WorkerHandle] = []
    instant: list[WorkerHandle] = []

    def make(
        value: Any = None, exc: BaseException | None = None, delay: float = 0.0
    ) -> Future[Any]:
        if kind == "timer":
            future: Future[Any] = Future()
            timer = threading.Thread(target=_finish, args=(future, value, exc, gate, delay))
            timer.daemon = True
            timer.start()
        else:
            if kind == "processes" and exc is not None:
                pytest.skip("an exception crosses the process boundary as a copy, not itself")
            if kind == "processes" and not delay and instant:
                handle = instant[0]  # instant calls never block it: no process per future
            else:
                handle = Producer.options(mode=kind).init(gate)
                workers.append(handle)
                if not delay:
                    instant.append(handle)
            method = handle.aproduce if kind == "asyncio" else handle.produce
            future = method(value, exc, delay)
        made.append(future)
        return future

    yield make
    gate.set()
    for future in made:
        future.cancel()
    for handle in workers:
        handle.stop(timeout=5)
