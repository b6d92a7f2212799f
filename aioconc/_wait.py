"""``wait`` and ``gather`` over many futures, and their async twins.

Nothing here polls or sleeps.  The inputs are normalised once into a
:class:`_Batch`: a flat list of library futures plus the recipe to rebuild the
caller's shape (list, dict, or nested with ``recurse=True``).  Each future gets a
done-callback that pushes its index to the waiter: a ``queue.SimpleQueue`` that
the calling thread blocks on for the sync functions, the loop's inbox for the
async ones.  A :class:`_Run` consumes those indices in completion order, counts,
reports progress and says when the wait is over; the sync and async drivers
differ only in how they block.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import inspect
import queue
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from types import TracebackType
from typing import TYPE_CHECKING, Any

import anyio

from ._anyloop import current_inbox
from ._coroutine_task import start_awaitable
from ._enums import PollingAlgorithm, ReturnWhen
from ._exceptions import WaitTimeoutError
from ._future import CancelledError, Future
from ._runtime import running_loop
from ._sync_future import SyncFuture
from ._wrap import wrap_future

if TYPE_CHECKING:
    from .progress import ProgressOption, _ProgressSink

__all__ = [
    "ALL_COMPLETED",
    "FIRST_COMPLETED",
    "FIRST_EXCEPTION",
    "async_gather",
    "async_wait",
    "gather",
    "wait",
]

ALL_COMPLETED = ReturnWhen.ALL_COMPLETED.value
FIRST_COMPLETED = ReturnWhen.FIRST_COMPLETED.value
FIRST_EXCEPTION = ReturnWhen.FIRST_EXCEPTION.value

_COLLECTIONS = (list, tuple, set, frozenset, dict)
_Stop = Callable[[Future[Any]], bool]


# ---------------------------------------------------------------------------
# Inputs and outputs
# ---------------------------------------------------------------------------


class _Batch:
    """The caller's futures, flattened, with what is needed to give back their shape.

    ``futures[i]`` is the library future of leaf ``i``, ``handles[i]`` what
    ``async_wait`` reports for it, ``keys[i]`` its index or dict key (a tuple
    path when nested).  Raises ``ValueError`` for a collection plus extra
    futures and, when blocking (``aio=False``), ``RuntimeError`` for coroutines
    or futures that need this thread's event loop.
    """

    __slots__ = ("_async", "_refused", "_tree", "futures", "handles", "is_dict", "keys")

    def __init__(self, fs: Any, futs: tuple[Any, ...], *, recurse: bool, aio: bool) -> None:
        if futs and isinstance(fs, _COLLECTIONS):
            raise ValueError(
                "Cannot provide both a structure (list/tuple/set/dict) and more futures: "
                "pass either one collection or several futures, not both"
            )
        self.futures: list[Future[Any]] = []
        self.handles: list[Any] = []
        self.keys: list[Any] = []
        self._async = aio
        self._refused: list[Any] = []
        top = fs if not futs and isinstance(fs, _COLLECTIONS) else (fs, *futs)
        self.is_dict = isinstance(top, dict)
        pairs = top.items() if isinstance(top, dict) else enumerate(top)
        self._tree = [(key, self._add(item, (key,), recurse)) for key, item in pairs]
        if self._refused:
            for item in self._refused:
                if asyncio.iscoroutine(item):
                    item.close()
            raise RuntimeError(
                "wait()/gather() would block the event loop that coroutines and this loop's "
                "futures need; use 'await async_wait(...)' / 'await async_gather(...)'"
            )

    def _add(self, item: Any, path: tuple[Any, ...], recurse: bool) -> Any:
        if recurse and isinstance(item, _COLLECTIONS):
            kind = next(k for k in _COLLECTIONS if isinstance(item, k))
            pairs = item.items() if isinstance(item, dict) else enumerate(item)
            return kind, [(k, self._add(v, (*path, k), recurse)) for k, v in pairs]
        if self._async:
            if inspect.isawaitable(item) and not isinstance(item, Future):
                item = start_awaitable(item)  # coroutines become tasks; futures stay
            future = wrap_future(item)
            is_future = asyncio.isfuture(item) or isinstance(item, concurrent.futures.Future)
            handle = item if is_future else future
        elif asyncio.iscoroutine(item) or _needs_this_thread(item):  # refused after the walk
            self._refused.append(item)
            future = handle = SyncFuture(None)
        else:
            future = handle = wrap_future(item)
        self.futures.append(future)
        self.handles.append(handle)
        self.keys.append(path[0] if len(path) == 1 else path)
        return len(self.futures) - 1

    def split(self) -> tuple[set[Any], set[Any]]:
        """Return ``(done, not_done)`` sets of handles, as they stand now."""
        done = {h for f, h in zip(self.futures, self.handles) if f.done()}
        return done, set(self.handles) - done

    def shape(self, values: list[Any]) -> Any:
        """Return ``values`` (one per leaf) in the caller's shape: a dict or a list."""
        if self.is_dict:
            return {key: _build(node, values) for key, node in self._tree}
        return [_build(node, values) for _, node in self._tree]


def _needs_this_thread(item: Any) -> bool:
    """True when finishing ``item`` needs the event loop running in this thread."""
    loop = running_loop()
    if loop is None:
        return False
    if isinstance(item, Future):
        return item._home is loop and not item.done()
    return asyncio.isfuture(item) and item.get_loop() is loop


def _build(node: Any, values: list[Any]) -> Any:
    if isinstance(node, int):
        return values[node]
    kind, pairs = node
    if kind is dict:
        return {key: _build(child, values) for key, child in pairs}
    return kind(_build(child, values) for _, child in pairs)


def _outcome(future: Future[Any]) -> tuple[Any, BaseException | None]:
    """``(value, None)`` or ``(None, exception)`` of a finished future."""
    if future.cancelled():
        return None, CancelledError()
    exc = future.exception()
    return (None, exc) if exc is not None else (future.result(), None)


def _values(batch: _Batch, return_exceptions: bool) -> list[Any]:
    """Leaf results in input order; raises the first failure unless ``return_exceptions``."""
    values: list[Any] = []
    for future in batch.futures:
        value, exc = _outcome(future)
        if exc is not None and not return_exceptions:
            raise exc
        values.append(value if exc is None else exc)
    return values


def _raised(future: Future[Any]) -> bool:
    # FIRST_EXCEPTION as in concurrent.futures: a cancellation is not an exception.
    return not future.cancelled() and future.exception() is not None


def _failed(future: Future[Any]) -> bool:
    return future.cancelled() or future.exception() is not None


_STOPS: dict[str, _Stop | None] = {
    ALL_COMPLETED: None,
    FIRST_COMPLETED: lambda _future: True,
    FIRST_EXCEPTION: _raised,
}


# ---------------------------------------------------------------------------
# Consuming completions (shared), and the two ways to block for them
# ---------------------------------------------------------------------------


class _Run:
    """Counts completions, reports progress, and says when the wait is over.

    As a context manager it ends the progress report: green on success, grey on
    a timeout or cancellation, red on any other error.
    """

    __slots__ = ("futures", "left", "sink", "stop", "trigger")

    def __init__(self, batch: _Batch, stop: _Stop | None, progress: ProgressOption, desc: str):
        self.futures = batch.futures
        self.stop = stop
        self.left = len(batch.futures)
        self.trigger: Future[Any] | None = None  # the future that met ``stop``
        self.sink: _ProgressSink | None = None
        if progress is not None and progress is not False and self.left:
            from .progress import make_progress  # lazily: progress pulls in tqdm

            self.sink = make_progress(progress, self.left, desc)

    def step(self, index: int) -> bool:
        """Record that leaf ``index`` finished; True when the wait is over."""
        self.left -= 1
        if self.sink is not None:
            self.sink.advance()
        future = self.futures[index]
        if self.stop is not None and self.stop(future):
            self.trigger = future
            return True
        return self.left == 0

    def __enter__(self) -> _Run:
        return self

    def __exit__(
        self, tp: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.sink is None:
            return
        if tp is None:
            self.sink.done(True)
        elif issubclass(tp, (TimeoutError, GeneratorExit, asyncio.CancelledError)):
            self.sink.stop("Timeout" if issubclass(tp, TimeoutError) else "Stopped")
        else:
            self.sink.done(False)


def _timed_out(timeout: float | None, api: str) -> TimeoutError:
    return WaitTimeoutError(f"{api}() timed out: futures not done within {timeout} s")


def _put(inbox: queue.SimpleQueue[int], index: int, _future: Future[Any]) -> None:
    inbox.put(index)


def _completions(
    futures: list[Future[Any]], timeout: float | None, api: str = "wait"
) -> Iterator[int]:
    """Yield leaf indices as their futures finish, blocking this thread in between.

    Raises ``TimeoutError`` once ``timeout`` seconds have passed.
    """
    inbox: queue.SimpleQueue[int] = queue.SimpleQueue()
    for index, future in enumerate(futures):
        future.add_done_callback(partial(_put, inbox, index))
    deadline = None if timeout is None else time.monotonic() + timeout
    for _ in futures:
        try:
            if deadline is None:
                index = inbox.get()
            else:
                index = inbox.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise _timed_out(timeout, api) from None
        yield index


class _LoopInbox:
    """Leaf indices delivered to the running loop (asyncio's, or trio's through
    anyio); ``get()`` awaits the next.

    ``get`` raises ``TimeoutError`` once ``anyio.current_time()`` passes ``deadline``.
    """

    __slots__ = ("event", "inbox", "items", "thread")

    def __init__(self) -> None:
        self.inbox = current_inbox()
        self.thread = threading.get_ident()
        self.items: collections.deque[int] = collections.deque()
        self.event: anyio.Event | None = None

    def __call__(self, index: int, _future: Future[Any]) -> None:
        if threading.get_ident() == self.thread:
            self._push(index)
        else:
            self.inbox.post(self._push, index)  # one wake-up per burst

    def _push(self, index: int) -> None:
        self.items.append(index)
        if self.event is not None:
            self.event.set()

    async def get(self, deadline: float | None, timeout: float | None, api: str) -> int:
        while not self.items:
            remaining = None if deadline is None else deadline - anyio.current_time()
            if remaining is not None and remaining <= 0:
                raise _timed_out(timeout, api)
            self.event = anyio.Event()
            with anyio.move_on_after(remaining):
                await self.event.wait()
        return self.items.popleft()


def _drive(run: _Run, timeout: float | None, api: str) -> None:
    for index in _completions(run.futures, timeout, api):
        if run.step(index):
            return


async def _adrive(run: _Run, timeout: float | None, api: str) -> None:
    inbox = _LoopInbox()
    for index, future in enumerate(run.futures):
        callback = partial(inbox, index)
        callback.threadsafe = True  # type: ignore[attr-defined]  # it hops to the loop itself
        future.add_done_callback(callback)
    deadline = None if timeout is None else anyio.current_time() + timeout
    for _ in run.futures:
        if run.step(await inbox.get(deadline, timeout, api)):
            return


# ---------------------------------------------------------------------------
# The public functions
# ---------------------------------------------------------------------------


def wait(
    fs: Any,
    *futs: Any,
    timeout: float | None = None,
    return_when: ReturnWhen | str = ReturnWhen.ALL_COMPLETED,
    polling: PollingAlgorithm | str = PollingAlgorithm.Adaptive,
    progress: ProgressOption = None,
    recurse: bool = False,
) -> tuple[set[Future[Any]], set[Future[Any]]]:
    """Block until ``return_when`` holds and return ``(done, not_done)`` sets of futures.

    ``fs`` is a list, tuple, set or dict (its values), a single future, or the
    first of several futures given positionally; non-futures count as finished
    values, other futures are wrapped with :func:`wrap_future`; ``recurse=True``
    also looks inside nested collections.  ``FIRST_EXCEPTION`` also returns once
    everything succeeded.  ``polling`` is accepted for compatibility and ignored:
    completions wake the caller.  ``progress`` is True, a dict of ``ProgressBar``
    options, or ``f(completed, total, elapsed)``.

    Raises ``TimeoutError`` when the condition is not met within ``timeout``,
    ``ValueError`` for a bad ``return_when``/``polling``/``progress`` or a
    collection plus extra futures, and ``RuntimeError`` for coroutines or
    futures that need the calling thread's own event loop.
    """
    stop = _STOPS[ReturnWhen.parse(return_when).name]
    PollingAlgorithm.parse(polling)
    batch = _Batch(fs, futs, recurse=recurse, aio=False)
    with _Run(batch, stop, progress, "Waiting") as run:
        _drive(run, timeout, "wait")
    return batch.split()


def gather(
    fs: Any,
    *futs: Any,
    return_exceptions: bool = False,
    iter: bool = False,
    timeout: float | None = None,
    polling: PollingAlgorithm | str = PollingAlgorithm.Adaptive,
    progress: ProgressOption = None,
    recurse: bool = False,
    fail_fast: bool = False,
) -> Any:
    """Block until every future finished and return their results in the input's shape.

    A dict gives a dict with the same keys, anything else a list in input order
    (nested shapes kept with ``recurse=True``).  Inputs are read as by
    :func:`wait`.  A failure is raised (the first in input order; with
    ``fail_fast=True`` the first to happen, at once) unless
    ``return_exceptions=True`` puts the exceptions in place (a cancelled future
    gives a ``CancelledError`` instance).  ``iter=True`` returns a generator of
    ``(index or key, result)`` pairs in completion order instead (the key is a
    tuple path for a leaf nested under ``recurse=True``).

    Raises ``TimeoutError`` when not done within ``timeout``, ``ValueError`` and
    ``RuntimeError`` as :func:`wait` does.
    """
    PollingAlgorithm.parse(polling)
    batch = _Batch(fs, futs, recurse=recurse, aio=False)
    if iter:
        return _gather_iter(batch, return_exceptions, timeout, progress)
    stop = _failed if fail_fast and not return_exceptions else None
    with _Run(batch, stop, progress, "Gathering") as run:
        _drive(run, timeout, "gather")
        if run.trigger is not None:
            run.trigger.result()  # raises the failure that stopped the run
        return batch.shape(_values(batch, return_exceptions))


def _gather_iter(
    batch: _Batch, return_exceptions: bool, timeout: float | None, progress: ProgressOption
) -> Iterator[tuple[Any, Any]]:
    with _Run(batch, None, progress, "Gathering") as run:
        for index in _completions(batch.futures, timeout, "gather"):
            run.step(index)
            value, exc = _outcome(batch.futures[index])
            if exc is not None and not return_exceptions:
                raise exc
            yield batch.keys[index], value if exc is None else exc


async def async_wait(
    fs: Any,
    *futs: Any,
    timeout: float | None = None,
    return_when: ReturnWhen | str = ReturnWhen.ALL_COMPLETED,
    progress: ProgressOption = None,
    recurse: bool = False,
) -> tuple[set[Any], set[Any]]:
    """Await until ``return_when`` holds and return ``(done, not_done)`` sets.

    Takes what :func:`wait` takes plus coroutines and other awaitables (run as
    tasks on the running loop).  Each input is reported as itself when it is a
    future (library, asyncio or ``concurrent.futures``), as its task when it is a
    coroutine, as a finished library future when it is a plain value.
    ``FIRST_EXCEPTION`` also returns once everything succeeded.

    Raises ``TimeoutError`` when the condition is not met within ``timeout`` and
    ``ValueError`` as :func:`wait` does.
    """
    stop = _STOPS[ReturnWhen.parse(return_when).name]
    batch = _Batch(fs, futs, recurse=recurse, aio=True)
    with _Run(batch, stop, progress, "Waiting") as run:
        await _adrive(run, timeout, "async_wait")
    return batch.split()


async def async_gather(
    fs: Any,
    *futs: Any,
    return_exceptions: bool = False,
    timeout: float | None = None,
    progress: ProgressOption = None,
    recurse: bool = False,
    fail_fast: bool = False,
) -> Any:
    """Await every input and return the results as :func:`gather` does.

    Takes what :func:`async_wait` takes; plain values come back unchanged.  On a
    timeout, or when the awaiting task is cancelled, the unfinished inputs are
    cancelled.

    Raises the first failure (see :func:`gather`), ``TimeoutError`` when not
    done within ``timeout``, and ``ValueError`` as :func:`wait` does.
    """
    batch = _Batch(fs, futs, recurse=recurse, aio=True)
    stop = _failed if fail_fast and not return_exceptions else None
    with _Run(batch, stop, progress, "Gathering") as run:
        try:
            await _adrive(run, timeout, "async_gather")
        except (TimeoutError, asyncio.CancelledError, anyio.get_cancelled_exc_class()):
            for future in batch.futures:
                future.cancel()
            raise
        if run.trigger is not None:
            run.trigger.result()  # raises the failure that stopped the run
        return batch.shape(_values(batch, return_exceptions))
