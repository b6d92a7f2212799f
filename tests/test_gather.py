"""gather(): CONFORMANCE items 96-109."""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from aioconc._wait import gather
from tests._wait_helpers import MakeFuture
from tests._wait_helpers import future_factory as future_factory

SLOW = 5.0  # long enough never to finish during a test; cancelled at teardown


def test_results_in_input_order(future_factory: MakeFuture) -> None:
    # the first future finishes last
    futures = [future_factory(i, delay=0.05 * (4 - i)) for i in range(5)]
    assert gather(futures) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("collection", [tuple, set])
def test_tuple_and_set_give_lists(future_factory: MakeFuture, collection: type) -> None:
    result = gather(collection([future_factory(1), future_factory(2)]))
    assert isinstance(result, list)
    assert sorted(result) == [1, 2]


def test_dict_gives_dict(future_factory: MakeFuture) -> None:
    result = gather({"a": future_factory(1, delay=0.02), "b": future_factory(2), "c": 3})
    assert result == {"a": 1, "b": 2, "c": 3}
    assert list(result) == ["a", "b", "c"]


def test_single_and_positional(future_factory: MakeFuture) -> None:
    assert gather(future_factory(1)) == [1]
    assert gather(future_factory(1), future_factory(2)) == [1, 2]


def test_empty() -> None:
    assert gather([]) == []
    assert gather({}) == {}
    assert list(gather([], iter=True)) == []


def test_raises_first_failure_in_input_order(future_factory: MakeFuture) -> None:
    # KeyError happens first in time, ValueError comes first in the input
    futures = [
        future_factory(1),
        future_factory(exc=ValueError("first in input"), delay=0.1),
        future_factory(exc=KeyError("first in time")),
    ]
    with pytest.raises(ValueError, match="first in input"):
        gather(futures)


def test_raises_the_futures_own_exception(future_factory: MakeFuture) -> None:
    error = RuntimeError("mine")
    with pytest.raises(RuntimeError) as info:
        gather([future_factory(exc=error)])
    assert info.value is error


def test_return_exceptions_in_place(future_factory: MakeFuture) -> None:
    error = ValueError("bad")
    result = gather(
        [future_factory(1), future_factory(exc=error), future_factory(3)], return_exceptions=True
    )
    assert result == [1, error, 3]
    assert result[1] is error


def test_timeout(future_factory: MakeFuture) -> None:
    start = time.monotonic()
    with pytest.raises(TimeoutError):
        gather([future_factory(1), future_factory(delay=SLOW)], timeout=0.1)
    assert time.monotonic() - start < 2.0


def _in_order(pairs: Iterator[Any], gate: threading.Event) -> list[Any]:
    """What ``pairs`` yields; the delayed futures finish (``gate``) only once the
    first item is out, so "completion order" does not depend on timing."""
    first = next(pairs)
    gate.set()
    return [first, *pairs]


def test_iter_yields_in_completion_order(future_factory: MakeFuture, gate: threading.Event) -> None:
    futures = [future_factory("late", delay=SLOW), future_factory("early")]
    assert _in_order(gather(futures, iter=True), gate) == [(1, "early"), (0, "late")]


def test_iter_dict_yields_keys(future_factory: MakeFuture, gate: threading.Event) -> None:
    pairs = gather({"a": future_factory(1, delay=SLOW), "b": future_factory(2)}, iter=True)
    assert _in_order(pairs, gate) == [("b", 2), ("a", 1)]


def test_iter_raises_on_first_failure(future_factory: MakeFuture) -> None:
    pairs = gather([future_factory(exc=KeyError("k")), future_factory(2, delay=SLOW)], iter=True)
    with pytest.raises(KeyError):
        next(pairs)


def test_iter_return_exceptions(future_factory: MakeFuture, gate: threading.Event) -> None:
    error = KeyError("k")
    futures = [future_factory(exc=error), future_factory(2, delay=SLOW)]
    pairs = gather(futures, iter=True, return_exceptions=True)
    assert _in_order(pairs, gate) == [(0, error), (1, 2)]


def test_iter_timeout(future_factory: MakeFuture) -> None:
    pairs = gather([future_factory(1), future_factory(delay=SLOW)], iter=True, timeout=0.2)
    assert next(pairs) == (0, 1)
    with pytest.raises(TimeoutError):
        next(pairs)


def test_iter_checks_arguments_at_call(future_factory: MakeFuture) -> None:
    with pytest.raises(ValueError):
        gather([future_factory(1)], future_factory(2), iter=True)


def test_recurse_keeps_nested_shapes(future_factory: MakeFuture) -> None:
    f = [future_factory(i, delay=0.01 * i) for i in range(6)]
    nested = [[f[0], f[1]], [f[2], f[3]], {"x": f[4], "y": (f[5], "plain")}]
    assert gather(nested, recurse=True) == [[0, 1], [2, 3], {"x": 4, "y": (5, "plain")}]
    assert gather({"k": [f[0], {"z": f[1]}]}, recurse=True) == {"k": [0, {"z": 1}]}


def test_recurse_iter_yields_paths(future_factory: MakeFuture, gate: threading.Event) -> None:
    nested = [[future_factory(1)], {"x": future_factory(2, delay=SLOW)}]
    pairs = gather(nested, recurse=True, iter=True)
    assert _in_order(pairs, gate) == [((0, 0), 1), ((1, "x"), 2)]


def test_without_recurse_nested_lists_are_values(future_factory: MakeFuture) -> None:
    inner = future_factory(1)
    assert gather([[inner]]) == [[inner]]


def test_progress_callable(future_factory: MakeFuture) -> None:
    calls: list[tuple[int, int]] = []
    futures = [future_factory(i) for i in range(4)]
    assert gather(futures, progress=lambda c, t, e: calls.append((c, t))) == [0, 1, 2, 3]
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]


def test_progress_callable_iter(future_factory: MakeFuture) -> None:
    calls: list[int] = []
    futures = [future_factory(i) for i in range(3)]
    list(gather(futures, iter=True, progress=lambda c, t, e: calls.append(c)))
    assert calls == [1, 2, 3]


@pytest.mark.parametrize("progress", [True, {"disable": True, "unit": "call"}])
def test_progress_bar(future_factory: MakeFuture, progress: Any) -> None:
    pytest.importorskip("aioconc.progress")
    assert gather([future_factory(1), future_factory(2)], progress=progress) == [1, 2]


def test_cancelled(future_factory: MakeFuture) -> None:
    f = future_factory(delay=SLOW)
    if not f.cancel():
        pytest.skip("this kind of future cannot be cancelled while pending")
    with pytest.raises(concurrent.futures.CancelledError):
        gather([future_factory(1), f])
    result = gather([future_factory(1), f], return_exceptions=True)
    assert result[0] == 1
    assert isinstance(result[1], concurrent.futures.CancelledError)


def test_fail_fast_raises_at_once(future_factory: MakeFuture) -> None:
    start = time.monotonic()
    with pytest.raises(ValueError):
        gather([future_factory(delay=SLOW), future_factory(exc=ValueError())], fail_fast=True)
    assert time.monotonic() - start < 2.0


def test_fail_fast_with_return_exceptions_waits_for_all(future_factory: MakeFuture) -> None:
    error = ValueError()
    futures = [future_factory(1, delay=0.1), future_factory(exc=error)]
    assert gather(futures, fail_fast=True, return_exceptions=True) == [1, error]


def test_mixed_kinds(future_factory: MakeFuture) -> None:
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        result = gather([future_factory("lib"), pool.submit(str, "cf"), "plain", None])
    assert result == ["lib", "cf", "plain", None]


def test_many_futures_burst(future_factory: MakeFuture) -> None:
    futures = [future_factory(i) for i in range(300)]
    assert gather(futures, timeout=30) == list(range(300))
