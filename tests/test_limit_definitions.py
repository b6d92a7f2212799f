"""Limit definitions: CONFORMANCE items 185-192."""

from __future__ import annotations

import pickle
import sys
import types
import warnings

import pytest
from pydantic import ValidationError

from aioconc._enums import RateLimitAlgorithm, RateWindow
from aioconc.limits import CallLimit, Limit, RateLimit, ResourceLimit


def _field_errors(exc: ValidationError) -> set[object]:
    return {err["loc"][0] if err["loc"] else None for err in exc.errors()}


# 185 -------------------------------------------------------------------------------


def test_rate_limit_requires_window() -> None:
    with pytest.raises(ValidationError) as info:
        RateLimit(key="x", capacity=10)
    assert _field_errors(info.value) == {"window"}


@pytest.mark.parametrize("missing", ["key", "capacity"])
def test_rate_limit_requires_key_and_capacity(missing: str) -> None:
    kwargs: dict[str, object] = {"key": "x", "window": 1, "capacity": 10}
    del kwargs[missing]
    with pytest.raises(ValidationError) as info:
        RateLimit(**kwargs)  # type: ignore[arg-type]
    assert _field_errors(info.value) == {missing}


def test_validation_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="window"):
        RateLimit(key="x", window=-1, capacity=10)


# 186 -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("window", "seconds"),
    [
        (60, 60.0),
        (0.25, 0.25),
        (RateWindow.Minutely, 60.0),
        (RateWindow.Weekly, 604800.0),
        ("hour", 3600.0),
        ("per_minute", 60.0),
        ("Daily", 86400.0),
        ("SECS", 1.0),
    ],
)
def test_window_accepts_seconds_members_and_aliases(window: object, seconds: float) -> None:
    limit = RateLimit(key="x", window=window, capacity=5)  # type: ignore[arg-type]
    assert limit.window == seconds
    assert type(limit.window) is float


@pytest.mark.parametrize(
    "window", [True, False, 0, -1, -0.5, float("inf"), float("nan"), "month", "60", "", [60]]
)
def test_window_rejects_bools_non_positive_and_unknown(window: object) -> None:
    with pytest.raises(ValidationError) as info:
        RateLimit(key="x", window=window, capacity=5)  # type: ignore[arg-type]
    assert _field_errors(info.value) == {"window"}


# 187 -------------------------------------------------------------------------------


def test_per_is_an_alias_of_window() -> None:
    by_per = RateLimit(key="rph", per="hour", capacity=10)
    assert by_per == RateLimit(key="rph", window="hour", capacity=10)
    assert by_per.window == 3600.0
    assert RateLimit.model_validate({"key": "k", "per": 30, "capacity": 1}).window == 30.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"window": "hour", "per": "hour"},
        {"window": 60, "window_seconds": 60},
        {"per": 60, "window_seconds": 60},
    ],
)
def test_two_window_spellings_raise(kwargs: dict[str, object]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        with pytest.raises(ValueError, match="window"):
            RateLimit(key="x", capacity=1, **kwargs)  # type: ignore[arg-type]


def test_none_spelling_is_ignored() -> None:
    assert RateLimit(key="x", per=None, window="minute", capacity=1).window == 60.0


def test_window_seconds_is_deprecated_but_works() -> None:
    with pytest.warns(DeprecationWarning, match="window_seconds") as record:
        limit = RateLimit(key="x", window_seconds=5, capacity=1)
    assert limit.window == 5.0
    assert record[0].filename == __file__  # points at the caller, not at pydantic


# 188 -------------------------------------------------------------------------------


def test_algorithm_defaults_to_sliding_window() -> None:
    limit = RateLimit(key="x", window=1, capacity=1)
    assert limit.algorithm is RateLimitAlgorithm.SlidingWindow


def test_algorithm_default_is_read_from_global_config(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = types.SimpleNamespace(rate_limit_algorithm=RateLimitAlgorithm.TokenBucket)
    fake = types.ModuleType("aioconc.config")
    fake.global_config = types.SimpleNamespace(defaults=defaults)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "aioconc.config", fake)
    assert RateLimit(key="x", window=1, capacity=1).algorithm is RateLimitAlgorithm.TokenBucket
    defaults.rate_limit_algorithm = "gcra"  # read at construction time, aliases parsed
    assert RateLimit(key="x", window=1, capacity=1).algorithm is RateLimitAlgorithm.GCRA
    assert CallLimit(window=1, capacity=1, algorithm=None).algorithm is RateLimitAlgorithm.GCRA


def test_algorithm_default_follows_temp_config() -> None:
    config = pytest.importorskip("aioconc.config")
    with config.temp_config(global_rate_limit_algorithm="leaky"):
        limit = RateLimit(key="x", window=1, capacity=1)
    assert limit.algorithm is RateLimitAlgorithm.LeakyBucket
    assert RateLimit(key="x", window=1, capacity=1).algorithm is RateLimitAlgorithm.SlidingWindow


def test_algorithm_falls_back_when_config_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "aioconc.config", None)  # makes the import fail
    assert RateLimit(key="x", window=1, capacity=1).algorithm is RateLimitAlgorithm.SlidingWindow


def test_algorithm_accepts_members_and_aliases_and_rejects_unknown() -> None:
    by_alias = RateLimit(key="x", window=1, capacity=1, algorithm="token")
    assert by_alias.algorithm is RateLimitAlgorithm.TokenBucket
    by_member = RateLimit(key="x", window=1, capacity=1, algorithm=RateLimitAlgorithm.GCRA)
    assert by_member.algorithm is RateLimitAlgorithm.GCRA
    with pytest.raises(ValidationError) as info:
        RateLimit(key="x", window=1, capacity=1, algorithm="bogus")
    assert _field_errors(info.value) == {"algorithm"}


# 189 -------------------------------------------------------------------------------


def test_rate_limit_accepts_float_capacity() -> None:
    assert RateLimit(key="x", window=1, capacity=2.5).capacity == 2.5
    assert RateLimit(key="x", window=1, capacity=float("inf")).capacity == float("inf")


@pytest.mark.parametrize("capacity", [0, -1, False, float("nan"), "many"])
def test_rate_limit_rejects_bad_capacity(capacity: object) -> None:
    with pytest.raises(ValidationError) as info:
        RateLimit(key="x", window=1, capacity=capacity)  # type: ignore[arg-type]
    assert _field_errors(info.value) == {"capacity"}


# 190 -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "signature"),
    [
        ({"window": 60, "capacity": 300}, "c300w60sli"),
        ({"window": "daily", "capacity": 50_000, "algorithm": "token"}, "c50000w86400tok"),
        ({"window": 0.5, "capacity": 2.5, "algorithm": "leaky"}, "c2.5w0.5lea"),
        ({"window": 1, "capacity": 0.0001, "algorithm": "gcra"}, "c0.0001w1gcr"),
        ({"window": 1e-10, "capacity": float("inf"), "algorithm": "fixed"}, "cinfw1e-10fix"),
    ],
)
def test_params_signature(kwargs: dict[str, object], signature: str) -> None:
    assert RateLimit(key="x", **kwargs).params_signature() == signature  # type: ignore[arg-type]


def test_params_signature_ignores_key_and_tells_params_apart() -> None:
    base = RateLimit(key="a", window=60, capacity=300)
    assert RateLimit(key="b", window="minute", capacity=300.0).params_signature() == (
        base.params_signature()
    )
    others = {
        RateLimit(key="a", window=61, capacity=300).params_signature(),
        RateLimit(key="a", window=60, capacity=301).params_signature(),
        RateLimit(key="a", window=60, capacity=300, algorithm="token").params_signature(),
    }
    assert base.params_signature() not in others
    assert len(others) == 3


# 191 -------------------------------------------------------------------------------


def test_call_limit_key_is_always_call_count() -> None:
    assert CallLimit(window=1, capacity=3).key == "call_count"
    assert CallLimit(key="mine", window=1, capacity=3).key == "call_count"
    assert CallLimit.model_validate({"key": "mine", "per": 1, "capacity": 3}).key == "call_count"
    assert isinstance(CallLimit(window=1, capacity=3), RateLimit)
    assert CallLimit(window=60, capacity=300).params_signature() == "c300w60sli"


# 192 -------------------------------------------------------------------------------


@pytest.mark.parametrize("capacity", [0, -3, 1.5, False, "x", None])
def test_resource_limit_capacity_must_be_int_at_least_one(capacity: object) -> None:
    with pytest.raises(ValidationError) as info:
        ResourceLimit(key="db", capacity=capacity)  # type: ignore[arg-type]
    assert _field_errors(info.value) == {"capacity"}


def test_resource_limit_accepts_positive_ints() -> None:
    assert ResourceLimit(key="db", capacity=1).capacity == 1
    assert ResourceLimit(key="db", capacity=5.0).capacity == 5  # type: ignore[arg-type]
    assert isinstance(ResourceLimit(key="db", capacity=2), Limit)


# value-object behaviour ----------------------------------------------------------------


@pytest.mark.parametrize(
    "limit",
    [
        RateLimit(key="x", window="minute", capacity=10, algorithm="token"),
        CallLimit(window=1, capacity=3),
        ResourceLimit(key="db", capacity=2),
    ],
)
def test_limits_are_frozen_hashable_and_picklable(limit: Limit) -> None:
    with pytest.raises(ValidationError):
        limit.key = "other"
    assert pickle.loads(pickle.dumps(limit)) == limit
    assert hash(pickle.loads(pickle.dumps(limit))) == hash(limit)


def test_unknown_arguments_are_rejected() -> None:
    with pytest.raises(ValidationError) as info:
        RateLimit(key="x", window=1, capacity=1, burst=5)  # type: ignore[call-arg]
    assert _field_errors(info.value) == {"burst"}
