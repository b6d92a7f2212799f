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

import contextlib
import functools
import inspect
import time
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Any

from tenacity import AsyncRetrying, Retrying, stop_after_attempt

from .._retry_config import RetryConfig, wait_strategy
from ._retry import AttemptLog, _backoff, _policy

if TYPE_CHECKING:
    from .._options import Options

__all__ = ["install", "policies", "unwrapped_method"]

_UNWRAPPED = "__aioconc_unwrapped__"


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


class _Attempts(AttemptLog):
    """One internal call's attempts, each run right here in the worker."""

    __slots__ = ()

    def run_sync(self, method: Callable[..., Any]) -> Any:
        context = self.begin()
        return self.check(method(*context["args"], **context["kwargs"]), context)

    async def run_async(self, method: Callable[..., Any]) -> Any:
        context = self.begin()
        return self.check(await method(*context["args"], **context["kwargs"]), context)
