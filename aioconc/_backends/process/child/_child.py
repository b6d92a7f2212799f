"""The child side of process mode: the entry point of worker processes and the fork server.

A fresh interpreter imports this file (with ``_wire.py``, the framing both
sides speak, and ``_channel.py``, the socket's child end) from bare packages
over aioconc's directories (``BOOTSTRAP``), so a child never re-imports the
parent's ``__main__`` and never imports ``aioconc`` unless the user's class
needs it.  So these files import only the standard library, cloudpickle, each
other and the codec (this folder's ``__init__``).

One duplex stream socket per worker carries tagged frames (``_wire.py``)::

    parent                                  child
      INIT  (sys.path, cwd, cls, args)  ──►   build the instance
            ◄── READY (pid) | INIT_ERROR
      CALLS (id, method, args, kwargs)* ──►   run one at a time, in order
            [+ carried contextvars]         (set around the method, _carry.py)
            ◄── RESULTS (id, outcome)*         flushed when the input is drained
      CANCEL (ids)                      ──►   skip these if not begun
      CLOSE (graceful) | ABORT (skip the rest) ──►  stop() hook, exit
            ◄── LIMIT_REQUEST (id, op)         at any time, from any thread
      LIMIT_REPLY (id, ok, value)       ──►

A shared ``LimitSet`` used in the child acquires from its state in the parent
with ``LIMIT_REQUEST`` / ``LIMIT_REPLY`` (see ``process/_limits.py``), from
the method's thread, its own threads or its coroutines: ``_channel.py`` shares
the socket between them.
"""

from __future__ import annotations

import contextlib
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

from ._channel import Channel
from ._wire import (
    _U32,
    ABORT,
    CALLS,
    CANCEL,
    CLOSE,
    ERROR,
    EXITED,
    INIT,
    INIT_ERROR,
    LIMIT_REPLY,
    OK,
    PID,
    READY,
    RESULTS,
    SERVER_MSG,
    SKIPPED,
    UNSERIALIZABLE,
    BatchWriter,
    frame,
    split_batch,
)

# Results are flushed when the input is drained, or sooner when this many are
# buffered or the oldest waited this long (a long queue must not hold results).
_FLUSH_COUNT = 512
_FLUSH_DELAY = 0.002

# The names these modules have inside a worker process: bare packages (whose
# __init__ never runs) named PACKAGE, _backends, process, child, over the same
# directories as aioconc's own (argv[1] is this file's path), so that the
# relative imports here find the same files (each other, and the codec) without
# importing aioconc.  PARTS is this folder's path inside aioconc.
PACKAGE = "aioconc_process"
PARTS = tuple(__name__.split(".")[1:-1])
NAME_IN_CHILD = ".".join((PACKAGE, *PARTS, "_child"))  # this module, in a child
PATH = os.path.abspath(__file__)
BOOTSTRAP = (
    "import sys,types,importlib,os.path as p\n"
    f"n,s,r={PACKAGE!r},{PARTS!r},p.dirname(sys.argv[1])\n"
    "for _ in s:r=p.dirname(r)\n"
    "for x in (*s,''):\n"
    " k=types.ModuleType(n);k.__path__=[r];sys.modules[n]=k\n"
    " if x:n+='.'+x;r=p.join(r,x)\n"
    "importlib.import_module(n+'._child').main(sys.argv[2:])"
)


# ---------------------------------------------------------------------------
# The worker process
# ---------------------------------------------------------------------------


def _describe(value: Any) -> str:
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__name__} object>"
    return text if len(text) <= 200 else text[:197] + "..."


CURRENT: _Child | None = None  # the worker this process runs (limit clients use it)


class _Child(Channel):
    """Runs the calls of one worker instance, in order, and sends back results."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__(sock)
        self.writer = BatchWriter()
        self.queue: deque[tuple[int, memoryview]] = deque()
        self.closing = False
        self.aborting = False
        self.init_body: bytes | None = None
        self.cancelled: set[int] = set()  # sent, then cancelled before they began
        self.instance: Any = None
        self.methods: dict[str, Any] = {}
        self.loop: Any = None
        # serializer="json"/"msgpack": calls and outcomes in that format (aioconc/_codec.py).
        self.codec: Any = None
        self.callee: Any = None  # decodes calls for the instance (_codec.Callee)
        self.current = ""  # the method of the call being run

    # -- input -------------------------------------------------------------

    def read(self, block: bool) -> None:
        """Take in what the parent sent; ``block``: wait until there is work."""
        if block:
            self.pump(lambda: bool(self.queue) or self.closing or self.aborting or self.init_body)
        elif self.rlock.acquire(blocking=False):
            self.read_once(socket.MSG_DONTWAIT)

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
            self.put(ident, (SKIPPED,))
        self.queue.clear()

    # -- start-up ------------------------------------------------------------

    def init(self, body: bytes) -> None:
        self.init_body = None
        try:
            path, cwd, authkey, spec, serializer = pickle.loads(body)
            sys.path[:] = path
            if serializer != "cloudpickle":
                from ...._codec import codec_for

                self.codec = codec_for(serializer)
            if cwd and os.path.isdir(cwd):
                os.chdir(cwd)
            if authkey:  # multiprocessing.Manager proxies among the arguments work
                import multiprocessing.process

                multiprocessing.process.current_process().authkey = authkey
            cls, args, kwargs, limits, retries = pickle.loads(spec)
            base = sys.modules.get("aioconc._backends._base")
            # Through aioconc's constructor when the class uses it, so that an
            # auto-init worker class builds an instance here, not a handle, and
            # self.limits is set; a class that never imported aioconc is built plainly.
            if base is not None:
                instance = base.construct(cls, args, kwargs, limits, retries)
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
                self.put(ident, (SKIPPED,))
                continue
            if not len(writer):
                first = time.monotonic()
            outcome = self.run(blob)
            if self.codec is None:
                error = writer.add(ident, outcome)
                if error is not None:
                    writer.add(ident, self.unpicklable(outcome, blob, error))
            else:
                writer.add_raw(ident, self.codec.encode_outcome(outcome, self.current))
            if len(writer) >= _FLUSH_COUNT or time.monotonic() - first > _FLUSH_DELAY:
                self.flush()
            if queue:
                self.read(block=False)  # picks up an ABORT while a queue is waiting
        self.flush()

    def put(self, ident: int, outcome: tuple[Any, ...]) -> None:
        """Add an outcome that always encodes (SKIPPED) to the results."""
        if self.codec is None:
            self.writer.add(ident, outcome)
        else:
            self.writer.add_raw(ident, self.codec.dumps(list(outcome)))

    def run(self, blob: memoryview) -> tuple[Any, ...]:
        try:
            call = pickle.loads(blob) if self.codec is None else self.decode(blob)
        except BaseException as exc:
            how = "unpickled" if self.codec is None else f"decoded ({self.codec.name})"
            return (
                UNSERIALIZABLE,
                f"the call's arguments could not be {how} in the worker process: {exc!r}",
                traceback.format_exc(),
            )
        try:
            name, args, kwargs = call
        except ValueError:  # a 4th item: the caller's carried context values
            return self.run_in(*call)
        try:  # invoke(), inlined: this is every call's path
            method = self.methods.get(name) or self.method(name)
            result = method(*args, **kwargs)
            if hasattr(result, "__await__"):
                result = self.run_awaitable(result)
        except BaseException as exc:
            return self.failure(exc, name)
        return (OK, result)

    def method(self, name: str) -> Any:
        method = getattr(self.instance, name)
        # The plain method, not an internal-retry wrapper: the parent retries.
        method = self.methods[name] = getattr(method, "__aioconc_unwrapped__", method)
        return method

    def invoke(self, name: str, args: Any, kwargs: dict[str, Any]) -> Any:
        method = self.methods.get(name) or self.method(name)
        result = method(*args, **kwargs)
        if hasattr(result, "__await__"):
            result = self.run_awaitable(result)
        return result

    def run_in(
        self, name: str, args: Any, kwargs: dict[str, Any], values: dict[str, Any]
    ) -> tuple[Any, ...]:
        """Run a call with the caller's carried context values set around it."""
        # Only a caller that registered variables sends values, so aioconc is
        # importable here (it is preloaded by the fork server anyway).
        import importlib

        carry = importlib.import_module("aioconc._carry")
        try:
            result = carry.run_with(values, self.invoke, name, args, kwargs)
        except BaseException as exc:
            return self.failure(exc, name)
        return (OK, result)

    def decode(self, blob: memoryview) -> tuple[Any, ...]:
        """A call sent as JSON/msgpack, model-annotated arguments validated back
        (with the carried context values, when the caller sent any)."""
        callee = self.callee
        if callee is None:
            from ...._codec import Callee

            bound = getattr(self.instance, "_bound_fn", None)
            callee = self.callee = Callee(self.codec, self.instance, bound)
        name, args, kwargs, *context = self.codec.loads(blob)
        self.current = name
        return (name, *callee.arguments(name, args, kwargs), *context)

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
