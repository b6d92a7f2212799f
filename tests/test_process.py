"""Process mode: start-up, crash safety, serialization failures and shutdown.

CONFORMANCE "Process mode" (271-279); the rest of process mode runs through the
``worker_mode`` fixture in the other test modules.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pydantic
import pytest

from aioconc import SerializationError, Worker, WorkerCrashedError, async_gather, worker
from aioconc._backends.process._launch import ForkServer
from aioconc._call import Call
from aioconc._proxy import WorkerHandle
from aioconc._serialize import RemoteTraceback

from ._workers import Counter

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = Path(__file__).resolve().parent / "scripts"
CONTEXTS = ["forkserver", "spawn", "fork"]


worker(Counter)


class CustomError(Exception):
    pass


class LockedError(Exception):
    """An exception that can't be pickled: it carries a lock."""

    def __init__(self) -> None:
        super().__init__("locked")
        self.lock = threading.Lock()


class Proc(Worker):
    def __init__(self, start: int = 0) -> None:
        self.n = start

    def inc(self) -> int:
        self.n += 1
        return self.n

    def echo(self, *args: Any, **kwargs: Any) -> Any:
        return args, kwargs

    def apply(self, fn: Any, *args: Any) -> Any:
        return fn(*args)

    async def ainc(self) -> int:
        await asyncio.sleep(0)
        self.n += 1
        return self.n

    def pid(self) -> int:
        return os.getpid()

    def wait_for(self, gate: Any, value: Any = None) -> Any:
        if not gate.wait(30):
            raise TimeoutError("gate never opened")
        return value

    def die(self, code: int) -> None:
        os._exit(code)

    def exit(self) -> None:
        raise SystemExit(3)

    def interrupt(self) -> None:
        raise KeyboardInterrupt

    def raise_custom(self) -> None:
        raise CustomError("custom failure")

    def raise_builtin(self) -> None:
        raise KeyError("missing")

    def raise_locked(self) -> None:
        raise LockedError()

    def return_lock(self) -> Any:
        return threading.Lock()

    def blob(self, size: int) -> bytes:
        return b"x" * size


class BadInit(Worker):
    def __init__(self) -> None:
        raise LookupError("no such thing")

    def ok(self) -> bool:
        return True


class GatedInit(Worker):
    def __init__(self, gate: Any) -> None:
        gate.wait(30)

    def ok(self) -> bool:
        return True


@pytest.fixture(params=CONTEXTS)
def proc(request: pytest.FixtureRequest) -> Iterator[WorkerHandle]:
    handle = Proc.options(mode="process", mp_context=request.param).init()
    yield handle
    handle.stop(timeout=5)


def _helpers() -> set[int]:
    """aioconc's fork server: a long-lived helper, not a worker."""
    server = ForkServer._instance
    return {server.pid} if server is not None else set()


def _workers_alive() -> set[int]:
    me = psutil.Process()
    alive = set()
    helpers = _helpers()
    for child in me.children(recursive=True):
        try:
            if child.pid in helpers or child.status() == psutil.STATUS_ZOMBIE:
                continue
            if "_child.py" in " ".join(child.cmdline()) or child.ppid() in helpers:
                alive.add(child.pid)
        except psutil.NoSuchProcess:
            continue
    return alive


def _gone(pid: int) -> bool:
    """True when ``pid`` has exited and been reaped (no zombie left either)."""
    try:
        psutil.Process(pid)
    except psutil.NoSuchProcess:
        return True
    return False


# ---------------------------------------------------------------------------
# Start-up and contexts
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("context", CONTEXTS)
def test_each_start_method_runs_calls_in_another_process(context: str) -> None:
    with Proc.options(mode="process", mp_context=context).init(10) as handle:
        assert handle.inc().result(30) == 11
        assert handle.ainc().result(30) == 12  # async def methods run in the child too
        assert handle.pid().result(30) != os.getpid()


def test_unknown_start_method_is_rejected_at_options() -> None:
    with pytest.raises(pydantic.ValidationError, match="mp_context"):
        Proc.options(mode="process", mp_context="thread")


def test_script_without_main_guard_uses_its_lambda_and_class() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    script = SCRIPTS / "no_main_guard.py"
    for context in ("forkserver", "spawn"):
        out = subprocess.run(
            [sys.executable, str(script), context],
            env=env,
            capture_output=True,
            text=True,
            timeout=90,
            check=True,
        ).stdout
        assert out.count("top-level ran") == 1  # __main__ was never re-imported
        assert "scale 42" in out
        assert "lambda 101" in out
        assert "closure [2, 100]" in out
        assert "error ScriptError from the script" in out  # a __main__ exception class
        assert out.rstrip().endswith("done")


def test_init_error_is_raised_as_the_users_exception() -> None:
    with pytest.raises(LookupError, match="no such thing") as info:
        BadInit.options(mode="process").init()
    assert isinstance(info.value.__cause__, RemoteTraceback)
    assert "no such thing" in str(info.value.__cause__)


def test_start_timeout_says_timed_out(gate: Any) -> None:
    before = _workers_alive()
    with pytest.raises(TimeoutError, match="timed out"):
        GatedInit.options(mode="process", process_worker_result_queue_timeout=0.5).init(gate)
    gate.set()
    assert _workers_alive() <= before


def test_unpicklable_init_argument_names_it() -> None:
    with pytest.raises(SerializationError, match=r"argument 'start'.*process"):
        Proc.options(mode="process").init(threading.Lock())


# ---------------------------------------------------------------------------
# Calls, errors and serialization
# ---------------------------------------------------------------------------


def test_burst_keeps_order_and_state(proc: WorkerHandle) -> None:
    futures = [proc.inc() for _ in range(2000)]
    assert [f.result(60) for f in futures] == list(range(1, 2001))


def test_calls_from_many_threads_all_arrive(proc: WorkerHandle) -> None:
    results: dict[int, list[Any]] = {}

    def client(k: int) -> None:
        futures = [proc.echo(k, i) for i in range(300)]
        results[k] = [f.result(60) for f in futures]

    threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for k in range(4):
        assert results[k] == [((k, i), {}) for i in range(300)]


def test_large_values_cross_both_ways(proc: WorkerHandle) -> None:
    big = os.urandom(3 << 20)  # larger than a socket buffer: written in parts
    assert proc.echo(big).result(60) == ((big,), {})
    assert len(proc.blob(5 << 20).result(60)) == 5 << 20


def test_lambdas_and_closures_as_arguments(proc: WorkerHandle) -> None:
    base = 7
    assert proc.apply(lambda x: x * base, 6).result(30) == 42


def test_user_exceptions_keep_type_message_and_remote_traceback(proc: WorkerHandle) -> None:
    with pytest.raises(KeyError, match="missing"):
        proc.raise_builtin().result(30)
    exc = proc.raise_custom().exception(30)
    assert type(exc) is CustomError and str(exc) == "custom failure"
    assert isinstance(exc.__cause__, RemoteTraceback)
    assert "raise_custom" in exc.__cause__.tb


def test_system_exit_and_keyboard_interrupt_fail_only_that_call(proc: WorkerHandle) -> None:
    with pytest.raises(SystemExit):
        proc.exit().result(30)
    with pytest.raises(KeyboardInterrupt):
        proc.interrupt().result(30)
    assert proc.inc().result(30) == 1


def test_unpicklable_argument_fails_only_that_call(proc: WorkerHandle) -> None:
    futures = [proc.inc(), proc.echo(1, threading.Lock()), proc.inc(), proc.echo(k=lambda: 1)]
    assert futures[0].result(30) == 1
    err = futures[1].exception(30)
    assert isinstance(err, SerializationError)
    assert "position 1" in str(err) and "lock" in str(err) and "process" in str(err)
    assert futures[2].result(30) == 2
    assert futures[3].result(30)[1]["k"]() == 1  # a lambda pickles (cloudpickle)


def test_unpicklable_return_value_fails_only_that_call(proc: WorkerHandle) -> None:
    bad, good = proc.return_lock(), proc.inc()
    err = bad.exception(30)
    assert isinstance(err, SerializationError)
    assert "return value" in str(err) and "return_lock" in str(err)
    assert good.result(30) == 1


def test_unpicklable_exception_fails_only_that_call(proc: WorkerHandle) -> None:
    bad, good = proc.raise_locked(), proc.inc()
    err = bad.exception(30)
    assert isinstance(err, SerializationError)
    assert "exception" in str(err) and "LockedError" in str(err)
    assert isinstance(err.__cause__, RemoteTraceback)  # what was raised, and where
    assert good.result(30) == 1


# ---------------------------------------------------------------------------
# Crashes
# ---------------------------------------------------------------------------


def test_kill_9_fails_every_pending_call_within_a_second(proc: WorkerHandle, gate: Any) -> None:
    pid = proc.pid().result(30)
    futures = [proc.wait_for(gate, i) for i in range(100)]
    while not futures[0].running():
        gate.wait(0.001)  # the first call has reached the child
    killed = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    for fut in futures:
        assert isinstance(fut.exception(5), WorkerCrashedError)
    assert time.monotonic() - killed < 1.0
    err = futures[-1].exception()
    assert isinstance(err, WorkerCrashedError)
    assert err.pid == pid and err.exitcode == -signal.SIGKILL and err.worker
    assert "SIGKILL" in str(err) and str(pid) in str(err) and err.worker in str(err)
    later = proc.inc().exception(5)  # the handle is not stopped; calls fail the same way
    assert isinstance(later, WorkerCrashedError) and later.exitcode == -signal.SIGKILL
    assert _gone(pid)


def test_os_exit_in_a_method_fails_the_call_and_later_ones(proc: WorkerHandle) -> None:
    pid = proc.pid().result(30)
    err = proc.die(7).exception(10)
    assert isinstance(err, WorkerCrashedError)
    assert err.exitcode == 7 and "exited with code 7" in str(err)
    assert isinstance(proc.inc().exception(10), WorkerCrashedError)
    assert _gone(pid)
    proc.stop()  # stopping a crashed worker is fine
    assert pid not in _workers_alive()


# ---------------------------------------------------------------------------
# Shutdown
# ---------------------------------------------------------------------------


def test_stop_leaves_no_process_behind() -> None:
    before = _workers_alive()
    handles = [Proc.options(mode="process", mp_context=c).init() for c in CONTEXTS]
    pids = [h.pid().result(30) for h in handles]
    assert set(pids) <= _workers_alive()
    for handle in handles:
        handle.stop()
    for pid in pids:
        assert _gone(pid)
    assert _workers_alive() <= before


def test_stop_timeout_cancels_a_call_that_never_ends(proc: WorkerHandle, gate: Any) -> None:
    pid = proc.pid().result(30)
    running = proc.wait_for(gate, "late")
    queued = [proc.inc() for _ in range(3)]
    while not running.running():
        gate.wait(0.001)
    proc.stop(timeout=0.3)
    assert running.cancelled()
    assert all(f.cancelled() for f in queued)
    assert _gone(pid)


def test_graceful_stop_drains_in_flight_calls() -> None:
    handle = Proc.options(mode="process", max_queued_tasks=0).init()
    pid = handle.pid().result(30)
    futures = [handle.inc() for _ in range(200)]
    handle.stop(timeout=30, graceful=True)
    assert [f.result(0) for f in futures] == list(range(1, 201))
    assert _gone(pid)


def test_child_exits_when_its_parent_dies() -> None:
    code = (
        "import os, sys\n"
        "from tests.test_process import Proc\n"
        "w = Proc.options(mode='process', mp_context=sys.argv[1]).init()\n"
        "print(w.pid().result(30), flush=True)\n"
        "os._exit(0)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for context in ("forkserver", "spawn"):
        out = subprocess.run(
            [sys.executable, "-c", code, context],
            env=env,
            capture_output=True,
            text=True,
            timeout=90,
            check=True,
            cwd=ROOT,
        ).stdout
        pid = int(out.split()[-1])
        with contextlib.suppress(psutil.NoSuchProcess):
            psutil.Process(pid).wait(10)  # returns once the orphan has exited
        assert _gone(pid)


@pytest.mark.anyio
async def test_async_lifecycle_and_awaiting() -> None:
    async with Proc.options(mode="process").init(1) as handle:
        assert await handle.inc() == 2
        assert await async_gather([handle.inc(), handle.ainc()]) == [3, 4]  # any loop


def test_on_timeout_kill_ends_the_worker(gate: Any) -> None:
    handle = Proc.options(mode="process", on_timeout="kill", max_queued_tasks=0).init()
    pid = handle.pid().result(30)
    late = handle.wait_for(gate)
    while not late.running():
        gate.wait(0.001)
    # What the timeout stage does when the call's deadline passes (its own
    # tests drive the clock): hand the late call to the backend's hook.
    handle._worker.on_timeout(Call("wait_for", (gate,), {}, late))
    err = late.exception(10)
    assert isinstance(err, WorkerCrashedError) and "timed out" in str(err)
    assert isinstance(handle.inc().exception(10), WorkerCrashedError)
    assert _gone(pid)
    handle.stop()


def test_without_on_timeout_kill_the_hook_leaves_the_worker_alone(proc: WorkerHandle) -> None:
    proc._worker.on_timeout(Call("inc", (), {}, proc.inc()))
    assert proc.inc().result(30) == 2


def test_a_sent_call_cancelled_before_it_begins_never_runs(gate: Any) -> None:
    with Counter.options(mode="process").init() as handle:  # type: ignore[attr-defined]
        first = handle.wait_for(gate, "first")
        second = handle.record("never")  # sent to the child, queued behind the first
        assert second.cancel()
        gate.set()
        assert first.result(10) == "first"
        assert handle.record("after").result(10) == ["after"]  # "never" never ran


def test_max_queued_tasks_holds_calls_back_by_priority(gate: Any) -> None:
    # The process worker enforces its in-flight cap itself: beyond it, calls
    # wait here (highest priority first), cancelled ones never run, and a stop
    # without grace cancels what is still held.
    with Counter.options(mode="process", max_queued_tasks=1).init() as handle:  # type: ignore[attr-defined]
        first = handle.wait_for(gate, "first")
        low = [handle.record(f"low{i}") for i in range(3)]
        dropped = handle.record("dropped")
        high = handle.record.options(priority="high")("high")
        assert all(f.status == "PENDING" for f in [*low, dropped, high])
        assert dropped.cancel()
        gate.set()
        assert first.result(30) == "first"
        assert low[-1].result(30) == ["high", "low0", "low1", "low2"]
        assert high.result(30) == ["high"]


def test_stop_cancels_calls_still_held_back(gate: Any) -> None:
    handle = Counter.options(mode="process", max_queued_tasks=1).init()  # type: ignore[attr-defined]
    running = handle.wait_for(gate, "ran")
    held = handle.record("held")
    handle.stop(timeout=0.5)
    assert held.cancelled()
    assert running.done()
