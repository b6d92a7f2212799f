"""The middleware chain: build_chain, the empty-chain fast path, FakeBackend."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from aioconc._call import Call
from aioconc._chain import Handler, build_chain
from aioconc.testing import FakeBackend


def test_empty_chain_is_none_so_calls_go_straight_to_the_backend() -> None:
    async def terminal(call: Call) -> Any:
        return None

    assert build_chain([], terminal) is None


def tagging(tag: str, log: list[str]) -> Any:
    def make(next_: Handler) -> Handler:
        async def stage(call: Call) -> Any:
            log.append(f"{tag}>")
            result = await next_(call)
            log.append(f"<{tag}")
            return f"{tag}({result})"

        return stage

    return make


def test_stages_fold_outermost_first() -> None:
    log: list[str] = []
    backend = FakeBackend(lambda call: call.args[0])
    handle = backend.handle(stages=[tagging("a", log), tagging("b", log)])
    assert handle.anything("x").result(10) == "a(b(x))"
    assert log == ["a>", "b>", "<b", "<a"]
    handle.stop()


def test_chain_attempts_are_fresh_calls_and_counted() -> None:
    seen: list[Call] = []

    def retry_once(next_: Handler) -> Handler:
        async def stage(call: Call) -> Any:
            try:
                return await next_(call)
            except ValueError:
                return await next_(call)

        return stage

    def handler(call: Call) -> Any:
        seen.append(call)
        if len(seen) == 1:
            raise ValueError("first attempt fails")
        return "second"

    handle = FakeBackend(handler).handle(stages=[retry_once])
    fut = handle.work()
    assert fut.result(10) == "second"
    assert fut.attempts == 2
    assert len({id(c.future) for c in seen}) == 2
    assert fut not in [c.future for c in seen]
    handle.stop()


def test_exception_from_the_chain_fails_the_call() -> None:
    def broken(next_: Handler) -> Handler:
        async def stage(call: Call) -> Any:
            raise KeyError("stage")

        return stage

    handle = FakeBackend(lambda call: 1).handle(stages=[broken])
    with pytest.raises(KeyError, match="stage"):
        handle.work().result(10)
    handle.stop()


@pytest.mark.anyio
@pytest.mark.asyncio_only
async def test_cancel_a_call_inside_the_chain() -> None:
    entered = asyncio.Event()

    async def handler(call: Call) -> Any:
        entered.set()
        await asyncio.Event().wait()  # never finishes by itself

    def passthrough(next_: Handler) -> Handler:
        async def stage(call: Call) -> Any:
            return await next_(call)

        return stage

    backend = FakeBackend(handler)
    handle = backend.handle(stages=[passthrough])
    fut = handle.work()
    await entered.wait()
    assert fut.running()
    assert fut.cancel()
    with pytest.raises(asyncio.CancelledError):
        await fut
    attempt = backend.workers[0].calls[0].future
    await asyncio.wait_for(asyncio.gather(attempt, return_exceptions=True), 10)
    assert attempt.cancelled()  # the attempt inside the chain was cancelled too
    await handle.astop()
