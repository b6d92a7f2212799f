"""CONFORMANCE "Defining workers" (13-29) and "Package, enums, modes" (1, 3, 4), in every mode."""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
from typing import Any

import pydantic
import pytest

import aioconc
from aioconc import ExecutionMode, Worker, temp_config, worker
from aioconc._proxy import WorkerHandle

from ._workers import Counter

# Names of CONFORMANCE item 1 still to come (none now).
LATER: set[str] = set()
ITEM_1 = {
    "Worker",
    "worker",
    "task",
    "TaskWorker",
    "Executor",
    "BaseFuture",
    "wrap_future",
    "wait",
    "gather",
    "async_wait",
    "async_gather",
    "ReturnWhen",
    "ALL_COMPLETED",
    "FIRST_COMPLETED",
    "FIRST_EXCEPTION",
    "ExecutionMode",
    "LoadBalancingAlgorithm",
    "PollingAlgorithm",
    "RateLimitAlgorithm",
    "RateWindow",
    "RetryAlgorithm",
    "Limit",
    "RateLimit",
    "CallLimit",
    "ResourceLimit",
    "LimitSet",
    "LimitPool",
    "Acquisition",
    "LimitSetAcquisition",
    "RetryConfig",
    "RetryValidationError",
    "ProgressBar",
    "Timer",
    "TimerError",
    "global_config",
    "temp_config",
}


def test_package_exports_concurry_names() -> None:
    missing = {name for name in ITEM_1 if not hasattr(aioconc, name)}
    assert missing <= LATER


def test_all_matches_exports() -> None:
    exported = {
        name
        for name, value in vars(aioconc).items()
        if not name.startswith("_") and not isinstance(value, type(aioconc))
    }
    assert set(aioconc.__all__) == exported
    for name in aioconc.__all__:
        assert getattr(aioconc, name) is not None


def test_the_types_public_calls_return_are_exported() -> None:
    from aioconc._pool import PoolHandle, PoolStatistics
    from aioconc.middleware._queue import QueueStatistics
    from aioconc.task import TaskFunction

    for cls in (PoolHandle, PoolStatistics, QueueStatistics, TaskFunction, WorkerHandle):
        assert getattr(aioconc, cls.__name__) is cls
        assert cls.__name__ in aioconc.__all__


@pytest.mark.parametrize(
    ("package", "public", "kept"),
    [
        (
            "aioconc.limits",
            {"Acquisition", "CallLimit", "Limit", "LimitPool", "LimitSet"}
            | {"LimitSetAcquisition", "RateLimit", "ResourceLimit"},
            {"LimitBackend", "LocalLimitEngine", "limits_for"},
        ),
        ("aioconc.middleware", set(), {"stages_for"}),
    ],
)
def test_subpackages_show_only_public_names(package: str, public: set[str], kept: set[str]) -> None:
    module = importlib.import_module(package)
    assert set(module.__all__) == public
    assert {name for name in dir(module) if not name.startswith("_")} == public
    for name in kept:  # importable as before, out of __all__ and dir()
        assert getattr(module, name) is not None


def test_mode_members_and_strings_are_interchangeable(worker_mode: str) -> None:
    member = ExecutionMode(worker_mode)
    for mode in (member, worker_mode, worker_mode.upper(), member.value):
        with Counter_.options(mode=mode).init() as handle:
            assert handle.inc().result() == 1
            assert handle.mode == member.name


def test_auto_mode_is_rejected_at_creation() -> None:
    builder = Counter_.options(mode="auto")
    with pytest.raises(ValueError, match="auto"):
        builder.init()


class Counter_(Worker):
    def __init__(self, start: int = 0) -> None:
        self.n = start

    def inc(self) -> int:
        self.n += 1
        return self.n


class Recorder(Worker):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        self.kwargs = kwargs

    def got(self) -> tuple[Any, Any]:
        return self.args, self.kwargs


def test_constructed_with_exactly_the_init_arguments(worker_mode: str) -> None:
    with Recorder.options(mode=worker_mode).init(1, "a", k=[2]) as handle:
        assert handle.got().result() == ((1, "a"), {"k": [2]})


def test_worker_itself_cannot_be_instantiated() -> None:
    with pytest.raises(TypeError):
        Worker()


def test_bare_decorator_keeps_ordinary_instances(worker_mode: str) -> None:
    @worker
    class Plain:
        def __init__(self, x: int) -> None:
            self.x = x

        def get(self) -> int:
            return self.x

    assert Plain.__name__ == "Plain"
    instance = Plain(3)
    assert isinstance(instance, Plain)
    assert instance.get() == 3
    with Plain.options(mode=worker_mode).init(4) as handle:
        assert handle.get().result() == 4


def test_decorator_with_options_auto_inits(worker_mode: str) -> None:
    @worker(mode=worker_mode)
    class Auto:
        def __init__(self, x: int) -> None:
            self.x = x

        def get(self) -> int:
            return self.x

    handle = Auto(5)
    try:
        assert isinstance(handle, WorkerHandle)
        assert handle.get().result() == 5
    finally:
        handle.stop()


def test_auto_init_false_keeps_instances_but_options_are_defaults(worker_mode: str) -> None:
    @worker(mode=worker_mode, blocking=True, auto_init=False)
    class Manual:
        def get(self) -> str:
            return "v"

    assert isinstance(Manual(), Manual)
    with Manual.options().init() as handle:
        assert handle.get() == "v"  # blocking=True from the decorator


def test_class_keywords_store_options_and_auto_init(worker_mode: str) -> None:
    class Keyed(Worker, mode=worker_mode, blocking=True):
        def get(self) -> str:
            return "k"

    handle = Keyed()
    try:
        assert isinstance(handle, WorkerHandle)
        assert handle.get() == "k"
    finally:
        handle.stop()


def test_decorator_and_class_keywords_warn_and_decorator_wins() -> None:
    with pytest.warns(UserWarning, match="@worker"):

        @worker(mode="sync", blocking=False)
        class Both(Worker, mode="thread", blocking=True):
            def get(self) -> int:
                return 1

    handle = Both()
    try:
        assert handle.mode == "Sync"
        assert handle.get().result() == 1
    finally:
        handle.stop()


def test_precedence_of_option_layers() -> None:
    class Layered(Worker, mode="thread", max_queued_tasks=5, auto_init=False):
        def get(self) -> int:
            return 1

    with temp_config(thread_max_queued_tasks=3):
        with Layered.options().init() as handle:
            assert handle.max_queued_tasks == 5  # class keywords beat config
        with Layered.options(max_queued_tasks=9).init() as handle:
            assert handle.max_queued_tasks == 9  # options() beats class keywords

    with pytest.warns(UserWarning, match="@worker"):

        @worker(max_queued_tasks=7, auto_init=False)
        class Decorated(Worker, mode="thread", max_queued_tasks=5, auto_init=False):
            def get(self) -> int:
                return 1

    with Decorated.options().init() as handle:
        assert handle.max_queued_tasks == 7  # @worker beats class keywords

    with temp_config(thread_max_queued_tasks=3), Counter_.options(mode="thread").init() as h:
        assert h.max_queued_tasks == 3  # per-mode config beats the global default
    with temp_config(global_max_queued_tasks=11), Counter_.options(mode="thread").init() as h:
        assert h.max_queued_tasks == 11  # thread's per-mode None defers to the global value


def test_missing_mode_says_mode_is_required() -> None:
    with pytest.raises(ValueError, match="mode parameter is required"):
        Counter_.options().init()


def test_blocking_strings_are_coerced(worker_mode: str) -> None:
    with Counter_.options(mode=worker_mode, blocking="true").init() as handle:
        assert handle.blocking is True
        assert handle.inc() == 1
    with Counter_.options(mode=worker_mode, blocking="false").init() as handle:
        assert handle.blocking is False


@pytest.mark.parametrize(
    "option",
    [{"num_retries": -1}, {"max_workers": -1}, {"max_queued_tasks": -2}, {"retry_jitter": 1.5}],
)
def test_invalid_options_fail_at_options_time_naming_the_field(option: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        Counter_.options(mode="thread", **option)
    assert next(iter(option)) in str(info.value)


def test_option_unknown_to_the_mode_fails_at_init(worker_mode: str) -> None:
    # num_cpus belongs to Ray; mp_context to processes: each is foreign elsewhere.
    option = "mp_context" if worker_mode == "ray" else "num_cpus"
    builder = Counter_.options(mode=worker_mode, **{option: "spawn"})
    with pytest.raises(ValueError, match=option):
        builder.init()


def test_mode_specific_class_keywords_are_accepted() -> None:
    class ForProcesses(Worker, mode="process", mp_context="spawn", auto_init=False):
        def get(self) -> int:
            return 1

    assert ForProcesses.__aioconc_class_options__["mp_context"] == "spawn"  # type: ignore[attr-defined]


def test_init_shorthand(worker_mode: str) -> None:
    class Short(Worker, mode=worker_mode, auto_init=False):
        def get(self) -> str:
            return "s"

    with Short.init() as handle:
        assert handle.get().result() == "s"


@dataclasses.dataclass
class DataWorker:
    factor: int

    def times(self, x: int) -> int:
        return self.factor * x


class ModelWorker(Worker, pydantic.BaseModel):
    factor: float

    def times(self, x: float) -> float:
        return self.factor * x


def test_dataclass_and_pydantic_workers(worker_mode: str) -> None:
    worker(DataWorker)
    with DataWorker.options(mode=worker_mode).init(3) as handle:  # type: ignore[attr-defined]
        assert handle.times(2).result() == 6
    with ModelWorker.options(mode=worker_mode).init(factor="0.5") as handle:
        assert handle.times(4).result() == 2.0
    with pytest.raises(pydantic.ValidationError):
        ModelWorker.options(mode=worker_mode).init(factor="not a number")


@pytest.mark.skipif(importlib.util.find_spec("morphic") is None, reason="morphic not installed")
def test_morphic_typed_worker(worker_mode: str) -> None:
    from morphic import Typed

    class TypedWorker(Worker, Typed):
        factor: int

        def times(self, x: int) -> int:
            return self.factor * x

    with TypedWorker.options(mode=worker_mode).init(factor=3) as handle:
        assert handle.times(2).result() == 6


def test_plain_class_through_decorator(worker_mode: str) -> None:
    worker(Counter)
    with Counter.options(mode=worker_mode).init(10, step=2) as handle:  # type: ignore[attr-defined]
        assert handle.inc().result() == 12


@pytest.mark.parametrize("name", ["blocking", "options", "init", "astop"])
def test_methods_that_would_be_hidden_are_rejected(name: str) -> None:
    with pytest.raises(TypeError, match=name):
        type("Bad", (Worker,), {name: lambda self: 1})
