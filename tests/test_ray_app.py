"""Ray mode in a real application: bounded start, the death watch, pools that heal.

These share the session's local Ray (``_ray_session`` in conftest.py).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from aioconc import LimitSet, ResourceLimit, Worker
from aioconc._exceptions import WorkerCrashedError, WorkerStartError

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.usefixtures("_ray_session")

# Nothing in the session's Ray has it: an actor asking for it is never placed.
UNPLACEABLE = {"resources": {"gpu_node": 1}}


class Holder(Worker):
    """Holds a shared resource unit beyond a call, or blocks until a gate opens."""

    def keep(self) -> bool:
        self.limits.acquire()  # never released by the worker itself
        return True

    def block(self, gate: Any) -> None:
        gate.wait()

    def echo(self, value: Any) -> Any:
        return value


# ---------------------------------------------------------------------------
# Bounded start
# ---------------------------------------------------------------------------


def _assert_names_resources(exc: BaseException) -> None:
    message = str(exc)
    assert "start_timeout" in message
    assert "gpu_node: 1" in message  # what the actor asked for
    assert "the cluster has {" in message and "CPU: " in message  # what there is


def test_an_actor_no_node_can_place_fails_init_within_its_start_timeout() -> None:
    started = time.monotonic()
    with pytest.raises(WorkerStartError) as info:
        Holder.options(mode="ray", start_timeout=0.5, actor_options=UNPLACEABLE).init()
    assert time.monotonic() - started < 30
    _assert_names_resources(info.value)


def test_a_pool_whose_workers_cannot_start_says_so() -> None:
    builder = Holder.options(
        mode="ray", max_workers=2, start_timeout=0.5, actor_options=UNPLACEABLE
    )
    with pytest.raises(WorkerStartError) as info:
        builder.init()
    _assert_names_resources(info.value)


@pytest.mark.anyio
async def test_await_and_async_with_fail_with_the_start_error() -> None:
    builder = Holder.options(mode="ray", start_timeout=0.5, actor_options=UNPLACEABLE)
    with pytest.raises(WorkerStartError):
        await builder.init()
    with pytest.raises(WorkerStartError) as info:
        async with builder.init():
            pytest.fail("the body must not run")
    _assert_names_resources(info.value)


def test_start_timeout_has_a_default_and_none_waits_for_ever() -> None:
    from aioconc._backends import OPTION_NAMES
    from aioconc._enums import ExecutionMode
    from aioconc._options import resolve_options

    names = OPTION_NAMES[ExecutionMode.Ray]
    default = resolve_options([{"mode": "ray"}], mode_specific=names)
    assert default.extra["start_timeout"] == 120.0
    forever = resolve_options([{"mode": "ray", "start_timeout": None}], mode_specific=names)
    assert forever.extra["start_timeout"] is None
    with Holder.options(mode="ray", start_timeout=None).init() as handle:
        assert handle.echo(1).result(60) == 1


# ---------------------------------------------------------------------------
# The death watch
# ---------------------------------------------------------------------------


def test_a_killed_actor_frees_its_units_and_fails_its_calls_within_a_second(
    gate: Any,
) -> None:
    slots = LimitSet([ResourceLimit(key="slot", capacity=1)], shared=True, mode="ray")
    handle = Holder.options(mode="ray", limits=slots, max_queued_tasks=None).init()
    try:
        assert handle.keep().result(60) is True
        assert not slots.try_acquire().successful  # held by the worker, between calls
        pending = [handle.block(gate), handle.echo(1)]
        ray.kill(handle._worker._actor)
        killed = time.monotonic()
        for fut in pending:
            assert isinstance(fut.exception(10), WorkerCrashedError)
        assert time.monotonic() - killed < 1.0
        with slots.acquire(timeout=10):  # granted as soon as the limit actor hears
            assert time.monotonic() - killed < 1.0
        later = handle.echo(2).exception(10)  # failed at once, without asking Ray
        assert isinstance(later, WorkerCrashedError) and "died" in str(later)
    finally:
        handle.stop()


def test_a_stopped_worker_is_not_reported_dead() -> None:
    handle = Holder.options(mode="ray").init()
    backend_worker = handle._worker
    assert handle.echo(1).result(60) == 1
    handle.stop()
    assert backend_worker.closed.done()
    assert backend_worker._dead is None


def test_a_ray_pool_replaces_a_worker_whose_actor_died() -> None:
    with Holder.options(mode="ray", max_workers=2).init() as pool:
        assert pool.echo(0).result(60) == 0
        replaced = threading.Event()
        pool._replace_hooks.append(lambda index: replaced.set())
        ray.kill(pool._workers[0]._actor)
        assert replaced.wait(10)  # seen by the watch, with no call in flight
        assert [pool.echo(i).result(60) for i in range(4)] == [0, 1, 2, 3]
        assert pool.statistics().replaced == 1


class ThreadBound(Worker):
    def __init__(self) -> None:
        self.ident = threading.get_ident()

    def same_thread(self) -> bool:
        return threading.get_ident() == self.ident


def test_a_plain_actor_runs_init_and_methods_on_one_thread_despite_the_watch() -> None:
    # The watch has a thread of its own; what __init__ makes (a sqlite3
    # connection, thread-locals) is used on the thread that made it.
    with ThreadBound.options(mode="ray").init() as handle:
        assert all(handle.same_thread().result(60) for _ in range(3))


# ---------------------------------------------------------------------------
# A thread blocking in result() fetches the value itself
# ---------------------------------------------------------------------------


def test_result_in_a_thread_fetches_the_value_and_honours_its_timeout(gate: Any) -> None:
    with Holder.options(mode="ray", max_queued_tasks=None).init() as handle:
        blocked = handle.block(gate)
        with pytest.raises(TimeoutError):
            blocked.result(0.2)
        gate.set()
        assert blocked.result(60) is None
        futures = [handle.echo(i) for i in range(50)]
        assert [f.result(60) for f in futures] == list(range(50))
        assert isinstance(handle.block(None).exception(60), AttributeError)
