"""Running plain functions: ``TaskWorker``, ``Executor`` and ``@task``.

``TaskWorker`` is a worker whose one job is to run the functions it is sent:
``TaskWorker.options(mode=...).init()`` (or ``Executor(mode)``) returns a
handle (a pool with ``max_workers > 1``) with ``submit(fn, *a, **kw)``,
``map(fn, *iterables)`` and, with a function bound by ``init(fn=f)``,
``__call__``.  ``@task(mode=...)`` turns a function into such a worker that
keeps the function's name, docstring and signature (``ParamSpec``).

``map`` is ordered and bounded: at most ``buffersize`` calls are in flight,
and one more is submitted only when a result has been taken, so an endless
iterator maps in bounded memory.
"""

from __future__ import annotations

import collections
import functools
import inspect
import itertools
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, cast, overload

from ._anyloop import wait_quietly
from ._enums import ExecutionMode
from ._exceptions import WaitTimeoutError
from ._future import Future
from ._handle import BaseHandle
from ._options import _NO_POOL_MODES, parse_priority, validate_options
from ._pool import PoolHandle
from ._proxy import WorkerHandle
from ._worker import Worker
from .config import resolve
from .progress import ProgressBar, make_progress

if TYPE_CHECKING:
    from .progress import _ProgressSink

__all__ = ["Executor", "MapIterator", "TaskFunction", "TaskWorker", "task"]

P = ParamSpec("P")
R = TypeVar("R")
_NO_ARG: Any = object()


# ---------------------------------------------------------------------------
# The worker side
# ---------------------------------------------------------------------------


def _run_chunk(fn: Callable[..., Any], chunk: list[tuple[Any, ...]]) -> list[Any]:
    return [fn(*args) for args in chunk]


async def _arun_chunk(fn: Callable[..., Any], chunk: list[tuple[Any, ...]]) -> list[Any]:
    return [await fn(*args) for args in chunk]


def _takes_limits(fn: Callable[..., Any]) -> bool:
    code = getattr(fn, "__code__", None)
    if code is None:
        return False
    return "limits" in code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]


class TaskWorker(Worker):
    """A worker that runs the functions sent to it (concurry's ``TaskWorker``).

    ``TaskWorker.options(mode=...).init(fn=f)`` binds ``f``.  With
    ``inject_limits=True`` (what ``@task(limits=...)`` does) the worker's
    ``limits`` go to functions that take a ``limits`` parameter, unless the
    caller passes one.
    """

    def __init__(
        self, fn: Callable[..., Any] | None = None, *, inject_limits: bool = False
    ) -> None:
        self._bound_fn = fn
        self._inject_limits = inject_limits  # set by @task(limits=...)

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``fn(*args, **kwargs)`` here (an awaitable result is awaited by the backend)."""
        if self._inject_limits and "limits" not in kwargs and _takes_limits(fn):
            kwargs["limits"] = getattr(self, "limits", None)
        return fn(*args, **kwargs)

    async def asubmit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Await ``fn(*args, **kwargs)``: ``async def`` functions, concurrent in asyncio mode."""
        return await self.submit(fn, *args, **kwargs)

    # The bound function is not sent with each call: it crossed once, at init.
    # That also lets a json/msgpack worker run it (a function is no JSON).

    def call_bound(self, *args: Any, **kwargs: Any) -> Any:
        """Run the function bound with ``init(fn=...)``."""
        return self.submit(self._bound_fn, *args, **kwargs)  # type: ignore[arg-type]

    async def acall_bound(self, *args: Any, **kwargs: Any) -> Any:
        """Await the ``async def`` function bound with ``init(fn=...)``."""
        return await self.submit(self._bound_fn, *args, **kwargs)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------
# The handle side: submit, __call__, map
# ---------------------------------------------------------------------------


def _send(
    handle: BaseHandle,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    priority: int,
) -> Future[Any]:
    """Submit ``fn(*args, **kwargs)`` through ``handle`` and return the future.

    Raises ``WorkerStoppedError`` after ``stop()``.
    """
    is_async = inspect.iscoroutinefunction(fn)
    if fn is handle._init_kwargs.get("fn"):  # it crossed once, at init: not sent again
        caller = handle._submitter("acall_bound" if is_async else "call_bound", priority)
        return cast("Future[Any]", caller(*args, **kwargs))
    caller = handle._submitter("asubmit" if is_async else "submit", priority)
    return cast("Future[Any]", caller(fn, *args, **kwargs))


class TaskMixin(BaseHandle):
    """``submit``, ``__call__`` and ``map`` for TaskWorker handles and pools."""

    def _resolve_fn(self, fn: Any, args: tuple[Any, ...], what: str) -> tuple[Any, tuple[Any, ...]]:
        bound = self._init_kwargs.get("fn")
        if bound is not None:
            if fn is _NO_ARG:
                return bound, args
            if callable(fn):  # compatibility: a callable first argument is the function
                return fn, args
            return bound, (fn, *args)
        if fn is _NO_ARG:
            raise TypeError(f"{what}() needs a function when none is bound with init(fn=...)")
        if not callable(fn):
            raise TypeError(f"{what}() requires a callable function, got {type(fn).__name__}")
        return fn, args

    def submit(
        self, fn: Any = _NO_ARG, /, *args: Any, priority: int | str | None = None, **kwargs: Any
    ) -> Any:
        """Run ``fn(*args, **kwargs)`` on a worker; return its future (the value if blocking).

        ``priority`` ("critical", "high", "normal", "low" or 0-3) orders it among
        held-back calls.  Raises ``TypeError`` without a callable function and
        ``WorkerStoppedError`` after ``stop()``.
        """
        fn, args = self._resolve_fn(fn, args, "submit")
        level = self._options.priority if priority is None else parse_priority(priority)
        fut = _send(self, fn, args, kwargs, level)
        return fut.result() if self._blocking else fut

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the bound function; ``TypeError`` when none is bound."""
        if self._init_kwargs.get("fn") is None:
            raise TypeError(
                "submit() requires a callable function, got NoneType: this TaskWorker "
                "has no bound function, so call submit(fn, ...)"
            )
        return self.submit(*args, **kwargs)

    def map(
        self,
        fn: Any = _NO_ARG,
        *iterables: Iterable[Any],
        timeout: float | None = None,
        progress: Any = False,
        buffersize: int | None = None,
        chunksize: int = 1,
        priority: int | str | None = None,
    ) -> MapIterator[Any]:
        """``fn`` over the items of ``iterables`` (zipped, shortest wins), results in order.

        Submitting starts at once, keeping at most ``buffersize`` calls (default
        16 per worker) in flight; ``chunksize`` items go in one call.  Each
        result raises ``TimeoutError`` if not ready ``timeout`` seconds after it
        is requested.  Iterate it (``for``) or ``async for`` it.
        """
        if fn is not _NO_ARG and not callable(fn) and self._init_kwargs.get("fn") is not None:
            fn, iterables = self._init_kwargs["fn"], (fn, *iterables)
        fn, _ = self._resolve_fn(fn, (), "map")
        if chunksize < 1:
            raise ValueError(f"chunksize must be at least 1, got {chunksize}")
        if buffersize is None:
            buffersize = 16 * max(1, int(self._options.max_workers or 1))
        elif buffersize < 1:
            raise ValueError(f"buffersize must be at least 1, got {buffersize}")
        level = self._options.priority if priority is None else parse_priority(priority)
        sizes = [len(it) for it in iterables if hasattr(it, "__len__")]  # type: ignore[arg-type]
        total = min(sizes) if sizes and len(sizes) == len(iterables) else None
        sink = make_progress(progress, total or 0, getattr(fn, "__name__", "map"))
        if sink is not None and total is None and sink.bar is not None:
            sink.bar.set_total(None)
        return MapIterator(self, fn, zip(*iterables), buffersize, chunksize, timeout, sink, level)


class MapIterator(Generic[R]):
    """The ordered, bounded results of ``map``: iterate it or ``async for`` it."""

    def __init__(
        self,
        handle: Any,
        fn: Callable[..., Any],
        items: Iterator[tuple[Any, ...]],
        buffersize: int,
        chunksize: int,
        timeout: float | None,
        sink: _ProgressSink | None,
        priority: int,
    ) -> None:
        self._handle = handle
        self._fn = fn
        self._items = items
        self._chunksize = chunksize
        self._buffersize = buffersize
        self._timeout = timeout
        self._sink = sink
        self._priority = priority
        self._chunk_fn = _arun_chunk if inspect.iscoroutinefunction(fn) else _run_chunk
        self._pending: collections.deque[Future[Any]] = collections.deque()
        self._ready: collections.deque[Any] = collections.deque()
        self._exhausted = False
        self._fill()

    @property
    def in_flight(self) -> int:
        """How many submitted calls have not been taken yet (never above ``buffersize``)."""
        return len(self._pending)

    def _fill(self) -> None:
        while not self._exhausted and len(self._pending) < self._buffersize:
            chunk = list(itertools.islice(self._items, self._chunksize))
            if not chunk:
                self._exhausted = True
                return
            if self._chunksize == 1:
                fut = _send(self._handle, self._fn, chunk[0], {}, self._priority)
            else:
                fut = _send(self._handle, self._chunk_fn, (self._fn, chunk), {}, self._priority)
            self._pending.append(fut)

    def _take(self, value: Any) -> Any:
        values = value if self._chunksize > 1 else [value]
        self._ready.extend(values)
        if self._sink is not None:
            self._sink.advance(len(values))
        return self._ready.popleft()

    def _end(self) -> None:
        if self._sink is not None:
            self._sink.done(True, "Complete!")

    def close(self) -> None:
        """Cancel what is still pending and submit nothing more (the bar turns grey)."""
        self._exhausted = True
        while self._pending:
            self._pending.popleft().cancel()
        if self._sink is not None:
            self._sink.stop("Cancelled")

    def __iter__(self) -> Iterator[R]:
        return self

    def __next__(self) -> R:
        if self._ready:
            return cast(R, self._ready.popleft())
        if not self._pending:
            self._end()
            raise StopIteration
        fut = self._pending[0]
        try:
            value = fut.result(self._timeout)
        except BaseException:
            self._fail()
            raise
        self._pending.popleft()
        self._fill()
        return cast(R, self._take(value))

    def __aiter__(self) -> AsyncIterator[R]:
        return self

    async def __anext__(self) -> R:
        if self._ready:
            return cast(R, self._ready.popleft())
        if not self._pending:
            self._end()
            raise StopAsyncIteration
        fut = self._pending[0]
        try:
            if not await wait_quietly(fut, self._timeout):  # on any loop, trio's too
                raise WaitTimeoutError(f"map result not ready within {self._timeout} s")
            value = fut._outcome()
        except BaseException:
            self._fail()
            raise
        self._pending.popleft()
        self._fill()
        return cast(R, self._take(value))

    def _fail(self) -> None:
        if self._sink is not None:
            self._sink.done(False)  # red; close() then leaves it as it is
        self.close()


class TaskHandle(TaskMixin, WorkerHandle):
    """The handle of one TaskWorker."""


class TaskPool(TaskMixin, PoolHandle):
    """A pool of TaskWorkers: ``submit`` and ``map`` spread calls over the workers."""


TaskWorker._aioconc_handle_class = TaskHandle  # type: ignore[attr-defined]
TaskWorker._aioconc_pool_class = TaskPool  # type: ignore[attr-defined]


def Executor(
    mode: Any,
    max_workers: int | None = None,
    load_balancing: Any = _NO_ARG,
    on_demand: Any = _NO_ARG,
    limits: Any = None,
    **options: Any,
) -> Any:
    """A TaskWorker handle (a pool with ``max_workers > 1``), like ``concurrent.futures``.

    The same as ``TaskWorker.options(mode=mode, ...).init()``; ``mode`` is
    required (``TypeError`` without it).  Invalid options raise as ``options()`` does.
    """
    given: dict[str, Any] = {"mode": mode, **options}
    if max_workers is not None:
        given["max_workers"] = max_workers
    if load_balancing is not _NO_ARG:
        given["load_balancing"] = load_balancing
    if on_demand is not _NO_ARG:
        given["on_demand"] = on_demand
    if limits is not None:
        given["limits"] = limits
    return TaskWorker.options(**given).init()


# ---------------------------------------------------------------------------
# @task
# ---------------------------------------------------------------------------


class TaskFunction(Generic[P, R]):
    """What ``@task`` makes of a function: calling it returns a future of its result.

    Also ``submit``, ``map``, ``stop``/``astop`` and both context-manager
    protocols; calls after ``stop()`` raise ``WorkerStoppedError`` (a
    ``RuntimeError`` whose message says "stopped").
    """

    def __init__(self, fn: Callable[P, Any], handle: Any) -> None:
        functools.update_wrapper(self, fn)
        self.handle = handle

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Future[R]:
        return cast("Future[R]", self.handle.submit(*args, **kwargs))

    def submit(self, *args: P.args, **kwargs: P.kwargs) -> Future[R]:
        """Run the function on a worker and return its future (the value if blocking)."""
        return cast("Future[R]", self.handle.submit(*args, **kwargs))

    def map(
        self,
        *iterables: Iterable[Any],
        timeout: float | None = None,
        progress: bool | dict[str, Any] | ProgressBar | Callable[..., Any] = False,
        buffersize: int | None = None,
        chunksize: int = 1,
    ) -> MapIterator[R]:
        """The function over ``iterables``, results in order (see ``TaskMixin.map``)."""
        return cast(
            "MapIterator[R]",
            self.handle.map(
                *iterables,
                timeout=timeout,
                progress=progress,
                buffersize=buffersize,
                chunksize=chunksize,
            ),
        )

    def stop(self, timeout: float | None = None) -> None:
        """Stop the task's worker(s); later calls raise ``WorkerStoppedError``."""
        self.handle.stop(timeout, graceful=True)

    async def astop(self, timeout: float | None = None) -> None:
        """Stop the task's worker(s) without blocking the loop."""
        await self.handle.astop(timeout)

    def __enter__(self) -> TaskFunction[P, R]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    async def __aenter__(self) -> TaskFunction[P, R]:
        await self.handle.ready
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.astop()

    def __repr__(self) -> str:
        return f"<task {self.__qualname__} {self.handle!r}>"  # type: ignore[attr-defined]


class _TaskDecorator:
    """``task(mode=...)``: decorate a function to make it a :class:`TaskFunction`."""

    def __init__(self, options: dict[str, Any]) -> None:
        self._options = options

    @overload
    def __call__(self, fn: Callable[P, Coroutine[Any, Any, R]]) -> TaskFunction[P, R]: ...

    @overload
    def __call__(self, fn: Callable[P, R]) -> TaskFunction[P, R]: ...

    def __call__(self, fn: Callable[P, Any]) -> TaskFunction[P, Any]:
        options = dict(self._options)
        init: dict[str, Any] = {"fn": fn}
        if options.get("limits") is not None and _takes_limits(fn):
            init["inject_limits"] = True
        handle = TaskWorker.options(**options).init(**init)
        return TaskFunction(fn, handle)


def task(*, mode: Any = _NO_ARG, on_demand: Any = _NO_ARG, **options: Any) -> _TaskDecorator:
    """Decorate a function to run on workers: ``@task(mode="thread", max_workers=4)``.

    ``on_demand`` defaults to ``task_decorator_on_demand`` (True) in thread,
    process and ray modes, False in sync and asyncio.  Raises ``TypeError``
    without ``mode``; invalid options raise as ``options()`` does.
    """
    if mode is _NO_ARG or mode is None:
        raise TypeError("@task needs a mode: @task(mode='thread') (or sync, asyncio, process, ray)")
    checked = validate_options({"mode": mode, **options})
    parsed = checked["mode"]
    if on_demand is _NO_ARG:
        on_demand = (
            False
            if parsed in _NO_POOL_MODES or not isinstance(parsed, ExecutionMode)
            else bool(resolve(parsed, "task_decorator_on_demand"))
        )
    checked["on_demand"] = on_demand
    return _TaskDecorator(checked)
