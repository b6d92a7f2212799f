"""The subjects of ``python -m benchmarks``: the ways of running calls it times.

A :class:`Subject` is one way of running the benchmark's calls -- an aioconc
worker, a concurry worker, or a raw primitive (``ThreadPoolExecutor``, an
event loop in a thread, a pipelined ``multiprocessing.Pipe``) -- reduced to
start / caller / stop, so that ``_run.py``'s timing loops drive them all alike.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import importlib
import multiprocessing
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._workers import _Calls

try:
    from concurry import Worker as _ConcurryWorker
except ImportError:  # concurry is optional: its rows are left out
    _ConcurryWorker = None

CONCURRY = _ConcurryWorker is not None  # whether concurry's rows can be measured

# Calls and handles are untyped here on purpose: the same timing loops drive
# aioconc, concurry and the raw primitives, which share no type.
Handle = Any
Caller = Callable[[int], Any]

# ---------------------------------------------------------------------------
# The code under test
# ---------------------------------------------------------------------------


_ConcurryBench: Any = None
if _ConcurryWorker is not None:

    class _ConcurryBench(_Calls, _ConcurryWorker):  # type: ignore[misc,no-redef]
        """The same worker, run by concurry."""


# ---------------------------------------------------------------------------
# Subjects: one way of running calls (aioconc, concurry or a raw primitive)
# ---------------------------------------------------------------------------


def _result(future: Any) -> Any:
    return future.result()


@dataclass(frozen=True)
class Subject:
    """How to start a handle, turn it into a per-call function, and stop it.

    ``caller(handle)`` returns ``i -> future`` written as user code would write
    the call (``lambda i: w.ping(i)``), so every subject pays the same overhead
    for the benchmark's own loop.  ``resolve`` turns what a call returned into
    its value; ``None`` means calls return values directly (a plain method call).
    """

    label: str
    start: Callable[[], Handle]
    caller: Callable[[Handle], Caller]
    stop: Callable[[Handle], None]
    resolve: Callable[[Any], Any] | None = _result
    # Collects a whole burst at once, where the raw primitive has a way (ray.get
    # of the list); None: the burst is collected one ``resolve`` at a time.
    resolve_all: Callable[[list[Any]], Any] | None = None


def _worker_subject(label: str, cls: Any, mode: str, method: str, **options: Any) -> Subject:
    """A subject for a concurry-style worker class: ``cls.options(mode=..., **options).init()``."""

    def start() -> Handle:
        return cls.options(mode=mode, **options).init()

    def caller(w: Handle) -> Caller:
        return lambda i: getattr(w, method)(i)

    def stop(w: Handle) -> None:
        w.stop()

    return Subject(label, start, caller, stop)


def _direct_subject() -> Subject:
    """The raw primitive of sync mode: a plain method call."""
    return Subject(
        "direct call",
        start=_Calls,
        caller=lambda obj: lambda i: obj.ping(i),
        stop=lambda obj: None,
        resolve=None,
    )


def _tpe_subject() -> Subject:
    """The raw primitive of thread mode: ``ThreadPoolExecutor(1)``."""

    def start() -> Handle:
        return concurrent.futures.ThreadPoolExecutor(1), _Calls()

    def caller(handle: Handle) -> Caller:
        tpe, obj = handle
        return lambda i: tpe.submit(obj.ping, i)

    def stop(handle: Handle) -> None:
        handle[0].shutdown(wait=True)

    return Subject("ThreadPoolExecutor(1)", start, caller, stop)


def _new_loop() -> asyncio.AbstractEventLoop:
    """A new loop of the kind aioconc's background thread uses (uvloop when installed)."""
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


def _rct_subject() -> Subject:
    """The raw primitive of asyncio mode from a script: a loop thread fed by
    ``asyncio.run_coroutine_threadsafe``, one hand-off per call."""

    def start() -> Handle:
        loop = _new_loop()
        thread = threading.Thread(target=loop.run_forever, name="bench-loop", daemon=True)
        thread.start()
        return loop, thread, _Calls()

    def caller(handle: Handle) -> Caller:
        loop, _, obj = handle
        rct = asyncio.run_coroutine_threadsafe
        return lambda i: rct(obj.aping(i), loop)

    def stop(handle: Handle) -> None:
        loop, thread, _ = handle
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()

    return Subject("run_coroutine_threadsafe", start, caller, stop)


def _pipe_child(conn: Any) -> None:
    """The raw primitive's child process: answer every message, in order, until None."""
    obj = _Calls()
    while (x := conn.recv()) is not None:
        conn.send(obj.ping(x))


def start_pipe_child() -> tuple[Any, Any]:
    """Spawn the raw primitive's child; return the parent's end of the pipe and the process."""
    ctx = multiprocessing.get_context("spawn")
    conn, child = ctx.Pipe()
    proc = ctx.Process(target=_pipe_child, args=(child,), name="bench-pipe", daemon=True)
    proc.start()
    child.close()
    return conn, proc


class _PipeClient:
    """A raw pipelined ``multiprocessing.Pipe`` to a child: the raw primitive of process mode.

    Calls are sent ahead, at most ``window`` unanswered (more would fill both pipe
    buffers and deadlock); replies come back in order, so ``result()`` returns the
    reply to the oldest call not yet collected.  ``call`` returns the client itself.
    """

    window = 512

    def __init__(self) -> None:
        self.conn, self.proc = start_pipe_child()
        self.unanswered = 0
        self.ready: collections.deque[Any] = collections.deque()

    def call(self, x: int) -> _PipeClient:
        """Send one call, first reading a reply when the window is full."""
        if self.unanswered >= self.window:
            self.ready.append(self.conn.recv())
            self.unanswered -= 1
        self.conn.send(x)
        self.unanswered += 1
        return self

    def result(self) -> Any:
        """The reply to the oldest call not yet collected."""
        if self.ready:
            return self.ready.popleft()
        self.unanswered -= 1
        return self.conn.recv()

    def close(self) -> None:
        """Stop the child and wait for it."""
        self.conn.send(None)
        self.proc.join()
        self.conn.close()


def _pipe_subject() -> Subject:
    return Subject(
        "multiprocessing.Pipe",
        start=_PipeClient,
        caller=lambda client: lambda i: client.call(i),
        stop=lambda client: client.close(),
    )


# ---------------------------------------------------------------------------
# Ray: a raw actor of the same class
# ---------------------------------------------------------------------------


def local_ray() -> Any:
    """Import Ray and start a quiet local Ray unless one is connected; return the module.

    aioconc's own Ray worker is made first in every run, so the Ray it connected
    to is the one used here.  Raises ``ImportError`` without Ray.
    """
    ray: Any = importlib.import_module("ray")  # optional: only ``--modes ray`` needs it
    if not ray.is_initialized():
        ray.init(include_dashboard=False, logging_level="ERROR")
    return ray


def _ray_subject() -> Subject:
    """The raw primitive of ray mode: ``ray.remote(cls)``, a burst collected by one ``ray.get``."""
    ray = local_ray()

    def start() -> Handle:
        actor = ray.remote(_Calls).remote()
        ray.get(actor.ping.remote(0))  # placed and started, as init() waits for
        return actor

    return Subject(
        "ray actor",
        start=start,
        caller=lambda actor: lambda i: actor.ping.remote(i),
        stop=lambda actor: ray.kill(actor),
        resolve=ray.get,
        resolve_all=ray.get,
    )
