"""Static checks that every backend worker keeps the contract, run by mypy (never imported).

``ClassBackend.start`` returns ``Any``, so nothing else makes mypy compare a
worker class with :class:`~aioconc._backends._base.BackendWorker`: these
assignments do, hooks included (``start_inline``, ``on_timeout``, ``held_calls``,
with ``WorkerBase``'s defaults where a backend has no use for one), and every
limit state a ``LimitSet`` may talk to with ``LimitBackend`` (``waiting``).
"""

from __future__ import annotations

from aioconc._backends._asyncio import AsyncioWorker
from aioconc._backends._base import BackendWorker, WorkerSpec
from aioconc._backends._sync import SyncWorker
from aioconc._backends._thread import ThreadWorker
from aioconc._backends.process._limits import ChildLimitClient
from aioconc._backends.process._worker import ProcessWorker
from aioconc._backends.ray._limits import RayLimitClient
from aioconc._backends.ray._worker import RayTaskRunner, RayWorker
from aioconc.limits._engine import LimitBackend, LocalLimitEngine
from aioconc.testing import FakeWorker


def check(spec: WorkerSpec) -> None:
    workers: list[BackendWorker] = [
        SyncWorker(spec),
        AsyncioWorker(spec),
        ThreadWorker(spec),
        ProcessWorker(spec),
        RayWorker(spec),
        RayTaskRunner(spec),
        FakeWorker(lambda call: None),
    ]
    states: list[LimitBackend] = [
        LocalLimitEngine([]),
        ChildLimitClient(1),
        RayLimitClient(None, "driver"),
    ]
    del workers, states
