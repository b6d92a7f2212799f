"""``wrap_future``: a library :class:`~aioconc.Future` for any future-like object."""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
from typing import Any

from ._anyloop import in_async_code
from ._coroutine_task import start_awaitable
from ._future import Future
from ._runtime import inbox_for, running_loop
from ._sync_future import SyncFuture

__all__ = ["wrap_future"]


def _copy(fut: Future[Any], src: Any) -> None:
    """Finish ``fut`` as ``src`` (a finished concurrent or asyncio future) ended."""
    if src.cancelled():
        fut._set_cancelled()
        return
    exc = src.exception()
    if exc is not None:
        fut._set_exception(exc)
    else:
        fut._set_result(src.result())


def _from_concurrent(cf: concurrent.futures.Future[Any]) -> Future[Any]:
    fut: Future[Any] = Future()
    fut.add_done_callback(lambda f: cf.cancel() if f.cancelled() else None)
    cf.add_done_callback(functools.partial(_copy, fut))
    return fut


def _from_asyncio(af: asyncio.Future[Any]) -> Future[Any]:
    fut: Future[Any] = Future()
    loop = af.get_loop()

    def cancel_source(f: Future[Any]) -> None:
        if f.cancelled() and not af.done():
            if running_loop() is loop:
                af.cancel()
            else:
                inbox_for(loop).post(af.cancel)

    if af.done():
        _copy(fut, af)  # already finished: done at once, not a loop turn later
    else:
        fut.add_done_callback(cancel_source)
        af.add_done_callback(functools.partial(_copy, fut))
    return fut


def wrap_future(obj: Any) -> Future[Any]:
    """Return a library :class:`Future` for ``obj``.

    * a library future: ``obj`` itself;
    * a ``concurrent.futures.Future`` or an ``asyncio`` future/task: a future
      with the same outcome (cancelling either cancels the other);
    * a coroutine: scheduled as a task on the running loop, asyncio's or trio's
      (``RuntimeError`` outside a running loop);
    * anything else: an already finished future whose result is ``obj``.
    """
    if isinstance(obj, Future):
        return obj
    if isinstance(obj, concurrent.futures.Future):
        return _from_concurrent(obj)
    if asyncio.isfuture(obj):
        return _from_asyncio(obj)
    if asyncio.iscoroutine(obj):
        loop = running_loop()
        if loop is not None:
            return _from_asyncio(loop.create_task(obj))
        if not in_async_code():
            obj.close()
            raise RuntimeError(
                "Cannot schedule coroutine: wrap_future(coroutine) found no running event loop"
            )
        future: Future[Any] = start_awaitable(obj)  # under trio: a task of its own
        return future
    return SyncFuture(result_value=obj)
