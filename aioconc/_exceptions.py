"""Every exception aioconc raises of its own.

::

    Exception
     ├── AioconcError                  base of aioconc's own failures
     │    ├── WorkerError              a worker could not do what was asked
     │    │    ├── WorkerStartError    starting a worker failed outside user code (init())
     │    │    ├── WorkerCrashedError  the worker's process/actor died (every pending call)
     │    │    └── WorkerStoppedError  a call was made after stop(), also a RuntimeError
     │    ├── SerializationError       a value could not cross a process/Ray boundary,
     │    │                            also a TypeError
     │    ├── RemoteError              a worker raised an exception whose type the caller
     │    │                            can't rebuild (json/msgpack serializers)
     │    └── RetryValidationError     retry_until rejected every attempt's result
     ├── TimeoutError                  a wait ran out (result(timeout), wait(), a start-up)
     │    └── CallTimeoutError         a call ran past its deadline (also AioconcError)
     └── concurrent.futures.CancelledError
          └── CancelledError           a cancelled call (also asyncio.CancelledError,
                                       a BaseException)

Every ``TimeoutError`` aioconc raises is also ``asyncio.TimeoutError`` and
``concurrent.futures.TimeoutError``: the same class from Python 3.11 on, three
classes on 3.10 (:data:`WaitTimeoutError`).

User exceptions are never wrapped: a method that raises ``KeyError`` fails its
future with that ``KeyError``.  Cancellation is ``concurrent.futures.CancelledError``,
as in the standard library.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import sys
from typing import Any

__all__ = [
    "AioconcError",
    "CallTimeoutError",
    "CancelledError",
    "RemoteError",
    "RetryValidationError",
    "SerializationError",
    "WaitTimeoutError",
    "WorkerCrashedError",
    "WorkerError",
    "WorkerStartError",
    "WorkerStoppedError",
]


class AioconcError(Exception):
    """Base class of every failure that aioconc itself reports."""


class WorkerError(AioconcError):
    """A worker could not carry out what was asked of it."""


class WorkerStartError(WorkerError):
    """Raised by ``init()`` when a worker could not be started for a reason outside
    the user's ``__init__`` (a user ``__init__`` error is raised as itself)."""


class WorkerCrashedError(WorkerError):
    """Fails every pending and later call of a worker whose process or actor died.

    ``worker`` names the worker, ``pid`` is its process id (or None) and
    ``exitcode`` its exit code (negative: killed by that signal), when known.
    """

    def __init__(
        self,
        message: str,
        *,
        worker: str | None = None,
        pid: int | None = None,
        exitcode: int | None = None,
    ) -> None:
        super().__init__(message)
        self.worker = worker
        self.pid = pid
        self.exitcode = exitcode

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_crashed, (str(self), self.worker, self.pid, self.exitcode))


def _rebuild_crashed(
    message: str, worker: str | None, pid: int | None, exitcode: int | None
) -> WorkerCrashedError:
    return WorkerCrashedError(message, worker=worker, pid=pid, exitcode=exitcode)


class WorkerStoppedError(WorkerError, RuntimeError):
    """Raised by a method call made after the worker was stopped.

    A ``RuntimeError`` too, so code written against concurry (which raises
    ``RuntimeError("... stopped ...")``) keeps catching it.
    """


class SerializationError(AioconcError, TypeError):
    """A value could not be serialised across a process or Ray boundary.

    Fails only the call that carried the value; the worker keeps serving.
    """


class RemoteError(AioconcError):
    """An exception raised in a worker that the caller could not rebuild as its own type.

    Only with ``serializer="json"`` or ``"msgpack"``, where exceptions travel by
    name: the caller rebuilds types it has imported, and raises this for the
    rest.  ``type_name`` is the original type's dotted name; the message is the
    original's.
    """

    def __init__(self, message: str, *, type_name: str = "") -> None:
        super().__init__(message)
        self.type_name = type_name

    @classmethod
    def of(cls, type_name: str, message: str) -> RemoteError:
        """The error for an exception of type ``type_name`` with ``message``."""
        return cls(f"{type_name}: {message}", type_name=type_name)


if sys.version_info >= (3, 11):
    WaitTimeoutError = TimeoutError
else:

    class WaitTimeoutError(TimeoutError, asyncio.TimeoutError, concurrent.futures.TimeoutError):
        """A wait ran out: what ``except TimeoutError`` catches on 3.10, and also what
        asyncio's and concurrent.futures' ``TimeoutError`` (not yet the builtin) catch."""


class CallTimeoutError(AioconcError, WaitTimeoutError):
    """A call ran past its per-call deadline."""


class RetryValidationError(AioconcError):
    """Every attempt's result was rejected by the ``retry_until`` validators.

    ``attempts`` is how many attempts ran, ``all_results`` their results,
    ``validation_errors`` why each was rejected and ``method_name`` the method.
    It can be built as concurry builds it, ``RetryValidationError(attempts,
    all_results, validation_errors, method_name="unknown")`` (the message is
    then made from them), or with a message first and the rest by keyword.
    """

    def __init__(
        self,
        message: str | int | None = None,
        all_results: list[Any] | None = None,
        validation_errors: list[str] | None = None,
        method_name: str = "unknown",
        *,
        attempts: int | None = None,
    ) -> None:
        if isinstance(message, int) and not isinstance(message, bool):
            attempts, message = message, None  # concurry's order: attempts first
        attempts = 0 if attempts is None else attempts
        all_results = [] if all_results is None else all_results
        validation_errors = [] if validation_errors is None else validation_errors
        if message is None:
            message = (
                f"Validation failed for method '{method_name}' after {attempts} attempts: "
                f"retry_until rejected every result; errors: {validation_errors}"
            )
        super().__init__(message)
        self.attempts = attempts
        self.all_results = all_results
        self.validation_errors = validation_errors
        self.method_name = method_name

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _rebuild_validation,
            (str(self), self.attempts, self.all_results, self.validation_errors, self.method_name),
        )


def _rebuild_validation(
    message: str,
    attempts: int,
    all_results: list[Any],
    validation_errors: list[str],
    method_name: str,
) -> RetryValidationError:
    return RetryValidationError(
        message,
        attempts=attempts,
        all_results=all_results,
        validation_errors=validation_errors,
        method_name=method_name,
    )


class CancelledError(concurrent.futures.CancelledError, asyncio.CancelledError):
    """Raised for a cancelled call by ``result()`` and ``await``: both
    ``concurrent.futures.CancelledError`` (what scripts catch) and
    ``asyncio.CancelledError`` (what asyncio's ``wait_for``/``gather`` expect of a
    cancelled future)."""
