"""Retry options as a frozen value object, and the pure rules the retry stage applies.

``RetryConfig`` validates concurry's retry options once.  The functions below decide,
without sleeping or calling the user's method: how long to wait before a retry
(``backoff_seconds``, or ``wait_strategy`` for tenacity), whether an exception is
retried (``should_retry``), whether a result passes ``retry_until``
(``validate_result``) and which value of a per-method option applies
(``resolve_per_method``).

Backoff is a tenacity wait strategy.  Exponential is tenacity's ``wait_exponential``
(``w * 2**(a-1)``, bit for bit).  Three parts are written here because tenacity
cannot express them exactly:

* linear ``w * a``: ``wait_incrementing(w, w)`` computes ``w + w*(a-1)``, which
  differs from ``w * a`` in the last bit for about one base wait in five;
* fibonacci ``w * F(a)``, ``F = 1, 1, 2, 3, 5, ...``: tenacity has no such strategy;
* full jitter ``uniform(0, computed)``: tenacity's ``wait_random`` adds to a wait
  instead of scaling it, ``wait_random_exponential`` only covers exponential, and
  both draw from the global ``random`` module; ours wraps any strategy and takes
  an injected rng.

Jitter follows concurry: any ``retry_jitter > 0`` draws the wait uniformly from
``[0, computed]``; the factor's size does not scale the spread (0.3 and 1.0 behave
alike).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Set
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, overload

import tenacity
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from tenacity.wait import wait_base, wait_exponential

from ._enums import RetryAlgorithm

__all__ = [
    "RetryConfig",
    "backoff_seconds",
    "resolve_per_method",
    "should_retry",
    "validate_result",
    "wait_strategy",
]

T = TypeVar("T")
RetryOn = type[BaseException] | Callable[..., Any]
Validator = Callable[..., Any]


class Rng(Protocol):
    """What jitter needs from a random source (``random.Random`` and the module fit)."""

    def uniform(self, a: float, b: float, /) -> float: ...


class RetryConfig(BaseModel):
    """How a failed or rejected call is retried (concurry's retry options).

    Parameters:
        num_retries: retries after the first attempt (>= 0); attempts = n + 1.
        retry_on: exception classes and/or predicates ``f(exception=e, **ctx)``,
            one or a list; an exception is retried if any matches.
        retry_algorithm: ``RetryAlgorithm`` or its name: linear, exponential, fibonacci.
        retry_wait: base wait in seconds (> 0, finite).
        retry_jitter: in [0, 1]; > 0 draws each wait uniformly from [0, computed].
        retry_until: a validator ``v(result, **ctx)`` or a list; all must return True.

    Raises:
        ValueError: (a ``pydantic.ValidationError`` naming the field) for a negative
            ``num_retries``, ``retry_wait <= 0``, ``retry_jitter`` outside [0, 1],
            an unknown algorithm, a ``retry_on`` item that is neither an exception
            class nor callable, or a non-callable ``retry_until``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    num_retries: int = Field(default=0, ge=0)
    retry_on: list[RetryOn] = Field(default_factory=lambda: list[RetryOn]([Exception]))
    retry_algorithm: RetryAlgorithm = RetryAlgorithm.Exponential
    retry_wait: float = Field(default=1.0, gt=0, allow_inf_nan=False)
    retry_jitter: float = Field(default=0.3, ge=0, le=1)
    retry_until: list[Validator] | None = None

    if TYPE_CHECKING:  # the signature callers see; pydantic builds the real one

        def __init__(
            self,
            *,
            num_retries: int = 0,
            retry_on: RetryOn | list[RetryOn] = ...,
            retry_algorithm: RetryAlgorithm | str = ...,
            retry_wait: float = 1.0,
            retry_jitter: float = 0.3,
            retry_until: Validator | list[Validator] | None = None,
        ) -> None: ...

    @field_validator("num_retries", "retry_wait", "retry_jitter", mode="before")
    @classmethod
    def _reject_bool(cls, value: object, info: ValidationInfo) -> object:
        if isinstance(value, bool):
            raise ValueError(f"{info.field_name} must be a number, got {value!r}")
        return value

    @field_validator("retry_algorithm", mode="before")
    @classmethod
    def _parse_algorithm(cls, value: object) -> RetryAlgorithm:
        return RetryAlgorithm(RetryAlgorithm.parse(value))

    @field_validator("retry_on", mode="before")
    @classmethod
    def _check_retry_on(cls, value: object) -> list[object]:
        items = list(value) if isinstance(value, (list, tuple)) else [value]
        for item in items:
            if isinstance(item, type) and not issubclass(item, BaseException):
                raise ValueError(
                    f"retry_on classes must be subclasses of BaseException, got {item!r}"
                )
            if not callable(item):
                raise ValueError(f"retry_on items must be exception classes or callables: {item!r}")
        return items

    @field_validator("retry_until", mode="before")
    @classmethod
    def _check_retry_until(cls, value: object) -> list[object] | None:
        if value is None:
            return None
        items = list(value) if isinstance(value, (list, tuple)) else [value]
        for item in items:
            if not callable(item):
                raise ValueError(f"retry_until items must be callables, got {item!r}")
        return items


# --------------------------------------------------------------------------- backoff


class _wait_linear(wait_base):
    def __init__(self, base: float) -> None:
        self.base = base

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        return self.base * retry_state.attempt_number


class _wait_fibonacci(_wait_linear):
    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        previous, current = 0, 1  # F(1) = F(2) = 1
        for _ in range(retry_state.attempt_number - 1):
            previous, current = current, previous + current
        try:
            return self.base * current
        except OverflowError:  # F(a) beyond float range; tenacity returns its max here
            return math.inf


class _wait_full_jitter(wait_base):
    def __init__(self, inner: wait_base, rng: Rng) -> None:
        self.inner = inner
        self.rng = rng

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        return self.rng.uniform(0.0, self.inner(retry_state))


def wait_strategy(
    algorithm: RetryAlgorithm | str, base_wait: float, jitter: float, rng: Rng | None = None
) -> wait_base:
    """Return the tenacity wait strategy for these options (for ``AsyncRetrying(wait=)``).

    tenacity's ``attempt_number`` after the a-th failed attempt is the ``a`` of
    ``backoff_seconds``.  ``rng`` defaults to the ``random`` module.

    Raises:
        ValueError: for an unknown algorithm, ``base_wait <= 0`` or not finite,
            or ``jitter`` outside [0, 1].
    """
    algo = RetryAlgorithm(RetryAlgorithm.parse(algorithm))
    if isinstance(base_wait, bool) or not (math.isfinite(base_wait) and base_wait > 0):
        raise ValueError(f"base_wait must be a positive finite number, got {base_wait!r}")
    if isinstance(jitter, bool) or not 0 <= jitter <= 1:
        raise ValueError(f"jitter must be in [0, 1], got {jitter!r}")
    strategy: wait_base
    if algo is RetryAlgorithm.Linear:
        strategy = _wait_linear(base_wait)
    elif algo is RetryAlgorithm.Fibonacci:
        strategy = _wait_fibonacci(base_wait)
    else:
        strategy = wait_exponential(multiplier=base_wait, max=math.inf)
    if jitter > 0:
        strategy = _wait_full_jitter(strategy, random if rng is None else rng)
    return strategy


def backoff_seconds(
    algorithm: RetryAlgorithm | str,
    base_wait: float,
    attempt: int,
    jitter: float,
    rng: Rng | None = None,
) -> float:
    """Return the wait before retry number ``attempt`` (1 = the first retry).

    Without jitter: ``w*a`` (linear), ``w*2**(a-1)`` (exponential) or ``w*F(a)``
    with ``F = 1, 1, 2, 3, 5, ...`` (fibonacci).  With ``jitter > 0``: uniform in
    ``[0, that]``, drawn from ``rng`` (default: the ``random`` module).

    Raises:
        ValueError: for ``attempt < 1`` and for the cases of ``wait_strategy``.
    """
    if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
        raise ValueError(f"attempt must be an integer >= 1, got {attempt!r}")
    state = tenacity.RetryCallState(_PROBE, fn=None, args=(), kwargs={})
    state.attempt_number = attempt
    return wait_strategy(algorithm, base_wait, jitter, rng)(state)


_PROBE = tenacity.Retrying()  # RetryCallState wants an owner; it is never run


# --------------------------------------------------------------------------- filters


def should_retry(config: RetryConfig, exception: BaseException, context: Mapping[str, Any]) -> bool:
    """Return True if ``exception`` matches ``config.retry_on``.

    A class matches by ``isinstance``; a predicate is called as
    ``f(exception=exception, **context)`` and matches when it returns truthy.  A
    predicate that raises counts as no match (the next item is still tried).  A
    ``BaseException`` that is not an ``Exception`` (cancellation, KeyboardInterrupt,
    SystemExit) is never retried.  Never raises for a predicate's error.
    """
    if not isinstance(exception, Exception):
        return False
    for item in config.retry_on:
        if isinstance(item, type):
            if isinstance(exception, item):
                return True
            continue
        try:
            if item(exception=exception, **context):
                return True
        except Exception:  # a broken filter must not turn into a retry
            continue
    return False


def validate_result(config: RetryConfig, result: Any, context: Mapping[str, Any]) -> list[str]:
    """Run ``config.retry_until`` on ``result``; return why it failed, ``[]`` if it passed.

    Each validator is called as ``v(result, **context)`` in order and must return
    True (truthy).  As in concurry, the first failure stops the run, so a later
    validator may assume the earlier ones passed; a validator that raises an
    ``Exception`` counts as a failure.  With no validators the result passes.
    """
    for validator in config.retry_until or ():
        name = getattr(validator, "__qualname__", None) or repr(validator)
        try:
            verdict = validator(result, **context)
        except Exception as exc:  # reported, never propagated: the result is what failed
            return [f"validator {name!r} raised {type(exc).__name__}: {exc}"]
        if not verdict:
            return [f"validator {name!r} returned {verdict!r}"]
    return []


# ----------------------------------------------------------------------- per method


@overload
def resolve_per_method(
    value: Mapping[str, T], method_names: Set[str], method: str, *, option: str = ...
) -> T: ...
@overload
def resolve_per_method(
    value: T, method_names: Set[str], method: str, *, option: str = ...
) -> T: ...
def resolve_per_method(
    value: Any, method_names: Set[str], method: str, *, option: str = "option"
) -> Any:
    """Return the value of a possibly per-method option for ``method``.

    A non-dict ``value`` applies to every method.  A dict ``{"*": default, "m": v}``
    gives ``v`` for ``m`` and ``default`` for every other method.  ``option`` names
    the option in error messages.

    Raises:
        ValueError: if a dict has no ``"*"`` key, or names a method that is not in
            ``method_names``.
    """
    if not isinstance(value, Mapping):
        return value
    if "*" not in value:
        raise ValueError(f"{option}: a per-method dict needs a '*' key, got {sorted(value)}")
    unknown = sorted(k for k in value if k != "*" and k not in method_names)
    if unknown:
        raise ValueError(f"{option}: unknown method(s) {unknown}; known: {sorted(method_names)}")
    return value.get(method, value["*"])
