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
``worker_class``), counted by the :class:`~aioconc._retrying.AttemptLog` that
a worker's internal retries use too.  The stage runs on the caller's side of the
backend boundary, so a backoff never holds a worker.

Cancellation is never retried or swallowed: an ``asyncio.CancelledError`` from an
attempt or from the backoff sleep propagates (the call ends cancelled), and a
call whose future was cancelled starts no further attempt.  ``SystemExit`` and
``KeyboardInterrupt`` raised by a method are not retried either.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any

from tenacity import AsyncRetrying, stop_after_attempt

from .._options import RETRY_OPTIONS
from .._retry_config import RetryConfig
from .._retrying import AttemptLog, Policy, Sleep, backoff, policy_for

if TYPE_CHECKING:
    from .._call import Call
    from .._chain import Handler
    from .._options import Options

__all__ = ["Sleep", "retry_stage"]


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
    predicates' context; ``sleep`` replaces :data:`aioconc._retrying.sleep` for backoff.

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
    default = policy_for(options, methods, "*")
    special = {method: policy_for(options, methods, method) for method in named}
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
        default: Policy | None,
        special: dict[str, Policy | None],
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
            sleep=self._sleep or backoff,
            stop=stop_after_attempt(policy.config.num_retries + 1),
            wait=policy.wait,
            retry=attempts.retry,
            retry_error_callback=attempts.give_up,
        )
        return await retrying(attempts.run)


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
