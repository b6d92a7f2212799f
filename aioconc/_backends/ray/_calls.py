"""Ray mode, calls in flight: each call an ``ObjectRef``, finished on Ray's thread.

:class:`RefCalls` is what a Ray worker and the task runner share: it submits a
call (``_remote`` is theirs), keeps the pending refs, and finishes each call's
future from the callback Ray runs, on its own thread, when the ref is ready.
Ray's exceptions are mapped to the user's own and to aioconc's here too
(:func:`map_error`).

Ray's callback thread must not call back into Ray (see :data:`in_callback`).
"""

from __future__ import annotations

import asyncio
import functools
import sys
import threading
import time
import weakref
from typing import Any

from ..._call import Call
from ..._carry import CARRIED, carried
from ..._codec import ERROR, OK, UNSERIALIZABLE
from ..._exceptions import SerializationError, WorkerCrashedError
from ..._future import CancelledError, Future
from ..._runtime import background_loop, inbox_for
from ..._serialize import CallCodec, argument_error, with_remote_traceback
from ..._unwrap import defer, needs_unwrap
from .._base import Capabilities, WorkerBase
from ._actor import raised_cause

__all__ = [
    "RefCalls",
    "in_callback",
    "map_error",
    "object_ref_of",
    "off_ray_thread",
    "on_ray_thread",
    "ray_cancel",
    "serialization_error",
]


# Ray's completion callbacks run on a thread of Ray's core worker, which must not
# call back into Ray (ray.kill, .remote() there can deadlock the core worker).
# Work that needs Ray and may be reached from such a callback (including user
# done-callbacks of our futures) is relayed to aioconc's background loop.
in_callback = threading.local()


def off_ray_thread(fn: Any, *args: Any) -> None:
    """Run ``fn(*args)`` now, or on the background loop when on Ray's callback thread."""
    if getattr(in_callback, "active", False):
        inbox_for(background_loop()).post(fn, *args)
    else:
        fn(*args)


def on_ray_thread(fn: Any) -> Any:
    """Wrap a callback given to Ray so that Ray API calls made under it are relayed."""

    def callback(*args: Any) -> None:
        in_callback.active = True
        try:
            fn(*args)
        finally:
            in_callback.active = False

    return callback


# ObjectRef of each Ray-mode future, for as long as the future lives: a future
# passed to another Ray worker travels as its ref (see RayWorker.dispatch).
_refs: weakref.WeakKeyDictionary[Future[Any], Any] = weakref.WeakKeyDictionary()


def object_ref_of(future: Future[Any]) -> Any:
    """The ``ObjectRef`` behind a Ray-mode future, or None for any other future."""
    return _refs.get(future)


# ---------------------------------------------------------------------------
# Errors: Ray's exceptions mapped to the user's own and to aioconc's
# ---------------------------------------------------------------------------


def map_error(exc: BaseException, worker: str) -> BaseException:
    """The exception a call's future fails with, for what Ray raised.

    A user exception comes back as its own type, with the remote traceback as a
    note; a dead actor is :class:`WorkerCrashedError`; a cancelled Ray task is
    ``CancelledError``.  Anything else is passed on unchanged.
    """
    import ray.exceptions as rex

    if isinstance(exc, rex.RayTaskError):
        cause = raised_cause(exc.cause)
        if isinstance(cause, rex.RayActorError):  # an upstream ref's actor died
            return map_error(cause, worker)
        if isinstance(cause, BaseException):
            # str() of Ray's error is the remote traceback.
            note = f"Remote traceback (Ray, worker {worker}):\n{exc}"
            if sys.version_info >= (3, 11):
                cause.add_note(note)
            else:  # no add_note yet: put the note where it would
                cause.__notes__ = [*getattr(cause, "__notes__", ()), note]  # type: ignore[attr-defined]
            return cause
        return exc
    if isinstance(exc, rex.RayActorError):
        crashed = WorkerCrashedError(
            f"the Ray actor of worker {worker} died: {exc}",
            worker=worker,
            pid=getattr(exc, "pid", None),
        )
        crashed.__cause__ = exc
        return crashed
    if isinstance(exc, rex.TaskCancelledError):
        return CancelledError()
    return exc


def serialization_error(exc: Exception, what: str) -> BaseException:
    """What to raise for ``exc`` raised while Ray serialised ``what``.

    A pickling failure becomes :class:`SerializationError` (naming ``what``);
    anything else is ``exc`` itself.
    """
    if isinstance(exc, SerializationError):  # already says what and why
        return exc
    if isinstance(exc, (TypeError, AttributeError)) or "pickl" in str(exc).lower():
        err = SerializationError(f"{what} could not be serialised for ray mode: {exc}")
        err.__cause__ = exc
        return err
    return exc


def _submit_error(exc: Exception, call: Call) -> BaseException:
    """What a call fails with when submitting it raised ``exc``."""
    error = serialization_error(exc, f"an argument of {call.method}()")
    values = carried(call.context) if CARRIED else None
    if values is not None and type(error) is SerializationError and error is not exc:
        # A carried context value may be the culprit: name it (or the argument).
        return argument_error(None, call.method, call.args, call.kwargs, exc, "ray", context=values)
    return error


def _with_refs(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, Any]:
    """``args``/``kwargs`` with top-level Ray-mode futures replaced by their ObjectRefs."""
    refs = _refs
    new_args = tuple(refs.get(a, a) if isinstance(a, Future) else a for a in args)
    new_kwargs = {k: refs.get(v, v) if isinstance(v, Future) else v for k, v in kwargs.items()}
    return new_args, new_kwargs


# ---------------------------------------------------------------------------
# Calls in flight
# ---------------------------------------------------------------------------


class RefCalls(WorkerBase):
    """What the worker and the task runner share: pending refs, completion, closing."""

    capabilities = Capabilities(
        needs_pickling=True,
        shares_memory=False,
        unwraps_futures=True,
        scales_out=True,
        bounds_start=True,
    )

    def __init__(self, ray: Any, name: str, unwrap: bool) -> None:
        self.ready: Future[None] = Future()
        self.closed: Future[None] = Future()
        self._name = name
        self._unwrap = unwrap
        self._pending: dict[Future[Any], Any] = {}
        # serializer="json"/"msgpack": the subclass's _remote sends the call
        # encoded, and each outcome comes back as bytes in that format.
        self._codec: CallCodec | None = None
        self._closing = False
        self._dead: BaseException | None = None  # why every later call fails (actor died)
        self._drain_begun = False
        self._lock = threading.Lock()
        # What a ref's completion callback gets when the call failed: a RayError
        # (a value of any other type is the call's result); through Ray Client,
        # any exception (a lost connection too).
        client = ray.util.client.ray.is_connected()
        self._failed: type[BaseException] = Exception if client else ray.exceptions.RayError
        self._ray = ray
        self._timed_out: type[BaseException] = ray.exceptions.GetTimeoutError
        self._waiter = _RefWait(self)  # every pending future's _inner

    @property
    def home(self) -> asyncio.AbstractEventLoop | None:
        return None  # completions arrive on Ray's thread; nothing runs on a loop

    def dispatch(self, call: Call) -> None:
        """Submit ``call`` to Ray; thread-safe and non-blocking."""
        args, kwargs = call.args, call.kwargs
        if self._unwrap and (args or kwargs) and needs_unwrap(args, kwargs):
            args, kwargs = _with_refs(args, kwargs)
            if needs_unwrap(args, kwargs):  # futures of other modes, or nested ones
                later = Call(call.method, args, kwargs, call.future, call.timeout, call.context)
                defer(later, self._submit)
                return
            call = Call(call.method, args, kwargs, call.future, call.timeout, call.context)
        self._submit(call)

    def _submit(self, call: Call) -> None:
        if getattr(in_callback, "active", False):  # e.g. a deferred call released by a ref
            inbox_for(background_loop()).post(self._submit, call)
            return
        fut = call.future
        if self._closing:
            if self._dead is not None:
                fut._set_exception(self._dead)
            else:
                fut._set_cancelled()
            return
        if not fut._start():
            return  # cancelled before it was submitted: never runs
        try:
            ref = self._remote(call)
        except Exception as exc:
            fut._set_exception(_submit_error(exc, call))
            return
        self._pending[fut] = ref
        _refs[fut] = ref
        coded = self._codec is not None
        if not coded:  # an encoded outcome is decoded by _complete_coded only
            fut._inner = self._waiter
        # Ray hands the value (or the RayError the call failed with) to this
        # callback on its own thread.  ref.future() would first wrap it in a
        # concurrent.futures.Future: about a third of the driver's cost per call.
        # _on_completed is what ref.future() uses inside Ray; should a Ray
        # release drop it, the public route still works.
        on_completed = getattr(ref, "_on_completed", None)
        if on_completed is not None:
            if coded:
                on_completed(functools.partial(self._complete_coded, fut, call.method))
            else:
                on_completed(functools.partial(self._complete, fut))
        else:
            method = call.method if coded else None
            ref.future().add_done_callback(
                functools.partial(self._complete_future, fut, method=method)
            )

    def _remote(self, call: Call) -> Any:
        raise NotImplementedError

    def read_while_waiting(self, fut: Future[Any], deadline: float | None) -> None:
        """Finish ``fut`` in this thread, which is about to block in its ``result()``.

        When ``fut`` is this worker's only call in flight (a round trip): one
        ``ray.get`` of its ref, as a raw caller would, so that Ray wakes this
        thread itself rather than its callback thread waking this one, a hop
        that costs about as much as the call.  With more in flight (a burst
        collected future by future) the thread waits for the completion
        callback instead: a ``ray.get`` per future would spend on the driver,
        call after call, the CPU the actor needs (Ray's callback finishes
        every call anyway).  Returns without finishing ``fut`` at the deadline,
        on Ray's callback thread, or with other calls in flight.
        """
        pending = self._pending
        ref = pending.get(fut)
        if ref is None or len(pending) > 1 or getattr(in_callback, "active", False):
            return
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            value = self._ray.get(ref, timeout=timeout)
        except self._timed_out:
            return
        except self._failed as exc:
            self._complete(fut, exc)
            return
        self._complete(fut, value)

    def _call_failed(self, exc: BaseException, error: BaseException) -> None:
        """A call failed with Ray's ``exc`` (mapped to ``error``); on Ray's thread."""

    def _complete(self, fut: Future[Any], value: Any) -> None:
        # Runs on Ray's callback thread (see in_callback); the flag is set here
        # rather than by a wrapper, to keep the per-call cost down.
        in_callback.active = True
        try:
            self._pending.pop(fut, None)
            if isinstance(value, self._failed):
                exc = value
                try:
                    exc = map_error(value, self._name)
                finally:  # whatever happens, the call ends
                    fut._set_exception(exc)
                self._call_failed(value, exc)
            else:
                fut._set_result(value)
            if self._closing and not self._pending:
                off_ray_thread(self._drain)
        finally:
            in_callback.active = False

    def _complete_coded(self, fut: Future[Any], method: str, value: Any) -> None:
        """``_complete`` for a json/msgpack worker: ``value`` is the encoded outcome."""
        if isinstance(value, self._failed):
            self._complete(fut, value)
            return
        assert self._codec is not None
        in_callback.active = True
        try:
            self._pending.pop(fut, None)
            try:
                item = self._codec.decode_outcome(value, method)
            except Exception as exc:
                message = f"the outcome of {method}() could not be decoded: {exc}"
                item = (UNSERIALIZABLE, message, "")
            if item[0] == OK:
                fut._set_result(item[1])
            elif item[0] == ERROR:
                fut._set_exception(with_remote_traceback(item[1], item[2]))
            else:
                fut._set_exception(SerializationError(f"{item[1]} (ray mode)"))
            if self._closing and not self._pending:
                off_ray_thread(self._drain)
        finally:
            in_callback.active = False

    def _complete_future(self, fut: Future[Any], done: Any, method: str | None = None) -> None:
        exc = done.exception()
        if exc is None or isinstance(exc, self._failed):
            value = done.result() if exc is None else exc
            if method is None:
                self._complete(fut, value)
            else:
                self._complete_coded(fut, method, value)
            return
        in_callback.active = True
        try:  # not one of Ray's errors, yet the call failed with it
            self._pending.pop(fut, None)
            fut._set_exception(exc)
            if self._closing and not self._pending:
                off_ray_thread(self._drain)
        finally:
            in_callback.active = False

    def _drain(self) -> None:
        # begin_close and the last completion can both find nothing pending
        # (the completion's check may follow begin_close's): end only once.
        with self._lock:
            if self._drain_begun:
                return
            self._drain_begun = True
        self._drained()

    def _drained(self) -> None:
        self.closed._set_result(None)

    def _cancel_pending(self) -> None:
        for fut in self._pending.copy():
            fut._set_cancelled()
        self._pending.clear()

    def begin_close(self, graceful: bool) -> None:
        """Stop taking calls; graceful: let submitted calls finish, else cancel them."""
        with self._lock:
            if self._closing:
                return
            self._closing = True
        if not graceful:
            self._cancel_pending()
        if not self._pending:
            self._drain()

    def force_close(self) -> None:
        """End everything now: cancel what is pending and release Ray's side."""
        self._closing = True
        self._cancel_pending()
        self.closed._set_result(None)


class _RefWait:
    """Every pending Ray-mode future's ``_inner``: a thread blocking in
    ``result()`` fetches the value itself (see :meth:`RefCalls.read_while_waiting`)."""

    __slots__ = ("calls",)

    def __init__(self, calls: RefCalls) -> None:
        self.calls = calls

    def done(self) -> bool:
        return False

    def cancel(self) -> bool:
        return True  # nothing to stop here: the future decides, as without it

    def read_while_waiting(self, fut: Future[Any], deadline: float | None) -> None:
        self.calls.read_while_waiting(fut, deadline)


def ray_cancel(ref: Any) -> None:
    """Ask Ray to drop the task or actor call behind ``ref``."""
    import ray

    ray.cancel(ref)
