"""Enum parsing and aliases (CONFORMANCE items 2-12)."""

from __future__ import annotations

import pydantic
import pytest

from aioconc._enums import (
    ExecutionMode,
    LoadBalancingAlgorithm,
    PollingAlgorithm,
    RateLimitAlgorithm,
    RateWindow,
    RetryAlgorithm,
    ReturnWhen,
)
from aioconc._options import validate_options


@pytest.mark.parametrize(
    ("text", "member"),
    [
        ("sync", ExecutionMode.Sync),
        ("synchronous", ExecutionMode.Sync),
        ("asyncio", ExecutionMode.Asyncio),
        ("async", ExecutionMode.Asyncio),
        ("asynchronous", ExecutionMode.Asyncio),
        ("thread", ExecutionMode.Threads),
        ("threads", ExecutionMode.Threads),
        ("process", ExecutionMode.Processes),
        ("processes", ExecutionMode.Processes),
        ("proc", ExecutionMode.Processes),
        ("procs", ExecutionMode.Processes),
        ("ray", ExecutionMode.Ray),
        ("THREAD", ExecutionMode.Threads),
        ("Procs", ExecutionMode.Processes),
        ("  Async ", ExecutionMode.Asyncio),
    ],
)
def test_execution_mode_aliases(text: str, member: ExecutionMode) -> None:
    assert ExecutionMode(text) is member
    assert ExecutionMode.parse(text) is member


def test_mode_strings_and_members_are_interchangeable() -> None:
    assert ExecutionMode.Threads == "Threads"
    assert str(ExecutionMode.Processes) == "Processes"
    assert ExecutionMode(ExecutionMode.Ray) is ExecutionMode.Ray
    by_string = validate_options({"mode": "thread"})
    by_member = validate_options({"mode": ExecutionMode.Threads})
    assert by_string == by_member == {"mode": ExecutionMode.Threads}


def test_unknown_mode_lists_the_choices() -> None:
    with pytest.raises(ValueError, match="procs"):
        ExecutionMode.parse("cluster")


def test_auto_is_not_an_execution_mode() -> None:
    with pytest.raises(ValueError):
        ExecutionMode("auto")


@pytest.mark.parametrize(
    ("text", "member"),
    [
        ("round_robin", LoadBalancingAlgorithm.RoundRobin),
        ("rr", LoadBalancingAlgorithm.RoundRobin),
        ("RoundRobin", LoadBalancingAlgorithm.RoundRobin),
        ("active", LoadBalancingAlgorithm.LeastActiveLoad),
        ("LeastActiveLoad", LoadBalancingAlgorithm.LeastActiveLoad),
        ("least_active", LoadBalancingAlgorithm.LeastActiveLoad),
        ("total", LoadBalancingAlgorithm.LeastTotalLoad),
        ("LeastTotalLoad", LoadBalancingAlgorithm.LeastTotalLoad),
        ("least_total", LoadBalancingAlgorithm.LeastTotalLoad),
        ("random", LoadBalancingAlgorithm.Random),
        ("rand", LoadBalancingAlgorithm.Random),
        ("Random", LoadBalancingAlgorithm.Random),
    ],
)
def test_load_balancing_aliases(text: str, member: LoadBalancingAlgorithm) -> None:
    assert LoadBalancingAlgorithm(text) is member


@pytest.mark.parametrize(
    ("text", "member"),
    [
        ("all", ReturnWhen.ALL_COMPLETED),
        ("first", ReturnWhen.FIRST_COMPLETED),
        ("exception", ReturnWhen.FIRST_EXCEPTION),
        ("all_completed", ReturnWhen.ALL_COMPLETED),
        ("FIRST_COMPLETED", ReturnWhen.FIRST_COMPLETED),
        ("First_Exception", ReturnWhen.FIRST_EXCEPTION),
        ("ALL", ReturnWhen.ALL_COMPLETED),
    ],
)
def test_return_when_aliases(text: str, member: ReturnWhen) -> None:
    assert ReturnWhen(text) is member


def test_return_when_members_are_their_names() -> None:
    for name in ("ALL_COMPLETED", "FIRST_COMPLETED", "FIRST_EXCEPTION"):
        assert ReturnWhen(name) == name
        assert ReturnWhen(name).value == name


def test_retry_algorithms() -> None:
    assert {m.name for m in RetryAlgorithm} == {"Linear", "Exponential", "Fibonacci"}
    assert RetryAlgorithm("linear") is RetryAlgorithm.Linear
    assert RetryAlgorithm("EXPONENTIAL") is RetryAlgorithm.Exponential
    assert validate_options({"retry_algorithm": "fibonacci"}) == {
        "retry_algorithm": RetryAlgorithm.Fibonacci
    }


def test_unknown_retry_algorithm_is_a_validation_error() -> None:
    with pytest.raises(pydantic.ValidationError, match="retry_algorithm"):
        validate_options({"retry_algorithm": "quadratic"})


@pytest.mark.parametrize(
    ("text", "member"),
    [
        ("token", RateLimitAlgorithm.TokenBucket),
        ("token_bucket", RateLimitAlgorithm.TokenBucket),
        ("leaky", RateLimitAlgorithm.LeakyBucket),
        ("leaky_bucket", RateLimitAlgorithm.LeakyBucket),
        ("sliding", RateLimitAlgorithm.SlidingWindow),
        ("sliding_window", RateLimitAlgorithm.SlidingWindow),
        ("fixed", RateLimitAlgorithm.FixedWindow),
        ("fixed_window", RateLimitAlgorithm.FixedWindow),
        ("gcra", RateLimitAlgorithm.GCRA),
        ("GCRA", RateLimitAlgorithm.GCRA),
    ],
)
def test_rate_limit_algorithm_aliases(text: str, member: RateLimitAlgorithm) -> None:
    assert RateLimitAlgorithm(text) is member


@pytest.mark.parametrize(
    ("words", "seconds"),
    [
        (("second", "seconds", "sec", "secs", "per_second", "Secondly"), 1.0),
        (("minute", "minutes", "min", "mins", "per_minute", "minutely"), 60.0),
        (("hour", "hours", "hr", "hrs", "per_hour", "hourly"), 3600.0),
        (("day", "days", "per_day", "daily"), 86400.0),
        (("week", "weeks", "wk", "per_week", "weekly"), 604800.0),
    ],
)
def test_rate_window_seconds(words: tuple[str, ...], seconds: float) -> None:
    for word in words:
        assert RateWindow(word).to_seconds() == seconds


@pytest.mark.parametrize("word", ["month", "months", "per_month", "monthly"])
def test_rate_window_rejects_month(word: str) -> None:
    with pytest.raises(ValueError):
        RateWindow(word)


def test_polling_algorithms() -> None:
    assert {m.name for m in PollingAlgorithm} == {"Fixed", "Adaptive", "Exponential", "Progressive"}
    for text in ("fixed", "adaptive", "exponential", "progressive"):
        assert PollingAlgorithm(text).name.lower() == text
