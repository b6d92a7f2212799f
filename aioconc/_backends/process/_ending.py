"""How a process worker ends: the child's exit, the calls it leaves, finalising.

A worker ends once, in :meth:`Ending._finalize` on the background loop, reached
from whichever comes first: the end of the child's stream (``_on_eof``, from
the receiver), its exit reported by the launcher (``_on_exit``), or a stop.
Finalising reads what the child sent before it ended, then ends every call
still unanswered — failed with ``WorkerCrashedError`` (pid, exit code or
signal) after a crash, with the ``__init__`` error after a failed start,
cancelled after a stop — and releases what the worker held (its socket, the
limit units its child held, its fork server entry or pidfd).

:class:`Ending` is mixed into ``ProcessWorker`` (``_worker.py``): it is that
worker's end, not an object of its own, and it uses the worker's state as the
worker declares it (the annotations below).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..._exceptions import WorkerCrashedError, WorkerStoppedError
from ._launch import exit_description

if TYPE_CHECKING:
    import asyncio
    import socket
    import threading

    from ..._call import Call
    from ..._future import Future
    from ._held import HeldCalls
    from ._launch import ForkServer, Spawner
    from ._limits import LimitServer
    from ._receive import Receiver
    from ._writer import SocketWriter

__all__ = ["Ending"]

_EXIT_FALLBACK = 1.0  # EOF seen but no exit reported: give up waiting after this


class Ending:
    """The end of a ``ProcessWorker`` (see the module docstring)."""

    # The worker's state this part reads and ends, set by ProcessWorker.__init__.
    ready: Future[None]
    closed: Future[None]
    pid: int | None
    _name: str
    _loop: asyncio.AbstractEventLoop
    _lock: threading.Lock  # outbox, held, socket writes, pending vs death
    _sock: socket.socket
    _out: SocketWriter
    _receiver: Receiver
    _launcher: Spawner | ForkServer
    _limit_server: LimitServer
    _outbox: list[Call]
    _held: HeldCalls
    _pending: dict[int, Future[Any]]
    _timers: list[asyncio.TimerHandle]
    _dead: BaseException | None  # why calls fail from now on; None while alive
    _closing: bool
    _killed: bool
    _final: bool
    _exitcode: int | None
    _exited: threading.Event
    _kill_reason: str | None

    # -- the end, as it is reported --------------------------------------------

    def _on_eof(self) -> None:
        self._loop.remove_reader(self._receiver.fileno())
        if self._exitcode is not None or self._exited.is_set():
            self._finalize()
        else:
            # The exit report follows at once; this only guards a lost report.
            self._timers.append(self._loop.call_later(_EXIT_FALLBACK, self._finalize))

    def _on_pid(self, pid: int) -> None:
        """Called on the loop by the launcher when the child's pid is known."""
        self.pid = pid
        if self._killed:
            self._launcher.signal(self, kill=True)

    def _on_exit(self, code: int | None) -> None:
        """Called on the loop by the launcher when the child has exited (and is reaped)."""
        self._exitcode = code
        self._exited.set()
        self._finalize()

    # -- finalising ------------------------------------------------------------

    def _finalize(self) -> None:
        if self._final:
            return
        if not self._sock._closed:  # type: ignore[attr-defined]
            self._loop.remove_reader(self._receiver.fileno())
            self._loop.remove_writer(self._sock.fileno())
        # Reads what the child sent before it ended, then closes the socket;
        # when a caller thread is reading, it hands back and this runs again.
        if not self._receiver.close():
            return
        self._final = True
        self._out.stop()
        for timer in self._timers:
            timer.cancel()
        self._launcher.release(self)
        self._limit_server.close()
        with self._lock:
            if self._dead is None:
                self._dead = self._death()
            futures = self._take_unsent_locked()
            futures += self._pending.values()
            self._pending.clear()
        for fut in futures:
            self._refuse(fut)
        if not self.ready.done():
            self.ready._set_exception(self._error())
        self.closed._set_result(None)

    def _fail_start(self, exc: BaseException) -> None:
        """The worker ends before its child was started (its arguments did not pickle)."""
        self._dead = exc
        self._final = True
        self.ready._set_exception(exc)
        self.closed._set_result(None)

    def _take_unsent_locked(self) -> list[Future[Any]]:
        """The futures of calls not yet sent (outbox and held); both emptied."""
        futures = [call.future for call in self._outbox]
        futures += [call.future for call in self._held.take_all()]
        self._outbox = []
        return futures

    # -- what the calls it leaves get ------------------------------------------

    def _death(self) -> BaseException:
        code = self._exitcode
        if (failed := self.ready._failure()) is not None:
            return failed  # calls made before a failed __init__ fail with it
        if self._killed or (self._closing and code == 0):
            return WorkerStoppedError(f"worker {self._name} is stopped")
        how = self._kill_reason or exit_description(code)
        return WorkerCrashedError(
            f"worker {self._name} (pid {self.pid}) {how}; its pending calls are lost",
            worker=self._name,
            pid=self.pid,
            exitcode=code,
        )

    def _refuse(self, fut: Future[Any]) -> None:
        # Closing ends calls as cancelled; a death (crash, failed start) fails them.
        dead = self._dead
        if dead is not None and not (self._closing and isinstance(dead, WorkerStoppedError)):
            fut._set_exception(self._error())
        else:
            fut._set_cancelled()

    def _error(self) -> BaseException:
        dead = self._dead
        if isinstance(dead, WorkerCrashedError):
            # A fresh exception per call: one object raised in many places
            # would collect every caller's traceback.
            return WorkerCrashedError(
                str(dead), worker=dead.worker, pid=dead.pid, exitcode=dead.exitcode
            )
        return dead if dead is not None else WorkerStoppedError(f"worker {self._name} stopped")
