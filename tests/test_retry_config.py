"""RetryConfig and the pure retry rules: CONFORMANCE items 232-233, 236-241, 243-244."""

from __future__ import annotations

import asyncio
import pickle
import random
from typing import Any

import pytest
import tenacity
from pydantic import ValidationError

from aioconc._enums import RetryAlgorithm
from aioconc._exceptions import RetryValidationError
from aioconc._retry_config import (
    RetryConfig,
    backoff_seconds,
    resolve_per_method,
    should_retry,
    validate_result,
    wait_strategy,
)

CTX: dict[str, Any] = {"attempt": 1, "elapsed_time": 0.0, "method_name": "fetch"}


class MaxRng:
    """An rng that records its calls and returns the upper bound."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, float]] = []

    def uniform(self, a: float, b: float, /) -> float:
        self.calls.append((a, b))
        return b


# 237 ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        ("linear", [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5]),
        ("exponential", [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0]),
        ("fibonacci", [0.5, 0.5, 1.0, 1.5, 2.5, 4.0, 6.5]),
    ],
)
def test_backoff_without_jitter(algorithm: str, expected: list[float]) -> None:
    assert [backoff_seconds(algorithm, 0.5, a, 0.0) for a in range(1, 8)] == expected


@pytest.mark.parametrize("base", [0.1, 0.3, 0.7, 1.1, 2.9])
def test_backoff_is_exactly_the_formula(base: float) -> None:
    fib = [1, 1, 2, 3, 5, 8, 13, 21, 34, 55]
    for a in range(1, 11):
        assert backoff_seconds(RetryAlgorithm.Linear, base, a, 0) == base * a
        assert backoff_seconds(RetryAlgorithm.Exponential, base, a, 0) == base * 2 ** (a - 1)
        assert backoff_seconds(RetryAlgorithm.Fibonacci, base, a, 0) == base * fib[a - 1]


def test_backoff_overflow_is_infinite_not_an_error() -> None:
    assert backoff_seconds("exponential", 1.0, 5000, 0) == float("inf")
    assert backoff_seconds("fibonacci", 1.0, 5000, 0) == float("inf")


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("linear", 1.0, 0, 0.0), "attempt"),
        (("linear", 1.0, True, 0.0), "attempt"),
        (("linear", 0.0, 1, 0.0), "base_wait"),
        (("linear", float("inf"), 1, 0.0), "base_wait"),
        (("linear", 1.0, 1, 1.5), "jitter"),
        (("quadratic", 1.0, 1, 0.0), "RetryAlgorithm"),
    ],
)
def test_backoff_rejects_bad_arguments(args: tuple[Any, ...], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        backoff_seconds(*args)


def test_wait_strategy_drives_tenacity() -> None:
    sleeps: list[float] = []
    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(6),
        wait=wait_strategy("fibonacci", 2.0, 0.0),
        sleep=sleeps.append,
        reraise=True,
    )
    with pytest.raises(ZeroDivisionError):
        retrying(lambda: 1 / 0)
    assert sleeps == [2.0, 2.0, 4.0, 6.0, 10.0]


# 238 ---------------------------------------------------------------------------------


@pytest.mark.parametrize("jitter", [0.01, 0.3, 1.0])
def test_jitter_draws_from_zero_to_the_computed_wait(jitter: float) -> None:
    rng = MaxRng()
    assert backoff_seconds("exponential", 1.5, 3, jitter, rng) == 6.0
    assert rng.calls == [(0.0, 6.0)]


@pytest.mark.parametrize("algorithm", list(RetryAlgorithm))
def test_jittered_waits_lie_between_zero_and_the_computed_wait(algorithm: RetryAlgorithm) -> None:
    rng = random.Random(1234)
    for attempt in range(1, 6):
        ceiling = backoff_seconds(algorithm, 0.2, attempt, 0.0)
        waits = [backoff_seconds(algorithm, 0.2, attempt, 0.3, rng) for _ in range(200)]
        assert all(0.0 <= w <= ceiling for w in waits)
        assert len(set(waits)) > 150  # really random
        # concurry's full jitter: the factor does not narrow the spread
        assert min(waits) < 0.2 * ceiling
        assert max(waits) > 0.8 * ceiling


def test_zero_jitter_never_touches_the_rng() -> None:
    rng = MaxRng()
    assert backoff_seconds("linear", 1.0, 4, 0.0, rng) == 4.0
    assert rng.calls == []


# 239 ---------------------------------------------------------------------------------


def test_defaults() -> None:
    config = RetryConfig()
    assert config.num_retries == 0
    assert config.retry_on == [Exception]
    assert config.retry_algorithm is RetryAlgorithm.Exponential
    assert config.retry_wait == 1.0
    assert config.retry_jitter == 0.3
    assert config.retry_until is None


def test_single_values_become_lists_and_names_parse() -> None:
    def nonempty(result: Any, **ctx: Any) -> bool:
        return bool(result)

    config = RetryConfig(retry_on=KeyError, retry_until=nonempty, retry_algorithm="FIBONACCI")
    assert config.retry_on == [KeyError]
    assert config.retry_until == [nonempty]
    assert config.retry_algorithm is RetryAlgorithm.Fibonacci


def test_config_is_frozen_and_picklable() -> None:
    config = RetryConfig(num_retries=2, retry_on=[KeyError], retry_wait=0.5)
    with pytest.raises(ValidationError):
        config.num_retries = 3
    assert pickle.loads(pickle.dumps(config)) == config


# 240, 241 ----------------------------------------------------------------------------

METHODS = {"fetch", "parse", "submit"}


def test_per_method_dict_resolves_named_and_default_methods() -> None:
    value = {"*": 1, "fetch": 5}
    assert resolve_per_method(value, METHODS, "fetch") == 5
    assert resolve_per_method(value, METHODS, "parse") == 1
    assert resolve_per_method(value, METHODS, "submit") == 1


def test_plain_value_applies_to_every_method() -> None:
    assert resolve_per_method(3, METHODS, "parse") == 3
    assert resolve_per_method([KeyError], METHODS, "fetch") == [KeyError]
    assert resolve_per_method(None, METHODS, "fetch") is None


def test_per_method_dict_without_default_raises() -> None:
    with pytest.raises(ValueError, match=r"num_retries.*'\*'"):
        resolve_per_method({"fetch": 5}, METHODS, "fetch", option="num_retries")


def test_per_method_dict_with_unknown_method_raises() -> None:
    with pytest.raises(ValueError, match="fetchh"):
        resolve_per_method({"*": 0, "fetchh": 5}, METHODS, "parse", option="num_retries")


# 244 ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"retry_wait": 0}, "retry_wait"),
        ({"retry_wait": -1.0}, "retry_wait"),
        ({"retry_wait": float("nan")}, "retry_wait"),
        ({"retry_wait": True}, "retry_wait"),
        ({"retry_jitter": -0.1}, "retry_jitter"),
        ({"retry_jitter": 1.01}, "retry_jitter"),
        ({"num_retries": -1}, "num_retries"),
        ({"num_retries": 1.5}, "num_retries"),
        ({"num_retries": True}, "num_retries"),
        ({"retry_algorithm": "random"}, "retry_algorithm"),
        ({"retry_on": int}, "retry_on"),
        ({"retry_on": [ValueError, "ValueError"]}, "retry_on"),
        ({"retry_until": 3}, "retry_until"),
        ({"retry_until": [lambda r, **c: True, None]}, "retry_until"),
        ({"max_retries": 3}, "max_retries"),
    ],
)
def test_config_rejects_bad_values_naming_the_field(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        RetryConfig(**kwargs)
    assert [err["loc"][0] for err in info.value.errors()] == [field]


def test_config_accepts_bounds() -> None:
    config = RetryConfig(num_retries=0, retry_jitter=0, retry_wait=1e-9, retry_on=[])
    assert (config.retry_jitter, config.retry_wait, config.retry_on) == (0, 1e-9, [])
    assert RetryConfig(retry_jitter=1).retry_jitter == 1


# 232: retry_on --------------------------------------------------------------------------


def test_should_retry_matches_exception_classes() -> None:
    config = RetryConfig(retry_on=[KeyError, ConnectionError])
    assert should_retry(config, KeyError("k"), CTX)
    assert should_retry(config, ConnectionResetError(), CTX)  # subclass
    assert not should_retry(config, ValueError(), CTX)


def test_should_retry_calls_predicates_with_exception_and_context() -> None:
    seen: list[dict[str, Any]] = []

    def transient(**kwargs: Any) -> bool:
        seen.append(kwargs)
        return "retry" in str(kwargs["exception"])

    config = RetryConfig(retry_on=transient)
    assert should_retry(config, ValueError("please retry"), CTX)
    assert not should_retry(config, ValueError("fatal"), CTX)
    assert seen[0]["method_name"] == "fetch"
    assert seen[0]["attempt"] == 1
    assert set(seen[0]) == {"exception", *CTX}


def test_a_raising_predicate_means_no_retry() -> None:
    def broken(exception: BaseException, **ctx: Any) -> bool:
        raise RuntimeError("bug in filter")

    assert not should_retry(RetryConfig(retry_on=broken), ValueError(), CTX)
    # a later item still decides
    assert should_retry(RetryConfig(retry_on=[broken, ValueError]), ValueError(), CTX)


@pytest.mark.parametrize("exc", [asyncio.CancelledError(), KeyboardInterrupt(), SystemExit(1)])
def test_cancellation_and_exits_are_never_retried(exc: BaseException) -> None:
    config = RetryConfig(retry_on=[BaseException, lambda **kw: True])
    assert not should_retry(config, exc, CTX)


# 233, 236: retry_until -----------------------------------------------------------------


def test_validate_result_passes_when_all_validators_return_true() -> None:
    calls: list[tuple[Any, dict[str, Any]]] = []

    def is_dict(result: Any, **ctx: Any) -> bool:
        calls.append((result, ctx))
        return isinstance(result, dict)

    def has_data(result: Any, **ctx: Any) -> bool:
        return "data" in result

    config = RetryConfig(retry_until=[is_dict, has_data])
    assert validate_result(config, {"data": 1}, CTX) == []
    assert calls == [({"data": 1}, CTX)]


def test_validate_result_reports_a_false_validator() -> None:
    def has_data(result: Any, **ctx: Any) -> bool:
        return "data" in result

    messages = validate_result(RetryConfig(retry_until=has_data), {"other": 1}, CTX)
    assert len(messages) == 1
    assert "has_data" in messages[0]
    assert "False" in messages[0]


def test_validate_result_stops_at_the_first_failure() -> None:
    later: list[Any] = []

    def record(result: Any, **ctx: Any) -> bool:
        later.append(result)
        return True

    config = RetryConfig(retry_until=[lambda r, **c: False, record])
    assert len(validate_result(config, 7, CTX)) == 1
    assert later == []


def test_a_raising_validator_counts_as_failed() -> None:
    def needs_key(result: Any, **ctx: Any) -> bool:
        return bool(result["key"])

    messages = validate_result(RetryConfig(retry_until=needs_key), {}, CTX)
    assert len(messages) == 1
    assert "needs_key" in messages[0]
    assert "KeyError" in messages[0]


def test_validate_result_without_validators_passes() -> None:
    assert validate_result(RetryConfig(), None, CTX) == []


# 243 ---------------------------------------------------------------------------------


def test_retry_validation_error_survives_pickling() -> None:
    error = RetryValidationError(
        "validation failed for 'fetch' after 3 attempts",
        attempts=3,
        all_results=[None, {"x": 1}, [2]],
        validation_errors=["a returned False", "b returned False", "c raised KeyError: 'k'"],
        method_name="fetch",
    )
    clone = pickle.loads(pickle.dumps(error))
    assert type(clone) is RetryValidationError
    assert str(clone) == str(error)
    assert clone.attempts == 3
    assert clone.all_results == [None, {"x": 1}, [2]]
    assert clone.validation_errors == error.validation_errors
    assert clone.method_name == "fetch"
