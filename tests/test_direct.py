"""``@direct``: pynenc's ``direct_task`` examples, rewritten for aioconc, in every mode."""

from __future__ import annotations

import asyncio
import inspect
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from hashlib import md5
from pathlib import Path
from typing import Any

import pytest

from aioconc import DirectFunction, RemoteError, direct

ROOT = Path(__file__).resolve().parents[1]
POOL_MODES = {"threads", "processes", "ray"}


def _build_report(period: str) -> dict[str, Any]:
    seed = int(md5(period.encode()).hexdigest()[:8], 16)
    revenue = 50_000 + (seed % 950_000)
    orders = 100 + (seed % 9_900)
    return {
        "period": period,
        "revenue": revenue,
        "orders": orders,
        "avg_order_value": round(revenue / orders, 2),
    }


def generate_report(period: str) -> dict[str, Any]:
    return _build_report(period)


def fails() -> None:
    raise ValueError("intentional")


def generate_reports(periods: list[str]) -> list[dict[str, Any]]:
    return [_build_report(p) for p in periods]


def _per_period(args: dict[str, Any]) -> list[tuple[list[str]]]:
    return [([p],) for p in args["periods"]]


def _flatten(chunks: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return [report for chunk in chunks for report in chunk]


async def async_generate_report(period: str) -> dict[str, Any]:
    await asyncio.sleep(0)
    return _build_report(period)


def where(tag: str) -> tuple[str, int]:
    return tag, os.getpid()


def slow_or_fail(i: int, gate: Any) -> int:
    if i == 0:
        raise KeyError("part 0")
    gate.wait(30)
    return i


@pytest.fixture
def made(worker_mode: str) -> Iterator[list[DirectFunction[Any, Any]]]:
    """Direct functions made by a test, stopped after it."""
    functions: list[DirectFunction[Any, Any]] = []
    yield functions
    for fn in functions:
        fn.stop()


def _direct(made: list[DirectFunction[Any, Any]], fn: Any, **options: Any) -> Any:
    wrapped = direct(**options)(fn)
    made.append(wrapped)
    return wrapped


def test_returns_the_value_as_the_plain_function(worker_mode: str, made: list[Any]) -> None:
    remote = _direct(made, generate_report, mode=worker_mode)
    assert remote("Q1-2025") == generate_report("Q1-2025")
    assert remote(period="Q2-2025") == generate_report("Q2-2025")


def test_raises_the_original_exception(worker_mode: str, made: list[Any]) -> None:
    remote = _direct(made, fails, mode=worker_mode)
    with pytest.raises(ValueError, match="intentional") as info:
        remote()
    assert type(info.value) is ValueError


def test_fan_out_gives_the_batch_functions_value(worker_mode: str, made: list[Any]) -> None:
    workers = 2 if worker_mode in POOL_MODES else 1
    remote = _direct(
        made,
        generate_reports,
        mode=worker_mode,
        max_workers=workers,
        parallel_func=_per_period,
        aggregate_func=_flatten,
    )
    periods = ["Q1-2025", "Q2-2025", "Q3-2025", "Q4-2025"]
    assert remote(periods=periods) == generate_reports(periods)
    assert remote(periods) == generate_reports(periods)  # positional: bound by name


def test_async_function_stays_awaitable(worker_mode: str, made: list[Any]) -> None:
    remote = _direct(made, async_generate_report, mode=worker_mode)
    assert inspect.iscoroutinefunction(async_generate_report)
    call = remote("Q3-2025")
    assert inspect.iscoroutine(call)
    assert asyncio.run(call) == _build_report("Q3-2025")


def test_async_fan_out(worker_mode: str, made: list[Any]) -> None:
    async def parts(periods: list[str]) -> list[dict[str, Any]]:
        return [_build_report(p) for p in periods]

    if worker_mode in {"processes", "ray"}:
        parts = _async_reports  # a module-level function travels by reference
    remote = _direct(
        made, parts, mode=worker_mode, parallel_func=_per_period, aggregate_func=_flatten
    )
    assert asyncio.run(remote(["Q1", "Q2", "Q3"])) == generate_reports(["Q1", "Q2", "Q3"])


async def _async_reports(periods: list[str]) -> list[dict[str, Any]]:
    return [_build_report(p) for p in periods]


def test_a_failing_part_raises_and_cancels_parts_not_started(
    worker_mode: str, made: list[Any], gate: Any
) -> None:
    remote = _direct(
        made,
        slow_or_fail,
        mode=worker_mode,
        parallel_func=lambda args: [(i, args["gate"]) for i in range(5)],
        aggregate_func=sum,
    )
    with pytest.raises(KeyError, match="part 0"):
        remote(0, gate)
    stats = remote.statistics()
    assert stats.failed == 1
    assert stats.completed == 0  # the gate is shut: no other part ran to its end
    # Every part submitted ended as cancelled or is the one still running.
    assert stats.submitted - 1 == stats.cancelled + stats.in_flight
    assert stats.in_flight <= 1


def test_fan_out_runs_parts_on_more_than_one_process(made: list[Any]) -> None:
    remote = _direct(
        made,
        where,
        mode="process",
        max_workers=2,
        parallel_func=lambda args: [(f"part{i}",) for i in range(6)],
        aggregate_func=list,
    )
    results = remote("ignored")
    assert [tag for tag, _ in results] == [f"part{i}" for i in range(6)]
    assert len({pid for _, pid in results}) == 2
    assert os.getpid() not in {pid for _, pid in results}


def test_parallel_func_without_aggregate_func_fails_at_decoration() -> None:
    with pytest.raises(ValueError, match="Aggregation function required"):
        direct(mode="thread", parallel_func=_per_period)
    with pytest.raises(ValueError, match="buffersize"):
        direct(mode="thread", parallel_func=_per_period, aggregate_func=_flatten, buffersize=0)


def test_bare_decorator_keeps_name_doc_and_signature() -> None:
    def add(x: int, y: int = 2) -> int:
        """Add two numbers."""
        return x + y

    remote = direct(add)
    try:
        assert remote.__name__ == "add"
        assert remote.__doc__ == "Add two numbers."
        assert inspect.signature(remote) == inspect.signature(add)
        assert remote._handle is None  # nothing started before the first call
        assert remote(1) == 3
        assert remote.statistics().completed == 1
    finally:
        remote.stop()


def test_stop_then_call_starts_again_and_context_managers(made: list[Any]) -> None:
    remote = _direct(made, generate_report, mode="thread")
    with remote:
        assert remote("Q1")["period"] == "Q1"
        first = remote.handle
    assert first._stopped
    assert remote("Q2")["period"] == "Q2"  # a later call starts new workers
    assert remote.handle is not first

    async def main() -> None:
        async with remote:
            assert (await asyncio.to_thread(remote, "Q3"))["period"] == "Q3"

    asyncio.run(main())
    assert remote._handle is None


def test_an_async_call_does_not_block_the_callers_loop(made: list[Any]) -> None:
    async def slow(x: int) -> int:
        await asyncio.sleep(0.05)
        return x

    remote = _direct(made, slow, mode="asyncio")

    async def main() -> list[int]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.005)
                ticks += 1

        tick = asyncio.create_task(ticker())
        values = await asyncio.gather(*(remote(i) for i in range(3)))
        tick.cancel()
        assert ticks >= 3  # the loop kept turning while the calls ran
        return list(values)

    assert asyncio.run(main()) == [0, 1, 2]


def test_main_module_functions_and_lambdas_in_process_mode(tmp_path: Path) -> None:
    script = tmp_path / "script.py"
    script.write_text(
        textwrap.dedent(
            """
            import os
            from aioconc import direct

            offset = 10

            @direct(mode="process")
            def shifted(x):
                return x + offset, os.getpid()

            square = direct(mode="process")(lambda x: x * x)
            value, pid = shifted(1)
            assert value == 11 and pid != os.getpid()
            assert square(7) == 49
            print("ok")
            """
        )
    )
    proc = subprocess.run(
        [sys.executable, str(script)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_force_sync_runs_every_front_door_in_the_caller(tmp_path: Path) -> None:
    script = tmp_path / "forced.py"
    script.write_text(
        textwrap.dedent(
            """
            import asyncio, os, threading
            from aioconc import Worker, direct, task

            def here():
                return os.getpid(), threading.get_ident()

            @direct(mode="process", max_workers=2)
            def d():
                return here()

            @direct(mode="process")
            async def ad():
                return here()

            @task(mode="process")
            def t():
                return here()

            class W(Worker):
                def m(self):
                    return here()

            w = W.options(mode="process").init()
            me = here()
            assert d() == me, (d(), me)
            assert asyncio.run(ad()) == me
            assert t().result() == me
            assert w.m().result() == me
            assert threading.active_count() == 1, threading.enumerate()
            print("inline")
            """
        )
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "AIOCONC_FORCE_SYNC": "1"}
    proc = subprocess.run(
        [sys.executable, str(script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "inline"


def test_remote_error_names_a_type_the_caller_lacks() -> None:
    err = RemoteError.of("somewhere.Missing", "boom")
    assert err.type_name == "somewhere.Missing"
    assert "boom" in str(err)


def test_options_are_validated_when_decorating() -> None:
    before = threading.active_count()
    with pytest.raises(ValueError, match="num_retries"):
        direct(mode="thread", num_retries=-1)
    assert threading.active_count() == before  # nothing was started for it
