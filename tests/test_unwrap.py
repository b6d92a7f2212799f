"""CONFORMANCE "Future unwrapping" (178-184)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections import namedtuple
from typing import Any

import pytest

from aioconc import Worker
from aioconc._backends import available_modes
from aioconc._enums import ExecutionMode
from aioconc._future import Future
from aioconc._sync_future import SyncFuture
from aioconc._unwrap import needs_unwrap

Pair = namedtuple("Pair", "a b")

# Ray's own test suite covers it; starting Ray here would dominate this module's time.
MODES = [m.name.lower() for m in available_modes() if m is not ExecutionMode.Ray]


@pytest.fixture(params=MODES)
def worker_mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class Echo(Worker):
    def echo(self, *args: Any, **kwargs: Any) -> Any:
        return args, kwargs

    def value(self, x: Any) -> Any:
        return x

    def wait_then(self, gate: threading.Event, x: Any) -> Any:
        if not gate.wait(30):
            raise TimeoutError("gate never opened")
        return x

    def fail(self) -> None:
        raise KeyError("upstream")

    def is_future(self, x: Any) -> bool:
        return isinstance(x, Future)


def start(mode: str, **options: Any) -> Any:
    return Echo.options(mode=mode, **options).init()


def test_a_future_argument_is_replaced_by_its_result(worker_mode: str) -> None:
    with start(worker_mode) as w:
        assert w.value(w.value(21)).result(10) == 21


@pytest.mark.parametrize(("upstream", "downstream"), [("sync", "thread"), ("thread", "asyncio")])
def test_unwrapping_between_modes(upstream: str, downstream: str) -> None:
    with start(upstream) as a, start(downstream) as b:
        assert b.value(a.value("x")).result(10) == "x"


def test_nested_futures_at_any_depth(worker_mode: str) -> None:
    with start(worker_mode) as w:
        f = w.value(1)
        g = w.value(2)
        args, kwargs = w.echo([f, (g, {"k": [f]})], Pair(f, 3), key={"deep": {g}}, plain=5).result(
            10
        )
        assert args == ([1, (2, {"k": [1]})], Pair(1, 3))
        assert kwargs == {"key": {"deep": {2}}, "plain": 5}


def test_a_failed_input_fails_the_downstream_call(worker_mode: str) -> None:
    with start(worker_mode) as w:
        downstream = w.value(w.fail())  # the submitting call does not raise
        with pytest.raises(KeyError, match="upstream"):
            downstream.result(10)


def test_unwrap_futures_false_passes_futures_through() -> None:
    with start("thread", unwrap_futures=False) as w:
        assert w.is_future(w.value(1)).result(10) is True


def test_pending_inputs_do_not_block_the_submitter(gate: threading.Event) -> None:
    with start("thread") as producer, start("thread") as consumer:
        slow = producer.wait_then(gate, 7)
        downstream = consumer.value(slow)  # returns at once
        assert not downstream.done()
        gate.set()
        assert downstream.result(10) == 7


def test_cancelled_downstream_never_runs(gate: threading.Event) -> None:
    ran: list[Any] = []
    with start("thread") as w:
        slow = w.wait_then(gate, 1)
        downstream = w.echo(slow, ran)
        assert downstream.cancel()
        gate.set()
        assert slow.result(10) == 1
        assert w.value(0).result(10) == 0
        assert downstream.cancelled()


def test_cancelled_input_cancels_the_downstream_call(gate: threading.Event) -> None:
    with start("thread") as w:
        blocker = w.wait_then(gate, 0)
        queued = w.value(1)
        downstream = w.value(queued)
        assert queued.cancel()
        gate.set()
        blocker.result(10)
        assert downstream.cancelled()


def test_standard_library_futures_are_unwrapped_too() -> None:
    cf: concurrent.futures.Future[int] = concurrent.futures.Future()
    with start("thread") as w:
        downstream = w.value([cf])
        cf.set_result(3)
        assert downstream.result(10) == [3]


@pytest.mark.anyio
@pytest.mark.asyncio_only
async def test_asyncio_futures_are_unwrapped_without_blocking_the_loop() -> None:
    loop = asyncio.get_running_loop()
    af: asyncio.Future[int] = loop.create_future()
    w = start("asyncio")
    async with w:
        downstream = w.value(af)
        await asyncio.sleep(0)
        assert not downstream.done()
        af.set_result(9)
        assert await downstream == 9


def test_needs_unwrap_scan() -> None:
    done = SyncFuture(result_value=1)
    assert not needs_unwrap((1, "a", 2.0, None, [1, 2], {"a": 1}), {"k": (3,)})
    assert needs_unwrap((done,), {})
    assert needs_unwrap(([{"a": (done,)}],), {})
    assert needs_unwrap((), {"k": {done}})
    assert not needs_unwrap((object(),), {})
