"""wait/gather/async_* over futures of real workers in every mode, sync included.

The detailed behaviour is tested in test_wait.py, test_gather.py and
test_async_wait.py (those need futures that can still be pending, so sync mode,
whose futures are done when the call returns, is covered here).
"""

from __future__ import annotations

from typing import Any

import pytest

from aioconc import (
    FIRST_EXCEPTION,
    async_gather,
    async_wait,
    gather,
    wait,
    worker,
)

from ._workers import Counter

worker(Counter)


@pytest.fixture
def handle(worker_mode: str) -> Any:
    with Counter.options(mode=worker_mode).init() as h:  # type: ignore[attr-defined]
        yield h


def test_gather_orders_results_and_keeps_shapes(handle: Any) -> None:
    futures = [handle.echo(i) for i in range(5)]
    assert gather(futures) == [((i,), {}) for i in range(5)]
    assert gather({"a": handle.echo("a"), "b": 2}) == {"a": (("a",), {}), "b": 2}
    assert gather([[handle.echo(1)], {"k": handle.echo(2)}], recurse=True) == [
        [((1,), {})],
        {"k": ((2,), {})},
    ]


def test_gather_raises_first_failure_or_returns_it(handle: Any) -> None:
    with pytest.raises(ValueError, match="boom"):
        gather([handle.inc(), handle.fail()])
    results = gather([handle.inc(), handle.fail()], return_exceptions=True)
    assert isinstance(results[1], ValueError)


def test_wait_all_and_first_exception(handle: Any) -> None:
    futures = [handle.inc() for _ in range(3)]
    done, not_done = wait(futures)
    assert done == set(futures)
    assert not not_done
    done, _ = wait([handle.fail(), handle.inc()], return_when=FIRST_EXCEPTION)
    assert any(f.exception() is not None for f in done)


def test_gather_iter_yields_every_index(handle: Any) -> None:
    pairs = dict(gather([handle.echo(i) for i in range(4)], iter=True))
    assert pairs == {i: ((i,), {}) for i in range(4)}


@pytest.mark.anyio
async def test_async_gather_and_wait(handle: Any) -> None:
    assert await async_gather([handle.echo(1), handle.ainc(), 5]) == [((1,), {}), 1, 5]
    done, pending = await async_wait([handle.inc(), handle.inc()])
    assert len(done) == 2
    assert not pending
