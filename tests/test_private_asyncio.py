"""aioconc._private_asyncio: asyncio's private API where it works, public API where not.

The shim decides at import, so each test here reloads it after changing what it
looks at, and the fixture reloads it once more afterwards: workers made after
that see the real thing again.
"""

from __future__ import annotations

import asyncio
import importlib
import sys
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import pytest

from aioconc import Worker, _private_asyncio

Reload = Callable[[], ModuleType]


@pytest.fixture
def reload(monkeypatch: pytest.MonkeyPatch) -> Iterator[Reload]:
    """Reload the shim under the test's monkeypatching; restored and reloaded after."""
    monkeypatch.delenv(_private_asyncio.NO_PRIVATE_ASYNCIO, raising=False)
    yield lambda: importlib.reload(_private_asyncio)
    monkeypatch.undo()
    importlib.reload(_private_asyncio)


class Methods(Worker):
    async def echo(self, x: int) -> int:
        return x

    async def task_of_call(self) -> tuple[Any, Any]:
        first = asyncio.current_task()
        await asyncio.sleep(0)
        return first, asyncio.current_task()


async def _calls_work(expect_inline: bool) -> None:
    async with Methods.options(mode="asyncio").init() as w:
        fut = w.echo(5)
        assert fut.done() is expect_inline
        assert await fut == 5
        first, later = await w.task_of_call()
        assert first is later
        assert first is not asyncio.current_task()  # the call ran in a task of its own


def _assert_public_only(shim: ModuleType) -> None:
    assert shim.tasks_by_loop is None
    assert shim.running_loop is shim._public_running_loop


@pytest.mark.skipif(sys.version_info >= (3, 14), reason="3.14 keeps the current task elsewhere")
def test_the_private_record_is_used_where_it_works(reload: Reload) -> None:
    shim = reload()
    assert shim.tasks_by_loop is asyncio.tasks._current_tasks  # type: ignore[attr-defined]
    assert shim.running_loop is asyncio._get_running_loop
    asyncio.run(_calls_work(expect_inline=True))


def test_missing_private_names_leave_public_api_only(
    reload: Reload, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delattr(asyncio.tasks, "_current_tasks", raising=False)
    monkeypatch.delattr(asyncio, "_get_running_loop")
    shim = reload()
    _assert_public_only(shim)
    monkeypatch.undo()  # the workers below run on a whole asyncio
    asyncio.run(_calls_work(expect_inline=False))


def test_a_record_asyncio_does_not_read_is_not_used(
    reload: Reload, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As on 3.14: a dict of that name may remain, but current_task() keeps its
    # record elsewhere (there: in the thread state).
    elsewhere: dict[Any, Any] = {}
    monkeypatch.setattr(asyncio, "current_task", lambda loop=None: elsewhere.get(loop))
    shim = reload()
    assert shim.tasks_by_loop is None
    monkeypatch.undo()
    asyncio.run(_calls_work(expect_inline=False))


def test_a_running_loop_function_that_disagrees_is_not_used(
    reload: Reload, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(asyncio, "_get_running_loop", lambda: object())
    shim = reload()
    assert shim.running_loop is shim._public_running_loop


def test_the_environment_variable_forces_public_api_only(
    reload: Reload, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(_private_asyncio.NO_PRIVATE_ASYNCIO, "1")
    shim = reload()
    _assert_public_only(shim)
    asyncio.run(_calls_work(expect_inline=False))


def test_the_public_running_loop() -> None:
    running_loop = _private_asyncio._public_running_loop
    assert running_loop() is None

    async def inside() -> bool:
        return running_loop() is asyncio.get_running_loop()

    assert asyncio.run(inside())
