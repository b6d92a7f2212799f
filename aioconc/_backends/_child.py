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
its own call only.  Kinds are tagged so that the child can later send requests
of its own (shared limits) over the same stream.

::

    parent                                  child
      INIT  (sys.path, cwd, cls, args)  ──►   build the instance
            ◄── READY (pid) | INIT_ERROR
      CALLS (id, method, args, kwargs)* ──►   run one at a time, in order
            ◄── RESULTS (id, outcome)*         flushed when the input is drained
      CLOSE (graceful) | ABORT (skip the rest) ──►  stop() hook, exit
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import signal
import socket
import struct
import sys
import time
import traceback
from collections import deque
from typing import Any

import cloudpickle

# -- frame kinds -------------------------------------------------------------
INIT, CALLS, CLOSE, ABORT, CANCEL = 1, 2, 3, 4, 5  # parent -> child
READY, INIT_ERROR, RESULTS = 11, 12, 13  # child -> parent
PID, EXITED = 21, 22  # fork server -> parent

# -- outcome tags of a result item ----------------------------------------
OK, ERROR, UNSERIALIZABLE, SKIPPED = 0, 1, 2, 3

HEADER = struct.Struct("<IB")
SERVER_MSG = struct.Struct("<BQi")  # kind, token or pid, pid or exit code
_U32 = struct.Struct("<I")
_ONE = struct.Struct("<IQI")  # the head of a batch of one item: most round trips
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
        ids, ends = self._ids, self._ends
        n = len(ids)
        if not n:
            return None
        buf = self._buf
        data = buf.getvalue()
        if n == 1:
            head = _ONE.pack(1, ids[0], ends[0])
        else:
            head = struct.pack(f"<I{n}Q{n}I", n, *ids, *ends)
        buf.seek(0)
        buf.truncate()
        ids.clear()
        ends.clear()
        return b"".join((HEADER.pack(len(head) + len(data), kind), head, data))


def split_batch(body: bytes) -> list[tuple[int, memoryview]]:
    """The ``(id, pickled item)`` pairs of a batch frame's body."""
    (n,) = _U32.unpack_from(body, 0)
    if n == 1:
        _, ident, end = _ONE.unpack_from(body, 0)
        return [(ident, memoryview(body)[16 : 16 + end])]
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
        # With nothing buffered (the usual case: whole frames arrive), frames
        # are cut from ``data`` directly and only a partial tail is kept.
        src: bytes | bytearray | memoryview = data
        if buf:
            buf += data
            src = buf
        frames = []
        pos = 0
        size = len(src)
        while size - pos >= 5:
            length, kind = HEADER.unpack_from(src, pos)
            end = pos + 5 + length
            if end > size:
                break
            frames.append((kind, bytes(src[pos + 5 : end])))
            pos = end
        if src is buf:
            del buf[:pos]
        elif pos < size:
            buf += src[pos:]
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


class _Child:
    """Runs the calls of one worker instance, in order, and sends back results."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader = FrameReader()
        self.writer = BatchWriter()
        self.queue: deque[tuple[int, memoryview]] = deque()
        self.closing = False
        self.eof = False
        self.cancelled: set[int] = set()  # sent, then cancelled before they began
        self.instance: Any = None
        self.methods: dict[str, Any] = {}
        self.loop: Any = None

    # -- input -------------------------------------------------------------

    def read(self, block: bool) -> None:
        try:
            frames = self.reader.recv(self.sock, 0 if block else socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return
        if frames is None:
            self.eof = True
            return
        for kind, body in frames:
            if kind == CALLS:
                self.queue.extend(split_batch(body))
            elif kind == CLOSE:
                self.closing = True
            elif kind == CANCEL:
                self.cancelled.update(i for (i,) in _U32.iter_unpack(body))
            elif kind == ABORT:
                self.closing = True
                for ident, _ in self.queue:
                    self.writer.add(ident, (SKIPPED,))
                self.queue.clear()
            elif kind == INIT:
                self.init(body)

    # -- start-up ------------------------------------------------------------

    def init(self, body: bytes) -> None:
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
    child = _Child(sock)
    while child.instance is None and not child.eof:
        child.read(block=True)
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
