"""Retries for the calls a worker makes to its own methods (``self.m(...)`` inside a method).

The retry stage (:mod:`._retry`) wraps calls made through a handle.  A method that
calls another method of its own instance does not go through the handle, yet its
``num_retries`` and ``retry_until`` still apply there (concurry applies them, and
code written for it relies on a failed validation ending in
``RetryValidationError``, also with ``num_retries=0`` and inside
``asyncio.gather``).  So each method with a retry policy gets a per-instance
wrapper, installed when the instance is built::

    handle.m(x) ──► retry stage ──► backend ──► unwrapped_method(instance, "m")
    self.m(x)  (inside a method)  ──────────►  instance.m = wrapper: attempts + validation

The backend looks the method up with :func:`unwrapped_method`, which skips the wrapper, so
a handle call is retried once, by the stage.  The wrapper's backoff waits where
the method runs (the retry stage's replaceable ``sleep`` for ``async def``,
``time.sleep`` otherwise): an internal call is part of the running call.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import time
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Any

from tenacity import AsyncRetrying, RetryCallState, Retrying, stop_after_attempt

from .._exceptions import RetryValidationError
from .._retry_config import RetryConfig, should_retry, validate_result, wait_strategy
from ._retry import _backoff, _policy

if TYPE_CHECKING:
    from .._options import Options

__all__ = ["install", "policies", "unwrapped_method"]

_UNWRAPPED = "__aioconc_unwrapped__"
_REJECTED = object()


def policies(options: Options, methods: Collection[str]) -> dict[str, RetryConfig]:
    """The retry configuration of each method in ``methods`` that has one.

    Raises as the retry stage does for invalid retry options.
    """
    found = {}
    for name in methods:
        policy = _policy(options, methods, name)
        if policy is not None:
            found[name] = policy.config
    return found


def install(instance: Any, configs: Mapping[str, RetryConfig] | None) -> None:
    """Give ``instance`` a retrying wrapper for each method named in ``configs``."""
    if not configs:
        return
    worker_class = type(instance).__name__
    for name, config in configs.items():
        method = getattr(instance, name, None)
        if method is None or not callable(method):
            continue
        wrapper = _wrap(method, name, config, worker_class)
        with contextlib.suppress(AttributeError):  # a class with __slots__: left as it is
            object.__setattr__(instance, name, wrapper)


def unwrapped_method(instance: Any, name: str) -> Any:
    """``getattr(instance, name)``, skipping an internal-retry wrapper (for backends)."""
    method = getattr(instance, name)
    return getattr(method, _UNWRAPPED, method)


def _wrap(
    method: Callable[..., Any], name: str, config: RetryConfig, worker_class: str
) -> Callable[..., Any]:
    wait = wait_strategy(config.retry_algorithm, config.retry_wait, config.retry_jitter)
    stop = stop_after_attempt(config.num_retries + 1)

    if inspect.iscoroutinefunction(method):

        @functools.wraps(method)
        async def run_async(*args: Any, **kwargs: Any) -> Any:
            attempts = _Attempts(name, config, worker_class, args, kwargs)
            retrying = AsyncRetrying(
                sleep=_backoff,
                stop=stop,
                wait=wait,
                retry=attempts.retry,
                retry_error_callback=attempts.give_up,
            )
            return await retrying(attempts.run_async, method)

        wrapper: Callable[..., Any] = run_async
    else:

        @functools.wraps(method)
        def run_sync(*args: Any, **kwargs: Any) -> Any:
            attempts = _Attempts(name, config, worker_class, args, kwargs)
            retrying = Retrying(
                sleep=time.sleep,
                stop=stop,
                wait=wait,
                retry=attempts.retry,
                retry_error_callback=attempts.give_up,
            )
            return retrying(attempts.run_sync, method)

        wrapper = run_sync
    setattr(wrapper, _UNWRAPPED, method)
    return wrapper


class _Attempts:
    """One internal call's attempts: context, rejected results and reasons."""

    __slots__ = ("config", "context", "errors", "name", "number", "results", "started")

    def __init__(
        self,
        name: str,
        config: RetryConfig,
        worker_class: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        self.name = name
        self.config = config
        self.number = 0
        self.started = time.monotonic()
        self.results: list[Any] = []
        self.errors: list[str] = []
        self.context: dict[str, Any] = {
            "method_name": name,
            "worker_class": worker_class,
            "args": args,
            "kwargs": kwargs,
        }

    def _next_context(self) -> dict[str, Any]:
        self.number += 1
        self.context = {
            **self.context,
            "attempt": self.number,
            "elapsed_time": time.monotonic() - self.started,
        }
        return self.context

    def _check(self, result: Any, context: dict[str, Any]) -> Any:
        if self.config.retry_until is not None:
            errors = validate_result(self.config, result, context)
            if errors:
                self.results.append(result)
                self.errors.extend(errors)
                return _REJECTED
        return result

    def run_sync(self, method: Callable[..., Any]) -> Any:
        context = self._next_context()
        return self._check(method(*context["args"], **context["kwargs"]), context)

    async def run_async(self, method: Callable[..., Any]) -> Any:
        context = self._next_context()
        return self._check(await method(*context["args"], **context["kwargs"]), context)

    def retry(self, state: RetryCallState) -> bool:
        outcome = state.outcome
        if outcome is None:  # pragma: no cover - tenacity asks only after an attempt
            return False
        if not outcome.failed:
            return outcome.result() is _REJECTED
        exc = outcome.exception()
        if exc is None or isinstance(exc, asyncio.CancelledError):
            return False
        return should_retry(self.config, exc, self.context)

    def give_up(self, state: RetryCallState) -> Any:
        outcome = state.outcome
        if outcome is not None and outcome.failed:
            return outcome.result()  # raises the attempt's own exception
        last = self.errors[-1] if self.errors else "no result"
        raise RetryValidationError(
            f"Validation failed for method '{self.name}' after {self.number} attempts: "
            f"retry_until rejected every result; last: {last}",
            attempts=self.number,
            all_results=self.results,
            validation_errors=self.errors,
            method_name=self.name,
        )
