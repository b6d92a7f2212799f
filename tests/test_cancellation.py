"""Cancellation and timeouts as asyncio, anyio and the standard library see them.

asyncio.timeout() (3.11, 3.12) and TaskGroup turn a cancellation into a timeout,
or leave it out of their errors, only when its type *is* asyncio.CancelledError;
on 3.10 asyncio.TimeoutError and concurrent.futures.TimeoutError are not yet the
builtin TimeoutError.  These tests pin down what leaves ``await`` in each case:

* the awaiting task cancelled (a timeout, a task group, task.cancel()): its own
  asyncio.CancelledError, and the call is cancelled too;
* the call cancelled by someone else (fut.cancel()): aioconc.CancelledError, from
  ``await`` and from ``result()`` alike.

In asyncio mode the awaited call is a running ``async def`` method (it can be
interrupted); in the other modes it waits behind a call that holds the worker, so
it has not started and cancelling it means it never runs.  A sync call is over
before anyone can await it, and a Ray actor call once submitted is neither held
back nor taken back, so neither mode has a call in flight that a timeout could
cancel.
"""

from __future__ import annotations

import asyncio
import builtins
import concurrent.futures
import sys
import threading
from collections.abc import Iterator
from typing import Any

import anyio
import pytest

import aioconc
from aioconc import CallTimeoutError, worker

from ._workers import Counter

worker(Counter)

needs_timeout_cm = pytest.mark.skipif(
    sys.version_info < (3, 11), reason="asyncio.timeout() and TaskGroup are 3.11+"
)


@pytest.fixture
def handle(worker_mode: str) -> Iterator[Any]:
    if worker_mode in ("sync", "ray"):
        pytest.skip("no call that a timeout could cancel (see the module docstring)")
    with Counter.options(mode=worker_mode).init() as h:  # type: ignore[attr-defined]
        yield h


@pytest.fixture
def in_flight(worker_mode: str, handle: Any, gate: threading.Event) -> Any:
    """Makes a call that stays in flight until ``gate`` opens (see the module docstring)."""

    def make() -> Any:
        if worker_mode == "asyncio":
            return handle.await_for(gate, "late")
        handle.wait_for(gate)  # holds the worker
        return handle.echo("late")

    return make


async def awaiting(fut: Any) -> tuple[asyncio.Task[None], list[BaseException]]:
    """A task suspended in ``await fut``, and the list that gets what leaves the ``await``."""
    seen: list[BaseException] = []
    started = asyncio.Event()

    async def awaiter() -> None:
        started.set()
        try:
            await fut
        except BaseException as exc:
            seen.append(exc)
            raise

    task = asyncio.ensure_future(awaiter())
    await started.wait()  # set in the step that goes on to suspend in ``await fut``
    return task, seen


def assert_call_cancelled(fut: Any) -> None:
    assert fut.cancelled()
    with pytest.raises(aioconc.CancelledError):
        fut.result(timeout=5)


@pytest.mark.anyio
@pytest.mark.asyncio_only
@needs_timeout_cm
async def test_asyncio_timeout_raises_timeout_error_and_cancels_the_call(in_flight: Any) -> None:
    fut = in_flight()

    async def timed() -> None:
        async with asyncio.timeout(0):  # type: ignore[attr-defined]  # expires next turn
            await fut

    with pytest.raises(TimeoutError) as caught:
        await timed()
    assert type(caught.value) is TimeoutError
    assert type(caught.value.__context__) is asyncio.CancelledError
    assert_call_cancelled(fut)


@pytest.mark.anyio
@pytest.mark.asyncio_only
async def test_asyncio_wait_for_raises_timeout_error_and_cancels_the_call(in_flight: Any) -> None:
    fut = in_flight()
    with pytest.raises(asyncio.TimeoutError):  # the builtin TimeoutError from 3.11 on
        await asyncio.wait_for(fut, 0.01)
    assert_call_cancelled(fut)


@pytest.mark.anyio
@pytest.mark.asyncio_only
@needs_timeout_cm
async def test_nested_asyncio_timeout_raises_from_the_outer_one(in_flight: Any) -> None:
    fut = in_flight()
    scopes: list[Any] = []

    async def nested() -> None:
        async with asyncio.timeout(0) as outer:  # type: ignore[attr-defined]
            scopes.append(outer)
            async with asyncio.timeout(3600) as inner:  # type: ignore[attr-defined]
                scopes.append(inner)
                await fut

    with pytest.raises(TimeoutError):
        await nested()
    outer, inner = scopes
    assert outer.expired()
    assert not inner.expired()
    assert_call_cancelled(fut)


@pytest.mark.anyio
@pytest.mark.asyncio_only
async def test_cancelling_the_awaiting_task_raises_its_own_cancellation(in_flight: Any) -> None:
    fut = in_flight()
    task, seen = await awaiting(fut)
    task.cancel("handler cancelled")
    await asyncio.wait([task])
    assert task.cancelled()
    [exc] = seen
    assert type(exc) is asyncio.CancelledError
    assert exc.args == ("handler cancelled",)
    assert_call_cancelled(fut)


@pytest.mark.anyio
@pytest.mark.asyncio_only
@needs_timeout_cm
async def test_task_group_sees_an_ordinary_cancellation_of_its_body(in_flight: Any) -> None:
    fut = in_flight()

    async def fail() -> None:
        raise ValueError("sibling failed")

    async def body() -> None:
        async with asyncio.TaskGroup() as tg:  # type: ignore[attr-defined]
            tg.create_task(fail())
            await fut

    with pytest.raises(builtins.BaseExceptionGroup) as caught:  # type: ignore[attr-defined]
        await body()
    # Only the sibling's error: the body's cancellation is not one of them.
    assert [type(e) for e in caught.value.exceptions] == [ValueError]
    assert_call_cancelled(fut)


@pytest.mark.anyio
@pytest.mark.asyncio_only
@needs_timeout_cm
async def test_task_group_child_awaiting_a_call_ends_cancelled(in_flight: Any) -> None:
    fut = in_flight()
    children: list[asyncio.Task[Any]] = []

    async def child() -> None:
        await fut

    async def fail() -> None:
        # Tasks start in creation order: the child is suspended in ``await fut``.
        raise ValueError("sibling failed")

    async def group() -> None:
        async with asyncio.TaskGroup() as tg:  # type: ignore[attr-defined]
            children.append(tg.create_task(child()))
            tg.create_task(fail())

    with pytest.raises(builtins.BaseExceptionGroup) as caught:  # type: ignore[attr-defined]
        await group()
    assert [type(e) for e in caught.value.exceptions] == [ValueError]
    assert children[0].cancelled()
    assert_call_cancelled(fut)


@pytest.mark.anyio
@pytest.mark.asyncio_only
async def test_call_cancelled_by_someone_else_raises_aioconc_cancelled_error(
    in_flight: Any,
) -> None:
    fut = in_flight()
    task, seen = await awaiting(fut)
    assert fut.cancel()
    await asyncio.wait([task])
    assert task.cancelled()  # aioconc's CancelledError is also asyncio's
    [exc] = seen
    assert type(exc) is aioconc.CancelledError
    assert_call_cancelled(fut)


@pytest.mark.anyio
@pytest.mark.asyncio_only
@needs_timeout_cm
async def test_timeout_does_not_claim_a_call_cancelled_by_someone_else(in_flight: Any) -> None:
    fut = in_flight()
    asyncio.get_running_loop().call_soon(fut.cancel)
    with pytest.raises(aioconc.CancelledError):
        async with asyncio.timeout(3600) as cm:
            await fut
    assert not cm.expired()


@pytest.mark.anyio
async def test_anyio_cancel_scope_cancels_the_call(in_flight: Any) -> None:
    """The same under anyio's scopes, on asyncio, uvloop and trio."""
    fut = in_flight()
    with anyio.move_on_after(0) as scope:
        await fut
    assert scope.cancelled_caught
    assert_call_cancelled(fut)
    fut = in_flight()
    with pytest.raises(TimeoutError):
        with anyio.fail_after(0):
            await fut
    assert_call_cancelled(fut)


def test_result_timeout_is_every_timeout_error_the_standard_library_has(
    in_flight: Any,
) -> None:
    # On 3.10 these are three classes; from 3.11 on, one.
    fut = in_flight()
    for kind in (TimeoutError, concurrent.futures.TimeoutError, asyncio.TimeoutError):
        with pytest.raises(kind):
            fut.result(timeout=0.001)
    assert fut.cancel() or fut.running()


def test_call_timeout_error_is_every_timeout_error_the_standard_library_has() -> None:
    for kind in (TimeoutError, concurrent.futures.TimeoutError, asyncio.TimeoutError):
        assert issubclass(CallTimeoutError, kind)
