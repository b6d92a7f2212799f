"""The process worker: starting its child, dispatching calls to it, closing it.

A call made in a plain thread is written from that thread at once, and a
thread that then blocks in ``result()`` reads the socket itself (``_receive``);
otherwise results are read on aioconc's background loop (a worker outlives the
loop that created it), which also watches for the child's exit (``_launch``).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import pickle
import socket
import sys
import threading
from typing import Any

from ..._call import Call
from ..._carry import CARRIED, carried
from ..._codec import codec_for
from ..._enums import ExecutionMode
from ..._exceptions import SerializationError
from ..._future import Future
from ..._runtime import background_loop, inbox_for, running_loop
from ..._serialize import CallCodec, argument_error, dumps
from ...limits._export import exporting
from .. import OPTION_NAMES
from .._base import Capabilities, WorkerBase, WorkerSpec, internal_retries
from ._ending import Ending
from ._held import HeldCalls
from ._launch import authkey, launcher_for
from ._limits import LimitServer
from ._receive import Receiver
from ._writer import SocketWriter
from .child._wire import _U32, ABORT, CALLS, CANCEL, CLOSE, INIT, LIMIT_REPLY, BatchWriter, frame

__all__ = ["ProcessWorker", "backend"]

log = logging.getLogger("aioconc")

_KILL_GRACE = 0.2  # seconds between SIGTERM and SIGKILL in force_close()


# ---------------------------------------------------------------------------
# The worker
# ---------------------------------------------------------------------------


class _SentCall:
    """A call already written to the child, as its future's ``_inner``: cancelling
    the future asks the child to skip it (refused once the call is running)."""

    __slots__ = ("ident", "worker")

    def __init__(self, worker: ProcessWorker, ident: int) -> None:
        self.worker = worker
        self.ident = ident

    def done(self) -> bool:
        return False

    def cancel(self) -> bool:
        return self.worker._cancel_sent(self.ident)

    def read_while_waiting(self, fut: Future[Any], deadline: float | None) -> None:
        # A thread about to block in result() reads the result itself.
        self.worker._receiver.read_while_waiting(fut, deadline)


class ProcessWorker(Ending, WorkerBase):
    """A worker whose instance lives in a child process of its own.

    How it ends (the child's exit, the calls it leaves, finalising) is
    :class:`~._ending.Ending`'s.
    """

    capabilities = Capabilities(needs_pickling=True, shares_memory=False, queues_natively=True)

    def __init__(self, spec: WorkerSpec) -> None:
        self.ready: Future[None] = Future()
        self.closed: Future[None] = Future()
        self._name = spec.name
        self._cls = spec.cls
        self._loop = background_loop()
        self._inbox = inbox_for(self._loop)
        self._lock = threading.Lock()  # outbox, held, socket writes, pending vs death
        self._batch = BatchWriter()  # the next CALLS frame, built under the lock
        self._outbox: list[Call] = []
        # max_queued_tasks, enforced here rather than by a chain stage (_held.py):
        # at most _cap calls are with the child, the rest are held back.
        cap = spec.options.max_queued_tasks
        self._cap = 0 if spec.options.blocking or not cap else cap
        self._held = HeldCalls()
        self._posted = False
        self._pending: dict[int, Future[Any]] = {}
        self._ids = itertools.count(1)
        self._dead: BaseException | None = None
        self._closing = False
        self._killed = False
        self._final = False
        self._exitcode: int | None = None
        self._exited = threading.Event()
        self._timers: list[asyncio.TimerHandle] = []
        self.pid: int | None = None
        # serializer="json"/"msgpack": calls and outcomes in that format; the
        # method of each call sent is kept to validate its result back.
        codec = codec_for(spec.options.serializer)
        self._codec = None if codec is None else CallCodec(codec, spec.cls, spec.kwargs.get("fn"))
        self._methods: dict[int, str] = {}
        # Shared limit sets stay here; the child gets clients that ask this server.
        self._limit_server = LimitServer(self._send_limit_reply, self._inbox.post)
        try:
            with exporting(self._limit_server.export):
                retries = internal_retries(spec)
                blob = dumps((spec.cls, spec.args, spec.kwargs, spec.limits, retries))
        except Exception as exc:
            self._fail_start(argument_error(spec.cls, "__init__", spec.args, spec.kwargs, exc))
            return
        body = pickle.dumps((list(sys.path), os.getcwd(), authkey(), blob, spec.options.serializer))
        self._sock, child = socket.socketpair()
        # A blocking socket, so that a thread waiting for its only call can block
        # in recv() itself (far cheaper to wake than poll); every other read and
        # every write passes MSG_DONTWAIT and never blocks.
        self._sock.setblocking(True)
        self._out = SocketWriter(self._sock, self._lock, self._loop, self._inbox)
        self._send_locked = self._out.send_locked  # bound once: it is on every call's path
        self._receiver = Receiver(self, self._sock)
        try:
            with self._lock:
                self._send_locked(frame(INIT, body))
            self._launcher = launcher_for(str(spec.extra.get("mp_context", "forkserver")))
            self._launcher.launch(child, self)
        except BaseException:
            self._receiver.close()
            raise
        finally:
            child.close()
        self._start_timeout = spec.extra.get("start_timeout")
        self._kill_on_timeout = spec.extra.get("on_timeout") == "kill"
        self._kill_reason: str | None = None
        self._inbox.post(self._attach)

    @property
    def home(self) -> asyncio.AbstractEventLoop | None:
        # None, as for thread workers: a chain runs on the caller's loop, so its
        # futures belong there.  The worker's own I/O is on the background loop.
        return None

    @property
    def held_calls(self) -> int:
        """Calls held back by ``max_queued_tasks`` (not yet sent to the child)."""
        return len(self._held)

    def __repr__(self) -> str:
        return f"<ProcessWorker {self._name} pid={self.pid} pending={len(self._pending)}>"

    # -- calls: the caller's side -------------------------------------------

    def dispatch(self, call: Call) -> None:
        if self._dead is not None or self._closing:
            self._refuse(call.future)
            return
        if running_loop() is self._loop:
            with self._lock:
                self._outbox.append(call)
                if self._posted:
                    return  # a flush is on its way and will take this call too
                self._posted = True
            self._loop.call_soon(self._flush)  # a burst on the loop becomes one frame
            return
        # Any other thread writes at once, under the lock: no hand-off on the
        # round trip, and concurrent callers' frames never interleave.
        with self._lock:
            self._outbox.append(call)
            failed = self._flush_locked()
        if failed:
            self._fail_unpicklable(failed)

    def _flush(self) -> None:
        with self._lock:
            failed = self._flush_locked()
        self._fail_unpicklable(failed)

    def _flush_locked(self) -> list[tuple[Call, Exception]]:
        self._posted = False
        calls, self._outbox = self._outbox, []
        failed: list[tuple[Call, Exception]] = []
        if self._dead is not None:
            # The worker died after these were queued: end them like the rest.
            for call in calls:
                self._inbox.post(self._refuse, call.future)
            return failed
        writer, pending, ids, codec = self._batch, self._pending, self._ids, self._codec
        idle = not pending
        if self._cap:
            calls = self._held.admit(calls, self._cap - len(pending))
        for call in calls:
            fut = call.future
            if fut.done():
                continue  # cancelled before it was sent: it never runs
            ident = next(ids)
            # Registered context variables set by the caller ride as a 4th item.
            values = carried(call.context) if CARRIED else None
            if codec is None:
                item = (call.method, call.args, call.kwargs)
                error = writer.add(ident, item if values is None else (*item, values))
                if error is not None:
                    failed.append((call, error))
                    continue
            else:
                try:
                    coded = codec.encode_call(call.method, call.args, call.kwargs, values)
                    writer.add_raw(ident, coded)
                except SerializationError as exc:
                    failed.append((call, exc))
                    continue
                self._methods[ident] = call.method
            pending[ident] = fut
            fut._inner = _SentCall(self, ident)
        if idle:
            self._start_head()
        data = writer.take(CALLS)
        if data is not None:
            self._send_locked(data)
        return failed

    def _release_held_locked(self) -> None:
        """Send held calls now that the child has room for them (lock held)."""
        self._unpicklable_later(self._flush_locked())

    def _unpicklable_later(self, failed: list[tuple[Call, Exception]]) -> None:
        if failed:  # finished outside the lock, a loop turn later
            self._inbox.post(self._fail_unpicklable, failed)

    def _start_head(self) -> None:
        # The child runs calls in order, so the oldest pending call is the one
        # running: it alone is STARTED (cancel() returns False for it); those
        # queued behind it stay PENDING and can still be cancelled: the child is
        # told to skip them (one it has just begun all the same runs; its result
        # is dropped).
        for fut in self._pending.values():
            if fut._start() or not fut.done():
                return

    def _cancel_sent(self, ident: int) -> bool:
        """Ask the child to skip call ``ident``; False when it is already running."""
        with self._lock:
            fut = self._pending.get(ident)
            if fut is None or fut.running() or self._dead is not None:
                return False
            self._send_locked(frame(CANCEL, _U32.pack(ident)))
        return True

    def _fail_unpicklable(self, failed: list[tuple[Call, Exception]]) -> None:
        for call, error in failed:
            if not isinstance(error, SerializationError):  # already names the argument
                values = carried(call.context) if CARRIED else None
                error = argument_error(
                    self._cls, call.method, call.args, call.kwargs, error, context=values
                )
            call.future._set_exception(error)

    def _serve_limits(self, body: bytes) -> None:
        """One request of the child to the shared limits it was given (in the
        thread that read it)."""
        try:
            self._limit_server.handle(body)
        except Exception:
            # As for any garbled message: end the worker rather than leave its
            # request unanswered (its calls fail as crashed).
            log.exception("worker %s sent a limit request that could not be read", self._name)
            self._launcher.signal(self, kill=True)

    def _send_limit_reply(self, body: bytes) -> None:
        with self._lock:
            if not self._final:
                self._send_locked(frame(LIMIT_REPLY, body))

    def on_timeout(self, call: Call) -> None:
        """The timeout stage's hook: with ``on_timeout="kill"``, kill the child.

        The late call may run forever; killing its process fails the calls
        pending on it with ``WorkerCrashedError`` (a pool replaces the worker).
        """
        if self._kill_on_timeout and not self._final and self.ready.done():
            self._kill_reason = f"was killed because {call.method}() timed out (on_timeout='kill')"
            self._launcher.signal(self, kill=True)

    # -- the loop's side -------------------------------------------------------

    def _attach(self) -> None:
        if self._final:
            return
        loop = self._loop
        loop.add_reader(self._receiver.fileno(), self._receiver.on_readable)
        self._launcher.watch(self, loop)
        if self._start_timeout and not self.ready.done():
            self._timers.append(loop.call_later(self._start_timeout, self._start_timed_out))

    def _after_delivery(self) -> None:
        """Results came in: send held calls the child now has room for, and
        mark the oldest pending call as the running one."""
        if self._held:
            with self._lock:
                self._release_held_locked()
        if self._pending:
            with self._lock:
                self._start_head()

    def _start_timed_out(self) -> None:
        if self.ready.done():
            return
        self._dead = TimeoutError(
            f"starting worker {self._name} timed out after {self._start_timeout} s "
            "(process_worker_result_queue_timeout)"
        )
        self.ready._set_exception(self._dead)
        self.force_close()

    # -- closing ---------------------------------------------------------------

    def begin_close(self, graceful: bool) -> None:
        cancelled: list[Future[Any]] = []
        failed: list[tuple[Call, Exception]] = []
        with self._lock:
            if self._closing or self._dead is not None:
                return
            self._closing = True
            if graceful:
                self._cap = 0  # draining: everything held goes to the child now
                self._outbox[:0] = self._held.take_all_in_order()
                failed = self._flush_locked()
            else:
                cancelled = self._take_unsent_locked()
                # Calls run in order: all but the oldest pending call have not
                # started, and the child skips them on ABORT.
                for ident in sorted(self._pending)[1:]:
                    cancelled.append(self._pending.pop(ident))
            self._send_locked(frame(CLOSE if graceful else ABORT))
        self._fail_unpicklable(failed)
        for fut in cancelled:
            fut._set_cancelled()

    def force_close(self) -> None:
        """Terminate the child (SIGTERM, then SIGKILL), cancel what is pending, reap."""
        with self._lock:
            self._closing = True
            self._killed = True
            futures = self._take_unsent_locked()
            futures += self._pending.values()
            self._pending.clear()
        for fut in futures:
            fut._set_cancelled()
        if self._final or not hasattr(self, "_launcher"):
            self.closed._set_result(None)
            return
        on_loop = running_loop() is self._loop
        self._launcher.signal(self, kill=on_loop)
        if not on_loop:
            if not self._exited.wait(_KILL_GRACE):
                self._launcher.signal(self, kill=True)
                self._exited.wait(2.0)
            self._inbox.post(self._finalize)
            if self._exited.is_set():
                self.closed._set_result(None)


# ---------------------------------------------------------------------------
# The backend
# ---------------------------------------------------------------------------


class ProcessBackend:
    """Starts :class:`ProcessWorker` s."""

    option_names = OPTION_NAMES[ExecutionMode.Processes]
    capabilities = ProcessWorker.capabilities

    def start(self, spec: WorkerSpec) -> ProcessWorker:
        return ProcessWorker(spec)


backend = ProcessBackend()
