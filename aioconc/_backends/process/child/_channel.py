"""The child's end of a worker's socket: the reading role and requests to the parent.

Runs in worker processes without aioconc's ``__init__`` (see ``_child.py``'s
``BOOTSTRAP``), so it imports only the standard library and ``_wire.py``.

Reading the socket is one role taken by one thread at a time (``rlock``): the
serving thread between calls, a thread that waits for an answer to its request
while a method runs, or a coroutine's loop (``add_reader``) while a coroutine
waits.  Whoever reads records every frame for everyone (``take``) and wakes the
others, so a method may send requests from its own threads and coroutines.
User code never runs while holding the role.
"""

from __future__ import annotations

import contextlib
import itertools
import pickle
import socket
import threading
from typing import Any

from ._wire import LIMIT_REQUEST, FrameReader, frame

__all__ = ["Channel"]


def _parent_gone() -> RuntimeError:
    # A plain RuntimeError: it pickles back to the parent like any user error.
    return RuntimeError("the parent process is gone: a limit request cannot be answered")


def _answer(reply: tuple[bool, Any] | None) -> Any:
    """The value of a limit reply, or raise what it carries."""
    if reply is None:
        raise _parent_gone()
    ok, value = reply
    if not ok:
        raise value
    return value


def _resolve(waiter: tuple[Any, Any], reply: tuple[bool, Any] | None) -> None:
    """Finish a coroutine's limit request on its loop, from whichever thread read it."""
    loop, fut = waiter

    def finish() -> None:
        if not fut.done():
            fut.set_result(reply)

    import asyncio

    try:
        here: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:  # this thread runs no loop
        here = None
    if here is loop:
        finish()
    else:
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits there
            loop.call_soon_threadsafe(finish)


class Channel:
    """The socket to the parent, shared by the threads of a worker process.

    Subclasses define ``take(frames)``, which records what arrived (called by
    whichever thread reads) and passes ``LIMIT_REPLY`` bodies to ``replied``.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader = FrameReader()
        self.eof = False
        self.rlock = threading.Lock()
        self.cond = threading.Condition()
        self.send_lock = threading.Lock()
        self.request_ids = itertools.count(1)
        self.replies: dict[int, tuple[bool, Any]] = {}
        self.async_waiters: dict[int, tuple[Any, Any]] = {}  # id -> (loop, future)
        self.abandoned: dict[int, tuple[Any, ...]] = {}  # id -> request, reply unwanted
        self.watching: dict[Any, int] = {}  # loop -> async waiters reading through it
        self.sleepers = 0  # threads waiting in pump() for the reading role

    def take(self, frames: list[tuple[int, bytes]]) -> None:
        raise NotImplementedError

    # -- the reading role ----------------------------------------------------

    def pump(self, done: Any) -> None:
        """Read until ``done()`` or EOF, taking turns with other reading threads."""
        cond = self.cond
        while not (done() or self.eof):
            if self.rlock.acquire(blocking=False):  # the usual case: nobody else reads
                self.read_once(0)
                continue
            with cond:
                # Counted before trying again, so a reader leaving meanwhile
                # either lets this try succeed or sees the count and notifies.
                self.sleepers += 1
                try:
                    while not (done() or self.eof):
                        if self.rlock.acquire(blocking=False):
                            break
                        cond.wait()
                    else:
                        return
                finally:
                    self.sleepers -= 1
            self.read_once(0)

    def read_once(self, flags: int) -> None:
        """One read, by the holder of ``rlock``; gives the role up afterwards."""
        try:
            frames = self.reader.recv(self.sock, flags)
        except (BlockingIOError, InterruptedError):
            frames = []
        except BaseException:
            frames = None
        try:
            if frames is None:
                self.eof = True
            else:
                self.take(frames)
        finally:
            self.rlock.release()
            if self.sleepers or self.eof:
                with self.cond:
                    if self.eof:
                        self.fail_requests()
                    self.cond.notify_all()

    # -- requests to the parent ----------------------------------------------

    def request(self, payload: tuple[Any, ...]) -> Any:
        """Send a request to the parent and block this thread until it answers."""
        ident = self.send_request(payload)
        self.pump(lambda: ident in self.replies)
        with self.cond:
            reply = self.replies.pop(ident, None)
        return _answer(reply)

    def post(self, payload: tuple[Any, ...]) -> None:
        """Send a request that needs no answer."""
        self.send_request(payload)

    async def arequest(self, payload: tuple[Any, ...]) -> Any:
        """``request`` for a coroutine: waits on its loop, which reads the socket
        for as long as someone waits there (no other thread needs to)."""
        import asyncio

        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        with self.cond:
            ident = next(self.request_ids)
            self.async_waiters[ident] = (loop, fut)
        self.watch(loop, +1)
        try:
            self.send_request(payload, ident)
            return _answer(await fut)
        except BaseException:
            with self.cond:
                if self.async_waiters.pop(ident, None) is not None and not self.eof:
                    # No answer yet: tell the parent; a grant that crosses this
                    # message on the wire is given back when it arrives.
                    self.abandoned[ident] = payload
                    self.send_request(("abandon", ident))
            raise
        finally:
            self.watch(loop, -1)

    def send_request(self, payload: tuple[Any, ...], ident: int | None = None) -> int:
        if ident is None:
            with self.cond:
                ident = next(self.request_ids)
        body = pickle.dumps((ident, payload), pickle.HIGHEST_PROTOCOL)
        if self.eof:
            raise _parent_gone()
        self.send(frame(LIMIT_REQUEST, body))
        return ident

    def replied(self, body: bytes) -> None:
        ident, ok, value = pickle.loads(body)
        with self.cond:
            request = self.abandoned.pop(ident, None)
            waiter = self.async_waiters.pop(ident, None)
            if request is None and waiter is None:
                self.replies[ident] = (ok, value)
        if request is not None:
            if ok and value is not False and request[0] in ("acquire", "try"):
                # Granted after all (an acquire, or a try that succeeded): give it back.
                token, amounts = request[1], request[2]
                self.send_request(("release", token, amounts, dict.fromkeys(amounts, 0)))
        elif waiter is not None:
            _resolve(waiter, (ok, value))

    def watch(self, loop: Any, delta: int) -> None:
        with self.cond:
            count = self.watching.get(loop, 0) + delta
            if count:
                self.watching[loop] = count
            else:
                self.watching.pop(loop, None)
        if count == 1 and delta > 0:
            loop.add_reader(self.sock.fileno(), self.on_readable)
        elif not count:
            loop.remove_reader(self.sock.fileno())

    def on_readable(self) -> None:
        # Another thread may hold the reading role; it delivers our answers then.
        if self.rlock.acquire(blocking=False):
            self.read_once(socket.MSG_DONTWAIT)

    def fail_requests(self) -> None:
        """At EOF (lock held): every waiter learns that no answer will come."""
        for loop, fut in self.async_waiters.values():
            _resolve((loop, fut), None)
        self.async_waiters.clear()

    def send(self, data: bytes | None) -> None:
        if data:
            try:
                with self.send_lock:  # methods' threads send limit requests too
                    self.sock.sendall(data)
            except OSError:
                self.eof = True  # the parent is gone: nobody to answer
