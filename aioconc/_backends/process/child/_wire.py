"""The wire format of process mode, spoken by the parent and its worker processes.

Imported by the parent (``process/_worker.py``) and loaded *by path* in every
worker process and the fork server (with ``_child.py``, see its ``BOOTSTRAP``), so
it imports only the standard library and cloudpickle.

One duplex stream socket per worker::

    frame  = <u32 body length> <u8 kind> body
    batch  = <u32 n> <n x u64 call ids> <n x u32 end offsets> <n pickles>

Every item of a batch is its own pickle (one ``Pickler`` per batch, memo
cleared between items), so a value that can't be pickled or unpickled fails
its own call only.  A worker made with ``serializer="json"`` or ``"msgpack"``
sends each call and outcome as its own document in that format instead
(``aioconc/_codec.py``).  The conversation the kinds make up is drawn in ``_child.py``.
"""

from __future__ import annotations

import io
import pickle
import socket
import struct
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
_ONE = struct.Struct("<IQI")  # the head of a batch of one item: most round trips
RECV_SIZE = 1 << 18


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

    def add_raw(self, ident: int, data: bytes) -> None:
        """Append ``data`` (already encoded, e.g. JSON) as item ``ident``."""
        self._buf.write(data)
        self._ids.append(ident)
        self._ends.append(self._buf.tell())

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
