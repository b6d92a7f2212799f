"""Static checks of ``@task``'s typing, run by mypy (never imported by pytest).

``@task`` keeps the decorated function's parameters (ParamSpec): calls are
typed ``(x: int, *, scale: float = ...) -> Future[R]``, and an ``async def``
function's result type is its awaited value.
"""

from __future__ import annotations

from typing_extensions import assert_type

from aioconc import Future
from aioconc.task import MapIterator, task


@task(mode="thread")
def label(x: int, *, scale: float = 1.0) -> str:
    return f"{x * scale}"


@task(mode="asyncio")
async def fetch(url: str) -> bytes:
    return url.encode()


def check() -> None:
    assert_type(label(1), Future[str])
    assert_type(label(1, scale=2.0), Future[str])
    assert_type(label.submit(2), Future[str])
    assert_type(label.map([1, 2]), MapIterator[str])
    assert_type(fetch("u"), Future[bytes])
    label("not an int")  # type: ignore[arg-type]
    label(1, scale="x")  # type: ignore[arg-type]
    label(1, unknown=1)  # type: ignore[call-arg]


async def check_async() -> None:
    assert_type(await fetch("u"), bytes)
    assert_type(await label(1), str)
