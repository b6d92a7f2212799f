"""What crosses a process boundary: the serializer, and the errors when it can't.

cloudpickle is the default serializer: it pickles classes, functions, lambdas and
closures defined in ``__main__``, a REPL or a notebook by value, so process
workers need no importable module.  Plain data pickles at C speed (cloudpickle
only steps in for what plain pickle would pickle by reference).

A value that can't be pickled fails only the call that carried it, with a
:class:`~aioconc.SerializationError` that names the value (which argument,
return value or exception) and the mode.  A user exception raised in a worker
process arrives as its own type with a :class:`RemoteTraceback` as its
``__cause__``, carrying the worker's formatted traceback.

With ``serializer="json"`` or ``"msgpack"`` (``_codec.py``) a
:class:`CallCodec` encodes each call's arguments and decodes its outcome on
the caller's side; what the format can't hold fails that call with a
``SerializationError`` naming the argument or return value, its type and the
serializer.
"""

from __future__ import annotations

import inspect
from typing import Any

import cloudpickle

from ._carry import context_culprit
from ._codec import (
    BOUND_CALLS,
    ERROR,
    OK,
    UNSERIALIZABLE,
    Codec,
    Signature,
    describe,
)
from ._codec import rebuild_exception as _rebuild
from ._exceptions import RemoteError, SerializationError

__all__ = [
    "CallCodec",
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
    *,
    codec: Codec | None = None,
    bound: Any = None,
    context: dict[str, Any] | None = None,
) -> SerializationError:
    """The error for a call whose arguments could not be pickled (or encoded).

    ``owner`` is the worker class (to name parameters); ``error`` is what the
    pickler (or ``codec``) raised for the whole call.  Each argument is tried
    on its own to find the one at fault.  ``bound`` is the function a task
    worker's ``call_bound`` runs (its parameters name the arguments).
    ``context`` holds the carried context values (:mod:`aioconc._carry`),
    tried after the arguments.
    """
    if bound is not None and method in BOUND_CALLS:
        names = _names(bound, len(args))
        where = f"{getattr(bound, '__name__', '?')}()"
    else:
        func = getattr(owner, method, None) if owner is not None else None
        # A method looked up on the class has ``self`` first; skip it.
        names = _names(func, len(args) + 1)[1:] if func is not None else [None] * len(args)
        where = f"{method}()" if method != "__init__" else f"{getattr(owner, '__name__', '?')}()"
    fits = _picklable if codec is None else codec.encodable
    what = None
    for pos, value in enumerate(args):
        if not fits(value):
            name = names[pos] if pos < len(names) else None
            label = f"argument {name!r} (position {pos})" if name else f"argument {pos}"
            what = f"{label} = {describe(value)} (type {type(value).__name__})"
            break
    else:
        for key, value in kwargs.items():
            if not fits(value):
                kind = type(value).__name__
                what = f"keyword argument {key!r} = {describe(value)} (type {kind})"
                break
    if what is None and context:
        what = context_culprit(context, fits)
    if what is None:
        what = "the call's arguments"
    if codec is None:
        message = f"{what} of {where} could not be pickled for a {mode} worker: {error!r}"
    else:
        message = (
            f"{what} of {where} could not be encoded by the {codec.name} serializer "
            f"for a {mode} worker: {error}"
        )
    exc = SerializationError(message)
    exc.__cause__ = error
    return exc


def _picklable(value: Any) -> bool:
    try:
        cloudpickle.dumps(value)
    except Exception:
        return False
    return True


class CallCodec:
    """The caller's side of a worker made with ``serializer="json"`` or ``"msgpack"``.

    Encodes each call as ``[method, args, kwargs]`` and decodes the worker's
    outcomes into the tuples the backends deliver: ``(OK, value)`` with a
    model-annotated return value validated back into its model, ``(ERROR,
    exception, traceback)``, ``(UNSERIALIZABLE, message, traceback)``.
    """

    def __init__(self, codec: Codec, owner: Any, bound: Any = None, mode: str = "process") -> None:
        self.codec = codec
        self.name = codec.name
        self._owner = owner
        self._bound = bound  # a task worker's function (call_bound runs it)
        self._mode = mode
        self._signatures: dict[str, Signature] = {}

    def encode_call(
        self,
        method: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        context: dict[str, Any] | None = None,
    ) -> bytes:
        """The call as bytes, with the carried ``context`` values when there are any.

        Raises ``SerializationError`` naming the argument (or context variable)
        that can't be encoded.
        """
        try:
            if context is None:
                return self.codec.dumps([method, args, kwargs])
            return self.codec.dumps([method, args, kwargs, context])
        except Exception as exc:
            raise argument_error(
                self._owner,
                method,
                args,
                kwargs,
                exc,
                self._mode,
                codec=self.codec,
                bound=self._bound,
                context=context,
            ) from None

    def _signature(self, method: str) -> Signature:
        found = self._signatures.get(method)
        if found is None:
            target = self._bound if method in BOUND_CALLS else getattr(self._owner, method, None)
            found = self._signatures[method] = Signature(target)
        return found

    def decode_outcome(self, data: bytes | memoryview, method: str) -> tuple[Any, ...]:
        """One outcome the worker sent (raises what the format's decoder raises)."""
        item = self.codec.loads(data)
        tag = item[0]
        if tag == OK:
            try:
                return (OK, self._signature(method).value(item[1]))
            except Exception as exc:
                message = (
                    f"the return value of {method}() could not be validated back into "
                    f"its annotated type: {exc}"
                )
                return (UNSERIALIZABLE, message, "")
        if tag == ERROR:
            return (ERROR, _rebuild(item[1], RemoteError.of), item[2])
        return tuple(item)
