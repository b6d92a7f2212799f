"""contextvars travel with a call into sync, asyncio and thread workers (DESIGN §3)."""

from __future__ import annotations

import contextvars

import pytest

from aioconc import Worker

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="none")

IN_PROCESS = ["sync", "asyncio", "thread"]


class Reader(Worker):
    def read(self) -> str:
        return request_id.get()

    async def read_async(self) -> str:
        return request_id.get()

    def overwrite(self) -> str:
        request_id.set("set-by-method")
        return request_id.get()


@pytest.mark.anyio
@pytest.mark.parametrize("mode", IN_PROCESS)
async def test_a_context_var_set_before_await_is_seen_by_the_method(mode: str) -> None:
    async with Reader.options(mode=mode).init() as worker:
        token = request_id.set("req-42")
        try:
            assert await worker.read() == "req-42"
            assert await worker.read_async() == "req-42"
        finally:
            request_id.reset(token)
        # Each call takes the context of the moment it is made.
        assert await worker.read() == "none"


@pytest.mark.parametrize("mode", IN_PROCESS)
def test_a_script_s_context_reaches_the_method(mode: str) -> None:
    with Reader.options(mode=mode).init() as worker:
        token = request_id.set("script")
        try:
            assert worker.read().result(10) == "script"
            assert worker.read_async().result(10) == "script"
        finally:
            request_id.reset(token)


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
        token = request_id.set("chained")
        try:
            assert await worker.read() == "chained"
            assert await worker.read_async() == "chained"
        finally:
            request_id.reset(token)
