"""global_config, temp_config and resolve (CONFORMANCE items 247-252 and 256)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pydantic
import pytest

from aioconc._enums import ExecutionMode, LoadBalancingAlgorithm, RateLimitAlgorithm, RetryAlgorithm
from aioconc.config import global_config, resolve, temp_config

MODES = ("sync", "asyncio", "thread", "process", "ray")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _fresh_config() -> Iterator[None]:
    global_config.reset_to_defaults()
    yield
    global_config.reset_to_defaults()


def test_library_defaults() -> None:
    d = global_config.defaults
    assert d.max_workers is None
    assert d.max_queued_tasks is None
    assert d.load_balancing is LoadBalancingAlgorithm.RoundRobin
    assert d.load_balancing_on_demand is LoadBalancingAlgorithm.Random
    assert d.on_demand is False
    assert d.mp_context == "forkserver"
    assert d.task_decorator_on_demand is True
    assert d.blocking is False
    assert d.unwrap_futures is True
    assert d.num_retries == 0
    assert d.retry_on == [Exception]
    assert d.retry_algorithm is RetryAlgorithm.Exponential
    assert d.retry_wait == 1.0
    assert d.retry_jitter == 0.3
    assert d.retry_until is None
    assert d.stop_timeout == 30.0
    assert d.rate_limit_algorithm is RateLimitAlgorithm.SlidingWindow
    assert d.limit_pool_load_balancing is LoadBalancingAlgorithm.RoundRobin
    assert (d.progress_bar_ncols, d.progress_bar_smoothing, d.progress_bar_miniters) == (
        100,
        0.15,
        1,
    )
    assert d.force_sync is False


@pytest.mark.parametrize(
    ("mode", "max_workers", "max_queued_tasks"),
    [
        ("sync", 1, None),
        ("asyncio", 1, None),
        ("thread", 1, None),
        ("process", 1, 100),
        ("ray", 0, 3),
    ],
)
def test_per_mode_defaults(mode: str, max_workers: int, max_queued_tasks: int | None) -> None:
    assert resolve(mode, "max_workers") == max_workers
    assert resolve(mode, "max_queued_tasks") == max_queued_tasks


def test_per_mode_none_falls_back_to_global() -> None:
    assert global_config.thread.num_retries is None
    global_config.defaults.num_retries = 4
    assert resolve(ExecutionMode.Threads, "num_retries") == 4
    global_config.thread.num_retries = 7
    assert resolve("thread", "num_retries") == 7
    assert resolve("process", "num_retries") == 4


def test_mode_only_fields() -> None:
    assert resolve("process", "worker_result_queue_timeout") == 30.0
    assert resolve("thread", "worker_result_queue_timeout") is None
    for mode in ("thread", "process", "ray"):
        assert resolve(mode, "pool_on_demand_slot_max_wait") == 60.0
    assert resolve("sync", "pool_on_demand_slot_max_wait") is None


def test_resolve_accepts_aliases_and_rejects_unknown() -> None:
    assert resolve("procs", "max_queued_tasks") == 100
    with pytest.raises(ValueError, match="no_such_field"):
        resolve("thread", "no_such_field")
    with pytest.raises(ValueError):
        resolve("cluster", "max_workers")


def test_invalid_assignment_is_a_validation_error() -> None:
    with pytest.raises(pydantic.ValidationError, match="num_retries"):
        global_config.defaults.num_retries = -1
    with pytest.raises(pydantic.ValidationError, match="retry_jitter"):
        global_config.defaults.retry_jitter = 1.5
    with pytest.raises(pydantic.ValidationError, match="mp_context"):
        global_config.process.mp_context = "threads"  # type: ignore[assignment]
    with pytest.raises(pydantic.ValidationError, match="load_balancing"):
        global_config.defaults.load_balancing = "nearest"  # type: ignore[assignment]
    with pytest.raises(pydantic.ValidationError, match="no_such_field"):
        global_config.defaults.no_such_field = 1  # type: ignore[attr-defined]
    assert global_config.defaults.num_retries == 0


def test_enum_fields_accept_aliases() -> None:
    global_config.defaults.load_balancing = "least_active"  # type: ignore[assignment]
    assert global_config.defaults.load_balancing is LoadBalancingAlgorithm.LeastActiveLoad
    global_config.ray.retry_algorithm = "linear"  # type: ignore[assignment]
    assert resolve("ray", "retry_algorithm") is RetryAlgorithm.Linear


def test_reset_to_defaults() -> None:
    global_config.defaults.blocking = True
    global_config.thread.max_workers = 8
    global_config.process.max_queued_tasks = 5
    global_config.reset_to_defaults()
    assert global_config.defaults.blocking is False
    assert global_config.thread.max_workers == 1
    assert global_config.process.max_queued_tasks == 100


def test_section_replacement_is_type_checked() -> None:
    with pytest.raises(TypeError):
        global_config.defaults = global_config.thread  # type: ignore[assignment]


def test_temp_config_applies_and_restores() -> None:
    with temp_config(global_num_retries=3, thread_max_queued_tasks=50) as cfg:
        assert cfg is global_config
        assert global_config.defaults.num_retries == 3
        assert resolve("thread", "max_queued_tasks") == 50
        assert resolve("process", "max_queued_tasks") == 100
    assert global_config.defaults.num_retries == 0
    assert resolve("thread", "max_queued_tasks") is None


def test_temp_config_restores_on_exception() -> None:
    seen: list[bool] = []

    def failing_block() -> None:
        with temp_config(global_blocking=True, ray_max_workers=4):
            seen.append(global_config.defaults.blocking)
            raise KeyError("boom")

    with pytest.raises(KeyError):
        failing_block()
    assert seen == [True]
    assert global_config.defaults.blocking is False
    assert resolve("ray", "max_workers") == 0


def test_nested_temp_config_composes() -> None:
    with temp_config(global_num_retries=3):
        with temp_config(thread_num_retries=5, global_retry_wait=2.0):
            assert resolve("thread", "num_retries") == 5
            assert resolve("process", "num_retries") == 3
            assert resolve("process", "retry_wait") == 2.0
        assert resolve("thread", "num_retries") == 3
        assert resolve("process", "retry_wait") == 1.0
    assert resolve("thread", "num_retries") == 0


def test_assignment_inside_block_is_undone() -> None:
    with temp_config():
        global_config.defaults.stop_timeout = 5.0
        global_config.reset_to_defaults()
        global_config.defaults.unwrap_futures = False
    assert global_config.defaults.stop_timeout == 30.0
    assert global_config.defaults.unwrap_futures is True


@pytest.mark.parametrize(
    "key",
    ["cluster_max_workers", "threads_max_workers", "global_no_such_field", "thread_", "global"],
)
def test_temp_config_rejects_unknown_keys(key: str) -> None:
    with pytest.raises(ValueError, match="temp_config"), temp_config(**{key: 1}):
        pass


def test_temp_config_invalid_value_changes_nothing() -> None:
    with (
        pytest.raises(pydantic.ValidationError),
        temp_config(global_num_retries=2, thread_max_workers=-1),
    ):
        pass
    assert global_config.defaults.num_retries == 0


def test_global_only_field_has_no_mode_override() -> None:
    with (
        pytest.raises(ValueError, match="rate_limit_algorithm"),
        temp_config(thread_rate_limit_algorithm="token"),
    ):
        pass
    with temp_config(global_rate_limit_algorithm="token"):
        assert resolve("thread", "rate_limit_algorithm") is RateLimitAlgorithm.TokenBucket


def test_assignment_outside_block_is_process_wide() -> None:
    seen: list[bool] = []
    global_config.defaults.blocking = True
    thread = threading.Thread(target=lambda: seen.append(global_config.defaults.blocking))
    thread.start()
    thread.join()
    assert seen == [True]


def test_temp_config_is_invisible_to_other_threads() -> None:
    entered, checked = threading.Event(), threading.Event()
    seen: list[int] = []

    def other() -> None:
        entered.wait()
        seen.append(global_config.defaults.num_retries)
        checked.set()

    thread = threading.Thread(target=other)
    thread.start()
    with temp_config(global_num_retries=9):
        entered.set()
        checked.wait()
        assert global_config.defaults.num_retries == 9
    thread.join()
    assert seen == [0]


@pytest.mark.anyio
async def test_temp_config_is_context_local_between_tasks() -> None:
    inside, observed = asyncio.Event(), asyncio.Event()
    seen: dict[str, object] = {}

    async def configured() -> None:
        with temp_config(global_num_retries=3, thread_max_queued_tasks=7):
            inside.set()
            await observed.wait()
            seen["inside"] = (
                global_config.defaults.num_retries,
                resolve("thread", "max_queued_tasks"),
            )

    async def bystander() -> None:
        await inside.wait()
        seen["outside"] = (
            global_config.defaults.num_retries,
            resolve("thread", "max_queued_tasks"),
        )
        observed.set()

    await asyncio.gather(configured(), bystander())
    assert seen == {"inside": (3, 7), "outside": (0, None)}


@pytest.mark.anyio
async def test_tasks_created_inside_the_block_inherit_it() -> None:
    async def read() -> int:
        return global_config.defaults.num_retries

    with temp_config(global_num_retries=2):
        assert await asyncio.create_task(read()) == 2
    assert await asyncio.create_task(read()) == 0
