"""Ray mode: actors, ObjectRefs, crashes, options, clusters (CONFORMANCE 280-283).

The in-process tests share one local Ray (``_ray_session`` in conftest.py);
what needs a fresh interpreter (no Ray connected, Ray missing, a separate head
node) runs in a subprocess.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydantic
import pytest

from aioconc import Worker, worker
from aioconc._backends import get_backend
from aioconc._backends._base import WorkerSpec
from aioconc._enums import ExecutionMode
from aioconc._exceptions import SerializationError, WorkerCrashedError
from aioconc._future import Future
from aioconc._options import resolve_options

from ._workers import Counter

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.usefixtures("_ray_session")

ROOT = Path(__file__).resolve().parent.parent
worker(Counter)


# ---------------------------------------------------------------------------
# Workers used here (module level: importable by the actors)
# ---------------------------------------------------------------------------


def _refuse_in(driver_pid: int, payload: Any) -> Any:
    if os.getpid() == driver_pid:
        raise RuntimeError("this value was fetched to the driver")
    return payload


class OnlyRemote:
    """A value that can be unpickled anywhere except in the driver process."""

    def __init__(self, driver_pid: int, payload: Any) -> None:
        self.driver_pid = driver_pid
        self.payload = payload

    def __reduce__(self) -> Any:
        return (_refuse_in, (self.driver_pid, self.payload))


@worker
class Remote:
    def __init__(self) -> None:
        self.arrived = 0
        self.all_in: asyncio.Event | None = None

    def resources(self) -> dict[str, float]:
        import ray

        return dict(ray.get_runtime_context().get_assigned_resources())

    def only_remote(self, driver_pid: int, payload: Any) -> OnlyRemote:
        return OnlyRemote(driver_pid, payload)

    def take(self, value: Any) -> Any:
        return value

    def pid(self) -> int:
        return os.getpid()

    def die(self) -> None:
        os._exit(1)

    async def arrive(self, expected: int) -> int:
        # Returns only once `expected` calls are inside at the same time.
        if self.all_in is None:
            self.all_in = asyncio.Event()
        self.arrived += 1
        if self.arrived == expected:
            self.all_in.set()
        await asyncio.wait_for(self.all_in.wait(), 30)
        return self.arrived


@worker
class Plain:
    """Only plain methods: hosted by a plain actor, whose calls carry no sequence number.

    Some methods are named like the hosting actor's own (call, skip, close).
    """

    def __init__(self) -> None:
        self.log: list[Any] = []

    def record(self, item: Any) -> list[Any]:
        self.log.append(item)
        return list(self.log)

    def echo(self, *args: Any, **kwargs: Any) -> Any:
        return (args, kwargs)

    def call(self, x: Any) -> Any:
        return ("call", x)

    def skip(self) -> str:
        return "skip"

    def close(self) -> str:
        return "close"

    def make_error(self, message: str) -> ValueError:
        return ValueError(message)


@worker
class AsyncNamed:
    """The same names on an async actor."""

    async def echo(self, *args: Any, **kwargs: Any) -> Any:
        return (args, kwargs)

    async def call(self, x: Any) -> Any:
        return ("call", x)

    def skip(self) -> str:
        return "skip"

    async def close(self) -> str:
        return "close"


class Settings(Worker, pydantic.BaseModel):
    """A pydantic-model worker: typed fields, a validator, a model_config."""

    model_config = pydantic.ConfigDict(extra="forbid")

    name: str
    retries: int = 1

    @pydantic.field_validator("retries")
    @classmethod
    def _positive(cls, value: int) -> int:
        if value <= 0:
            raise ValueError("retries must be positive")
        return value

    def describe(self) -> tuple[str, int]:
        return (self.name, self.retries)

    def bump(self) -> int:
        self.retries += 1
        return self.retries


def _resources() -> dict[str, float]:
    import ray

    return dict(ray.get_runtime_context().get_assigned_resources())


@pytest.fixture
def remote() -> Iterator[Any]:
    with Remote.options(mode="ray", max_queued_tasks=None).init() as handle:
        yield handle


def _run(code: str, timeout: float = 240, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    environment.pop("RAY_ADDRESS", None) if "RAY_ADDRESS" not in env else None
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=environment,
        cwd=ROOT,
    )


# ---------------------------------------------------------------------------
# 280, 281: import and connection
# ---------------------------------------------------------------------------


def test_without_ray_init_fails_with_an_install_hint() -> None:
    result = _run(
        """
        import sys
        sys.modules["ray"] = None          # as if Ray were not installed
        from aioconc import worker
        from aioconc._backends import available_modes
        from tests._workers import Counter
        assert "ray" not in [m.name.lower() for m in available_modes()]
        builder = worker(Counter).options(mode="ray")   # options() still validates
        try:
            builder.init()
        except ImportError as exc:
            print("ImportError:", exc)
        """,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "ImportError:" in result.stdout
    assert "pip install aioconc[ray]" in result.stdout


@pytest.mark.slow
def test_ray_started_by_a_thread_that_ends_keeps_working_from_any_thread() -> None:
    # No Ray is connected: the first worker starts one, from a thread that then
    # ends.  Ray ties what it starts to the thread that called ray.init, so
    # aioconc must not make that call on a caller's thread.
    result = _run(
        """
        import asyncio, threading
        import ray
        from aioconc import worker
        from tests._workers import Counter
        worker(Counter)
        assert not ray.is_initialized()
        seen = []

        def use(start):
            with Counter.options(mode="ray").init(start) as handle:
                seen.append(handle.inc().result(60))

        for start in range(4):                    # four threads in turn
            thread = threading.Thread(target=use, args=(start,))
            thread.start()
            thread.join(120)
            assert not thread.is_alive(), f"thread {start} hung"
        print("in turn", seen, "connected", ray.is_initialized())

        seen.clear()
        shared = Counter.options(mode="ray", max_queued_tasks=None).init(0)
        threads = [threading.Thread(target=use, args=(s,)) for s in (10, 20)]
        threads += [threading.Thread(target=lambda: seen.append(shared.inc().result(60)))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
            assert not thread.is_alive(), "a concurrent thread hung"
        shared.stop()
        print("at once", sorted(seen))

        async def main():
            async with Counter.options(mode="ray").init(5) as handle:
                return await handle.inc()

        box = []
        thread = threading.Thread(target=lambda: box.append(asyncio.run(main())))
        thread.start()
        thread.join(120)
        assert not thread.is_alive(), "async with in asyncio.run hung"
        print("async with", box)
        """
    )
    assert result.returncode == 0, result.stderr
    assert "in turn [1, 2, 3, 4] connected True" in result.stdout
    assert "at once [1, 11, 21]" in result.stdout
    assert "async with [6]" in result.stdout


def test_an_existing_connection_is_used_as_it_is(remote: Any) -> None:
    from aioconc._backends.ray import _worker as _ray

    before = ray.get_runtime_context().get_job_id()
    assert remote.take(1).result(60) == 1
    assert ray.get_runtime_context().get_job_id() == before
    assert not _ray._started_here  # the session's Ray was not replaced


# ---------------------------------------------------------------------------
# Calls
# ---------------------------------------------------------------------------


def test_sync_and_async_methods_and_state() -> None:
    with Counter.options(mode="ray").init(10, step=2) as handle:  # type: ignore[attr-defined]
        assert handle.inc().result(60) == 12
        assert handle.ainc().result(60) == 14
        assert handle.echo(1, k=[2]).result(60) == ((1,), {"k": [2]})


def test_a_plain_actor_runs_a_burst_in_submission_order() -> None:
    # A plain actor relies on Ray running one submitter's calls in order.
    with Plain.options(mode="ray", max_queued_tasks=None).init() as handle:  # type: ignore[attr-defined]
        futures = [handle.record(i) for i in range(300)]
        assert [len(f.result(60)) for f in futures] == list(range(1, 301))
        assert futures[-1].result() == list(range(300))


@pytest.mark.parametrize("cls", [Plain, AsyncNamed])
def test_any_method_name_and_any_keyword_reach_the_instance(cls: Any) -> None:
    # Names the hosting actor uses itself, and keywords its entry points take
    # positionally (seq, method), still reach the user's method.
    with cls.options(mode="ray").init() as handle:
        assert handle.call(1).result(60) == ("call", 1)
        assert handle.skip().result(60) == "skip"
        assert handle.close().result(60) == "close"
        assert handle.echo(0, seq=2, method=3).result(60) == ((0,), {"seq": 2, "method": 3})


def test_a_method_added_after_the_first_worker_is_still_called() -> None:
    # Entry points are made once per class; a later method goes through the
    # actor's generic entry.
    @worker
    class Grows:
        def first(self) -> int:
            return 1

    with Grows.options(mode="ray").init() as first:  # type: ignore[attr-defined]
        assert first.first().result(60) == 1
    Grows.second = lambda self: 2  # type: ignore[attr-defined]
    with Grows.options(mode="ray").init() as second:  # type: ignore[attr-defined]
        assert second.second().result(60) == 2
        assert second.first().result(60) == 1


def test_async_methods_of_one_actor_run_concurrently(remote: Any) -> None:
    futures = [remote.arrive(4) for _ in range(4)]
    assert [f.result(60) for f in futures] == [4, 4, 4, 4]


@pytest.mark.anyio
@pytest.mark.asyncio_only
async def test_calls_are_awaited_in_a_running_loop(remote: Any) -> None:
    assert await remote.take("x") == "x"
    assert await asyncio.gather(*(remote.take(i) for i in range(20))) == list(range(20))


def test_user_exception_keeps_its_type_and_the_remote_traceback() -> None:
    with Counter.options(mode="ray").init() as handle:  # type: ignore[attr-defined]
        exc = handle.fail("bad input").exception(60)
        assert type(exc) is ValueError
        assert str(exc) == "bad input"
        assert any("Remote traceback" in note for note in exc.__notes__)
        assert type(handle.afail("k").exception(60)) is KeyError
        with pytest.raises(SystemExit):
            handle.exit().result(60)
        assert handle.inc().result(60) == 1  # the actor survived SystemExit


def test_an_exception_returned_as_a_value_is_the_result() -> None:
    with Plain.options(mode="ray").init() as handle:  # type: ignore[attr-defined]
        value = handle.make_error("a value").result(60)
        assert type(value) is ValueError and str(value) == "a value"


def test_init_error_is_raised_by_init_as_itself() -> None:
    @worker
    class Broken:
        def __init__(self) -> None:
            raise LookupError("no config")

        def m(self) -> None: ...

    with pytest.raises(LookupError, match="no config"):
        Broken.options(mode="ray").init()  # type: ignore[attr-defined]


def test_pydantic_model_workers_validate_init_arguments_as_in_other_modes() -> None:
    with Settings.options(mode="ray").init(name="llm", retries=2) as handle:
        assert handle.describe().result(60) == ("llm", 2)
        assert handle.bump().result(60) == 3
    with pytest.raises(pydantic.ValidationError, match="retries must be positive"):
        Settings.options(mode="ray").init(name="llm", retries=0)
    with pytest.raises(pydantic.ValidationError, match="extra"):
        Settings.options(mode="ray").init(name="llm", unknown=1)


def test_unpicklable_argument_fails_only_that_call(remote: Any) -> None:
    exc = remote.take(threading.Lock()).exception(60)
    assert isinstance(exc, SerializationError)
    assert "take" in str(exc) and "ray" in str(exc)
    assert remote.take(2).result(60) == 2


# ---------------------------------------------------------------------------
# 282: actor_options
# ---------------------------------------------------------------------------


def test_actor_options_reach_the_actor() -> None:
    options = {"mode": "ray", "actor_options": {"num_cpus": 0.5, "resources": {"gadget": 1}}}
    ray_resources = ray.cluster_resources()
    if ray_resources.get("gadget", 0) < 1:
        options["actor_options"].pop("resources")  # type: ignore[attr-defined]
    with Remote.options(**options).init() as handle:
        assert handle.resources().result(60).get("CPU") == 0.5
    with Remote.options(mode="ray", num_cpus=0.25).init() as handle:
        assert handle.resources().result(60).get("CPU") == 0.25


def test_task_runner_runs_functions_as_ray_tasks_with_the_options() -> None:
    options = resolve_options(
        [{"mode": "ray", "actor_options": {"num_cpus": 0.5, "max_restarts": 2}}],
        mode_specific={"actor_options"},
    )
    spec = WorkerSpec(object, (), {}, "tasks-1", options, dict(options.extra))
    from aioconc._backends.ray._worker import RayTaskRunner

    runner = get_backend(ExecutionMode.Ray).start_tasks(spec)  # type: ignore[attr-defined]
    assert isinstance(runner, RayTaskRunner)
    from aioconc._call import Call
    from aioconc._future import Future

    fut: Future[Any] = Future()
    runner.dispatch(Call("submit", (_resources,), {}, fut))
    assert fut.result(60).get("CPU") == 0.5  # max_restarts (actor-only) was dropped
    fut2: Future[Any] = Future()
    runner.dispatch(Call("submit", (divmod, 7), {}, fut2))
    assert isinstance(fut2.exception(60), TypeError)
    runner.begin_close(True)
    runner.closed.result(30)


# ---------------------------------------------------------------------------
# 283: futures travel as ObjectRefs
# ---------------------------------------------------------------------------


def test_a_ray_future_reaches_another_actor_without_the_driver(remote: Any) -> None:
    with Remote.options(mode="ray", max_queued_tasks=None).init() as other:
        upstream = remote.only_remote(os.getpid(), "payload")
        # The driver cannot even unpickle the value, yet the other actor gets it.
        assert other.take(upstream).result(60) == "payload"
        assert other.take(value=upstream).result(60) == "payload"
        assert upstream.exception(60) is not None


def test_a_pending_ray_future_is_passed_on_at_once(gate: Any) -> None:
    builder = Counter.options(mode="ray", max_queued_tasks=None)  # type: ignore[attr-defined]
    with builder.init() as a, builder.init() as b:
        upstream = a.wait_for(gate, "late")
        downstream = b.record(upstream)
        assert not downstream.done()
        gate.set()
        assert downstream.result(60) == ["late"]


def test_a_failed_input_fails_the_downstream_call(remote: Any) -> None:
    with Counter.options(mode="ray").init() as a:  # type: ignore[attr-defined]
        failed = a.fail("upstream broke")
        with pytest.raises(ValueError, match="upstream broke"):
            remote.take(failed).result(60)


# ---------------------------------------------------------------------------
# Crashes and stop
# ---------------------------------------------------------------------------


def test_a_dead_actor_fails_its_pending_calls_with_worker_crashed_error() -> None:
    handle = Remote.options(mode="ray", max_queued_tasks=None).init()
    try:
        dying = handle.die()
        after = handle.take(1)
        for fut in (dying, after):
            exc = fut.exception(60)
            assert isinstance(exc, WorkerCrashedError)
            assert exc.worker is not None and exc.worker.startswith("Remote")
        assert isinstance(handle.take(2).exception(60), WorkerCrashedError)
    finally:
        handle.stop()


def test_stop_kills_the_actor_and_leaves_none_behind() -> None:
    import psutil

    handle = Remote.options(mode="ray").init()
    pid = handle.pid().result(60)
    proc = psutil.Process(pid)
    handle.stop()
    proc.wait(timeout=60)  # the actor's process ends
    assert not psutil.pid_exists(pid) or proc.status() == psutil.STATUS_ZOMBIE
    with pytest.raises(RuntimeError, match="stopped"):
        handle.take(1)


def test_graceful_stop_delivers_in_flight_results() -> None:
    handle = Counter.options(mode="ray", max_queued_tasks=None).init()  # type: ignore[attr-defined]
    futures = [handle.inc() for _ in range(10)]
    handle.stop(graceful=True)
    assert [f.result(60) for f in futures] == list(range(1, 11))


def test_a_completion_seen_after_stop_began_does_not_end_the_worker_twice() -> None:
    # The last call's completion and stop() may both find nothing pending: the
    # stop() hook and the kill must run once (a second close() met a killed actor).
    handle = Remote.options(mode="ray").init()
    backend_worker = handle._worker
    ends: list[None] = []
    drained = backend_worker._drained
    backend_worker._drained = lambda: (ends.append(None), drained())
    assert handle.take(1).result(60) == 1
    backend_worker.begin_close(True)
    late: Any = Future()
    late._start()
    backend_worker._complete(late, "late")  # as if Ray reported the last call just now
    backend_worker.closed.result(60)
    handle.stop()
    assert late.result() == "late"
    assert len(ends) == 1


def test_stop_without_grace_ends_every_pending_call(gate: Any) -> None:
    handle = Counter.options(mode="ray", max_queued_tasks=None).init()  # type: ignore[attr-defined]
    futures = [handle.wait_for(gate) for _ in range(3)]
    handle.stop(timeout=5)
    gate.set()
    for fut in futures:
        fut.exception(60) if not fut.cancelled() else None
        assert fut.done()


# ---------------------------------------------------------------------------
# A separately started Ray head
# ---------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_runs_on_a_separately_started_head_node() -> None:
    ray_cli = shutil.which("ray") or str(Path(sys.executable).with_name("ray"))
    port = _free_port()
    temp_dir = tempfile.mkdtemp(prefix="rayh", dir="/tmp")
    head = subprocess.Popen(
        [
            ray_cli,
            "start",
            "--head",
            "--block",
            "--node-ip-address=127.0.0.1",
            f"--port={port}",
            "--num-cpus=1",
            "--include-dashboard=false",
            "--disable-usage-stats",
            f"--temp-dir={temp_dir}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        result = _run(
            f"""
            import ray
            ray.init(address="127.0.0.1:{port}", logging_level="ERROR")
            from aioconc import worker
            from tests._workers import Counter
            node = ray.get_runtime_context().gcs_address
            with worker(Counter).options(mode="ray").init(1) as handle:
                print("value", handle.inc().result(120), "via", node)
            """
        )
        assert result.returncode == 0, result.stderr
        assert "value 2 via " in result.stdout and f":{port}" in result.stdout
    finally:
        os.killpg(head.pid, 15)
        head.wait(60)
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_on_demand_ray_pools_have_no_concurrency_cap() -> None:
    # CONFORMANCE 137: with max_workers=0, on-demand Ray workers are not capped
    # by this machine's CPU count (they are cluster resources).
    with Counter.options(mode="ray", on_demand=True, max_workers=0).init(5) as pool:
        slots = pool._slots
        assert slots._value > 1_000_000
        assert pool.inc().result(120) == 6


def test_a_ray_pool_spreads_calls_and_keeps_state_per_worker() -> None:
    with Counter.options(mode="ray", max_workers=2).init() as pool:  # type: ignore[attr-defined]
        results = [pool.inc().result(120) for _ in range(4)]
        assert sorted(results) == [1, 1, 2, 2]  # round robin: each worker counted twice
        assert pool.get_pool_stats()["total_workers"] == 2


def test_task_worker_map_and_task_on_ray() -> None:
    from aioconc import TaskWorker, task

    with TaskWorker.options(mode="ray", max_workers=2).init() as tw:
        assert list(tw.map(pow, [2, 3, 4], [2, 2, 2])) == [4, 9, 16]
        assert tw.submit(divmod, 7, 2).result(120) == (3, 1)

    @task(mode="ray")
    def double(x: int) -> int:
        return 2 * x

    with double:
        assert double(21).result(120) == 42


def test_completions_through_ref_future_when_ray_lacks_the_direct_callback() -> None:
    # The public route (ObjectRef.future()) finishes calls exactly as the direct one.
    import concurrent.futures

    handle = Remote.options(mode="ray").init()
    try:
        backend_worker = handle._worker
        outcomes: list[Any] = []
        for value, error in (
            ("value", None),
            (None, ray.exceptions.RayTaskError("m", "tb", KeyError("k"))),
            (None, OSError("not one of Ray's")),
        ):
            done: concurrent.futures.Future[Any] = concurrent.futures.Future()
            if error is None:
                done.set_result(value)
            else:
                done.set_exception(error)
            fut: Any = Future()
            fut._start()
            backend_worker._complete_future(fut, done)
            outcomes.append(fut.result() if error is None else type(fut.exception()))
        assert outcomes == ["value", KeyError, OSError]
    finally:
        handle.stop()
