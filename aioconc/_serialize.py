"""What crosses a process boundary: the serializer, and the errors when it can't.

cloudpickle is the serializer: it pickles classes, functions, lambdas and
closures defined in ``__main__``, a REPL or a notebook by value, so process
workers need no importable module.  Plain data pickles at C speed (cloudpickle
only steps in for what plain pickle would pickle by reference).

A value that can't be pickled fails only the call that carried it, with a
:class:`~aioconc.SerializationError` that names the value (which argument,
return value or exception) and the mode.  A user exception raised in a worker
process arrives as its own type with a :class:`RemoteTraceback` as its
``__cause__``, carrying the worker's formatted traceback.
"""

from __future__ import annotations

import inspect
from typing import Any

import cloudpickle

from ._exceptions import SerializationError

__all__ = [
    "RemoteTraceback",
    "argument_error",
    "dumps",
    "loads",
    "remote_error",
    "unloadable_error",
    "with_remote_traceback",
]

dumps = cloudpickle.dumps
loads = cloudpickle.loads


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker process (its ``__cause__``)."""

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return f'\n"""\n{self.tb.rstrip()}\n"""'


def with_remote_traceback(exc: BaseException, tb: str) -> BaseException:
    """Attach the worker's traceback text ``tb`` to ``exc`` as its cause; return ``exc``."""
    if tb:
        exc.__cause__ = RemoteTraceback(tb)
    return exc


def remote_error(message: str, tb: str) -> SerializationError:
    """A :class:`SerializationError` reported by a worker process, with its traceback."""
    exc = SerializationError(f"{message} (process mode)")
    with_remote_traceback(exc, tb)
    return exc


def unloadable_error(worker: str, exc: Exception) -> SerializationError:
    """The error for a call whose outcome the caller could not unpickle."""
    err = SerializationError(
        f"the outcome of a call to worker {worker} could not be unpickled in the "
        f"caller (process mode): {exc!r}"
    )
    err.__cause__ = exc
    return err


def _describe(value: Any) -> str:
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__name__} object>"
    return text if len(text) <= 120 else text[:117] + "..."


def _names(func: Any, count: int) -> list[str | None]:
    """The parameter names of the first ``count`` positional arguments, where known."""
    try:
        params = list(inspect.signature(func).parameters.values())
    except (TypeError, ValueError):
        return [None] * count
    names: list[str | None] = []
    for param in params:
        if param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD):
            names.append(param.name)
        elif param.kind is param.VAR_POSITIONAL:
            names.extend([f"*{param.name}"] * count)
            break
    return (names + [None] * count)[:count]


def argument_error(
    owner: Any,
    method: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    error: BaseException,
    mode: str = "process",
) -> SerializationError:
    """The error for a call whose arguments could not be pickled.

    ``owner`` is the worker class (to name parameters); ``error`` is what the
    pickler raised for the whole call.  Each argument is tried on its own to
    find the one at fault.
    """
    func = getattr(owner, method, None) if owner is not None else None
    # A method looked up on the class has ``self`` first; skip it.
    names = _names(func, len(args) + 1)[1:] if func is not None else [None] * len(args)
    what = None
    for pos, value in enumerate(args):
        if not _picklable(value):
            name = names[pos] if pos < len(names) else None
            label = f"argument {name!r} (position {pos})" if name else f"argument {pos}"
            what = f"{label} = {_describe(value)}"
            break
    else:
        for key, value in kwargs.items():
            if not _picklable(value):
                what = f"keyword argument {key!r} = {_describe(value)}"
                break
    if what is None:
        what = "the call's arguments"
    where = f"{method}()" if method != "__init__" else f"{getattr(owner, '__name__', '?')}()"
    message = f"{what} of {where} could not be pickled for a {mode} worker: {error!r}"
    exc = SerializationError(message)
    exc.__cause__ = error
    return exc


def _picklable(value: Any) -> bool:
    try:
        cloudpickle.dumps(value)
    except Exception:
        return False
    return True
