"""``serializer="json"`` and ``"msgpack"`` at the process (and Ray) boundary."""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Iterator
from typing import Any

import pydantic
import pytest

from aioconc import Future, RemoteError, SerializationError, Worker, _codec, task
from aioconc._backends.process.child import _wire

SERIALIZERS = ["json", "msgpack"]
BOUNDARY_MODES = ["process", "ray"]


class Item(pydantic.BaseModel):
    name: str
    qty: int


class Store(Worker):
    def __init__(self, prefix: str = "", gate: Any = None) -> None:
        self.prefix = prefix
        # Given at construction (pickled), not to a call: json and msgpack
        # cannot carry an event.
        self.gate = gate

    def echo(self, value: Any) -> Any:
        return value

    def echo_when_open(self, value: Any) -> Any:
        if not self.gate.wait(30):
            raise TimeoutError("gate never opened")
        return value

    def restock(self, item: Item, extra: list[Item] | None = None) -> Item:
        assert isinstance(item, Item)  # validated back from its JSON form
        assert all(isinstance(i, Item) for i in extra or [])
        total = item.qty + sum(i.qty for i in extra or [])
        return Item(name=self.prefix + item.name, qty=total)

    def items(self, n: int) -> list[Item]:
        return [Item(name=f"i{k}", qty=k) for k in range(n)]

    def tags(self) -> set[str]:
        return {"a", "b"}

    def fail(self, key: str) -> None:
        raise KeyError(key)

    def fail_unknown(self) -> None:
        raise ValueError("bad value", 3)

    def kinds(self, blob: bytes) -> Any:
        return {"blob": blob, "tuple": (1, 2), "float": 1.5, "none": None}


@pytest.fixture(params=[(m, s) for m in BOUNDARY_MODES for s in SERIALIZERS], ids=str)
def boundary(request: pytest.FixtureRequest) -> tuple[str, str]:
    """A (mode, serializer) pair; Ray's is started when asked for."""
    mode, serializer = request.param
    if mode == "ray":
        if importlib.util.find_spec("ray") is None:
            pytest.skip("Ray is not installed")
        request.getfixturevalue("_ray_session")
    return mode, serializer


@pytest.fixture
def store(boundary: tuple[str, str]) -> Iterator[Any]:
    mode, serializer = boundary
    handle = Store.options(mode=mode, serializer=serializer).init("x-")
    yield handle
    handle.stop()


def test_plain_values_round_trip(store: Any) -> None:
    value = {"a": [1, 2.5, "s", None, True], "b": {"c": []}}
    assert store.echo(value).result() == value


def test_a_caller_blocked_in_result_gets_the_decoded_value(
    boundary: tuple[str, str], gate: threading.Event, monkeypatch: pytest.MonkeyPatch
) -> None:
    mode, serializer = boundary
    waiting: list[Future[Any]] = []  # the call whose result() opens the gate
    openers: list[threading.Thread] = []
    result = Future.result

    def open_the_gate_then_wait(self: Future[Any], timeout: float | None = None) -> Any:
        # The gate opens, from another thread, only as the caller goes into
        # result()'s wait: the value comes while it waits there.
        if waiting and self is waiting[0]:
            waiting.clear()
            assert not self.done()
            openers.append(threading.Thread(target=gate.set))
            openers[-1].start()
        return result(self, timeout)

    monkeypatch.setattr(Future, "result", open_the_gate_then_wait)
    # No submission queue in front (Ray's default has one), so the caller waits
    # on the backend's call itself, which may fetch the outcome in its thread.
    options = Store.options(mode=mode, serializer=serializer, max_queued_tasks=None)
    with options.init("x-", gate) as store:
        # Several times: whether the waiting thread or the backend's own thread
        # takes the outcome first is the backend's race, and both must decode it.
        for i in range(5):
            gate.clear()
            fut = store.echo_when_open({"k": [1, i]})  # no value before the gate opens
            waiting.append(fut)
            assert fut.result(30) == {"k": [1, i]}
            openers[-1].join(30)


def test_tuples_arrive_as_lists(store: Any) -> None:
    assert store.echo((1, (2, 3))).result() == [1, [2, 3]]


def test_pydantic_models_are_validated_back_on_both_sides(store: Any) -> None:
    result = store.restock(Item(name="bolt", qty=2), extra=[Item(name="nut", qty=3)]).result()
    assert isinstance(result, Item)
    assert result == Item(name="x-bolt", qty=5)
    listed = store.items(2).result()
    assert listed == [Item(name="i0", qty=0), Item(name="i1", qty=1)]


def test_a_set_argument_fails_that_call_only_naming_it(store: Any) -> None:
    fut = store.echo({1, 2})
    with pytest.raises(SerializationError) as info:
        fut.result()
    message = str(info.value)
    assert "'value'" in message and "set" in message
    serializer = "json" if "json" in message else "msgpack"
    assert f"{serializer} serializer" in message
    assert store.echo([1]).result() == [1]  # the worker keeps serving


def test_a_set_result_fails_that_call_only_naming_the_return_value(store: Any) -> None:
    with pytest.raises(SerializationError, match=r"return value of tags\(\).*set"):
        store.tags().result()
    assert store.echo("still here").result() == "still here"


def test_exceptions_come_back_as_their_own_type(store: Any) -> None:
    with pytest.raises(KeyError, match="missing"):
        store.fail("missing").result()
    with pytest.raises(ValueError) as info:
        store.fail_unknown().result()
    assert info.value.args == ("bad value", 3)


def test_msgpack_carries_bytes_json_refuses_them() -> None:
    with Store.options(mode="process", serializer="msgpack").init() as w:
        out = w.kinds(b"\x00\x01").result()
        assert out == {"blob": b"\x00\x01", "tuple": [1, 2], "float": 1.5, "none": None}
    with (
        Store.options(mode="process", serializer="json").init() as w,
        pytest.raises(SerializationError, match=r"'blob'.*bytes.*json"),
    ):
        w.kinds(b"\x00").result()


def _total(items: list[Item]) -> Item:
    return Item(name="sum", qty=sum(i.qty for i in items))


@pytest.mark.parametrize("mode", BOUNDARY_MODES)
def test_task_functions_with_json(mode: str, request: pytest.FixtureRequest) -> None:
    if mode == "ray":
        if importlib.util.find_spec("ray") is None:
            pytest.skip("Ray is not installed")
        request.getfixturevalue("_ray_session")
    total = task(mode=mode, serializer="json", max_workers=2, on_demand=False)(_total)

    with total:
        got = total([Item(name="a", qty=1), Item(name="b", qty=2)]).result()
        assert got == Item(name="sum", qty=3)
        assert list(total.map([[Item(name="c", qty=4)]])) == [Item(name="sum", qty=4)]
        with pytest.raises(SerializationError, match=r"'items'.*set"):
            total({1}).result()


def test_an_exception_type_the_caller_lacks_becomes_remote_error() -> None:
    codec = _codec.Codec()
    data = {"type": "nowhere.module:Missing", "args": ["x"], "message": "x"}
    err = _codec.rebuild_exception(data, RemoteError.of)
    assert isinstance(err, RemoteError) and err.type_name == "nowhere.module.Missing"
    encoded = _codec.encode_exception(codec, KeyError("k"))
    assert isinstance(_codec.rebuild_exception(encoded, RemoteError.of), KeyError)


def test_msgpack_missing_fails_at_options_with_the_install_hint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name == "msgpack" else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(ValueError, match=r"pip install 'aioconc\[msgpack\]'"):
        Store.options(mode="process", serializer="msgpack")


def test_outcome_tags_match_the_wire() -> None:
    assert (_codec.OK, _codec.ERROR, _codec.UNSERIALIZABLE, _codec.SKIPPED) == (
        _wire.OK,
        _wire.ERROR,
        _wire.UNSERIALIZABLE,
        _wire.SKIPPED,
    )
