"""The retry stage: more attempts of a failed or rejected call, with backoff on the loop.

::

    retry ─┬─► next(call) ── attempt 1 ── fails (retry_on) or rejected (retry_until)
           │   sleep(backoff)             waits on the loop: the worker serves other calls
           ├─► next(call) ── attempt 2 ...
           └─► result | last exception | RetryValidationError

The loop is tenacity's ``AsyncRetrying``: ``stop_after_attempt(num_retries + 1)``,
the wait from :func:`~aioconc._retry_config.wait_strategy`, and a retry predicate
that applies concurry's rules (:func:`~aioconc._retry_config.should_retry`,
:func:`~aioconc._retry_config.validate_result`) with concurry's context
(``attempt``, ``elapsed_time``, ``method_name``, ``args``, ``kwargs``,
``worker_class``).  The stage runs on the caller's side of the backend boundary,
so a backoff never holds a worker.

Cancellation is never retried or swallowed: an ``asyncio.CancelledError`` from an
attempt or from the backoff sleep propagates (the call ends cancelled), and a
call whose future was cancelled starts no further attempt.  ``SystemExit`` and
``KeyboardInterrupt`` raised by a method are not retried either.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Collection
from typing import TYPE_CHECKING, Any

from tenacity import AsyncRetrying, RetryCallState, stop_after_attempt
from tenacity.wait import wait_base

from .._exceptions import RetryValidationError
from .._options import RETRY_OPTIONS
from .._retry_config import (
    RetryConfig,
    resolve_per_method,
    should_retry,
    validate_result,
    wait_strategy,
)

if TYPE_CHECKING:
    from .._call import Call
    from .._chain import Handler
    from .._options import Options

__all__ = ["Sleep", "retry_stage", "sleep"]

Sleep = Callable[[float], Awaitable[Any]]

sleep: Sleep = asyncio.sleep
"""The backoff sleep of every retry stage built without its own ``sleep``.

Read at each wait, so tests can replace it (``monkeypatch.setattr``) to control time.
"""

REJECTED = object()  # what an attempt returns when retry_until rejected its result


class _Policy:
    """One method's retry configuration, with its tenacity wait strategy built once."""

    __slots__ = ("config", "wait")

    def __init__(self, config: RetryConfig) -> None:
        self.config = config
        self.wait: wait_base = wait_strategy(
            config.retry_algorithm, config.retry_wait, config.retry_jitter
        )


def _policy(options: Options, methods: Collection[str], method: str) -> _Policy | None:
    names = frozenset(methods)
    values = {
        name: resolve_per_method(getattr(options, name), names, method, option=name)
        for name in RETRY_OPTIONS
    }
    if values["num_retries"] == 0 and values["retry_until"] is None:
        return None  # nothing to do for this method: calls pass straight through
    return _Policy(RetryConfig(**values))


def retry_stage(
    options: Options,
    methods: Collection[str],
    *,
    worker_class: str | None = None,
    sleep: Sleep | None = None,
) -> Callable[[Handler], Handler] | None:
    """The retry stage for a worker with these ``options``, or None when it has no retries.

    A method gets retries when its ``num_retries`` is above 0 or it has
    ``retry_until`` validators; per-method dicts (``{"*": v, "m": v}``) are resolved
    here, once per named method.  ``worker_class`` is the ``worker_class`` of the
    predicates' context; ``sleep`` replaces the module's :data:`sleep` for backoff.

    Raises:
        ValueError: (a ``pydantic.ValidationError``) for retry options that
            :class:`~aioconc._retry_config.RetryConfig` rejects, e.g. ``retry_wait=0``.
    """
    named = {
        key
        for name in RETRY_OPTIONS
        if isinstance(value := getattr(options, name), dict)
        for key in value
        if key != "*"
    }
    default = _policy(options, methods, "*")
    special = {method: _policy(options, methods, method) for method in named}
    if default is None and all(policy is None for policy in special.values()):
        return None

    def make(next_: Handler) -> Handler:
        return _Retrying(next_, default, special, worker_class, sleep)

    return make


class _Retrying:
    """The stage's handler: looks up the call's policy and runs the attempts."""

    __slots__ = ("_default", "_next", "_sleep", "_special", "_worker_class")

    def __init__(
        self,
        next_: Handler,
        default: _Policy | None,
        special: dict[str, _Policy | None],
        worker_class: str | None,
        sleep: Sleep | None,
    ) -> None:
        self._next = next_
        self._default = default
        self._special = special
        self._worker_class = worker_class
        self._sleep = sleep

    async def __call__(self, call: Call) -> Any:
        policy = self._special.get(call.method, self._default)
        if policy is None:
            return await self._next(call)
        attempts = _Attempts(self._next, call, policy.config, self._worker_class)
        retrying = AsyncRetrying(
            sleep=self._sleep or _backoff,
            stop=stop_after_attempt(policy.config.num_retries + 1),
            wait=policy.wait,
            retry=attempts.retry,
            retry_error_callback=attempts.give_up,
        )
        return await retrying(attempts.run)


async def _backoff(seconds: float) -> None:
    # A late look-up of the module's ``sleep``, so that replacing it takes effect.
    await sleep(seconds)


class AttemptLog:
    """The state of one call's attempts: its context, rejected results and reasons.

    Shared by the retry stage (a handle's calls) and the internal retries of a
    worker's calls to its own methods (``_internal_retry.py``); ``retry`` and
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


class _Attempts(AttemptLog):
    """A handle call's attempts, each handed on down the chain."""

    __slots__ = ("call", "next")

    def __init__(
        self, next_: Handler, call: Call, config: RetryConfig, worker_class: str | None
    ) -> None:
        super().__init__(call.method, config, worker_class, call.args, call.kwargs)
        self.next = next_
        self.call = call

    async def run(self) -> Any:
        """One attempt; returns ``REJECTED`` when ``retry_until`` rejects the result."""
        if self.call.future.cancelled():
            # cancel() finishes the future at once and the task a loop turn
            # later: never start an attempt in between.
            raise asyncio.CancelledError
        context = self.begin()
        return self.check(await self.next(self.call), context)
