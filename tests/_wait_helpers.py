"""The ``future_factory`` fixture shared by the wait/gather tests.

``make(value=None, exc=None, delay=0.0)`` returns a library future finished
from another thread ``delay`` seconds later, with ``value`` or ``exc``.  Every
test goes through it so the same tests can later run on futures made by real
workers in each mode.  Futures still pending at teardown are cancelled.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from aioconc._future import Future

MakeFuture = Callable[..., Future[Any]]


def _finish(future: Future[Any], value: Any, exc: BaseException | None) -> None:
    if exc is not None:
        future._set_exception(exc)
    else:
        future._set_result(value)


@pytest.fixture
def future_factory() -> Iterator[MakeFuture]:
    made: list[tuple[Future[Any], threading.Timer]] = []

    def make(
        value: Any = None, exc: BaseException | None = None, delay: float = 0.0
    ) -> Future[Any]:
        future: Future[Any] = Future()
        timer = threading.Timer(delay, _finish, (future, value, exc))
        timer.daemon = True
        timer.start()
        made.append((future, timer))
        return future

    yield make
    for future, timer in made:
        timer.cancel()
        future.cancel()
