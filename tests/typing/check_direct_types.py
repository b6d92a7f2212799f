"""Static checks of ``@direct``'s typing, run by mypy (never imported by pytest).

A ``@direct`` function keeps the decorated function's parameters and return
type (ParamSpec): ``def f(x: int) -> str`` stays ``(x: int) -> str``, and an
``async def`` function stays a coroutine function.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from typing_extensions import assert_type

from aioconc import direct


@direct
def label(x: int, *, scale: float = 1.0) -> str:
    return f"{x * scale}"


@direct(mode="process", max_workers=2)
def double(x: int) -> int:
    return 2 * x


@direct(mode="asyncio")
async def fetch(url: str) -> bytes:
    return url.encode()


def check() -> None:
    assert_type(label(1), str)
    assert_type(label(1, scale=2.0), str)
    assert_type(double(3), int)
    pending = fetch("u")
    _ = assert_type(pending, Coroutine[Any, Any, bytes])
    pending.close()
    label(1)  # a plain value: nothing to await
    label("not an int")  # type: ignore[arg-type]
    double("x")  # type: ignore[arg-type]
    label(1, unknown=1)  # type: ignore[call-arg]


async def check_async() -> None:
    assert_type(await fetch("u"), bytes)
    await fetch(1)  # type: ignore[arg-type]
