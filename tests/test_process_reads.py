"""Process mode: a thread blocked in ``result()`` reads the worker's socket itself.

The waiting thread takes the receiver's turn and reads every result that comes,
for every pending call; these tests check what must still hold then: other
waiters get their results, a crash, a cancel, a timeout or a stop ends the wait
at once, and reading goes back to the background loop afterwards.  Each test
waits until the thread is really reading (an event set on entering the read
loop) before it makes the thing under test happen.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import psutil
import pytest

from aioconc import CancelledError, Worker, WorkerCrashedError
from aioconc._backends.process import _receive
from aioconc._backends.process._receive import Receiver
from aioconc._future import Future
from aioconc._proxy import WorkerHandle

pytestmark = pytest.mark.skipif(not _receive._DIRECT, reason="needs epoll and eventfd (Linux)")


class Gated(Worker):
    def wait_for(self, gate: Any, value: Any = None, entered: Any = None) -> Any:
        if entered is not None:
            entered.set()
        if not gate.wait(30):
            raise TimeoutError("gate never opened")
        return value

    def value(self, x: Any) -> Any:
        return x

    def pid(self) -> int:
        return os.getpid()

    def fork_holder(self) -> int:
        """Fork a grandchild that keeps this worker's socket open (the test kills it)."""
        pid = os.fork()
        if pid == 0:
            try:
                time.sleep(60)  # a bound in case the test can't kill it
            finally:
                os._exit(0)
        return pid

    def die(self, code: int) -> None:
        os._exit(code)


class Readers:
    """Which threads entered one of the receiver's read loops; an event per entry.

    ``_read_until`` polls (a deadline, or several calls pending);
    ``_read_blocking`` blocks in recv() (no deadline, the only call pending).
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch, loop: str = "_read_until") -> None:
        self.idents: list[int] = []
        self.entered = threading.Event()
        original = getattr(Receiver, loop)

        def read(receiver: Receiver, fut: Future[Any], *args: Any) -> None:
            self.idents.append(threading.get_ident())
            self.entered.set()
            original(receiver, fut, *args)

        monkeypatch.setattr(Receiver, loop, read)


@pytest.fixture
def readers(monkeypatch: pytest.MonkeyPatch) -> Readers:
    return Readers(monkeypatch)


@pytest.fixture
def blocked(monkeypatch: pytest.MonkeyPatch) -> Readers:
    return Readers(monkeypatch, "_read_blocking")


@pytest.fixture
def handle() -> Iterator[WorkerHandle]:
    h = Gated.options(mode="process", max_queued_tasks=0).init()
    h.pid().result(30)  # started, so no test below waits on start-up
    yield h
    h.stop(timeout=5)


class Waiting:
    """A thread blocked in ``result(timeout)`` of ``fut``; its outcome once it ends."""

    def __init__(self, fut: Future[Any], timeout: float | None = 30.0) -> None:
        self.outcome: Any = None
        self.done = threading.Event()

        def run() -> None:
            try:
                self.outcome = ("value", fut.result(timeout))
            except BaseException as exc:
                self.outcome = ("error", exc)
            self.done.set()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def wait(self, timeout: float) -> Any:
        assert self.done.wait(timeout), "the waiting thread did not end"
        self.thread.join()
        return self.outcome


def _reading(readers: Readers) -> None:
    assert readers.entered.wait(30), "the waiting thread never read the socket"


def test_the_waiting_thread_finishes_its_call_itself(
    handle: WorkerHandle, gate: Any, readers: Readers
) -> None:
    fut = handle.wait_for(gate, "v")
    finished_by: list[str] = []
    fut.add_done_callback(lambda _: finished_by.append(threading.current_thread().name))
    waiting = Waiting(fut)
    _reading(readers)
    gate.set()
    assert waiting.wait(30) == ("value", "v")
    # No hop through the background loop: the waiting thread read and finished it.
    assert finished_by == [waiting.thread.name]
    assert readers.idents == [waiting.thread.ident]


def test_a_reading_thread_delivers_another_threads_result(
    handle: WorkerHandle, gate: Any, entered: Any, readers: Readers
) -> None:
    first = handle.wait_for(gate, "first", entered)
    second = handle.value("second")  # queued in the child behind the first
    assert entered.wait(30)
    reader = Waiting(second)
    _reading(readers)
    other = Waiting(first)  # the turn is taken: this one waits to be handed its result
    gate.set()
    assert other.wait(30) == ("value", "first")
    assert reader.wait(30) == ("value", "second")
    assert readers.idents == [reader.thread.ident]


def test_result_timeout_while_reading_leaves_the_result_to_the_loop(
    handle: WorkerHandle, gate: Any, readers: Readers
) -> None:
    fut = handle.wait_for(gate, "late")
    with pytest.raises(TimeoutError):
        fut.result(timeout=0.2)
    assert readers.idents == [threading.get_ident()]
    arrived = threading.Event()
    finished_by: list[str] = []

    def on_done(_: Future[Any]) -> None:
        finished_by.append(threading.current_thread().name)
        arrived.set()

    fut.add_done_callback(on_done)
    gate.set()
    # Nobody blocks in result() now: the background loop has to read it.
    assert arrived.wait(30)
    assert fut.result(0) == "late"
    assert finished_by == ["aioconc-loop"]


def test_cancel_while_reading_ends_the_wait_at_once(
    handle: WorkerHandle, gate: Any, entered: Any, readers: Readers
) -> None:
    running = handle.wait_for(gate, "running", entered)
    queued = handle.value("never")
    assert entered.wait(30)
    waiting = Waiting(queued)
    _reading(readers)
    assert queued.cancel()
    kind, exc = waiting.wait(10)
    assert kind == "error" and isinstance(exc, CancelledError)
    assert not running.done()  # nothing came from the child: the cancel woke the reader
    gate.set()
    assert running.result(30) == "running"
    assert handle.value("after").result(30) == "after"


def test_child_crash_while_reading_fails_every_pending_call_within_a_second(
    handle: WorkerHandle, gate: Any, entered: Any, readers: Readers
) -> None:
    pid = handle.pid().result(30)
    running = handle.wait_for(gate, "never", entered)
    queued = [handle.value(i) for i in range(20)]
    assert entered.wait(30)
    waiting = Waiting(queued[-1])
    _reading(readers)
    killed = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    kind, exc = waiting.wait(10)
    assert kind == "error" and isinstance(exc, WorkerCrashedError)
    for fut in [running, *queued]:
        assert isinstance(fut.exception(5), WorkerCrashedError)
    assert time.monotonic() - killed < 1.0
    assert exc.exitcode == -signal.SIGKILL


def test_child_exit_while_reading_ends_the_wait_even_if_its_socket_stays_open(
    handle: WorkerHandle, readers: Readers
) -> None:
    # A grandchild holds the socket open, so the reading thread sees no end of
    # stream: the exit report has to take the socket back from it.
    holder = handle.fork_holder().result(30)
    try:
        started = time.monotonic()
        kind, exc = Waiting(handle.die(5)).wait(10)
        assert kind == "error" and isinstance(exc, WorkerCrashedError)
        assert exc.exitcode == 5
        assert time.monotonic() - started < 5.0  # not the grandchild's 60 s
        assert readers.idents  # it was read in the waiting thread
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(holder, signal.SIGKILL)


def test_stop_while_reading_cancels_the_call_and_ends_the_process(
    gate: Any, entered: Any, readers: Readers
) -> None:
    h = Gated.options(mode="process", max_queued_tasks=0).init()
    pid = h.pid().result(30)
    running = h.wait_for(gate, "never", entered)
    assert entered.wait(30)
    waiting = Waiting(running)
    _reading(readers)
    h.stop(timeout=0.3)
    kind, exc = waiting.wait(10)
    assert kind == "error" and isinstance(exc, CancelledError)
    with pytest.raises(psutil.NoSuchProcess):  # exited and reaped
        psutil.Process(pid)


def test_many_threads_waiting_on_one_worker_all_get_their_results(handle: WorkerHandle) -> None:
    results: dict[int, list[Any]] = {}

    def caller(n: int) -> Callable[[], None]:
        def run() -> None:
            results[n] = [handle.value((n, i)).result(30) for i in range(200)]

        return run

    threads = [threading.Thread(target=caller(n), daemon=True) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == {n: [(n, i) for i in range(200)] for n in range(4)}


# -- a thread blocked in recv() on the only call (result() without a timeout) --


def test_a_thread_waiting_for_the_only_call_blocks_in_recv_and_finishes_it(
    handle: WorkerHandle, gate: Any, entered: Any, blocked: Readers
) -> None:
    fut = handle.wait_for(gate, "v", entered)
    assert entered.wait(30)
    finished_by: list[str] = []
    fut.add_done_callback(lambda _: finished_by.append(threading.current_thread().name))
    waiting = Waiting(fut, timeout=None)
    _reading(blocked)
    gate.set()
    assert waiting.wait(30) == ("value", "v")
    assert finished_by == [waiting.thread.name]
    assert handle.value("after").result() == "after"  # the next call reads as well


def test_a_crash_ends_a_wait_blocked_in_recv_within_a_second(
    handle: WorkerHandle, gate: Any, entered: Any, blocked: Readers
) -> None:
    pid = handle.pid().result(30)
    fut = handle.wait_for(gate, "never", entered)
    assert entered.wait(30)
    waiting = Waiting(fut, timeout=None)
    _reading(blocked)
    killed = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    kind, exc = waiting.wait(10)
    assert kind == "error" and isinstance(exc, WorkerCrashedError)
    assert time.monotonic() - killed < 1.0


def test_an_exit_ends_a_wait_blocked_in_recv_even_if_the_socket_stays_open(
    handle: WorkerHandle, blocked: Readers
) -> None:
    # No end of stream comes (a grandchild holds the socket): the loop shuts
    # reading down to take the socket back from the blocked thread.
    holder = handle.fork_holder().result(30)
    try:
        started = time.monotonic()
        kind, exc = Waiting(handle.die(5), timeout=None).wait(10)
        assert kind == "error" and isinstance(exc, WorkerCrashedError)
        assert exc.exitcode == 5
        assert time.monotonic() - started < 5.0
        assert blocked.idents
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(holder, signal.SIGKILL)


def test_stop_ends_a_wait_blocked_in_recv(gate: Any, entered: Any, blocked: Readers) -> None:
    h = Gated.options(mode="process", max_queued_tasks=0).init()
    pid = h.pid().result(30)
    running = h.wait_for(gate, "never", entered)
    assert entered.wait(30)
    waiting = Waiting(running, timeout=None)
    _reading(blocked)
    h.stop(timeout=0.3)
    kind, exc = waiting.wait(10)
    assert kind == "error" and isinstance(exc, CancelledError)
    with pytest.raises(psutil.NoSuchProcess):
        psutil.Process(pid)


def test_a_wait_on_a_socket_made_non_blocking_falls_back_to_poll(
    handle: WorkerHandle, gate: Any, blocked: Readers
) -> None:
    # uvloop makes the socket non-blocking while it watches it for writing.
    handle._worker._sock.setblocking(False)  # type: ignore[attr-defined]
    fut = handle.wait_for(gate, "v")
    # The result exists only once this thread is reading: the loop can't take it first.
    opener = threading.Thread(target=lambda: blocked.entered.wait(30) and gate.set())
    opener.start()
    assert fut.result() == "v"
    opener.join(30)
    assert blocked.idents == [threading.get_ident()]  # it tried recv() first


def test_a_wait_after_a_burst_that_filled_the_socket_reads_its_result(
    handle: WorkerHandle,
) -> None:
    blob = b"x" * 8192
    futures = [handle.value(blob) for _ in range(1000)]  # 8 MB: the loop writes the rest
    assert all(f.result(60) == blob for f in futures)
    assert handle.value("after").result() == "after"
