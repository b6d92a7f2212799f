"""Where calls run: loop inboxes, the background loop thread, the home loop.

* An :class:`Inbox` hands work to one event loop from any thread in batches:
  the first item of a burst schedules one ``call_soon_threadsafe`` wake-up and
  the rest ride along, so a burst of N calls costs one wake-up, not N.
* :func:`background_loop` is the loop of the *sync shim*: a daemon thread that
  aioconc starts lazily (uvloop when installed) the first time a script needs a
  loop.  Scripts never see it.
* :func:`home_loop` picks a worker's home loop: the running loop when there is
  one, else the background loop.
* :func:`run_on` runs a coroutine on a loop from a thread outside it and waits
  for it; it refuses to run on the loop's own thread (that would deadlock).
* :func:`on_engine_thread` runs a function on the *engine thread*: one daemon
  thread that lives as long as the process and holds the process-wide state of
  an engine (Ray's driver connection).  Ray ties the processes it starts to the
  thread that started them, so that must never be a caller's thread, which may
  end; nor the background loop's, which must not block for seconds.
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import concurrent.futures
import contextvars
import functools
import os
import queue
import sys
import threading
import weakref
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from . import _private_asyncio
from ._exceptions import WaitTimeoutError

__all__ = [
    "Inbox",
    "awaiting_task",
    "background_loop",
    "cancel_count",
    "force_sync",
    "home_loop",
    "inbox_for",
    "on_engine_thread",
    "run_on",
    "task_in_context",
]

T = TypeVar("T")


def force_sync() -> bool:
    """True when ``AIOCONC_FORCE_SYNC`` asks every worker to run in sync mode."""
    return os.environ.get("AIOCONC_FORCE_SYNC", "").strip().lower() in {"1", "true", "yes", "on"}


# ---------------------------------------------------------------------------
# Batched hand-off to a loop
# ---------------------------------------------------------------------------


class Inbox:
    """A thread-safe queue of callbacks run on one loop, woken once per burst.

    ``loop`` is an asyncio loop, woken with ``call_soon_threadsafe``; another
    kind of loop (trio's, through anyio) passes its own thread-safe ``schedule``.
    """

    __slots__ = ("__weakref__", "_items", "_loop", "_schedule", "_scheduled")

    def __init__(
        self,
        loop: Any,
        schedule: Callable[[Callable[[], None]], object] | None = None,
    ) -> None:
        self._loop = loop
        # None: the loop's own call_soon_threadsafe, looked up when it is needed.
        self._schedule = schedule
        self._items: collections.deque[tuple[Callable[..., Any], tuple[Any, ...]]] = (
            collections.deque()
        )
        self._scheduled = False

    def post(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on the loop soon; callable from any thread.

        A closed loop drops the item silently: nothing is waiting on it any more.
        """
        self._items.append((fn, args))
        # Order matters: append first, then look at the flag.  _drain clears the
        # flag before it pops, so an item appended while the flag was still set
        # is always seen by the drain that is already scheduled.
        if not self._scheduled:
            self._scheduled = True
            try:
                schedule = self._schedule
                if schedule is None:
                    self._loop.call_soon_threadsafe(self._drain)
                else:
                    schedule(self._drain)
            except RuntimeError:  # loop closed (anyio's RunFinishedError is one too)
                self._items.clear()

    def _drain(self) -> None:
        self._scheduled = False
        items = self._items
        while items:
            fn, args = items.popleft()
            fn(*args)


_inboxes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Inbox] = weakref.WeakKeyDictionary()
_inbox_lock = threading.Lock()


# The inbox looked up last: nearly every look-up is for the same loop, and a
# WeakKeyDictionary look-up is a Python call on every completion.
_last_inbox: Inbox | None = None


def inbox_for(loop: asyncio.AbstractEventLoop) -> Inbox:
    """Return the one :class:`Inbox` of ``loop``, creating it on first use."""
    global _last_inbox
    last = _last_inbox
    if last is not None and last._loop is loop:
        return last
    inbox = _inboxes.get(loop)
    if inbox is None:
        with _inbox_lock:
            inbox = _inboxes.get(loop)
            if inbox is None:
                inbox = _inboxes[loop] = Inbox(loop)
    _last_inbox = inbox
    return inbox


# ---------------------------------------------------------------------------
# The background loop thread (the sync shim)
# ---------------------------------------------------------------------------

_bg_lock = threading.Lock()
_bg_loop: asyncio.AbstractEventLoop | None = None
_bg_thread: threading.Thread | None = None


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


def background_loop() -> asyncio.AbstractEventLoop:
    """Return aioconc's background loop, starting its daemon thread on first use."""
    global _bg_loop, _bg_thread
    loop = _bg_loop
    if loop is not None:
        return loop
    with _bg_lock:
        if _bg_loop is None:
            loop = _new_loop()
            ready = threading.Event()

            def run() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                loop.run_forever()

            thread = threading.Thread(target=run, name="aioconc-loop", daemon=True)
            thread.start()
            ready.wait()
            _bg_loop, _bg_thread = loop, thread
        return _bg_loop


def is_background_thread() -> bool:
    """True on the background loop's own thread."""
    return _bg_thread is not None and threading.current_thread() is _bg_thread


def _stop_background_loop() -> None:
    # Registered with atexit: leave no thread running a loop at interpreter exit.
    global _bg_loop, _bg_thread
    loop, thread = _bg_loop, _bg_thread
    if loop is None or thread is None:
        return
    _bg_loop = _bg_thread = None
    try:
        loop.call_soon_threadsafe(loop.stop)
    except RuntimeError:
        return
    thread.join(timeout=5)
    if not thread.is_alive():
        loop.close()


atexit.register(_stop_background_loop)


# ---------------------------------------------------------------------------
# The engine thread: process-wide engine state (Ray's driver)
# ---------------------------------------------------------------------------

_engine_lock = threading.Lock()
_engine_jobs: queue.SimpleQueue[tuple[Callable[[], Any], concurrent.futures.Future[Any]]] | None = (
    None
)
_engine_thread: threading.Thread | None = None


def _serve_engine(
    jobs: queue.SimpleQueue[tuple[Callable[[], Any], concurrent.futures.Future[Any]]],
) -> None:
    # A daemon thread, not an executor's: those are joined at interpreter exit,
    # before atexit handlers run -- and Ray's own atexit shutdown needs the
    # processes this thread started to be still alive.
    while True:
        job, done = jobs.get()
        if done.set_running_or_notify_cancel():
            try:
                done.set_result(job())
            except BaseException as exc:
                done.set_exception(exc)


def on_engine_thread(fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn(*args)`` on the engine thread, wait for it and return its result.

    The thread is started on first use and lives as long as the process, so
    whatever ``fn`` starts outlives the thread that asked.  Called on the engine
    thread itself, ``fn`` runs at once.  ``fn``'s exception is raised here.
    """
    global _engine_jobs, _engine_thread
    if threading.current_thread() is _engine_thread:
        return fn(*args)
    jobs = _engine_jobs
    if jobs is None:
        with _engine_lock:
            if _engine_jobs is None:
                new_jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
                thread = threading.Thread(
                    target=_serve_engine, args=(new_jobs,), name="aioconc-engine", daemon=True
                )
                thread.start()
                _engine_jobs, _engine_thread = new_jobs, thread
            jobs = _engine_jobs
    done: concurrent.futures.Future[T] = concurrent.futures.Future()
    jobs.put((functools.partial(fn, *args), done))
    return done.result()


def home_loop() -> asyncio.AbstractEventLoop:
    """The loop a worker created here lives on: the running loop, else the background one."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return background_loop()


def task_in_context(
    loop: asyncio.AbstractEventLoop,
    coro: Coroutine[Any, Any, T],
    context: contextvars.Context,
) -> asyncio.Task[T]:
    """``loop.create_task(coro)`` running in ``context`` (a call's copy of its caller's)."""
    if sys.version_info >= (3, 11):
        return loop.create_task(coro, context=context)
    # 3.10: a task copies the context current when it is made.
    return context.run(loop.create_task, coro)  # pragma: no cover - 3.10 only


running_loop: Callable[[], asyncio.AbstractEventLoop | None] = _private_asyncio.running_loop
"""The loop running in this thread, or None (cheap where asyncio's own C function
can be used: no exception on the miss and no Python frame on every call's path)."""

# Task.cancelling() (3.11+) tells whether the task awaiting a call was itself
# cancelled while it waited (Future.__await__).  3.10 has no such count.
if sys.version_info >= (3, 11):
    awaiting_task = asyncio.current_task

    def cancel_count(task: asyncio.Task[Any]) -> int:
        """How many cancellations of ``task`` are pending (``Task.cancelling()``)."""
        return task.cancelling()

else:  # pragma: no cover - 3.10 only

    def awaiting_task() -> asyncio.Task[Any] | None:
        """None: without ``Task.cancelling()`` the awaiting task cannot tell."""
        return None

    def cancel_count(task: asyncio.Task[Any]) -> int:
        """0: 3.10 keeps no count."""
        return 0


def run_on(
    loop: asyncio.AbstractEventLoop,
    coro: Coroutine[Any, Any, T],
    timeout: float | None = None,
) -> T:
    """Run ``coro`` on ``loop`` from another thread and return its result.

    Raises ``RuntimeError`` when called on ``loop``'s own thread, where waiting
    would block the very loop that has to do the work, and ``TimeoutError``
    (after cancelling the coroutine) when ``timeout`` passes first.
    """
    if running_loop() is loop:
        coro.close()
        raise RuntimeError("cannot block on the event loop's own thread; await it instead")
    cf = asyncio.run_coroutine_threadsafe(coro, loop)
    try:
        return cf.result(timeout)
    except concurrent.futures.TimeoutError:
        cf.cancel()
        raise WaitTimeoutError(f"timed out after {timeout} s") from None
