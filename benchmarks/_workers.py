"""The worker classes the benchmark runs, in a module of their own.

A process worker's child imports the module its class lives in: keeping these
classes away from ``_run`` (which imports concurry) keeps that import light,
so process start-up is measured, not concurry's import time.
"""

from __future__ import annotations

import asyncio
import time

from aioconc import Worker

__all__ = ["_AioconcBench", "_Calls"]


class _Calls:
    """The methods every benchmark calls; shared by the plain object and the workers."""

    def ping(self, x: int) -> int:
        """Return ``x``: the cheapest possible call."""
        return x

    async def aping(self, x: int) -> int:
        """Return ``x`` from a coroutine."""
        return x

    def sleep1(self) -> None:
        """Block for one second (CPU figure of thread and process modes)."""
        time.sleep(1.0)

    async def asleep1(self) -> None:
        """Sleep for one second on the loop (asyncio mode CPU figure)."""
        await asyncio.sleep(1.0)


class _AioconcBench(_Calls, Worker):
    """The benchmark worker, run by aioconc."""
