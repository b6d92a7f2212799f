"""The write side of a process worker's socket: frames out, never blocking.

Calls, cancels, limit replies and the closing frame are written by whichever
thread makes them, under the worker's lock, at once: no hand-off to the loop on
a round trip, and concurrent writers' frames never interleave.  What the socket
does not take at once (a burst larger than its buffer, a child busy reading)
waits in a buffer that the background loop writes out as the socket drains;
frames sent meanwhile queue behind it, so the order on the wire is the order
of sending.
"""

from __future__ import annotations

import contextlib
import socket
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncio
    import threading

    from ..._runtime import Inbox

__all__ = ["SocketWriter"]


class SocketWriter:
    """Writes frames to one worker's socket (see the module docstring)."""

    __slots__ = ("_buf", "_inbox", "_lock", "_loop", "_sock", "_stopped")

    def __init__(
        self,
        sock: socket.socket,
        lock: threading.Lock,
        loop: asyncio.AbstractEventLoop,
        inbox: Inbox,
    ) -> None:
        self._sock = sock
        self._lock = lock  # the worker's: held by every caller of send_locked
        self._loop = loop
        self._inbox = inbox
        self._buf = bytearray()
        self._stopped = False

    def send_locked(self, data: bytes) -> None:
        """Send ``data`` now, or after what is already waiting (worker's lock held)."""
        # Non-blocking: what the socket does not take now, the loop writes later.
        if self._buf:
            self._buf += data
            return
        try:
            sent = self._sock.send(data, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            return  # the child is gone; its exit ends the pending calls
        if sent < len(data):
            self._buf += memoryview(data)[sent:]
            self._inbox.post(self._start_writing)

    def stop(self) -> None:
        """On the loop, once the worker is final: the loop writes nothing more."""
        self._stopped = True

    def _start_writing(self) -> None:
        if not self._stopped:
            self._loop.add_writer(self._sock.fileno(), self._on_writable)

    def _on_writable(self) -> None:
        with self._lock:
            try:
                sent = self._sock.send(self._buf, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                sent = len(self._buf)
            del self._buf[:sent]
            done = not self._buf
        if done:
            self._loop.remove_writer(self._sock.fileno())
            # uvloop made the socket non-blocking to watch it: a thread waiting
            # for its only call should block in recv() again.
            with contextlib.suppress(OSError):
                self._sock.setblocking(True)
