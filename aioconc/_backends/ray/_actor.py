"""Ray mode, the actor side: the actor that hosts the user's instance.

The actor hosts the instance rather than being ``ray.remote(cls)`` itself, so a
class whose ``Cls(...)`` auto-inits a handle, a ``SystemExit`` raised by a
method, and an exception raised by ``__init__`` all behave as in the other modes.

Each user class gets its own actor class (:func:`hosted`): a subclass of
:class:`_SyncHost` or :class:`_AsyncHost` with one entry point per public
method, ``m_<name>``.  A call then travels as ``actor.m_echo.remote(x)`` with
exactly the user's arguments, which costs Ray (driver and actor) as little as a
call on a raw ``ray.remote`` actor does; the generic ``call(method, ...)`` is
there for any other name.

* ``_SyncHost`` (no ``async def`` methods): a plain actor.  Ray runs the calls of
  one submitter one at a time in submission order, so calls carry no sequence
  number.
* ``_AsyncHost``: an async actor, whose calls Ray may start out of order; each
  call carries its submission number and starts only after its predecessor
  started.

Every actor also serves ``watch()``, a call that never returns: the driver
keeps one pending per worker and learns of the actor's death (killed, out of
memory, node lost) the moment Ray fails it.

This module is imported in the actor processes too; it imports nothing of Ray.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import traceback
import weakref
from collections.abc import Callable
from typing import Any, NamedTuple

from ..._carry import enter, leave, run_with
from ..._codec import ERROR, OK, UNSERIALIZABLE, Callee, codec_for
from ..._retrying import unwrapped_method
from .._base import construct

__all__ = [
    "ENTRY_PREFIX",
    "WATCH_GROUP",
    "Hosted",
    "entry_names",
    "has_async_methods",
    "host_class",
    "hosted",
    "raised_cause",
    "run_coded",
    "run_function",
    "run_function_in",
]

# Entry points are named ENTRY_PREFIX + the method's name: never one of the host's
# own methods (call, call_in, coded, ready, watch, close, skip) nor one of Ray's
# (_ray_*, __ray_*__).
ENTRY_PREFIX = "m_"


class _Raised(Exception):
    """Carries a ``SystemExit``/``KeyboardInterrupt`` out of the actor.

    Raised as itself, Ray would take it as the actor exiting; wrapped, it fails
    only that call and the driver unwraps it.
    """

    def __init__(self, exc: BaseException) -> None:
        super().__init__(repr(exc))
        self.exc = exc


class _SyncHost:
    """The actor of a class without ``async def`` methods: one call at a time, in order.

    Its :meth:`watch` runs in a concurrency group of its own (see :func:`hosted`),
    so Ray runs every other call on one thread of its own; the instance is built
    by the first call (``ready``) on that thread, so that it lives on the thread
    that runs its methods (thread-bound resources made in ``__init__`` work).
    """

    def __init__(
        self,
        cls: type[Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        limits: Any = None,
        retries: Any = None,
    ) -> None:
        self._error: BaseException | None = None
        self._instance: Any = None
        # ``retries``: the policies for the instance's calls to its own methods.
        self._parts: tuple[Any, ...] | None = (cls, args, kwargs, limits, retries)

    def _build(self) -> None:
        parts, self._parts = self._parts, None
        if parts is not None:
            try:
                self._instance = construct(*parts)
            except BaseException as exc:  # reported by ready(), so the driver sees its type
                self._error = exc

    def ready(self) -> None:
        self._build()
        if self._error is not None:
            _raise(self._error)

    def watch(self) -> None:
        """Never returns: the driver learns of the actor's death when this call fails."""
        threading.Event().wait()

    def call(self, method: str, /, *args: Any, **kwargs: Any) -> Any:
        if self._parts is not None:  # the first call after a restart by Ray
            self._build()
        if self._error is not None:
            _raise(self._error)
        try:
            result = unwrapped_method(self._instance, method)(*args, **kwargs)
            if inspect.isawaitable(result):
                result = asyncio.run(_awaited(result))
        except (SystemExit, KeyboardInterrupt) as exc:
            raise _Raised(exc) from None
        return result

    def call_in(self, values: dict[str, Any], method: str, /, *args: Any, **kwargs: Any) -> Any:
        """:meth:`call` with the caller's carried context ``values`` set around it."""
        return run_with(values, self.call, method, *args, **kwargs)

    def close(self) -> None:
        self._build()
        hook = getattr(self._instance, "stop", None)
        if self._error is None and callable(hook):
            result = hook()
            if inspect.isawaitable(result):
                asyncio.run(_awaited(result))

    # -- serializer="json"/"msgpack": calls and outcomes as bytes -------------

    def _callee(self, serializer: str) -> Callee:
        callee: Callee | None = self.__dict__.get("_coded")
        if callee is None:
            codec = codec_for(serializer)
            assert codec is not None  # cloudpickle calls never come here
            bound = getattr(self._instance, "_bound_fn", None)
            callee = self._coded = Callee(codec, self._instance, bound)
        return callee

    def coded(self, serializer: str, blob: bytes, /) -> bytes:
        """Run a call sent as JSON/msgpack; its outcome in the same format."""
        callee = self._callee(serializer)
        try:
            method, args, kwargs, values = callee.decode_call(blob)
        except Exception as exc:
            return _undecodable(callee, exc)
        try:
            if values is None:
                outcome: tuple[Any, ...] = (OK, self.call(method, *args, **kwargs))
            else:
                outcome = (OK, self.call_in(values, method, *args, **kwargs))
        except BaseException as exc:
            outcome = _failure(exc)
        return callee.codec.encode_outcome(outcome, method)


class _AsyncHost(_SyncHost):
    """The actor of a class with ``async def`` methods: they run concurrently on its loop.

    Ray may hand an async actor its calls out of order; each call carries its
    submission number and starts only after its predecessor started, so plain
    methods run, and ``async def`` methods begin, in submission order.  A call
    whose predecessor never comes (lost in a restart) waits at most
    ``_ORDER_WAIT`` seconds.
    """

    _ORDER_WAIT = 10.0

    def __init__(
        self,
        cls: type[Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        limits: Any = None,
        retries: Any = None,
    ) -> None:
        # Built at once, outside the actor's event loop (an __init__ may run one).
        super().__init__(cls, args, kwargs, limits, retries)
        self._build()

    async def watch(self) -> None:  # type: ignore[override]
        """Never returns (see :meth:`_SyncHost.watch`); holds no thread."""
        await asyncio.Event().wait()

    async def call(self, method: str, seq: int, /, *args: Any, **kwargs: Any) -> Any:
        if self._error is not None:
            _raise(self._error)
        await self._turn(seq)
        try:
            try:
                result = unwrapped_method(self._instance, method)(*args, **kwargs)
            finally:
                self.skip(seq)  # the next call may start once this one has begun
            if inspect.isawaitable(result):
                result = await result
        except (SystemExit, KeyboardInterrupt) as exc:
            raise _Raised(exc) from None
        return result

    async def call_in(
        self, values: dict[str, Any], method: str, seq: int, /, *args: Any, **kwargs: Any
    ) -> Any:
        """:meth:`call` with the caller's carried context ``values`` set around it."""
        tokens = enter(values)
        try:
            return await self.call(method, seq, *args, **kwargs)
        finally:
            leave(tokens)

    async def coded(self, serializer: str, seq: int, blob: bytes, /) -> bytes:  # type: ignore[override]
        callee = self._callee(serializer)
        try:
            method, args, kwargs, values = callee.decode_call(blob)
        except Exception as exc:
            self.skip(seq)  # the calls behind it must not wait for it
            return _undecodable(callee, exc)
        try:
            if values is None:
                outcome: tuple[Any, ...] = (OK, await self.call(method, seq, *args, **kwargs))
            else:
                outcome = (OK, await self.call_in(values, method, seq, *args, **kwargs))
        except BaseException as exc:
            outcome = _failure(exc)
        return callee.codec.encode_outcome(outcome, method)

    async def _turn(self, seq: int) -> None:
        waiters: dict[int, asyncio.Event] = self.__dict__.setdefault("_waiters", {})
        # Numbers start at 0 per worker: the first call to arrive waits for 0.
        expected = self.__dict__.setdefault("_next", 0)
        if seq <= expected:
            return
        event = waiters[seq] = asyncio.Event()
        try:
            await asyncio.wait_for(event.wait(), self._ORDER_WAIT)
        except asyncio.TimeoutError:
            pass
        finally:
            waiters.pop(seq, None)

    def skip(self, seq: int) -> None:
        """Mark call ``seq`` as begun (or as never coming): its successor may start."""
        if seq >= self.__dict__.get("_next", 0):
            self._next = seq + 1
            event = self.__dict__.get("_waiters", {}).get(seq + 1)
            if event is not None:
                event.set()

    async def close(self) -> None:  # type: ignore[override]
        hook = getattr(self._instance, "stop", None)
        if self._error is None and callable(hook):
            result = hook()
            if inspect.isawaitable(result):
                await result


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


def _failure(exc: BaseException) -> tuple[Any, ...]:
    exc = raised_cause(exc)
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return (ERROR, exc, tb)


def _undecodable(callee: Callee, exc: Exception) -> bytes:
    message = (
        f"the call's arguments could not be decoded ({callee.codec.name}) in the Ray actor: {exc!r}"
    )
    return callee.codec.dumps([UNSERIALIZABLE, message, traceback.format_exc()])


def raised_cause(cause: Any) -> Any:
    """The ``SystemExit``/``KeyboardInterrupt`` a :class:`_Raised` carries, else ``cause``."""
    return cause.exc if isinstance(cause, _Raised) else cause


def _raise(exc: BaseException) -> None:
    if isinstance(exc, (SystemExit, KeyboardInterrupt)):
        raise _Raised(exc)
    raise exc


def has_async_methods(cls: type[Any]) -> bool:
    """True when ``cls`` has an ``async def`` method: it is hosted by an async actor."""
    return any(
        inspect.iscoroutinefunction(value) or inspect.isasyncgenfunction(value)
        for name, value in inspect.getmembers(cls)
        if not name.startswith("__")
    )


# ---------------------------------------------------------------------------
# One actor class per user class, with an entry point per method
# ---------------------------------------------------------------------------


def entry_names(cls: type[Any]) -> frozenset[str]:
    """The methods of ``cls`` that get an entry point: its public callables."""
    return frozenset(
        name
        for name, value in inspect.getmembers(cls)
        if not name.startswith("_") and name.isidentifier() and callable(value)
    )


def _sync_entry(method: str) -> Callable[..., Any]:
    def entry(self: _SyncHost, /, *args: Any, **kwargs: Any) -> Any:
        return self.call(method, *args, **kwargs)

    entry.__name__ = entry.__qualname__ = ENTRY_PREFIX + method
    return entry


def _async_entry(method: str) -> Callable[..., Any]:
    async def entry(self: _AsyncHost, seq: int, /, *args: Any, **kwargs: Any) -> Any:
        return await self.call(method, seq, *args, **kwargs)

    entry.__name__ = entry.__qualname__ = ENTRY_PREFIX + method
    return entry


def host_class(cls: type[Any]) -> type[_SyncHost]:
    """The hosting class for ``cls``: its host base plus an entry point per method.

    Named after ``cls``, so that Ray's errors and listings show the user's class.
    """
    is_async = has_async_methods(cls)
    base: type[_SyncHost] = _AsyncHost if is_async else _SyncHost
    make = _async_entry if is_async else _sync_entry
    namespace: dict[str, Any] = {ENTRY_PREFIX + m: make(m) for m in entry_names(cls)}
    namespace["__module__"] = __name__
    namespace["__qualname__"] = cls.__qualname__
    return type(cls.__name__, (base,), namespace)


class Hosted(NamedTuple):
    """What the driver needs to call the actor of one user class."""

    actor_class: Any  # Ray's ActorClass of host_class(cls)
    entries: frozenset[str]  # the methods with an entry point m_<name>
    ordered: bool  # an async host: every call carries its sequence number


# One Ray ActorClass per user class: Ray exports its definition once.  Weak keys:
# a class that goes away takes its actor class with it.
_hosted: weakref.WeakKeyDictionary[type[Any], Hosted] = weakref.WeakKeyDictionary()


WATCH_GROUP = "aioconc_watch"
"""The concurrency group of a plain actor's ``watch`` (one thread, never busy otherwise)."""


def hosted(ray: Any, cls: type[Any]) -> Hosted:
    """The Ray ``ActorClass`` hosting instances of ``cls`` (made once per class)."""
    hosted = _hosted.get(cls)
    if hosted is None:
        host = host_class(cls)
        ordered = issubclass(host, _AsyncHost)
        if ordered:
            actor_class = ray.remote(host)
        else:
            # The watch gets a thread of its own; every other call keeps Ray's
            # one-at-a-time, in-order execution in the default group.
            setattr(host, "watch", ray.method(concurrency_group=WATCH_GROUP)(_sync_watch))  # noqa: B010
            actor_class = ray.remote(concurrency_groups={WATCH_GROUP: 1})(host)
        hosted = Hosted(actor_class, entry_names(cls), ordered)
        _hosted[cls] = hosted
    return hosted


def _sync_watch(self: _SyncHost) -> None:
    _SyncHost.watch(self)


# ---------------------------------------------------------------------------
# Functions as Ray tasks (TaskWorker)
# ---------------------------------------------------------------------------


def run_coded(serializer: str, fn: Any, blob: bytes, /) -> bytes:
    """Run ``fn`` in a Ray task with a call sent as JSON/msgpack; the outcome as bytes."""
    codec = codec_for(serializer)
    assert codec is not None
    callee = Callee(codec, None, fn)
    try:
        method, args, kwargs, values = callee.decode_call(blob)
    except Exception as exc:
        return _undecodable(callee, exc)
    try:
        if values is None:
            outcome: tuple[Any, ...] = (OK, run_function(fn, *args, **kwargs))
        else:
            outcome = (OK, run_with(values, run_function, fn, *args, **kwargs))
    except BaseException as exc:
        outcome = _failure(exc)
    return codec.encode_outcome(outcome, method)


def run_function(fn: Any, /, *args: Any, **kwargs: Any) -> Any:
    """Run ``fn(*args, **kwargs)`` in a Ray task (``async def`` functions to completion)."""
    try:
        result = fn(*args, **kwargs)
        if inspect.isawaitable(result):
            result = asyncio.run(_awaited(result))
    except (SystemExit, KeyboardInterrupt) as exc:
        raise _Raised(exc) from None
    return result


def run_function_in(values: dict[str, Any], fn: Any, /, *args: Any, **kwargs: Any) -> Any:
    """:func:`run_function` with the caller's carried context ``values`` set around it."""
    return run_with(values, run_function, fn, *args, **kwargs)
