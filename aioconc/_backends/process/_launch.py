"""How a process worker's child comes to life, is watched, signalled and reaped.

Two launchers, picked by ``mp_context``:

* :class:`Spawner` (``"spawn"``): ``subprocess.Popen`` of a fresh interpreter
  running ``child/_child.py`` by path; its exit is seen through a pidfd on the loop
  (a waiting thread where there are no pidfds).
* :class:`ForkServer` (``"forkserver"``, ``"fork"``): one helper process per
  parent, started on first use with aioconc preloaded, forks each child on
  request (the child's socket travels as ``SCM_RIGHTS``).  Only the helper can
  reap its children, so it reports every exit code back over its own socket.

Every launcher calls ``worker._on_pid(pid)`` and ``worker._on_exit(code)`` on
the background loop; ``code`` is negative for a signal, None when unknown.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
from typing import TYPE_CHECKING, Protocol

from ..._runtime import background_loop, inbox_for
from .child._child import BOOTSTRAP, PATH
from .child._wire import EXITED, PID, SERVER_MSG

if TYPE_CHECKING:
    import asyncio

__all__ = ["ForkServer", "Launched", "Spawner", "authkey", "exit_description", "launcher_for"]


class Launched(Protocol):
    """What a launcher needs of the worker whose child it starts.

    A protocol rather than ``ProcessWorker`` itself, so this module does not
    import ``_worker`` (which imports it).
    """

    pid: int | None
    _exitcode: int | None
    _exited: threading.Event

    def _on_pid(self, pid: int) -> None: ...

    def _on_exit(self, code: int | None) -> None: ...


def exit_description(code: int | None) -> str:
    """How a process ended, in words: "exited with code 3", "was killed by SIGKILL ..."."""
    if code is None:
        return "died (exit status unknown)"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"was killed by {name} (exit code {code})"
    return f"exited with code {code}"


def authkey() -> bytes:
    """The authkey a child takes (empty when multiprocessing is not in use)."""
    # multiprocessing.Manager proxies passed to a worker authenticate with the
    # process's authkey; the child takes the parent's, as multiprocessing's own do.
    mp = sys.modules.get("multiprocessing.process")
    if mp is None:
        return b""
    return bytes(mp.current_process().authkey)


def _command(role: str, fd: int, *extra: str) -> list[str]:
    return [sys.executable, "-c", BOOTSTRAP, PATH, role, str(fd), *extra]


def launcher_for(context: str) -> Spawner | ForkServer:
    """The launcher of ``mp_context`` ("spawn", "fork" or "forkserver")."""
    if context == "spawn":
        return Spawner()
    if context in ("fork", "forkserver"):
        return ForkServer.get()
    raise ValueError(f"mp_context must be 'fork', 'spawn' or 'forkserver', got {context!r}")


# ---------------------------------------------------------------------------
# spawn: one fresh interpreter per worker
# ---------------------------------------------------------------------------


class Spawner:
    """Starts one child with ``subprocess.Popen`` (one Spawner per worker)."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._pidfd: int | None = None

    def launch(self, child: socket.socket, worker: Launched) -> None:
        fd = child.fileno()
        self._proc = subprocess.Popen(
            _command("child", fd), pass_fds=(fd,), stdin=subprocess.DEVNULL
        )
        worker.pid = self._proc.pid

    def watch(self, worker: Launched, loop: asyncio.AbstractEventLoop) -> None:
        proc = self._proc
        assert proc is not None
        try:
            self._pidfd = os.pidfd_open(proc.pid)
        except (AttributeError, OSError):  # no pidfds (macOS, old kernels): a waiting thread
            threading.Thread(
                target=lambda: inbox_for(loop).post(worker._on_exit, proc.wait()),
                name=f"aioconc-reaper-{proc.pid}",
                daemon=True,
            ).start()
            return
        loop.add_reader(self._pidfd, self._exited, worker, loop)

    def _exited(self, worker: Launched, loop: asyncio.AbstractEventLoop) -> None:
        self._close_pidfd(loop)
        assert self._proc is not None
        worker._on_exit(self._proc.wait())

    def _close_pidfd(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._pidfd is not None:
            loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None

    def signal(self, worker: Launched, kill: bool) -> None:
        proc = self._proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill() if kill else proc.terminate()

    def release(self, worker: Launched) -> None:
        if self._pidfd is not None:
            self._close_pidfd(background_loop())
        proc = self._proc
        if proc is not None and proc.returncode is None:
            # Finalized by EOF or force_close(): make sure nothing is left behind.
            try:
                proc.wait(2.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            worker._exitcode = proc.returncode
            worker._exited.set()


# ---------------------------------------------------------------------------
# forkserver: a warm helper process forks every child
# ---------------------------------------------------------------------------


class ForkServer:
    """The per-process fork server (see the module docstring)."""

    _instance: ForkServer | None = None
    _instance_lock = threading.Lock()

    @classmethod
    def get(cls) -> ForkServer:
        """The running fork server of this process, started on first use."""
        server = cls._instance
        if server is None or server._owner != os.getpid() or server._lost:
            with cls._instance_lock:
                server = cls._instance
                if server is None or server._owner != os.getpid() or server._lost:
                    server = cls._instance = ForkServer()
        return server

    def __init__(self) -> None:
        ours, theirs = socket.socketpair()
        fd = theirs.fileno()
        try:
            self._proc = subprocess.Popen(
                _command("server", fd, os.pathsep.join(sys.path)),
                pass_fds=(fd,),
                stdin=subprocess.DEVNULL,
            )
        finally:
            theirs.close()
        self._owner = os.getpid()
        self._sock = ours
        self._lost = False
        self._send_lock = threading.Lock()
        self._tokens = itertools.count(1)
        self._by_token: dict[int, Launched] = {}
        self._by_pid: dict[int, Launched] = {}
        self._buf = bytearray()
        self._loop = background_loop()
        inbox_for(self._loop).post(self._loop.add_reader, ours.fileno(), self._on_readable)
        atexit.register(self._shutdown)

    @property
    def pid(self) -> int:
        """The fork server's own process id."""
        return self._proc.pid

    def launch(self, child: socket.socket, worker: Launched) -> None:
        token = next(self._tokens)
        self._by_token[token] = worker
        with self._send_lock:
            socket.send_fds(self._sock, [struct.pack("<Q", token)], [child.fileno()])

    def watch(self, worker: Launched, loop: asyncio.AbstractEventLoop) -> None:
        pass  # exits are reported by the server

    def signal(self, worker: Launched, kill: bool) -> None:
        pid = worker.pid
        if pid is None or pid not in self._by_pid:
            return  # not forked yet (_on_pid kills it) or already reaped
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL if kill else signal.SIGTERM)

    def release(self, worker: Launched) -> None:
        pass  # the server reaps; its report has already reached the worker

    def _on_readable(self) -> None:
        try:
            data = self._sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._on_lost()
            return
        buf = self._buf
        buf += data
        size = SERVER_MSG.size
        pos = 0
        while len(buf) - pos >= size:
            kind, key, value = SERVER_MSG.unpack_from(buf, pos)
            pos += size
            if kind == PID:
                worker = self._by_token.pop(key, None)
                if worker is not None:
                    self._by_pid[value] = worker
                    worker._on_pid(value)
            elif kind == EXITED:
                worker = self._by_pid.pop(key, None)
                if worker is not None:
                    worker._on_exit(value)
        del buf[:pos]

    def _on_lost(self) -> None:
        self._lost = True
        self._loop.remove_reader(self._sock.fileno())
        self._sock.close()
        workers = [*self._by_pid.values(), *self._by_token.values()]
        self._by_pid.clear()
        self._by_token.clear()
        for worker in workers:
            worker._on_exit(None)
        self._proc.poll()

    def _shutdown(self) -> None:
        # At interpreter exit: closing our end makes the server exit; reap it.
        try:
            self._sock.close()
            self._proc.wait(2.0)
        except Exception:
            self._proc.kill()
            self._proc.wait()
