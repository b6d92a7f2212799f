"""Worker classes shared by the tests (importable, so every mode can use them)."""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any


class Counter:
    """State, sync and async methods, failures and thread-bound blocking."""

    def __init__(self, start: int = 0, *, step: int = 1) -> None:
        self.n = start
        self.step = step
        self.log: list[Any] = []

    def inc(self) -> int:
        self.n += self.step
        return self.n

    async def ainc(self) -> int:
        await asyncio.sleep(0)
        self.n += self.step
        return self.n

    def echo(self, *args: Any, **kwargs: Any) -> Any:
        return (args, kwargs)

    def record(self, item: Any) -> list[Any]:
        self.log.append(item)
        return list(self.log)

    def fail(self, message: str = "boom") -> None:
        raise ValueError(message)

    async def afail(self, message: str = "boom") -> None:
        await asyncio.sleep(0)
        raise KeyError(message)

    def exit(self) -> None:
        raise SystemExit(3)

    def interrupt(self) -> None:
        raise KeyboardInterrupt

    def wait_for(self, gate: threading.Event, value: Any = None, entered: Any = None) -> Any:
        if entered is not None:
            entered.set()  # tells the test the call is running
        if not gate.wait(30):
            raise TimeoutError("gate never opened")
        return value

    async def await_for(self, gate: threading.Event, value: Any = None, entered: Any = None) -> Any:
        if entered is not None:
            entered.set()  # tells the test the call is running
        loop = asyncio.get_running_loop()
        opened = await loop.run_in_executor(None, gate.wait, 30)
        if not opened:
            raise TimeoutError("gate never opened")
        return value

    def where(self) -> tuple[int, str]:
        return os.getpid(), threading.current_thread().name

    constant = 42
