"""The one module that touches asyncio's private API, and what stands in without it.

**The current task.**  The eager start (``_backends/_eager.py``) runs a call's
first step inside its caller, under the task that will run the rest of the call,
so for that step the call's task must be the loop's current task.  asyncio has no
public way to say so.  Python 3.10-3.13 keep each loop's current task in one dict,
``asyncio.tasks._current_tasks``, which ``asyncio.current_task()`` reads: two
item writes swap a task in and back.  Python 3.14 keeps the current task in the
thread state instead, and a dict of that name, if one is left, is no longer read.

So :data:`tasks_by_loop` is that dict only when, at import, it exists, is a dict,
and a probe shows ``asyncio.current_task()`` reading what is written into it.
Otherwise it is None, and the eager start is off: every call runs in a task made
by ``loop.create_task``, public API only.

**The running loop.**  :data:`running_loop` is ``asyncio._get_running_loop``
(C: no exception and no Python frame when there is no loop) when it exists and
agrees with ``asyncio.get_running_loop()``; otherwise a wrapper of the latter.

``AIOCONC_NO_PRIVATE_ASYNCIO=1`` in the environment, read at import, takes the
public-only path for both, so the tests can run as they would where the private
pieces are gone.  (The ``_asyncio_future_blocking`` attribute aioconc's futures
carry is not here: it is how ``asyncio.isfuture()`` recognises a future, the
protocol itself rather than a private function.)
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any

__all__ = ["NO_PRIVATE_ASYNCIO", "refused", "running_loop", "tasks_by_loop"]

NO_PRIVATE_ASYNCIO = "AIOCONC_NO_PRIVATE_ASYNCIO"
"""The environment variable that makes aioconc use public asyncio API only."""

TasksByLoop = dict[asyncio.AbstractEventLoop, "asyncio.Task[Any]"]


def refused() -> bool:
    """True when ``AIOCONC_NO_PRIVATE_ASYNCIO`` forbids asyncio's private API."""
    return os.environ.get(NO_PRIVATE_ASYNCIO, "").strip().lower() in {"1", "true", "yes", "on"}


def _public_running_loop() -> asyncio.AbstractEventLoop | None:
    """The loop running in this thread, or None (``asyncio.get_running_loop()``)."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _pick_running_loop() -> Callable[[], asyncio.AbstractEventLoop | None]:
    fast = getattr(asyncio, "_get_running_loop", None)
    if refused() or not callable(fast):
        return _public_running_loop
    try:
        # Imported inside a running loop or not, both must name the same one.
        agrees = fast() is _public_running_loop()
    except Exception:  # a changed signature: any failure means "do not use it"
        agrees = False
    return fast if agrees else _public_running_loop


def _find_tasks_by_loop() -> TasksByLoop | None:
    record = getattr(asyncio.tasks, "_current_tasks", None)
    if refused() or not isinstance(record, dict):
        return None
    # A loop that never runs, so the probe cannot meet a real entry; asyncio
    # only hashes it, or compares it with each thread's running loop.  (The
    # class is concrete at run time, its methods raise NotImplementedError;
    # the stubs call them abstract.)
    probe = asyncio.AbstractEventLoop()  # type: ignore[abstract]
    marker: Any = object()
    record[probe] = marker
    try:
        seen = asyncio.current_task(probe)
    except Exception:  # current_task() refusing the probe: the dict is not its record
        seen = None
    finally:
        record.pop(probe, None)
    return record if seen is marker else None


running_loop: Callable[[], asyncio.AbstractEventLoop | None] = _pick_running_loop()
"""The loop running in this thread, or None."""

tasks_by_loop: TasksByLoop | None = _find_tasks_by_loop()
"""asyncio's own record of each loop's current task, where it keeps one in a dict
that ``asyncio.current_task()`` reads (3.10-3.13); None where it does not, or
when ``AIOCONC_NO_PRIVATE_ASYNCIO`` is set: then nothing may swap the current task."""
