"""The benchmark's figures inside a running loop: ``awaited`` and ``in coroutines``.

* ``awaited``: ``asyncio.gather`` of N calls' futures themselves;
* ``in coroutines``: the shape apps write -- each call awaited inside a
  coroutine of its own (``async def one(i): return await w.m(i)``), N of those
  gathered, the worker made with ``async with``.

A *setup* is an async context manager that yields ``i -> awaitable``; the same
timing loop drives aioconc's workers and the raw primitives they are compared
with (bare coroutines, ``asyncio.to_thread``, ``anyio.to_thread.run_sync``, a
raw pipe whose replies finish loop futures, a raw Ray actor).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import functools
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import anyio.to_thread

from ._subjects import local_ray, start_pipe_child
from ._timing import paused_gc
from ._workers import _AioconcBench, _Calls

__all__ = [
    "AwaitedSetup",
    "aioconc_awaited",
    "anyio_to_thread",
    "asyncio_to_thread",
    "awaited",
    "bare_coroutines",
    "in_coroutines",
    "pipe_loop_futures",
    "ray_remote",
    "run_in_executor",
]

AwaitedSetup = Callable[[], contextlib.AbstractAsyncContextManager[Callable[[int], Awaitable[Any]]]]


# ---------------------------------------------------------------------------
# Setups
# ---------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def aioconc_awaited(
    mode: str, method: str, **options: Any
) -> AsyncIterator[Callable[[int], Any]]:
    """An aioconc worker of ``mode`` and ``options``, in ``async with``; calls ``method``."""
    async with _AioconcBench.options(mode=mode, **options).init() as w:
        # Written out as users write them (``w.aping(i)``), as the baselines are:
        # a getattr() by name per call would be the benchmark's own cost.
        callers: dict[str, Callable[[int], Any]] = {
            "aping": lambda i: w.aping(i),
            "ping": lambda i: w.ping(i),
        }
        yield callers.get(method) or (lambda i: getattr(w, method)(i))


@contextlib.asynccontextmanager
async def bare_coroutines() -> AsyncIterator[Callable[[int], Any]]:
    """The raw primitive of asyncio mode: the method's coroutine itself."""
    obj = _Calls()
    yield lambda i: obj.aping(i)


@contextlib.asynccontextmanager
async def run_in_executor() -> AsyncIterator[Callable[[int], Any]]:
    """``loop.run_in_executor`` on a ``ThreadPoolExecutor(1)``."""
    obj = _Calls()
    loop = asyncio.get_running_loop()
    with concurrent.futures.ThreadPoolExecutor(1) as tpe:
        yield lambda i: loop.run_in_executor(tpe, obj.ping, i)


@contextlib.asynccontextmanager
async def asyncio_to_thread() -> AsyncIterator[Callable[[int], Any]]:
    """``asyncio.to_thread`` (the loop's default executor)."""
    obj = _Calls()
    yield lambda i: asyncio.to_thread(obj.ping, i)


@contextlib.asynccontextmanager
async def anyio_to_thread() -> AsyncIterator[Callable[[int], Any]]:
    """``anyio.to_thread.run_sync`` (anyio's worker threads)."""
    obj = _Calls()
    yield lambda i: anyio.to_thread.run_sync(obj.ping, i)


class _LoopPipe:
    """A raw ``multiprocessing.Pipe`` to a child whose replies finish loop futures.

    The loop reads the pipe when it is readable; replies come in order, so each
    finishes the oldest waiting future.  At most ``window`` calls are unanswered
    (more could fill both socket buffers and deadlock): a call beyond it reads a
    reply first.
    """

    window = 512

    def __init__(self) -> None:
        self.conn, self.proc = start_pipe_child()
        self.loop = asyncio.get_running_loop()
        self.waiting: collections.deque[asyncio.Future[Any]] = collections.deque()
        self.loop.add_reader(self.conn.fileno(), self._readable)

    def call(self, x: int) -> asyncio.Future[Any]:
        if len(self.waiting) >= self.window:
            self._deliver(self.conn.recv())
        fut = self.loop.create_future()
        self.waiting.append(fut)
        self.conn.send(x)
        return fut

    def _deliver(self, value: Any) -> None:
        self.waiting.popleft().set_result(value)

    def _readable(self) -> None:
        conn = self.conn
        while self.waiting and conn.poll():
            self._deliver(conn.recv())

    def close(self) -> None:
        self.loop.remove_reader(self.conn.fileno())
        self.conn.send(None)
        self.proc.join()
        self.conn.close()


@contextlib.asynccontextmanager
async def pipe_loop_futures() -> AsyncIterator[Callable[[int], Any]]:
    """The raw primitive of process mode in async code: see :class:`_LoopPipe`."""
    pipe = _LoopPipe()
    try:
        yield lambda i: pipe.call(i)
    finally:
        pipe.close()


@contextlib.asynccontextmanager
async def ray_remote() -> AsyncIterator[Callable[[int], Any]]:
    """A raw Ray actor: ``await actor.ping.remote(i)`` (starts a local Ray if needed)."""
    ray = local_ray()
    actor = ray.remote(_Calls).remote()
    try:
        yield lambda i: actor.ping.remote(i)
    finally:
        ray.kill(actor)


# ---------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------


async def _gather_futures(call: Callable[[int], Any], n: int) -> list[Any]:
    return list(await asyncio.gather(*(call(j) for j in range(n))))


async def _gather_coroutines(call: Callable[[int], Any], n: int) -> list[Any]:
    async def one(i: int) -> Any:
        return await call(i)

    return list(await asyncio.gather(*(one(j) for j in range(n))))


async def _timed(
    shape: Callable[[Callable[[int], Any], int], Awaitable[list[Any]]],
    setups: Sequence[AwaitedSetup],
    n: int,
    repeats: int,
) -> list[float]:
    """Calls/s of ``shape`` over ``n`` calls for each setup, best of ``repeats``, in turns."""
    best = [math.inf] * len(setups)
    async with contextlib.AsyncExitStack() as stack:
        calls = [await stack.enter_async_context(setup()) for setup in setups]
        for rep in range(repeats + 1):
            for i, call in enumerate(calls):
                with paused_gc():  # for every subject alike, as in_turns() does
                    t0 = time.perf_counter()
                    values = await shape(call, n)
                    dt = time.perf_counter() - t0
                if values[-1] != n - 1:
                    raise AssertionError(f"wrong results from {setups[i]}: {values[-5:]}")
                if rep:
                    best[i] = min(best[i], dt)
    return [n / b for b in best]


awaited = functools.partial(_timed, _gather_futures)
"""``awaited(setups, n, repeats)``: calls/s gathering the futures themselves."""

in_coroutines = functools.partial(_timed, _gather_coroutines)
"""``in_coroutines(setups, n, repeats)``: calls/s with each call awaited in its own coroutine."""
