"""The handle a user holds of one worker: its method calls become futures.

What every handle does (method callers, the submit path, stopping) is in
``_handle.py``; this is what one backend worker adds: calls go straight to its
``dispatch`` (or ``start_inline``) when the worker has no middleware, and to the
chain's runner on its home loop when it has.
"""

from __future__ import annotations

import asyncio
import itertools
import weakref
from typing import TYPE_CHECKING, Any

from ._chain import Handler, attempt_handler
from ._handle import BaseHandle
from ._runtime import home_loop

if TYPE_CHECKING:
    from ._backends._base import BackendWorker
    from ._options import Options
    from .middleware._timeout import OnTimeout

__all__ = ["WorkerHandle", "worker_name"]

_names = itertools.count(1)


def worker_name(cls: type[Any]) -> str:
    """A readable, unique name for a new worker of ``cls``."""
    return f"{cls.__name__}-{next(_names)}"


class WorkerHandle(BaseHandle):
    """A started worker: call its methods, then ``stop()`` it (or use ``with``).

    Every method call returns a :class:`~aioconc.Future` (the value itself with
    ``blocking=True``).  ``async with`` waits for ``__init__`` on entry and
    drains in-flight calls on exit.
    """

    def __init__(
        self,
        cls: type[Any] | None,
        name: str,
        options: Options,
        worker: BackendWorker,
        chain: Handler | None,
    ) -> None:
        super().__init__(cls, name, options, worker.capabilities)
        self._worker = worker
        self._ready = worker.ready
        if chain is None:
            self._dispatch = worker.dispatch
            self._start_inline = worker.start_inline  # read once: not per call
        else:
            # Graceful stop lets every chain finish (the runner's stop hook).
            self._dispatch = self._run_chains(chain, worker.home or home_loop())
            self._timed = self._dispatch  # the chain has a timeout stage
        # A handle dropped without stop() still lets its worker finish what it
        # was given and end: no thread or process outlives the last reference.
        self._finalizer = weakref.finalize(self, worker.begin_close, True)

    def _members(self) -> list[BackendWorker]:
        return [self._worker]

    def _members_home(self) -> asyncio.AbstractEventLoop | None:
        return self._worker.home

    def _timeout_only(self) -> tuple[Handler, OnTimeout | None, asyncio.AbstractEventLoop]:
        worker = self._worker
        return attempt_handler(worker.dispatch), worker.on_timeout, worker.home or home_loop()

    def _abandon_start(self, timed_out: bool) -> None:
        if timed_out:
            self._worker.force_close()
        else:  # a failed __init__: the worker has ended by itself
            self._stopped = True
            self._finalizer.detach()

    def _held_calls(self) -> int:
        # A backend that holds capped calls itself (process mode) says how many.
        return self._worker.held_calls

    def __repr__(self) -> str:
        st = self.statistics()
        return (
            f"<{type(self).__name__} {self._name} mode={self.mode} {self._state()} "
            f"in_flight={st.in_flight} queued={st.queued} completed={st.completed} "
            f"failed={st.failed}>"
        )
