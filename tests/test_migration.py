"""The migration guide's difference table (docs/guides/from-concurry.md) matches behaviour.

Every row of the table names a test; the first test here checks that each named
test exists.  The others are the rows that are shown here, side by side with
concurry 0.13.2 where that is cheap (sync and thread modes); the other rows'
tests live with the feature they cover.
"""

from __future__ import annotations

import ast
import asyncio
import concurrent.futures
import re
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

import aioconc

concurry = pytest.importorskip("concurry")

# concurry's own models warn about themselves with recent pydantic-settings;
# that is concurry's business, not a difference to show.
pytestmark = pytest.mark.filterwarnings("ignore:Field 'worker_cls' has an incomplete definition")

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "guides" / "from-concurry.md"


def table_tests() -> list[str]:
    """The ``tests/file.py::name`` of every row of the guide's difference table."""
    text = GUIDE.read_text(encoding="utf-8")
    return re.findall(r"^\|.*`(tests/[\w/]+\.py::\w+)` \|$", text, re.MULTILINE)


def table_rows() -> list[list[str]]:
    """The cells of every row of the guide's difference table (the header excluded)."""
    text = GUIDE.read_text(encoding="utf-8")
    rows = re.findall(r"^\|(.*`tests/[\w/]+\.py::\w+`) \|$", text, re.MULTILINE)
    return [[cell.strip() for cell in row.split(" | ")] for row in rows]


def test_every_row_of_the_table_names_a_test_that_exists() -> None:
    named = table_tests()
    # 24 rows: the former docs/migration.md's differences were merged in; none may drop out.
    assert len(named) >= 24, named
    for ref in named:
        path, name = ref.split("::")
        tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
        defined = {
            n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
        }
        assert name in defined, f"{ref} is named in the migration guide but does not exist"


def test_every_row_has_five_cells_and_a_difference_of_its_own() -> None:
    rows = table_rows()
    assert len(rows) == len(table_tests())
    assert all(len(row) == 5 and all(row) for row in rows), rows
    what = [row[0] for row in rows]
    assert len(set(what)) == len(what), f"a difference is listed twice: {what}"


class Gate:
    """Methods shared by the aioconc and concurry versions of the same worker."""

    def hold(self, gate: threading.Event) -> None:
        gate.wait(10)

    def echo(self, x: Any) -> Any:
        return x


class AioGate(Gate, aioconc.Worker):
    pass


class ConGate(Gate, concurry.Worker):
    pass


def cancelled_error_of(cls: Any, mode: Any) -> BaseException:
    """What ``result()`` raises for a call cancelled while it waits behind another."""
    gate = threading.Event()
    handle = cls.options(mode=mode).init()
    try:
        handle.hold(gate)
        waiting = handle.echo(1)
        assert waiting.cancel()
        with pytest.raises(BaseException) as caught:
            waiting.result(timeout=5)
        return caught.value
    finally:
        gate.set()
        handle.stop()


def test_cancelled_calls_are_caught_by_asyncio_code() -> None:
    ours = cancelled_error_of(AioGate, "thread")
    assert isinstance(ours, asyncio.CancelledError)
    assert isinstance(ours, concurrent.futures.CancelledError)
    theirs = cancelled_error_of(ConGate, concurry.ExecutionMode.Threads)
    assert isinstance(theirs, concurrent.futures.CancelledError)
    assert not isinstance(theirs, asyncio.CancelledError)


@pytest.mark.parametrize("name", ["least_active", "least_total"])
def test_least_active_and_least_total_are_accepted(name: str) -> None:
    member = aioconc.LoadBalancingAlgorithm(name)
    assert member.name == {"least_active": "LeastActiveLoad", "least_total": "LeastTotalLoad"}[name]
    with pytest.raises(ValueError):
        concurry.LoadBalancingAlgorithm(name)


class BadInit:
    def __init__(self) -> None:
        raise LookupError("no such account")

    def f(self) -> int:
        return 1


def start_and_call(cls: Any, mode: Any) -> int:
    """Start a worker of ``cls`` and make one call (either may raise)."""
    with cls.options(mode=mode).init() as handle:
        return int(handle.f().result(timeout=5))


def test_a_failed_init_raises_the_users_exception() -> None:
    aio_cls = aioconc.worker(mode="thread")(type("AioBad", (BadInit,), {}))
    with pytest.raises(LookupError, match="no such account"):
        start_and_call(aio_cls, "thread")
    con_cls = type("ConBad", (BadInit, concurry.Worker), {})
    with pytest.raises(Exception) as caught:
        start_and_call(con_cls, concurry.ExecutionMode.Threads)
    # concurry: pydantic's ValueError about its proxy, the user's error only in its text.
    assert isinstance(caught.value, ValueError)
    assert not isinstance(caught.value, LookupError)


def test_handles_are_async_context_managers() -> None:
    async def main() -> int:
        async with AioGate.options(mode="thread").init() as handle:
            return int(await handle.echo(7))

    assert asyncio.run(main()) == 7
    con = ConGate.options(mode=concurry.ExecutionMode.Sync).init()
    try:
        assert not hasattr(con, "__aenter__")
    finally:
        con.stop()


def test_futures_carry_a_task_record() -> None:
    with AioGate.options(mode="sync").init() as handle:
        fut = handle.echo(3)
        record = fut.record()
        assert (fut.status, record.result, record.task_id) == ("SUCCESS", 3, fut.task_id)
        assert '"status":"SUCCESS"' in record.model_dump_json()
    con = ConGate.options(mode=concurry.ExecutionMode.Sync).init()
    try:
        theirs = con.echo(3)
        assert theirs.result() == 3
        assert not hasattr(theirs, "task_id")
        assert not hasattr(theirs, "record")
    finally:
        con.stop()


def test_string_options_work_on_every_python() -> None:
    with AioGate.options(mode="thread", load_balancing="round_robin").init() as handle:
        assert handle.echo(1).result(timeout=5) == 1
    if sys.version_info < (3, 11):  # concurry's enums parse only member names there
        with pytest.raises(ValueError):
            ConGate.options(mode="thread")
        with pytest.raises(ValueError):
            concurry.LoadBalancingAlgorithm("round_robin")


def test_a_missing_method_fails_at_the_call_site() -> None:
    # Every mode: tests/test_calls.py::test_missing_and_non_callable_and_private_names.
    for mode in ("sync", "thread"):
        with AioGate.options(mode=mode).init() as handle, pytest.raises(AttributeError):
            handle.no_such_method(1)
    # concurry: a thread worker hands back a future, which fails only when read.
    con = ConGate.options(mode=concurry.ExecutionMode.Threads).init()
    try:
        theirs = con.no_such_method(1)
        with pytest.raises(AttributeError):
            theirs.result(timeout=5)
    finally:
        con.stop()
