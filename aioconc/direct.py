"""Direct calls: ``@direct`` runs a function on workers and keeps its call contract.

A ``@direct`` function is called exactly as before: the call returns the value
and raises the function's own exception (with the worker's traceback as its
``__cause__`` in process and Ray mode).  An ``async def`` function stays a
coroutine function: ``await f(x)`` runs it on a worker and never blocks the
caller's loop.  Nothing at the call sites changes, so a code base moves
function by function::

    @direct(mode="process", max_workers=4)
    def build_report(period: str) -> dict: ...

    report = build_report("Q1")          # runs in a worker process

With ``parallel_func`` and ``aggregate_func`` one call fans out over the pool:
``parallel_func`` gets the call's arguments as a dict (positional ones bound to
their names) and returns one argument tuple per part; the parts run
concurrently, at most ``max_workers`` (or ``buffersize``) at a time; and
``aggregate_func`` combines their results, in order, into the call's value.

The workers start on the first call and stop at interpreter exit; ``f.stop()``,
``with f:`` and ``async with f:`` stop them sooner (a later call starts them
again).  ``AIOCONC_FORCE_SYNC=1`` runs the function inline in the caller.
"""

from __future__ import annotations

import atexit
import functools
import inspect
import threading
import weakref
from collections import deque
from collections.abc import Callable, Coroutine, Generator, Iterable
from typing import Any, Generic, ParamSpec, TypeVar, cast, overload

from ._backends import get_backend
from ._future import Future
from ._options import _force_sync, validate_options
from ._runtime import background_loop, run_on, running_loop
from ._stats import CallStatistics
from .task import TaskWorker

__all__ = ["DirectFunction", "direct"]

P = ParamSpec("P")
R = TypeVar("R")

# Options that belong to the fan-out, not to the workers.
_FAN_OUT = ("parallel_func", "aggregate_func", "buffersize")


class DirectFunction(Generic[P, R]):
    """What ``@direct`` makes of a function: called like it, run on workers.

    ``f(*args)`` returns what the function returns (for an ``async def``
    function, a coroutine to ``await``) and raises what it raises.  Also
    ``stop()``/``astop()``, both context-manager protocols, ``handle`` (the
    running workers' handle, started on demand) and ``statistics()``.
    """

    def __init__(
        self,
        fn: Callable[P, R],
        options: dict[str, Any],
        parallel_func: Callable[[dict[str, Any]], Iterable[Any]] | None,
        aggregate_func: Callable[[list[Any]], Any] | None,
        buffersize: int | None,
    ) -> None:
        functools.update_wrapper(self, fn)
        self._fn = fn
        self._options = options
        self._parallel = parallel_func
        self._aggregate = aggregate_func
        self._buffersize = buffersize
        self._signature = inspect.signature(fn)
        self._is_async = inspect.iscoroutinefunction(fn)
        self._lock = threading.Lock()
        self._handle: Any = None
        if self._is_async:
            # inspect.iscoroutinefunction(f) stays true (Python 3.12+ reads the mark).
            mark = getattr(inspect, "markcoroutinefunction", None)
            if mark is not None:
                mark(self)

    # -- the workers -----------------------------------------------------------

    @property
    def handle(self) -> Any:
        """The handle (a pool with ``max_workers > 1``) that runs the calls.

        Started by the first call (or by reading this); raises what ``init()``
        raises for invalid options.
        """
        handle = self._handle
        if handle is None or handle._stopped:
            with self._lock:
                handle = self._handle
                if handle is None or handle._stopped:
                    handle = self._handle = self._start()
                    _stop_at_exit(self)
        return handle

    def _start(self) -> Any:
        here = running_loop()
        if here is None or self._runs_inline() or here is background_loop():
            return TaskWorker.options(**self._options).init(fn=self._fn)

        # Made on a caller's loop, the workers would live on it and end with it;
        # a direct function outlives any one loop (asyncio.run), so its
        # workers live on aioconc's background loop.
        async def start() -> Any:
            return TaskWorker.options(**self._options).init(fn=self._fn)

        return run_on(background_loop(), start())

    def _runs_inline(self) -> bool:
        # Sync workers (asked for, or forced) use no loop at all: none is started.
        if _force_sync():
            return True
        try:
            return get_backend(self._options["mode"]).capabilities.blocking_dispatch
        except (KeyError, TypeError, NotImplementedError, ImportError):
            return False

    def stop(self, timeout: float | None = None) -> None:
        """Stop the workers (a later call starts new ones); idempotent."""
        with self._lock:
            handle, self._handle = self._handle, None
        if handle is not None:
            handle.stop(timeout, graceful=True)

    async def astop(self, timeout: float | None = None) -> None:
        """Stop the workers without blocking the loop; idempotent."""
        with self._lock:
            handle, self._handle = self._handle, None
        if handle is not None:
            await handle.astop(timeout)

    def statistics(self) -> CallStatistics | None:
        """The running handle's statistics (``None`` before the first call)."""
        handle = self._handle
        return None if handle is None else cast(CallStatistics, handle.statistics())

    def __enter__(self) -> DirectFunction[P, R]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    async def __aenter__(self) -> DirectFunction[P, R]:
        await self.handle.ready
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.astop()

    # -- calls -----------------------------------------------------------------

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        if self._is_async:
            return cast(R, self._acall(args, kwargs))
        if self._parallel is not None:
            return cast(R, self._fan_out(args, kwargs))
        return cast(R, self.handle.submit(*args, **kwargs).result())

    async def _acall(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if self._handle_inline():
            return await self._fn(*args, **kwargs)  # type: ignore[misc]
        if self._parallel is not None:
            return await self._afan_out(args, kwargs)
        return await self.handle.submit(*args, **kwargs)

    def _handle_inline(self) -> bool:
        # A worker that runs calls inside dispatch() (sync mode, asked for or
        # forced by AIOCONC_FORCE_SYNC) would run a coroutine to completion on
        # another loop: awaiting it here keeps it on the caller's loop and
        # thread, with a plain traceback.
        return bool(self.handle._capabilities.blocking_dispatch)

    def _parts(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Any]:
        assert self._parallel is not None
        bound = self._signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return list(self._parallel(dict(bound.arguments)))

    def _submit_part(self, part: Any) -> Future[Any]:
        if isinstance(part, dict):
            return cast("Future[Any]", self.handle.submit(**part))
        if not isinstance(part, (tuple, list)):
            raise TypeError(
                f"parallel_func of {self.__name__}() must return argument tuples (or dicts of "  # type: ignore[attr-defined]
                f"keyword arguments), got {type(part).__name__}"
            )
        return cast("Future[Any]", self.handle.submit(*part))

    def _limit(self) -> int:
        if self._buffersize is not None:
            return self._buffersize
        workers = getattr(self.handle, "max_workers", None) or 1
        return max(1, int(workers))

    def _parts_run(
        self, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Generator[Future[Any], Any, list[Any]]:
        """The fan-out, written once for both callers: it yields the next part's
        future to wait for and is sent its value (or thrown its exception);
        it returns the parts' results in order."""
        parts = iter(self._parts(args, kwargs))
        limit = self._limit()
        running: deque[Future[Any]] = deque()
        results: list[Any] = []
        try:
            for part in parts:
                if len(running) >= limit:
                    results.append((yield running.popleft()))
                running.append(self._submit_part(part))
            while running:
                results.append((yield running.popleft()))
        except BaseException:
            for fut in running:  # parts not yet started never run
                fut.cancel()
            raise
        return results

    def _fan_out(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        run = self._parts_run(args, kwargs)
        try:
            fut = next(run)
            while True:
                try:
                    value = fut.result()
                except BaseException as exc:
                    fut = run.throw(exc)
                else:
                    fut = run.send(value)
        except StopIteration as done:
            assert self._aggregate is not None
            return self._aggregate(done.value)

    async def _afan_out(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        run = self._parts_run(args, kwargs)
        try:
            fut = next(run)
            while True:
                try:
                    value = await fut
                except BaseException as exc:
                    fut = run.throw(exc)
                else:
                    fut = run.send(value)
        except StopIteration as done:
            assert self._aggregate is not None
            value = self._aggregate(done.value)
            return await value if inspect.isawaitable(value) else value

    def __repr__(self) -> str:
        state = "idle" if self._handle is None else repr(self._handle)
        return f"<direct {self.__qualname__} {state}>"  # type: ignore[attr-defined]


# Every direct function with running workers, stopped at interpreter exit.
_live: weakref.WeakSet[DirectFunction[Any, Any]] = weakref.WeakSet()
_exit_hooked = False


def _stop_at_exit(fn: DirectFunction[Any, Any]) -> None:
    global _exit_hooked
    _live.add(fn)
    if not _exit_hooked:
        _exit_hooked = True
        atexit.register(_stop_all)


def _stop_all() -> None:
    for fn in list(_live):
        fn.stop(timeout=5.0)


class _DirectDecorator:
    """``direct(mode=...)``: decorate a function to make it a :class:`DirectFunction`."""

    def __init__(
        self,
        options: dict[str, Any],
        parallel_func: Callable[[dict[str, Any]], Iterable[Any]] | None,
        aggregate_func: Callable[[list[Any]], Any] | None,
        buffersize: int | None,
    ) -> None:
        self._options = options
        self._fan = (parallel_func, aggregate_func, buffersize)

    @overload
    def __call__(
        self, fn: Callable[P, Coroutine[Any, Any, R]]
    ) -> DirectFunction[P, Coroutine[Any, Any, R]]: ...

    @overload
    def __call__(self, fn: Callable[P, R]) -> DirectFunction[P, R]: ...

    def __call__(self, fn: Callable[P, Any]) -> DirectFunction[P, Any]:
        if not callable(fn):
            raise TypeError(f"@direct decorates a function, not {type(fn).__name__}")
        return DirectFunction(fn, dict(self._options), *self._fan)


@overload
def direct(fn: Callable[P, R], /) -> DirectFunction[P, R]: ...


@overload
def direct(
    *,
    mode: Any = ...,
    parallel_func: Callable[[dict[str, Any]], Iterable[Any]] | None = ...,
    aggregate_func: Callable[[list[Any]], Any] | None = ...,
    buffersize: int | None = ...,
    **options: Any,
) -> _DirectDecorator: ...


def direct(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    mode: Any = "thread",
    parallel_func: Callable[[dict[str, Any]], Iterable[Any]] | None = None,
    aggregate_func: Callable[[list[Any]], Any] | None = None,
    buffersize: int | None = None,
    **options: Any,
) -> Any:
    """Run a function on workers and keep its call contract (pynenc's ``direct_task``).

    Bare (``@direct``: one thread worker) or with ``@task``'s options
    (``mode``, ``max_workers``, ``limits``, ``num_retries``, ``timeout``,
    ``priority``, ``serializer``, ...).  ``max_workers`` defaults to 1 and the
    workers are long-lived (``on_demand=False`` unless given).

    Raises ``ValueError`` when ``parallel_func`` is given without
    ``aggregate_func`` or ``buffersize`` is below 1, and what ``options()``
    raises for invalid options, when the decorator is applied.
    """
    if parallel_func is not None and aggregate_func is None:
        raise ValueError(
            "Aggregation function required for parallel execution: @direct(parallel_func=...) "
            "needs aggregate_func= to combine the parts' results"
        )
    if parallel_func is None and aggregate_func is not None:
        raise ValueError("aggregate_func needs parallel_func= to split the call into parts")
    if buffersize is not None and buffersize < 1:
        raise ValueError(f"buffersize must be at least 1, got {buffersize}")
    given: dict[str, Any] = {"mode": mode, "max_workers": 1, "on_demand": False, **options}
    checked = validate_options(given)
    decorator = _DirectDecorator(checked, parallel_func, aggregate_func, buffersize)
    if fn is not None:
        return decorator(fn)
    return decorator
