"""One call's attempts, below the layers that retry: the retry stage and a worker's own calls.

Two places retry a call, in two layers:

* the retry stage (``middleware/_retry.py``) retries calls made through a
  handle, on the caller's side of the backend boundary;
* a method that calls another method of its own instance (``self.m(...)``
  inside a method) does not go through the handle, yet its ``num_retries`` and
  ``retry_until`` still apply there (concurry applies them, and code written
  for it relies on a failed validation ending in ``RetryValidationError``, also
  with ``num_retries=0`` and inside ``asyncio.gather``).  So each method with a
  retry policy gets a per-instance wrapper, installed by the backend when it
  builds the instance::

    handle.m(x) ──► retry stage ──► backend ──► unwrapped_method(instance, "m")
    self.m(x)  (inside a method)  ──────────►  instance.m = wrapper: attempts + validation

Both count attempts, judge them and give up alike (:class:`AttemptLog`, one
method's :class:`Policy`), and back off with the one replaceable :data:`sleep`.
They live here, at the runtime layer, because the backends install the wrapper
and look methods up past it, and the backends import nothing of the middleware.

The backend looks the method up with :func:`unwrapped_method`, which skips the
wrapper, so a handle call is retried once, by the stage.  The wrapper's backoff
waits where the method runs (:data:`sleep` for ``async def``, ``time.sleep``
otherwise): an internal call is part of the running call.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import TYPE_CHECKING, Any

from tenacity import AsyncRetrying, RetryCallState, Retrying, stop_after_attempt
from tenacity.wait import wait_base

from ._exceptions import RetryValidationError
from ._options import RETRY_OPTIONS
from ._retry_config import (
    RetryConfig,
    resolve_per_method,
    should_retry,
    validate_result,
    wait_strategy,
)

if TYPE_CHECKING:
    from ._options import Options

__all__ = [
    "REJECTED",
    "AttemptLog",
    "Policy",
    "Sleep",
    "backoff",
    "install",
    "policies",
    "policy_for",
    "sleep",
    "unwrapped_method",
]

Sleep = Callable[[float], Awaitable[Any]]

sleep: Sleep = asyncio.sleep
"""The backoff sleep of every retry stage built without its own ``sleep``, and of
the internal retries of ``async def`` methods.

Read at each wait, so tests can replace it (``monkeypatch.setattr``) to control time.
"""

REJECTED = object()  # what an attempt returns when retry_until rejected its result

_UNWRAPPED = "__aioconc_unwrapped__"


async def backoff(seconds: float) -> None:
    """Wait ``seconds`` with :data:`sleep`."""
    # A late look-up of the module's ``sleep``, so that replacing it takes effect.
    await sleep(seconds)


class Policy:
    """One method's retry configuration, with its tenacity wait strategy built once."""

    __slots__ = ("config", "wait")

    def __init__(self, config: RetryConfig) -> None:
        self.config = config
        self.wait: wait_base = wait_strategy(
            config.retry_algorithm, config.retry_wait, config.retry_jitter
        )


def policy_for(options: Options, methods: Collection[str], method: str) -> Policy | None:
    """``method``'s retry policy under ``options``, or None when it is not retried.

    Raises ``ValueError`` (a ``pydantic.ValidationError``) for retry options that
    :class:`~aioconc._retry_config.RetryConfig` rejects.
    """
    names = frozenset(methods)
    values = {
        name: resolve_per_method(getattr(options, name), names, method, option=name)
        for name in RETRY_OPTIONS
    }
    if values["num_retries"] == 0 and values["retry_until"] is None:
        return None  # nothing to do for this method: calls pass straight through
    return Policy(RetryConfig(**values))


# ---------------------------------------------------------------------------
# Attempts
# ---------------------------------------------------------------------------


class AttemptLog:
    """The state of one call's attempts: its context, rejected results and reasons.

    Shared by the retry stage (a handle's calls) and the internal retries of a
    worker's calls to its own methods (below); ``retry`` and
    ``give_up`` are tenacity's predicate and its ``retry_error_callback``.
    """

    __slots__ = ("config", "context", "errors", "name", "number", "results", "started")

    def __init__(
        self,
        name: str,
        config: RetryConfig,
        worker_class: str | None,
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

    def begin(self) -> dict[str, Any]:
        """Count one more attempt; the context its predicates and validators see."""
        self.number += 1
        self.context = {
            **self.context,
            "attempt": self.number,
            "elapsed_time": time.monotonic() - self.started,
        }
        return self.context

    def check(self, result: Any, context: dict[str, Any]) -> Any:
        """``result``, or ``REJECTED`` when ``retry_until`` rejects it (reasons kept)."""
        if self.config.retry_until is not None:
            errors = validate_result(self.config, result, context)
            if errors:
                self.results.append(result)
                self.errors.extend(errors)
                return REJECTED
        return result

    def retry(self, state: RetryCallState) -> bool:
        """tenacity's predicate: retry a matching exception or a rejected result."""
        outcome = state.outcome
        if outcome is None:  # pragma: no cover - tenacity asks only after an attempt
            return False
        if not outcome.failed:
            return outcome.result() is REJECTED
        exc = outcome.exception()
        # Our CancelledError is also an Exception (concurrent.futures'), so
        # should_retry alone would let retry_on=[Exception] retry it.
        if exc is None or isinstance(exc, asyncio.CancelledError):
            return False
        return should_retry(self.config, exc, self.context)

    def give_up(self, state: RetryCallState) -> Any:
        """After the last attempt: raise its exception, or ``RetryValidationError``."""
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


# ---------------------------------------------------------------------------
# Internal retries: a worker's calls to its own methods
# ---------------------------------------------------------------------------


def policies(options: Options, methods: Collection[str]) -> dict[str, RetryConfig]:
    """The retry configuration of each method in ``methods`` that has one.

    Raises as the retry stage does for invalid retry options.
    """
    found = {}
    for name in methods:
        policy = policy_for(options, methods, name)
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
                sleep=backoff,
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


class _Attempts(AttemptLog):
    """One internal call's attempts, each run right here in the worker."""

    __slots__ = ()

    def run_sync(self, method: Callable[..., Any]) -> Any:
        context = self.begin()
        return self.check(method(*context["args"], **context["kwargs"]), context)

    async def run_async(self, method: Callable[..., Any]) -> Any:
        context = self.begin()
        return self.check(await method(*context["args"], **context["kwargs"]), context)
