"""The receiving half of a process worker: results read from its socket, either
on aioconc's background loop or by the very thread that waits for one.

A call made and waited for in a plain thread used to come back in two hops:
the loop thread woke on the socket, read and unpickled the result, and only
then woke the caller blocked in ``result()``.  Now that caller reads the socket
itself (one wake-up, as with a raw pipe) and the loop reads whenever no caller
does::

    child ══socket══► epoll set ──► background loop    (nobody waits in a thread)
                 ╚══════════════► the waiting thread   (it holds the turn)

* **The turn** (one lock): whoever holds it reads *and* delivers, so frames are
  never split between two readers and every frame read is delivered, for every
  pending call, not only the reader's own.  The loop only ever tries to take
  it; a thread that finds it taken waits as before (the holder delivers).
* **The epoll set**: the loop watches a private epoll set holding the socket,
  not the socket itself.  A thread taking the turn switches the socket off in
  that set (thread-safe, no hop to the loop), so the loop is not woken for
  data the thread reads anyway; leaving, it switches it back on, and data that
  arrived meanwhile wakes the loop at once: nothing is left unread.
* **Waiting**: a thread waiting, with no deadline, for the only call with the
  child (the one it runs, which no cancel can end) blocks in ``recv()`` itself:
  waking a thread there costs about half of waking it from ``poll``.  Only its
  result, the child's end or the loop taking the socket back (a
  ``shutdown(SHUT_RD)``, which leaves what was sent readable) ends that wait.
  The socket is in blocking mode for this; every other read and every write
  passes ``MSG_DONTWAIT``.
* **Waking a reader**: any other wait is in ``poll`` on the socket and an
  eventfd, so a completion from elsewhere (cancel, stop, the worker's end)
  ends it.
  When the loop needs the socket (the child exited: read what is left, close),
  it asks for the turn; a thread holding it is woken, leaves, and posts the
  worker's ``_finalize`` back to the loop.

Without epoll and eventfd (not Linux), only the loop reads.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import select
import socket
import threading
import time
from typing import TYPE_CHECKING, Any, Protocol

from ..._future import Future
from ..._serialize import remote_error, unloadable_error, with_remote_traceback
from ._launch import Launched
from .child._wire import (
    ERROR,
    INIT_ERROR,
    LIMIT_REQUEST,
    OK,
    READY,
    RESULTS,
    UNSERIALIZABLE,
    FrameReader,
    split_batch,
)

if TYPE_CHECKING:
    from ..._runtime import Inbox
    from ..._serialize import CallCodec
    from ._launch import ForkServer, Spawner

__all__ = ["Receiver", "Receiving"]

log = logging.getLogger("aioconc")

_DIRECT = hasattr(select, "epoll") and hasattr(os, "eventfd")


class Receiving(Launched, Protocol):
    """What a :class:`Receiver` needs of the worker whose socket it reads.

    A protocol rather than ``ProcessWorker`` itself, so this module does not
    import ``_worker`` (which imports it).
    """

    ready: Future[None]
    _name: str
    _pending: dict[int, Future[Any]]
    _inbox: Inbox
    _launcher: Spawner | ForkServer
    _codec: CallCodec | None
    _methods: dict[int, str]

    def _on_eof(self) -> None: ...

    def _finalize(self) -> None: ...

    def _serve_limits(self, body: bytes) -> None: ...

    def _after_delivery(self) -> None: ...


class Receiver:
    """Reads one worker's socket and finishes the futures of its calls.

    ``worker._pending`` maps call ids to futures; a result pops its future.
    """

    def __init__(self, worker: Receiving, sock: socket.socket) -> None:
        self._worker = worker
        self._sock = sock
        self._fd = sock.fileno()
        self._frames = FrameReader()
        self._turn = threading.Lock()  # held to read and deliver; held for good once closed
        self._reading = 0  # ident of the thread holding the turn (0: none, or the loop)
        self._handback = False  # the loop wants the socket back for good (to close it)
        self._in_recv = False  # a thread is (about to be) blocked in recv()
        self._eof = False
        self._closed = False
        self._ep: Any = None
        self._wake = -1
        self._wake_lock = threading.Lock()  # a poke never writes to a closed eventfd
        # Switching the loop's wake-ups on and releasing the turn are one step
        # under this lock, so the loop never switches them off for a reader
        # that has already left.
        self._switch_lock = threading.Lock()
        self._wake_hook = _WakeHook(self)
        if _DIRECT:
            self._ep = select.epoll()
            self._ep.register(self._fd, select.EPOLLIN)
            self._wake = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
            self._poll = select.poll()
            self._poll.register(self._fd, select.POLLIN)
            self._poll.register(self._wake, select.POLLIN)

    def fileno(self) -> int:
        """The descriptor the loop watches for readability."""
        return self._ep.fileno() if self._ep is not None else self._fd

    # -- the loop's side -------------------------------------------------------

    def on_readable(self) -> None:
        """The loop's reader: read what the socket has and deliver it."""
        if not self._turn.acquire(blocking=False):
            # A thread has just taken the turn and is about to switch these
            # wake-ups off: do it for it, or this level-triggered wake-up
            # repeats (and takes the GIL from that thread) until it has.
            with self._switch_lock:
                if self._ep is not None and self._turn.locked() and not self._closed:
                    self._ep.modify(self._fd, 0)  # its leaving switches them on again
            return
        try:
            if not self._eof:
                self._read_once()
        finally:
            self._turn.release()
            self._after_release()
        if self._eof:
            self._worker._on_eof()

    def close(self) -> bool:
        """On the loop: deliver what is left in the socket, then close it.

        Returns False when a thread holds the turn: it is woken, and once it
        has left, ``worker._finalize`` runs again on the loop.  Once closed,
        the turn is never released, so no thread reads any more.
        """
        if self._closed:
            return True
        # Set before trying, and never cleared: a holder leaving after this
        # sees it and posts _finalize, and no thread starts reading any more.
        self._handback = True
        if not self._turn.acquire(blocking=False):
            self._poke(force=True)
            return False
        self._closed = True
        if not self._sock._closed:  # type: ignore[attr-defined]
            # Results the child sent before it ended are still in the socket.
            while not self._eof and not self._read_once():
                pass
            self._sock.close()
        if self._ep is not None:
            self._ep.close()
            with self._wake_lock:
                os.close(self._wake)
                self._wake = -1
        return True

    def _read_once(self) -> bool:
        """Read and deliver what the socket has now (turn held); True at EOF or
        when nothing is there (non-blocking), so callers can loop on it."""
        try:
            frames = self._frames.recv(self._sock, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return True
        if frames is None:
            self._eof = True
            return True
        self._deliver_frames(frames)
        return False

    # -- the waiting thread's side --------------------------------------------

    def read_while_waiting(self, fut: Future[Any], deadline: float | None) -> None:
        """Read in this thread until ``fut`` is done, ``deadline`` (monotonic)
        passes, the child's stream ends or the loop asks for the turn.

        Returns at once when another reader holds the turn (it delivers
        ``fut``); the caller then waits for it as usual.
        """
        if self._ep is None or self._eof or self._handback:
            return
        if not self._turn.acquire(blocking=False):
            return
        self._reading = threading.get_ident()
        # Registered before the first done() check, so no completion by
        # another thread (a cancel, a stop) is missed: it wakes this poll.
        fut.add_done_callback(self._wake_hook)
        try:
            self._ep.modify(self._fd, 0)  # the loop sleeps while this thread reads
            if deadline is None and self._only_call(fut):
                self._read_blocking(fut)
            else:
                self._read_until(fut, deadline)
        finally:
            if not fut.done():
                fut.remove_done_callback(self._wake_hook)
            self._reading = 0
            with self._switch_lock:
                self._ep.modify(self._fd, select.EPOLLIN)  # unread data wakes the loop now
                self._turn.release()
            self._after_release()

    def _only_call(self, fut: Future[Any]) -> bool:
        # The only call with the child is the one it runs: STARTED, so no
        # cancel() can finish it from elsewhere; only its result, the child's
        # end (EOF) or the loop taking the socket back (a shutdown) ends the wait.
        pending = self._worker._pending
        return len(pending) == 1 and fut.running() and next(iter(pending.values())) is fut

    def _read_blocking(self, fut: Future[Any]) -> None:
        """Block in recv() until ``fut`` is done: the cheapest wake-up there is."""
        self._in_recv = True
        try:
            while not fut.done() and not self._handback:  # see close() for the order
                try:
                    frames = self._frames.recv(self._sock)
                except BlockingIOError:
                    # The loop made the socket non-blocking (libuv does so to
                    # watch it for writing): wait in poll() instead.
                    self._in_recv = False
                    self._read_until(fut, None)
                    return
                if frames is None:
                    if not self._handback:  # not the loop's shutdown: the real end
                        self._eof = True
                    return
                if not self._deliver_frames(frames):
                    return
        finally:
            self._in_recv = False

    def _read_until(self, fut: Future[Any], deadline: float | None) -> None:
        poll = self._poll.poll
        wake = self._wake
        while not fut.done() and not self._handback:
            if deadline is None:
                events = poll()
            else:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                events = poll(left * 1000.0)
            for fd, _ in events:
                if fd == wake:
                    with contextlib.suppress(BlockingIOError):
                        os.eventfd_read(wake)
            try:
                frames = self._frames.recv(self._sock, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                continue  # only the eventfd: look at fut again
            if frames is None:
                self._eof = True  # the loop ends the worker once it reads again
                return
            if not self._deliver_frames(frames):
                return

    def _after_release(self) -> None:
        if self._handback:  # looked at after releasing: see close()
            self._worker._inbox.post(self._worker._finalize)

    def _poke(self, force: bool = False) -> None:
        # End the reading thread's poll, unless it is that thread itself
        # finishing the future (it looks at it after delivering).
        if not force and threading.get_ident() == self._reading:
            return
        with self._wake_lock:
            if self._wake >= 0:
                os.eventfd_write(self._wake, 1)
        if force and self._in_recv:
            # A thread blocked in recv() wakes when reading is shut down; what
            # the child sent stays readable for close() to deliver.
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RD)

    # -- delivery (turn held) -------------------------------------------------------

    def _deliver_frames(self, frames: list[tuple[int, bytes]]) -> bool:
        """Finish the futures these frames answer; False if the stream is garbled."""
        worker = self._worker
        try:
            for kind, body in frames:
                if kind == RESULTS:
                    self._deliver(body)
                elif kind == LIMIT_REQUEST:
                    worker._serve_limits(body)
                elif kind == READY:
                    worker.pid = int.from_bytes(body, "little") or worker.pid
                    worker.ready._set_result(None)
                elif kind == INIT_ERROR:
                    for _, blob in split_batch(body):
                        worker.ready._set_exception(self._outcome_error(blob))
        except Exception:
            # A garbled stream can't be trusted any further: end the worker
            # (its calls fail as crashed) rather than leave futures pending.
            log.exception("worker %s sent a message that could not be read", worker._name)
            worker._launcher.signal(worker, kill=True)
            return False
        return True

    def _deliver(self, body: bytes) -> None:
        worker = self._worker
        pending = worker._pending
        codec = worker._codec
        for ident, blob in split_batch(body):
            fut = pending.pop(ident, None)
            method = "" if codec is None else worker._methods.pop(ident, "")
            if fut is None:
                continue  # skipped after a cancel, or already ended by force_close()
            try:
                item = pickle.loads(blob) if codec is None else codec.decode_outcome(blob, method)
            except Exception as exc:
                fut._set_exception(unloadable_error(worker._name, exc))
                continue
            tag = item[0]
            if tag == OK:
                fut._set_result(item[1])
            elif tag == ERROR:
                fut._set_exception(with_remote_traceback(item[1], item[2]))
            elif tag == UNSERIALIZABLE:
                fut._set_exception(remote_error(item[1], item[2]))
            else:
                fut._set_cancelled()
        worker._after_delivery()

    def _outcome_error(self, blob: memoryview) -> BaseException:
        try:
            item = pickle.loads(blob)
        except Exception as exc:
            return unloadable_error(self._worker._name, exc)
        if item[0] == ERROR:
            return with_remote_traceback(item[1], item[2])
        return remote_error(item[1], item[2])


class _WakeHook:
    """The done-callback of a call a thread waits for while reading: another
    thread finishing it (a cancel, a stop) wakes the reader's poll."""

    __slots__ = ("receiver",)
    threadsafe = True  # runs where the call is finished, even under a running loop

    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver

    def __call__(self, _fut: Future[Any]) -> None:
        self.receiver._poke()
