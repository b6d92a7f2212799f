"""contextvars travel with a call into sync, asyncio and thread workers (DESIGN §3), and
the registered ones (``carry_context``) into process and Ray workers too."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import pytest

from aioconc import SerializationError, Worker, carry_context, task
from tests import _carried

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="none")
carry_context(request_id)
# Registered too; its values in the tests below never pickle.
held: contextvars.ContextVar[Any] = contextvars.ContextVar("held", default=None)
carry_context(held)
# Never registered: it stays behind in process and Ray mode.
local_only: contextvars.ContextVar[str] = contextvars.ContextVar("local_only", default="unset")

IN_PROCESS = ["sync", "asyncio", "thread"]

T = TypeVar("T")


@contextmanager
def setting(var: contextvars.ContextVar[T], value: T) -> Iterator[None]:
    """``var`` set to ``value`` in the test's own context for the block, then reset."""
    token = var.set(value)
    try:
        yield
    finally:
        var.reset(token)


class Reader(Worker):
    def read(self) -> str:
        return request_id.get()

    async def read_async(self) -> str:
        return request_id.get()

    def overwrite(self) -> str:
        request_id.set("set-by-method")
        return request_id.get()

    def read_local(self) -> str:
        return local_only.get()

    def echo(self, value: Any) -> Any:
        return value

    def read_trace(self) -> str:
        return _carried.trace_id.get()


@pytest.mark.anyio
@pytest.mark.parametrize("mode", IN_PROCESS)
async def test_a_context_var_set_before_await_is_seen_by_the_method(mode: str) -> None:
    async with Reader.options(mode=mode).init() as worker:
        with setting(request_id, "req-42"):
            assert await worker.read() == "req-42"
            assert await worker.read_async() == "req-42"
        # Each call takes the context of the moment it is made.
        assert await worker.read() == "none"


@pytest.mark.parametrize("mode", IN_PROCESS)
def test_a_script_s_context_reaches_the_method(mode: str) -> None:
    with Reader.options(mode=mode).init() as worker, setting(request_id, "script"):
        assert worker.read().result(10) == "script"
        assert worker.read_async().result(10) == "script"


@pytest.mark.parametrize("mode", IN_PROCESS)
def test_what_a_method_sets_stays_with_the_call(mode: str) -> None:
    with Reader.options(mode=mode).init() as worker:
        assert worker.overwrite().result(10) == "set-by-method"
        assert request_id.get() == "none"
        assert worker.read().result(10) == "none"


@pytest.mark.anyio
@pytest.mark.parametrize("mode", IN_PROCESS)
async def test_context_travels_through_the_middleware_chain(mode: str) -> None:
    # A retry option gives the worker a chain: the attempt still sees the caller's value.
    async with Reader.options(mode=mode, num_retries=1).init() as worker:
        with setting(request_id, "chained"):
            assert await worker.read() == "chained"
            assert await worker.read_async() == "chained"


# ---------------------------------------------------------------------------
# Every mode: registered variables travel to process and Ray workers too
# ---------------------------------------------------------------------------


class PlainReader(Worker):
    """No ``async def`` method: a plain Ray actor hosts it (Reader gets an async one)."""

    def read(self) -> str:
        return request_id.get()


def read_request() -> str:
    return request_id.get()


async def aread_request() -> str:
    return request_id.get()


def with_request(value: str, fn: Any, *args: Any) -> Any:
    """``fn(*args)`` called with ``request_id`` set to ``value`` (in a context of its own)."""

    def call() -> Any:
        request_id.set(value)
        return fn(*args)

    return contextvars.copy_context().run(call)


def test_a_carried_variable_is_seen_by_the_method_in_every_mode(worker_mode: str) -> None:
    with Reader.options(mode=worker_mode).init() as worker:
        assert worker.read().result(30) == "none"
        with setting(request_id, "req-7"):
            assert worker.read().result(30) == "req-7"
            assert worker.read_async().result(30) == "req-7"
        # Set around the call only: the next call without a value sees the default.
        assert worker.read().result(30) == "none"
        assert worker.read_async().result(30) == "none"
    with PlainReader.options(mode=worker_mode).init() as plain:
        assert with_request("plain", lambda: plain.read().result(30)) == "plain"
        assert plain.read().result(30) == "none"


def test_what_a_method_sets_in_a_carried_call_stays_with_it(worker_mode: str) -> None:
    with Reader.options(mode=worker_mode).init() as worker:
        assert with_request("first", lambda: worker.overwrite().result(30)) == "set-by-method"
        assert worker.read().result(30) == "none"
        assert with_request("second", lambda: worker.read().result(30)) == "second"


def test_pool_calls_each_carry_their_own_value(worker_mode: str) -> None:
    if worker_mode in ("sync", "asyncio"):
        pytest.skip("a pool of several workers needs thread, process or ray mode")
    with Reader.options(mode=worker_mode, max_workers=2).init() as pool:
        futures = [with_request(f"r{i}", pool.read) for i in range(20)]
        assert [f.result(30) for f in futures] == [f"r{i}" for i in range(20)]
        assert pool.read_async().result(30) == "none"


@pytest.mark.parametrize("fn", [read_request, aread_request], ids=["def", "async-def"])
@pytest.mark.parametrize("serializer", ["cloudpickle", "json"])
def test_task_functions_see_the_carried_value(worker_mode: str, fn: Any, serializer: str) -> None:
    with task(mode=worker_mode, serializer=serializer)(fn) as remote:
        assert with_request("task-1", remote).result(30) == "task-1"
        assert remote().result(30) == "none"


def test_an_unpicklable_context_value_fails_only_that_call_naming_the_variable(
    worker_mode: str,
) -> None:
    if worker_mode not in ("process", "ray"):
        pytest.skip("values cross no process boundary in this mode")
    with Reader.options(mode=worker_mode).init() as worker:
        unpicklable = setting(held, threading.Lock())
        with unpicklable, pytest.raises(SerializationError, match=r"context variable 'held'.*lock"):
            worker.read().result(30)
        assert worker.read().result(30) == "none"  # the worker keeps serving


@pytest.mark.parametrize("serializer", ["json", "msgpack"])
def test_a_context_value_the_serializer_cannot_encode_names_the_variable(
    worker_mode: str, serializer: str
) -> None:
    if worker_mode not in ("process", "ray"):
        pytest.skip("values cross no process boundary in this mode")
    pytest.importorskip(serializer)
    with Reader.options(mode=worker_mode, serializer=serializer).init() as worker:
        assert with_request("coded", lambda: worker.read().result(30)) == "coded"
        assert with_request("coded", lambda: worker.read_async().result(30)) == "coded"
        with (
            setting(held, object()),
            pytest.raises(
                SerializationError, match=rf"context variable 'held'.*{serializer} serializer"
            ),
        ):
            worker.read().result(30)
        assert worker.read().result(30) == "none"


def test_an_unregistered_variable_stays_behind_in_a_worker_process() -> None:
    with Reader.options(mode="process").init() as worker, setting(local_only, "here"):
        assert worker.read_local().result(30) == "unset"
        assert worker.echo(local_only.get()).result(30) == "here"  # pass it instead


@pytest.mark.anyio
async def test_an_awaited_process_call_carries_the_value() -> None:
    async with Reader.options(mode="process").init() as worker:
        with setting(request_id, "awaited"):
            assert await worker.read() == "awaited"
            assert await worker.read_async() == "awaited"
        assert await worker.read() == "none"


def test_carry_context_takes_module_level_context_vars_only() -> None:
    with pytest.raises(TypeError, match="ContextVar"):
        carry_context("request_id")  # type: ignore[arg-type]
    hidden: contextvars.ContextVar[int] = contextvars.ContextVar("hidden")
    with pytest.raises(ValueError, match="'hidden' is not a module-level global"):
        carry_context(hidden)
    carry_context(request_id)  # again: nothing changes


def test_a_variable_of_another_module_registered_by_the_caller_reaches_the_worker(
    worker_mode: str,
) -> None:
    # Registered here, not by its own module: the worker finds it by module and name.
    carry_context(_carried.trace_id)
    with Reader.options(mode=worker_mode).init() as worker:
        with setting(_carried.trace_id, "t-1"):
            assert worker.read_trace().result(30) == "t-1"
        assert worker.read_trace().result(30) == "no-trace"
