"""validate_options and resolve_options (CONFORMANCE items 22-26, 121-122, 142, 145, 253-254)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pydantic
import pytest

from aioconc._enums import ExecutionMode, LoadBalancingAlgorithm, RetryAlgorithm
from aioconc._options import Options, resolve_options, validate_options
from aioconc.config import global_config, temp_config

PROCESS_EXTRAS = frozenset({"mp_context", "start_timeout", "process_worker_result_queue_timeout"})
THREAD_EXTRAS = frozenset({"start_timeout"})
RAY_EXTRAS = frozenset({"actor_options", "num_cpus", "num_gpus", "resources"})
BY_MODE = {
    ExecutionMode.Threads: THREAD_EXTRAS,
    ExecutionMode.Processes: PROCESS_EXTRAS,
    ExecutionMode.Ray: RAY_EXTRAS,
}


@pytest.fixture(autouse=True)
def _fresh_config(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("AIOCONC_FORCE_SYNC", raising=False)
    global_config.reset_to_defaults()
    yield
    global_config.reset_to_defaults()


def resolve(*layers: dict[str, Any], **kw: Any) -> Options:
    kw.setdefault("mode_specific", BY_MODE)
    return resolve_options(list(layers), **kw)


# --- validate_options --------------------------------------------------------


def test_returns_only_the_given_keys_coerced() -> None:
    got = validate_options({"mode": "procs", "max_workers": "4", "load_balancing": "rr"})
    assert got == {
        "mode": ExecutionMode.Processes,
        "max_workers": 4,
        "load_balancing": LoadBalancingAlgorithm.RoundRobin,
    }
    assert validate_options({}) == {}


@pytest.mark.parametrize(("text", "value"), [("true", True), ("false", False), ("True", True)])
def test_blocking_strings_are_coerced(text: str, value: bool) -> None:
    assert validate_options({"blocking": text}) == {"blocking": value}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("num_retries", -1),
        ("max_workers", -1),
        ("max_queued_tasks", -1),
        ("retry_jitter", -0.1),
        ("retry_jitter", 1.5),
        ("retry_wait", -1.0),
        ("retry_algorithm", "quadratic"),
        ("blocking", "maybe"),
        ("mode", "cluster"),
        ("timeout", 0),
        ("priority", "urgent"),
        ("priority", 4),
        ("serializer", "yaml"),
        ("mp_context", "threads"),
        ("retry_on", 3),
        ("retry_until", "not callable"),
    ],
)
def test_invalid_values_name_the_field(field: str, value: object) -> None:
    with pytest.raises(pydantic.ValidationError, match=field):
        validate_options({field: value})


def test_retry_wait_zero_is_accepted_as_in_concurry() -> None:
    assert validate_options({"retry_wait": 0}) == {"retry_wait": 0.0}


def test_per_method_values_are_validated_each() -> None:
    got = validate_options(
        {"num_retries": {"*": 0, "fetch": "3"}, "retry_algorithm": {"*": "linear"}}
    )
    assert got == {
        "num_retries": {"*": 0, "fetch": 3},
        "retry_algorithm": {"*": RetryAlgorithm.Linear},
    }
    with pytest.raises(pydantic.ValidationError, match=r"num_retries\.per_method\.fetch"):
        validate_options({"num_retries": {"*": 0, "fetch": -2}})


def test_retry_on_and_until_become_lists() -> None:
    got = validate_options({"retry_on": KeyError, "retry_until": callable})
    assert got == {"retry_on": [KeyError], "retry_until": [callable]}
    assert validate_options({"retry_on": (KeyError, ValueError)}) == {
        "retry_on": [KeyError, ValueError]
    }


@pytest.mark.parametrize(("given", "level"), [("critical", 0), ("HIGH", 1), ("normal", 2), (3, 3)])
def test_priority_names_and_levels(given: object, level: int) -> None:
    assert validate_options({"priority": given}) == {"priority": level}


def test_auto_and_unknown_keys_pass_validation() -> None:
    assert validate_options({"mode": "auto", "num_cpus": -5}) == {"mode": "auto", "num_cpus": -5}


# --- resolve_options ---------------------------------------------------------


def test_mode_is_required() -> None:
    with pytest.raises(ValueError, match="mode parameter is required"):
        resolve({"num_retries": 1}, {}, {"blocking": True})


def test_mode_auto_is_rejected() -> None:
    with pytest.raises(ValueError, match="auto"):
        resolve({"mode": "auto"})


def test_defaults_come_from_the_mode_config() -> None:
    opts = resolve({"mode": "process"})
    assert opts.mode is ExecutionMode.Processes
    assert (opts.max_workers, opts.max_queued_tasks, opts.blocking) == (1, 100, False)
    assert opts.num_retries == 0
    assert opts.retry_on == [Exception]
    assert opts.retry_until is None
    assert (opts.priority, opts.timeout, opts.serializer, opts.limits) == (
        2,
        None,
        "cloudpickle",
        None,
    )
    assert dict(opts.extra) == {"mp_context": "forkserver", "start_timeout": 30.0}
    ray = resolve({"mode": "ray"})
    assert (ray.max_workers, ray.max_queued_tasks) == (0, 3)
    assert dict(ray.extra) == {}


def test_layer_precedence() -> None:
    options_args = {"num_retries": 1}
    decorator_args = {"mode": "thread", "num_retries": 2, "retry_wait": 0.5}
    class_keywords = {"mode": "process", "num_retries": 3, "retry_wait": 0.25, "blocking": "true"}
    opts = resolve(options_args, decorator_args, class_keywords)
    assert opts.mode is ExecutionMode.Threads
    assert (opts.num_retries, opts.retry_wait, opts.blocking) == (1, 0.5, True)


def test_mode_config_overrides_global_config() -> None:
    global_config.defaults.retry_jitter = 0.1
    global_config.defaults.max_queued_tasks = 9
    global_config.thread.retry_jitter = 0.2
    thread = resolve({"mode": "thread"})
    assert (thread.retry_jitter, thread.max_queued_tasks) == (0.2, 9)
    process = resolve({"mode": "process"})
    assert (process.retry_jitter, process.max_queued_tasks) == (0.1, 100)


def test_global_blocking_applies_to_new_workers() -> None:
    global_config.defaults.blocking = True
    assert resolve({"mode": "thread"}).blocking is True


def test_explicit_options_beat_temp_config() -> None:
    with temp_config(global_num_retries=5, thread_max_queued_tasks=7, global_blocking=True):
        inside = resolve({"mode": "thread", "num_retries": 1})
        assert (inside.num_retries, inside.max_queued_tasks, inside.blocking) == (1, 7, True)
        explicit = resolve({"blocking": False, "max_queued_tasks": 2}, {"mode": "thread"})
        assert (explicit.blocking, explicit.max_queued_tasks) == (False, 2)
    assert resolve({"mode": "thread"}).max_queued_tasks is None


def test_on_demand_uses_its_own_balancing_default() -> None:
    assert resolve({"mode": "thread", "on_demand": True}).load_balancing is (
        LoadBalancingAlgorithm.Random
    )
    assert resolve({"mode": "thread", "max_workers": 4}).load_balancing is (
        LoadBalancingAlgorithm.RoundRobin
    )
    chosen = resolve({"mode": "thread", "on_demand": True, "load_balancing": "total"})
    assert chosen.load_balancing is LoadBalancingAlgorithm.LeastTotalLoad


def test_extra_unknown_to_the_mode_is_rejected() -> None:
    with pytest.raises(ValueError, match="num_cpus"):
        resolve({"mode": "thread", "num_cpus": 1})
    with pytest.raises(ValueError, match="mp_context"):
        resolve({"mode": "ray", "mp_context": "spawn"})


def test_extras_accepted_from_any_layer() -> None:
    opts = resolve({"mode": "process"}, {}, {"mp_context": "spawn"})
    assert opts.extra["mp_context"] == "spawn"
    ray = resolve({"mode": "ray", "actor_options": {"num_cpus": 2}}, mode_specific=RAY_EXTRAS)
    assert dict(ray.extra) == {"actor_options": {"num_cpus": 2}}


def test_start_timeout_comes_from_config_or_concurrys_name() -> None:
    assert "start_timeout" not in resolve({"mode": "thread"}).extra
    assert resolve({"mode": "thread", "start_timeout": 2}).extra["start_timeout"] == 2.0
    with temp_config(process_worker_result_queue_timeout=5.0):
        assert resolve({"mode": "process"}).extra["start_timeout"] == 5.0
    given = resolve({"mode": "process", "process_worker_result_queue_timeout": 3})
    assert given.extra["start_timeout"] == 3.0
    with pytest.raises(pydantic.ValidationError, match="start_timeout"):
        validate_options({"start_timeout": -1})


def test_options_are_frozen() -> None:
    opts = resolve({"mode": "process"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.blocking = True  # type: ignore[misc]
    with pytest.raises(TypeError):
        opts.extra["mp_context"] = "fork"  # type: ignore[index]


@pytest.mark.parametrize("mode", ["sync", "asyncio"])
def test_sync_and_asyncio_reject_pools(mode: str) -> None:
    for max_workers in (None, 0, 1):
        assert resolve({"mode": mode, "max_workers": max_workers}).max_workers == max_workers
    with pytest.raises(ValueError, match="max_workers"):
        resolve({"mode": mode, "max_workers": 2})
    with pytest.raises(ValueError, match="on_demand"):
        resolve({"mode": mode, "on_demand": True})


def test_per_method_dicts_need_a_default() -> None:
    with pytest.raises(ValueError, match=r"retry_wait.*'\*'"):
        resolve({"mode": "thread", "retry_wait": {"fetch": 1.0}})
    opts = resolve({"mode": "thread", "num_retries": {"*": 1, "fetch": 3}}, method_names=["fetch"])
    assert opts.num_retries == {"*": 1, "fetch": 3}
    with pytest.raises(ValueError, match="nope"):
        resolve({"mode": "thread", "num_retries": {"*": 1, "nope": 3}}, method_names=["fetch"])


def test_layers_are_validated_again() -> None:
    with pytest.raises(pydantic.ValidationError, match="num_retries"):
        resolve({"mode": "thread"}, {"num_retries": -1})


@pytest.mark.parametrize("how", ["env", "config"])
def test_force_sync_runs_everything_in_sync_mode(how: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if how == "env":
        monkeypatch.setenv("AIOCONC_FORCE_SYNC", "1")
    else:
        global_config.defaults.force_sync = True
    opts = resolve({"mode": "process", "max_workers": 4, "mp_context": "spawn", "num_retries": 2})
    assert opts.mode is ExecutionMode.Sync
    assert (opts.max_workers, opts.on_demand, dict(opts.extra)) == (1, False, {})
    assert opts.num_retries == 2
    with pytest.raises(ValueError, match="num_cpus"):
        resolve({"mode": "process", "num_cpus": 1})
