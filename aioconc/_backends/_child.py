"""The child side of process mode, and the wire format both sides speak.

This file runs in two places: imported by the parent (``_process.py`` uses the
framing below), and loaded *by path* in a fresh interpreter as the entry point
of a worker process or of the fork server, so a child never re-imports the
parent's ``__main__`` and never imports ``aioconc`` unless the user's class
needs it.  It therefore imports only the standard library and cloudpickle.

Wire format, one duplex stream socket per worker::

    frame  = <u32 body length> <u8 kind> body
    batch  = <u32 n> <n x u64 call ids> <n x u32 end offsets> <n pickles>

Every item of a batch is its own pickle (one ``Pickler`` per batch, memo
cleared between items), so a value that can't be pickled or unpickled fails
its own call only.  Kinds are tagged, so the child also sends requests of its
own over the same stream: a shared ``LimitSet`` used in the child acquires from
its state in the parent (``LIMIT_REQUEST`` / ``LIMIT_REPLY``, see
``_process_limits.py``).

::

    parent                                  child
      INIT  (sys.path, cwd, cls, args)  ──►   build the instance
            ◄── READY (pid) | INIT_ERROR
      CALLS (id, method, args, kwargs)* ──►   run one at a time, in order
            ◄── RESULTS (id, outcome)*         flushed when the input is drained
      CLOSE (graceful) | ABORT (skip the rest) ──►  stop() hook, exit
            ◄── LIMIT_REQUEST (id, op)         at any time, from any thread
      LIMIT_REPLY (id, ok, value)       ──►

Reading the socket is one role taken by one thread at a time: the serving
thread between calls, or a thread that waits for a limit reply while a method
runs (a method may acquire from its own threads, or from coroutines, which read
through their loop).  User code never runs while holding that role.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import os
import pickle
import signal
import socket
import struct
import sys
import threading
import time
import traceback
from collections import deque
from typing import Any

import cloudpickle

# -- frame kinds -------------------------------------------------------------
INIT, CALLS, CLOSE, ABORT, CANCEL, LIMIT_REPLY = 1, 2, 3, 4, 5, 6  # parent -> child
READY, INIT_ERROR, RESULTS, LIMIT_REQUEST = 11, 12, 13, 14  # child -> parent
PID, EXITED = 21, 22  # fork server -> parent

# -- outcome tags of a result item ----------------------------------------
OK, ERROR, UNSERIALIZABLE, SKIPPED = 0, 1, 2, 3

HEADER = struct.Struct("<IB")
SERVER_MSG = struct.Struct("<BQi")  # kind, token or pid, pid or exit code
_U32 = struct.Struct("<I")
RECV_SIZE = 1 << 18
# Results are flushed when the input is drained, or sooner when this many are
# buffered or the oldest waited this long (a long queue must not hold results).
_FLUSH_COUNT = 512
_FLUSH_DELAY = 0.002

BOOTSTRAP = (
    "import sys,importlib.util as u;"
    "s=u.spec_from_file_location('aioconc_child',sys.argv[1]);"
    "m=u.module_from_spec(s);sys.modules['aioconc_child']=m;"
    "s.loader.exec_module(m);m.main(sys.argv[2:])"
)


# ---------------------------------------------------------------------------
# Framing (used by both sides)
# ---------------------------------------------------------------------------


def frame(kind: int, body: bytes = b"") -> bytes:
    """One frame of ``kind`` carrying ``body``."""
    return HEADER.pack(len(body), kind) + body


class BatchWriter:
    """Pickles items one by one into one batch frame; a failing item is left out.

    Not thread-safe: the owner serialises access.
    """

    def __init__(self) -> None:
        self._buf = io.BytesIO()
        self._pickler = cloudpickle.Pickler(self._buf, protocol=pickle.HIGHEST_PROTOCOL)
        self._ids: list[int] = []
        self._ends: list[int] = []

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, ident: int, obj: Any) -> Exception | None:
        """Append ``obj`` as item ``ident``; return the error if it can't be pickled."""
        buf = self._buf
        start = buf.tell()
        try:
            self._pickler.dump(obj)
        except Exception as exc:
            # A large value may have been written in part before failing.
            buf.seek(start)
            buf.truncate()
            self._pickler.clear_memo()
            return exc
        self._pickler.clear_memo()
        self._ids.append(ident)
        self._ends.append(buf.tell())
        return None

    def take(self, kind: int) -> bytes | None:
        """The batch frame of everything added so far (None if empty); starts anew."""
        n = len(self._ids)
        if not n:
            return None
        data = self._buf.getvalue()
        head = struct.pack(f"<I{n}Q{n}I", n, *self._ids, *self._ends)
        self._buf.seek(0)
        self._buf.truncate()
        self._ids.clear()
        self._ends.clear()
        return HEADER.pack(len(head) + len(data), kind) + head + data


def split_batch(body: bytes) -> list[tuple[int, memoryview]]:
    """The ``(id, pickled item)`` pairs of a batch frame's body."""
    (n,) = _U32.unpack_from(body, 0)
    ids = struct.unpack_from(f"<{n}Q", body, 4)
    ends = struct.unpack_from(f"<{n}I", body, 4 + 8 * n)
    view = memoryview(body)[4 + 12 * n :]
    start = 0
    items = []
    for ident, end in zip(ids, ends):
        items.append((ident, view[start:end]))
        start = end
    return items


class FrameReader:
    """Cuts a byte stream into ``(kind, body)`` frames."""

    def __init__(self) -> None:
        self._buf = bytearray()
        # recv_into this one buffer: recv(n) would allocate n bytes per read,
        # and a large n costs an mmap/munmap each time.
        self._chunk = bytearray(RECV_SIZE)
        self._view = memoryview(self._chunk)

    def recv(self, sock: socket.socket, flags: int = 0) -> list[tuple[int, bytes]] | None:
        """Read what ``sock`` has; return the frames completed, or None at EOF.

        Raises ``BlockingIOError`` when a non-blocking socket has nothing.
        """
        try:
            n = sock.recv_into(self._chunk, RECV_SIZE, flags)
        except (BlockingIOError, InterruptedError):
            raise
        except OSError:
            return None
        if not n:
            return None
        return self.feed(self._view[:n])

    def feed(self, data: bytes | memoryview) -> list[tuple[int, bytes]]:
        """Add ``data``; return the frames it completes."""
        buf = self._buf
        buf += data
        frames = []
        pos = 0
        size = len(buf)
        while size - pos >= 5:
            length, kind = HEADER.unpack_from(buf, pos)
            end = pos + 5 + length
            if end > size:
                break
            frames.append((kind, bytes(buf[pos + 5 : end])))
            pos = end
        if pos:
            del buf[:pos]
        return frames


# ---------------------------------------------------------------------------
# The worker process
# ---------------------------------------------------------------------------


def _describe(value: Any) -> str:
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__name__} object>"
    return text if len(text) <= 200 else text[:197] + "..."


class _ParentGone(RuntimeError):
    def __init__(self) -> None:
        super().__init__("the parent process is gone: a limit request cannot be answered")


def _answer(reply: tuple[bool, Any] | None) -> Any:
    """The value of a limit reply, or raise what it carries."""
    if reply is None:
        raise _ParentGone()
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

    if asyncio._get_running_loop() is loop:
        finish()
    else:
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits there
            loop.call_soon_threadsafe(finish)


CURRENT: _Child | None = None  # the worker this process runs (limit clients use it)


class _Child:
    """Runs the calls of one worker instance, in order, and sends back results."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader = FrameReader()
        self.writer = BatchWriter()
        self.queue: deque[tuple[int, memoryview]] = deque()
        self.closing = False
        self.aborting = False
        self.eof = False
        self.init_body: bytes | None = None
        self.cancelled: set[int] = set()  # sent, then cancelled before they began
        self.instance: Any = None
        self.methods: dict[str, Any] = {}
        self.loop: Any = None
        # The reading role (see the module docstring) and the limit requests.
        self.rlock = threading.Lock()
        self.cond = threading.Condition()
        self.send_lock = threading.Lock()
        self.request_ids = itertools.count(1)
        self.replies: dict[int, tuple[bool, Any]] = {}
        self.async_waiters: dict[int, tuple[Any, Any]] = {}  # id -> (loop, future)
        self.abandoned: dict[int, tuple[Any, ...]] = {}  # id -> request, reply unwanted
        self.watching: dict[Any, int] = {}  # loop -> async waiters reading through it

    # -- input -------------------------------------------------------------

    def read(self, block: bool) -> None:
        """Take in what the parent sent; ``block``: wait until there is work."""
        if block:
            self.pump(lambda: bool(self.queue) or self.closing or self.aborting or self.init_body)
        elif self.rlock.acquire(blocking=False):
            self.read_once(socket.MSG_DONTWAIT)

    def pump(self, done: Any) -> None:
        """Read until ``done()`` or EOF, taking turns with other reading threads."""
        cond = self.cond
        while True:
            with cond:
                while not (done() or self.eof):
                    if self.rlock.acquire(blocking=False):
                        break
                    cond.wait()
                else:
                    return
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
            with self.cond:
                self.rlock.release()
                if self.eof:
                    self.fail_requests()
                self.cond.notify_all()

    def take(self, frames: list[tuple[int, bytes]]) -> None:
        # Only records what arrived: the serving thread acts on it, so this is
        # safe from whichever thread reads.
        for kind, body in frames:
            if kind == CALLS:
                self.queue.extend(split_batch(body))
            elif kind == LIMIT_REPLY:
                self.replied(body)
            elif kind == CLOSE:
                self.closing = True
            elif kind == CANCEL:
                self.cancelled.update(i for (i,) in _U32.iter_unpack(body))
            elif kind == ABORT:
                self.aborting = True
            elif kind == INIT:
                self.init_body = body

    def abort(self) -> None:
        self.aborting = False
        self.closing = True
        for ident, _ in self.queue:
            self.writer.add(ident, (SKIPPED,))
        self.queue.clear()

    # -- limit requests (see _process_limits.py) -----------------------------

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
            raise _ParentGone()
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

    # -- start-up ------------------------------------------------------------

    def init(self, body: bytes) -> None:
        self.init_body = None
        try:
            path, cwd, authkey, spec = pickle.loads(body)
            sys.path[:] = path
            if cwd and os.path.isdir(cwd):
                os.chdir(cwd)
            if authkey:  # multiprocessing.Manager proxies among the arguments work
                import multiprocessing.process

                multiprocessing.process.current_process().authkey = authkey
            cls, args, kwargs, limits = pickle.loads(spec)
            base = sys.modules.get("aioconc._backends._base")
            # Through aioconc's constructor when the class uses it, so that an
            # auto-init worker class builds an instance here, not a handle, and
            # self.limits is set; a class that never imported aioconc is built plainly.
            if base is not None:
                instance = base.construct(cls, args, kwargs, limits)
            else:
                instance = cls(*args, **kwargs)
            if hasattr(instance, "__await__"):
                instance = self.run_awaitable(instance)
        except BaseException as exc:
            self.writer.add(0, self.failure(exc, "__init__"))
            self.send(self.writer.take(INIT_ERROR))
            self.eof = True
            return
        self.instance = instance
        self.send(frame(READY, _U32.pack(os.getpid())))

    # -- calls ---------------------------------------------------------------

    def serve(self) -> None:
        queue = self.queue
        writer = self.writer
        first = 0.0
        while not self.eof:
            if self.aborting:
                self.abort()
            if not queue:
                self.flush()
                if self.closing:
                    break
                self.read(block=True)
                continue
            ident, blob = queue.popleft()
            if ident in self.cancelled:
                self.cancelled.discard(ident)
                writer.add(ident, (SKIPPED,))
                continue
            if not len(writer):
                first = time.monotonic()
            outcome = self.run(blob)
            error = writer.add(ident, outcome)
            if error is not None:
                writer.add(ident, self.unpicklable(outcome, blob, error))
            if len(writer) >= _FLUSH_COUNT or time.monotonic() - first > _FLUSH_DELAY:
                self.flush()
            if queue:
                self.read(block=False)  # picks up an ABORT while a queue is waiting
        self.flush()

    def run(self, blob: memoryview) -> tuple[Any, ...]:
        try:
            name, args, kwargs = pickle.loads(blob)
        except BaseException as exc:
            return (
                UNSERIALIZABLE,
                f"the call's arguments could not be unpickled in the worker process: {exc!r}",
                traceback.format_exc(),
            )
        try:
            method = self.methods.get(name)
            if method is None:
                method = self.methods[name] = getattr(self.instance, name)
            result = method(*args, **kwargs)
            if hasattr(result, "__await__"):
                result = self.run_awaitable(result)
        except BaseException as exc:
            return self.failure(exc, name)
        return (OK, result)

    def failure(self, exc: BaseException, name: str) -> tuple[Any, ...]:
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        exc.__traceback__ = None
        exc.__context__ = None  # not sent: keep the pickle to what the caller needs
        return (ERROR, exc, tb, name)

    def unpicklable(
        self, outcome: tuple[Any, ...], blob: memoryview, error: Exception
    ) -> tuple[Any, ...]:
        err = _describe(error)
        try:
            name = pickle.loads(blob)[0]
        except Exception:
            name = "?"
        if outcome[0] == ERROR:
            what = f"the exception {_describe(outcome[1])} raised by {name}()"
            return (UNSERIALIZABLE, f"{what} could not be pickled: {err}", outcome[2])
        what = f"the return value {_describe(outcome[1])} of {name}()"
        return (UNSERIALIZABLE, f"{what} could not be pickled: {err}", "")

    def run_awaitable(self, awaitable: Any) -> Any:
        if self.loop is None:
            import asyncio

            self.loop = asyncio.new_event_loop()
        return self.loop.run_until_complete(awaitable)

    # -- output and shutdown -------------------------------------------------

    def flush(self) -> None:
        self.send(self.writer.take(RESULTS))

    def send(self, data: bytes | None) -> None:
        if data:
            try:
                with self.send_lock:  # methods' threads send limit requests too
                    self.sock.sendall(data)
            except OSError:
                self.eof = True  # the parent is gone: nobody to answer

    def finish(self) -> None:
        hook = getattr(self.instance, "stop", None) if self.instance is not None else None
        if callable(hook):
            try:
                result = hook()
                if hasattr(result, "__await__"):
                    self.run_awaitable(result)
            except BaseException:
                traceback.print_exc()
        if self.loop is not None:
            self.loop.close()


def serve_child(fd: int) -> int:
    """Run one worker over the socket ``fd`` until CLOSE, ABORT or EOF; the exit code."""
    sock = socket.socket(fileno=fd)
    os.set_inheritable(fd, False)  # processes the user starts must not hold it open
    sock.setblocking(True)
    global CURRENT
    child = CURRENT = _Child(sock)
    while child.instance is None and not child.eof:
        child.read(block=True)
        if child.init_body is not None:
            child.init(child.init_body)
    if child.instance is not None:
        child.serve()
        child.finish()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    sock.close()
    return 0


# ---------------------------------------------------------------------------
# The fork server
# ---------------------------------------------------------------------------


def serve_forks(fd: int) -> int:
    """Fork a fresh worker process per request until the parent goes away.

    A request is 8 bytes (a token) with the worker's socket attached; the
    reply is ``PID token pid``.  Every exit is reported as ``EXITED pid code``
    (negative code: killed by that signal), since only this process can reap.
    """
    import select

    sock = socket.socket(fileno=fd)
    os.set_inheritable(fd, False)
    with contextlib.suppress(Exception):
        import aioconc  # noqa: F401  (preloaded once, so forked workers start warm)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    while True:
        watched: list[Any] = [sock, wake_r]
        readable = select.select(watched, [], [])[0]
        if wake_r in readable:
            while True:
                try:
                    if not os.read(wake_r, 512):
                        break
                except BlockingIOError:
                    break
            _reap(sock)
        if sock in readable:
            msg, fds, _, _ = socket.recv_fds(sock, 8, 1)
            if not msg:
                return 0
            if not fds:
                continue
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    os.close(wake_r)
                    os.close(wake_w)
                    signal.set_wakeup_fd(-1)
                    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                    sock.close()
                    code = serve_child(fds[0])
                finally:
                    os._exit(code)
            os.close(fds[0])
            sock.sendall(SERVER_MSG.pack(PID, struct.unpack("<Q", msg)[0], pid))


def _reap(sock: socket.socket) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        sock.sendall(SERVER_MSG.pack(EXITED, pid, os.waitstatus_to_exitcode(status)))


def main(argv: list[str]) -> None:
    """Entry point: ``child FD`` runs one worker, ``server FD PATHS`` the fork server."""
    # Ctrl-C in a terminal reaches the whole process group: the parent decides
    # what happens to its workers, not the signal.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    role, fd = argv[0], int(argv[1])
    if len(argv) > 2:
        sys.path[:] = argv[2].split(os.pathsep)
    code = serve_forks(fd) if role == "server" else serve_child(fd)
    sys.stdout.flush()
    os._exit(code)
