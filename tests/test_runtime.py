"""The runtime: batched hand-off, the background loop, force-sync, context-local config."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

import aioconc
from aioconc import Worker, global_config, temp_config
from aioconc._runtime import Inbox, background_loop, on_engine_thread, run_on


class Probe(Worker):
    def where(self) -> str:
        return threading.current_thread().name

    def value(self) -> int:
        return 1


def test_inbox_wakes_the_loop_once_per_burst() -> None:
    loop = background_loop()
    inbox = Inbox(loop)
    wakeups = 0
    original = loop.call_soon_threadsafe

    def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal wakeups
        wakeups += 1
        return original(*args, **kwargs)

    seen: list[int] = []
    done = threading.Event()
    blocker = threading.Event()
    # Hold the loop busy so the whole burst lands before the first drain.
    loop.call_soon_threadsafe(blocker.wait, 10)
    loop.call_soon_threadsafe = counting  # type: ignore[method-assign]
    try:
        for i in range(100):
            inbox.post(seen.append, i)
        inbox.post(done.set)
    finally:
        loop.call_soon_threadsafe = original  # type: ignore[method-assign]
    blocker.set()
    assert done.wait(10)
    assert seen == list(range(100))
    assert wakeups == 1


def test_background_loop_is_one_daemon_thread() -> None:
    loop = background_loop()
    assert background_loop() is loop
    threads = [t for t in threading.enumerate() if t.name == "aioconc-loop"]
    assert len(threads) == 1
    assert threads[0].daemon


def test_run_on_refuses_its_own_loop() -> None:
    async def inner() -> None:
        coro = asyncio.sleep(0)
        with pytest.raises(RuntimeError, match="await"):
            run_on(asyncio.get_running_loop(), coro)

    asyncio.run(inner())


def test_force_sync_env_runs_every_worker_inline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIOCONC_FORCE_SYNC", "1")
    with Probe.options(mode="thread").init() as handle:
        assert handle.mode == "Sync"
        fut = handle.where()
        assert fut.done()  # ran inline, before the call returned
        assert fut.result() == threading.current_thread().name


def test_force_sync_config_field() -> None:
    with temp_config(global_force_sync=True), Probe.options(mode="asyncio").init() as handle:
        assert handle.mode == "Sync"


def test_global_blocking_default_applies_to_new_workers() -> None:
    try:
        global_config.defaults.blocking = True
        with Probe.options(mode="thread").init() as handle:
            assert handle.value() == 1
        with Probe.options(mode="thread", blocking=False).init() as handle:
            assert handle.value().result() == 1  # explicit options win
    finally:
        global_config.reset_to_defaults()


def test_stop_timeout_comes_from_config() -> None:
    with temp_config(global_stop_timeout=0.25), Probe.options(mode="thread").init() as handle:
        assert handle._options.stop_timeout == 0.25


@pytest.mark.anyio
@pytest.mark.asyncio_only
async def test_temp_config_is_local_to_its_task() -> None:
    inside = asyncio.Event()
    checked = asyncio.Event()
    seen: dict[str, bool] = {}

    async def configured() -> None:
        with temp_config(global_blocking=True):
            handle = Probe.options(mode="asyncio").init()
            seen["inside"] = handle.blocking
            await handle.astop()
            inside.set()
            await checked.wait()

    async def plain() -> None:
        await inside.wait()
        handle = Probe.options(mode="asyncio").init()
        seen["other task"] = handle.blocking
        await handle.astop()
        checked.set()

    await asyncio.gather(configured(), plain())
    assert seen == {"inside": True, "other task": False}


def test_exception_tree() -> None:
    assert issubclass(aioconc.WorkerStoppedError, RuntimeError)
    assert issubclass(aioconc.CallTimeoutError, TimeoutError)
    assert issubclass(aioconc.SerializationError, TypeError)
    for name in (
        "WorkerCrashedError",
        "WorkerStartError",
        "WorkerStoppedError",
        "SerializationError",
        "CallTimeoutError",
        "RetryValidationError",
    ):
        assert issubclass(getattr(aioconc, name), aioconc.AioconcError)


def test_crashed_error_survives_pickling() -> None:
    import pickle

    err = aioconc.WorkerCrashedError("gone", worker="W-1", pid=12, exitcode=-9)
    copy = pickle.loads(pickle.dumps(err))
    assert (str(copy), copy.worker, copy.pid, copy.exitcode) == ("gone", "W-1", 12, -9)


def test_engine_work_runs_on_one_thread_that_outlives_its_callers() -> None:
    # Ray ties what ray.init starts to the calling thread: engine state is made
    # on a thread that lives as long as the process, whoever asks.
    seen: list[threading.Thread] = []

    def ask() -> None:
        seen.append(on_engine_thread(threading.current_thread))

    for _ in range(2):  # each caller ends before the next starts
        caller = threading.Thread(target=ask)
        caller.start()
        caller.join()
    assert seen[0] is seen[1] and seen[0].name == "aioconc-engine"
    assert seen[0].is_alive() and seen[0].daemon
    assert on_engine_thread(on_engine_thread, threading.current_thread) is seen[0]  # nested: inline
    with pytest.raises(LookupError, match="boom"):
        on_engine_thread(_raise_lookup)


def _raise_lookup() -> None:
    raise LookupError("boom")
