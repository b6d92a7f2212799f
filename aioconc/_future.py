"""The one future type of aioconc (``wrap_future`` is in ``_wrap.py``).

A :class:`Future` is finished by whoever runs the call (a worker thread, the home
loop, a process reader) and can be waited on from anywhere:

* ``result(timeout)`` blocks only the calling thread, on a lock that the
  completion releases: no polling;
* ``await future`` works in any running loop: completion is posted to that
  loop's :class:`~aioconc._runtime.Inbox` (one wake-up per burst of completions);
  under trio, through anyio (``_anyloop.py``);
* ``add_done_callback`` runs in the thread that completes the future.

The done-callbacks that carry a completion to threads and loops are in
``_wakeups.py``; ``CancelledError`` is in ``_exceptions.py``; the future made
already finished (``SyncFuture``) is in ``_sync_future.py``.

One module-wide lock guards the state transitions.  Its critical sections are a
few attribute writes, so sharing it costs less than a lock per future would.
Only the future's own methods read or write its state (one state machine seen
from threads, any event loop and asyncio's future protocol, under one lock):
other modules ask it (``_failure()``, ``_copy_to()``, ``_set_result_unshared()``).

Each future also carries the call's task record (``task_id``, ``status``,
``priority``, timestamps, ``attempts``, ``worker``); :meth:`Future.record`
returns it as a pydantic :class:`TaskRecord`.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable, Generator
from typing import Any, ClassVar, Generic, TypeVar, cast

from ._anyloop import await_elsewhere
from ._exceptions import CancelledError, WaitTimeoutError
from ._record import TaskRecord, TaskStatus, record_of
from ._runtime import awaiting_task, cancel_count, inbox_for, running_loop
from ._wakeups import Inner, _cancel_aio, _LoopBridge, _OnLoop, _Waiter, mirror

__all__ = [
    "BaseFuture",
    "CancelledError",
    "Future",
    "TaskRecord",
    "TaskStatus",
]

T = TypeVar("T")


log = logging.getLogger("aioconc")


_PENDING = TaskStatus.PENDING
_STARTED = TaskStatus.STARTED
_SUCCESS = TaskStatus.SUCCESS
_FAILURE = TaskStatus.FAILURE
_CANCELLED = TaskStatus.CANCELLED

PRIORITY_NORMAL = 2
_now = time.time

# Task ids: a random per-process prefix plus a counter.  Unique across processes,
# and far cheaper than uuid4() on every call; made only when someone asks.
_ID_PREFIX = os.urandom(6).hex()
_ids = itertools.count(1)

_lock = threading.Lock()
_acquire = _lock.acquire
_release = _lock.release


class Future(Generic[T]):
    """The result of one call, finished by an event and never polled.

    Use ``result(timeout)`` in threads, ``await future`` in async code (any
    loop), ``add_done_callback(fn)`` anywhere.  Cancellation raises
    ``concurrent.futures.CancelledError``; ``result(timeout)`` raises
    ``TimeoutError`` when the call is not done in time (it may still finish).
    """

    __slots__ = (
        "__weakref__",
        "_aio",
        "_asyncio_future_blocking",
        "_callbacks",
        "_cancel_exc",
        "_exception",
        "_inner",
        "_loop",
        "_result",
        "_state",
        "_stats",
        "_task_id",
        "attempts",
        "completed_at",
        "priority",
        "started_at",
        "submitted_at",
        "worker",
    )

    # priority and worker may be passed by position: every call makes one of
    # these, and binding keywords costs a third of the rest of __init__.
    def __init__(self, priority: int = PRIORITY_NORMAL, worker: str | None = None) -> None:
        self._state: TaskStatus = _PENDING
        self._result: Any = None
        self._exception: BaseException | None = None
        # The asyncio.CancelledError that cancelled the task running this call
        # when it came from outside (the awaiting task's cancellation passed on),
        # not from cancel(): that task re-raises it from ``await`` (__await__).
        self._cancel_exc: BaseException | None = None
        self._callbacks: list[Callable[[Future[T]], Any]] | None = None
        # The asyncio task or future that runs this call on some loop, when there
        # is one: cancel() of a running call cancels it, ``await`` on that loop
        # awaits it directly, and blocking on it from that loop's own thread
        # (which would deadlock) is refused.
        self._aio: asyncio.Future[Any] | None = None
        # None: asyncio does not take this for one of its futures.  A future
        # bound to a task on its loop (bind_task) sets it to False, so that
        # asyncio.gather/wait/shield/wait_for use it as it is, with no wrapper
        # task per future; it is then finished and its callbacks run on that loop.
        self._asyncio_future_blocking: bool | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # _aio's loop, once bound
        # The attempt running on this call's behalf (a middleware chain's inner
        # call): while it runs, this call is exactly as cancellable as it is.
        self._inner: Inner | None = None
        self._task_id: str | None = None
        self._stats: Any = None  # the handle's CallCounters (_stats.py), counted at the end
        self.priority = priority
        self.worker = worker
        self.submitted_at = _now()
        self.started_at: float | None = None
        self.completed_at: float | None = None
        self.attempts = 0

    # -- the record ----------------------------------------------------------

    @property
    def task_id(self) -> str:
        """A unique id of this call (made on first access)."""
        tid = self._task_id
        if tid is None:
            tid = self._task_id = f"{_ID_PREFIX}-{next(_ids):x}"
        return tid

    @property
    def uuid(self) -> str:
        """The same as :attr:`task_id` (concurry's name)."""
        return self.task_id

    @property
    def status(self) -> TaskStatus:
        """PENDING, STARTED, SUCCESS, FAILURE or CANCELLED."""
        return self._state

    def record(self) -> TaskRecord:
        """Return the call's task record as it stands now."""
        state = self._state
        result = self._result if state is _SUCCESS else None
        return record_of(self, state, result, self._exception)

    # -- the concurrent.futures surface ------------------------------------

    def done(self) -> bool:
        """True once the call succeeded, failed or was cancelled."""
        return self._state is not _PENDING and self._state is not _STARTED

    def running(self) -> bool:
        """True while the call executes."""
        return self._state is _STARTED

    def cancelled(self) -> bool:
        """True when the call was cancelled."""
        return self._state is _CANCELLED

    def cancel(self, msg: Any = None) -> bool:
        """Cancel the call (``msg`` is accepted for asyncio's sake and ignored).

        A call that has not started never runs and ``True`` is returned.  A
        running call is interrupted only where its backend can (an ``async def``
        method in asyncio mode); otherwise ``False`` is returned and it finishes.
        A finished call returns ``False``.
        """
        inner = self._inner
        # Something may stand between this call and its cancellation: the
        # attempt a middleware chain is running, or a call already sent to a
        # worker process.  This call is exactly as cancellable as it is.
        if inner is not None and not self.done() and not inner.done() and not inner.cancel():
            return False
        with _lock:
            state = self._state
            if state is _PENDING:
                aio = None
            elif state is _STARTED and self._aio is not None:
                aio = self._aio
            else:
                return False
            callbacks = self._finish_locked(_CANCELLED)
        if aio is not None:
            _cancel_aio(aio)
        self._run_callbacks(callbacks)
        return True

    def result(self, timeout: float | None = None) -> T:
        """Return the call's value, waiting up to ``timeout`` seconds.

        Raises the call's own exception, ``CancelledError`` when cancelled, and
        ``TimeoutError`` when not done in time.
        """
        if self._state is _SUCCESS:
            return cast(T, self._result)
        self._wait(timeout)
        return self._outcome()

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """Return the call's exception (or None), waiting up to ``timeout`` seconds.

        Raises ``CancelledError`` when cancelled and ``TimeoutError`` when not
        done in time.
        """
        self._wait(timeout)
        if self._state is _CANCELLED:
            raise CancelledError()
        return self._exception

    def _failure(self) -> BaseException | None:
        """The exception the call failed with, now: None while it runs, after a
        success and after a cancellation.  Never waits, never raises."""
        return self._exception

    def add_done_callback(self, fn: Callable[[Future[T]], Any]) -> None:
        """Call ``fn(future)`` once when done; at once if already done.

        Registered from plain code, ``fn`` runs in the thread that finishes the
        call.  Registered from inside a running event loop, it runs on that
        loop (a loop turn later if the call is already done), as with asyncio's
        own futures: ``asyncio.wait`` and friends rely on it.  Its exceptions
        are logged and dropped.
        """
        here = running_loop()
        if here is not None and self._loop is None and not getattr(fn, "threadsafe", False):
            fn = _OnLoop(here, fn)
        with _lock:
            if not self.done():
                if self._callbacks is None:
                    self._callbacks = [fn]
                else:
                    self._callbacks.append(fn)
                return
        if here is not None:
            # Never re-enter the registering code on the loop (asyncio.gather
            # relies on it): run the callback a turn later, on that loop.
            here.call_soon(getattr(fn, "fn", fn), self)
            return
        self._call_each([fn])

    def remove_done_callback(self, fn: Callable[[Future[T]], Any]) -> int:
        """Remove every registration of ``fn``; return how many there were."""
        with _lock:
            callbacks = self._callbacks
            if not callbacks:
                return 0
            kept = [cb for cb in callbacks if cb != fn and getattr(cb, "fn", None) != fn]
            self._callbacks = kept
            return len(callbacks) - len(kept)

    def set_result(self, result: Any) -> None:
        """Not supported: a library future is finished by its worker."""
        raise NotImplementedError("aioconc futures are finished by their worker")

    def set_exception(self, exception: BaseException | None) -> None:
        """Not supported: a library future is finished by its worker."""
        raise NotImplementedError("aioconc futures are finished by their worker")

    def set_running_or_notify_cancel(self) -> bool:
        """Not supported: a library future is finished by its worker."""
        raise NotImplementedError("aioconc futures are finished by their worker")

    # -- asyncio ------------------------------------------------------------

    def as_asyncio_future(self, *, _cancel_as_error: bool = False) -> asyncio.Future[T]:
        """Return an ``asyncio.Future`` on the running loop that mirrors this one.

        Cancelling the returned future cancels this call (as far as
        :meth:`cancel` can).  Raises ``RuntimeError`` outside a running loop.
        """
        return mirror(self, _cancel_as_error)

    def get_loop(self) -> asyncio.AbstractEventLoop:
        """The loop of the task running this call.

        Raises ``RuntimeError`` for a future not bound to a loop (thread or
        process calls): use ``await`` or ``as_asyncio_future()`` for those.
        """
        loop = self._loop
        if loop is None:
            raise RuntimeError("this future is not bound to an event loop")
        if self._state is _SUCCESS or self._state is _FAILURE or self._state is _CANCELLED:
            # Finished: nothing will run on its loop any more, so it serves the
            # loop that asks (asyncio.wait/gather there check the loop).
            return running_loop() or loop
        return loop

    def _make_cancelled_error(self) -> asyncio.CancelledError:
        # asyncio.gather asks a cancelled child future for this.
        return CancelledError()

    _cancel_message: ClassVar[str | None] = None

    def _cancelled_by_other(self, waiter: asyncio.Task[Any] | None, before: int) -> bool:
        """Whether someone other than the awaiting task cancelled this finished call.

        ``waiter`` and ``before``: the awaiting task and its ``cancelling()``
        count before it awaited (3.11+, where that count says it exactly).  On
        3.10 (``waiter`` None) the call's own record tells: ``cancel()`` came
        first, or the call's task was cancelled from outside (by the awaiter).
        """
        if waiter is not None:
            return cancel_count(waiter) <= before
        return self._cancel_exc is None

    def _on_target_done(self, target: asyncio.Future[Any]) -> None:
        if target.cancelled() and not self.done():
            self.cancel()

    def __await__(self) -> Generator[Any, None, T]:
        state = self._state
        if state is _SUCCESS:  # the hot path: a call that ended in its first step
            return cast(T, self._result)
        if state is _PENDING or state is _STARTED:
            aio = self._aio
            if aio is not None and aio.get_loop() is running_loop():
                # The call runs as a task on this very loop: await that task
                # directly, with no bridge.  The task puts every outcome of the
                # call in this future and itself ends normally; if the awaiting
                # task is cancelled, so is the call.
                #
                # The awaiting task's cancellation reaches the call's task, which
                # ends normally, so the exception that leaves this ``await`` is
                # chosen here: the awaiting task's own cancellation when it was
                # the one cancelled (asyncio.timeout and TaskGroup look at its
                # exact type), aioconc's CancelledError when someone else
                # cancelled the call.
                waiter = awaiting_task()
                before = 0 if waiter is None else cancel_count(waiter)
                try:
                    yield from aio.__await__()
                except asyncio.CancelledError as exc:
                    self._set_cancelled(exc)  # ignored when cancel() came first
                    if not self._cancelled_by_other(waiter, before):
                        raise
                else:
                    if self._state is _CANCELLED:
                        own = self._cancel_exc
                        if own is not None and not self._cancelled_by_other(waiter, before):
                            raise own
            else:
                # A bridge future on this loop, finished through the loop's inbox
                # (completions from threads arrive in batches).  Cancelling the
                # awaiting task cancels the bridge at once, and the call as far
                # as cancel() can.
                loop = running_loop()
                if loop is None:  # trio, or another loop anyio knows
                    return (yield from await_elsewhere(self).__await__())  # type: ignore[no-any-return]
                target: asyncio.Future[Any] = loop.create_future()
                bridge = _LoopBridge(loop, target, True)
                # add_done_callback's work, for a callback known to be thread-safe.
                with _lock:
                    pending = self._state is _PENDING or self._state is _STARTED
                    if pending:
                        if self._callbacks is None:
                            self._callbacks = [bridge]
                        else:
                            self._callbacks.append(bridge)
                if not pending:
                    self._copy_to(target, True)
                try:
                    yield from target
                except asyncio.CancelledError:
                    if target.cancelled():
                        self.cancel()
                    raise
        return self._outcome()

    # -- used by backends ----------------------------------------------------

    def _bind_task(
        self, task: asyncio.Future[Any], loop: asyncio.AbstractEventLoop | None = None
    ) -> None:
        """Record the task that runs this call on its loop (see ``_aio``).

        Only for tasks that finish this future themselves, on their loop
        (``loop``: the task's, when the caller knows it).
        """
        self._aio = task
        self._loop = task.get_loop() if loop is None else loop
        self._asyncio_future_blocking = False

    def _unbind_task(self) -> None:
        """Undo ``_bind_task``: the call ended before its task had to run it, so the
        future belongs to no loop (it can be awaited or gathered anywhere)."""
        self._aio = self._loop = self._asyncio_future_blocking = None

    @property
    def _home(self) -> asyncio.AbstractEventLoop | None:
        """The loop whose task runs this call, if any (blocking on it there deadlocks)."""
        aio = self._aio
        return None if aio is None else aio.get_loop()

    # The hot paths below take the lock with acquire()/release(): a ``with``
    # block costs twice as much, and nothing between them can raise.

    def _start(self) -> bool:
        """PENDING -> STARTED; False when the call was cancelled and must not run."""
        _acquire()
        if self._state is not _PENDING:
            _release()
            return False
        self._state = _STARTED
        _release()
        self.started_at = _now()
        self.attempts += 1
        return True

    def _set_result(self, value: Any) -> None:
        """Finish with ``value`` (ignored when already finished, e.g. cancelled)."""
        _acquire()
        if self._state is not _PENDING and self._state is not _STARTED:
            _release()
            return
        self._result = value
        # _finish_locked, inlined: this is every successful call's path.
        self._state = _SUCCESS
        self.completed_at = now = _now()
        callbacks, self._callbacks = self._callbacks, None
        stats = self._stats
        if stats is not None:  # CallCounters.finished(self, True), inlined
            next(stats._completed)
            if self.attempts > 1:
                stats.retried += self.attempts - 1
            stats._latencies.append(now - self.submitted_at)
        _release()
        if callbacks:
            self._run_callbacks(callbacks)

    def _set_result_unshared(self, value: Any, loop: asyncio.AbstractEventLoop) -> None:
        """Finish on ``loop`` a first attempt no one else holds yet (``start_inline``):
        ``_set_result``'s work with no lock and no callbacks, as nothing can race.
        asyncio.gather/wait may then take it as one of their own futures."""
        self._result = value
        self._state = _SUCCESS
        self._loop, self._asyncio_future_blocking = loop, False
        self.completed_at = now = _now()
        stats = self._stats
        if stats is not None:
            next(stats._completed)
            stats._latencies.append(now - self.submitted_at)

    def _set_exception(self, exc: BaseException) -> None:
        """Finish with ``exc`` (ignored when already finished, e.g. cancelled)."""
        with _lock:
            if self._state is not _PENDING and self._state is not _STARTED:
                return
            self._exception = exc
            callbacks = self._finish_locked(_FAILURE)
        if callbacks:
            self._run_callbacks(callbacks)

    def _set_cancelled(self, exc: BaseException | None = None) -> None:
        """Finish as cancelled (ignored when already finished).

        ``exc``: the ``asyncio.CancelledError`` that cancelled the task running
        the call, passed by the code that runs such tasks; when the call was
        not cancelled by :meth:`cancel` first, it came from the task awaiting
        the call, and ``await`` raises it there.
        """
        with _lock:
            if self._state is not _PENDING and self._state is not _STARTED:
                return
            self._cancel_exc = exc
            callbacks = self._finish_locked(_CANCELLED)
        if callbacks:
            self._run_callbacks(callbacks)

    # -- internals -----------------------------------------------------------

    def _finish_locked(self, state: TaskStatus) -> list[Callable[[Future[T]], Any]] | None:
        self._state = state
        self.completed_at = time.time()
        callbacks, self._callbacks = self._callbacks, None
        stats = self._stats
        if stats is not None:
            ok = None if state is _CANCELLED else state is _SUCCESS
            stats.finished(self, ok)
        return callbacks

    def _run_callbacks(self, callbacks: list[Callable[[Future[T]], Any]] | None) -> None:
        if not callbacks:
            return
        loop = self._loop
        if loop is not None and running_loop() is not loop:
            # asyncio's own callbacks (gather, wait) must run on the loop; our
            # thread-safe wake-ups run here, even if the loop is gone.
            here = [fn for fn in callbacks if getattr(fn, "threadsafe", False)]
            there = [fn for fn in callbacks if not getattr(fn, "threadsafe", False)]
            if there and not loop.is_closed():
                inbox_for(loop).post(self._call_each, there)
            callbacks = here
        self._call_each(callbacks)

    def _call_each(self, callbacks: list[Callable[[Future[T]], Any]]) -> None:
        for fn in callbacks:
            try:
                fn(self)
            except Exception:
                log.exception("done callback %r of %r raised", fn, self)

    def _wait(self, timeout: float | None) -> None:
        if self.done():
            return
        aio = self._aio
        if aio is not None and running_loop() is aio.get_loop():
            raise RuntimeError(
                "blocking on this future from its worker's event loop would deadlock; "
                "use 'await future' instead of future.result()"
            )
        left = timeout
        inner = self._inner
        read_while_waiting = None if inner is None else inner.read_while_waiting
        if read_while_waiting is not None:
            deadline = None if timeout is None else time.monotonic() + timeout
            read_while_waiting(self, deadline)
            if self.done():
                return
            if deadline is not None:
                left = deadline - time.monotonic()
        waiter = _Waiter()
        with _lock:
            if self.done():
                return
            if self._callbacks is None:
                self._callbacks = [waiter]
            else:
                self._callbacks.append(waiter)
        if waiter.lock.acquire(timeout=-1 if left is None else max(left, 0.0)):
            return
        with _lock:
            if self._callbacks is not None and waiter in self._callbacks:
                self._callbacks.remove(waiter)
        if not self.done():
            raise WaitTimeoutError(f"future not done within {timeout} s")

    def _copy_to(self, target: asyncio.Future[Any], cancel_as_error: bool) -> None:
        """Give this finished call's outcome to ``target`` (nothing if it is done).

        ``cancel_as_error``: for ``await future``, a cancelled call surfaces as
        aioconc's CancelledError (what ``result()`` raises), not as a
        cancellation of ``target``.
        """
        if target.done():
            return
        state = self._state
        if state is _SUCCESS:
            target.set_result(self._result)
        elif state is _FAILURE:
            target.set_exception(cast(BaseException, self._exception))
        elif cancel_as_error:
            target.set_exception(CancelledError())
        else:
            target.cancel()

    def _outcome(self) -> T:
        state = self._state
        if state is _SUCCESS:
            return cast(T, self._result)
        if state is _FAILURE:
            raise cast(BaseException, self._exception)
        if state is _CANCELLED:
            raise CancelledError()
        raise RuntimeError("future is not done")  # pragma: no cover - callers wait first

    def __repr__(self) -> str:
        state = self._state
        extra = ""
        if state is _SUCCESS:
            extra = f" result={self._result!r:.60}"
        elif state is _FAILURE:
            extra = f" error={type(self._exception).__name__}"
        return f"<Future {self.task_id} {state.value}{extra}>"


BaseFuture = Future
"""concurry's name for :class:`Future`."""
