"""The data serializers of the process and Ray boundaries: JSON and msgpack.

cloudpickle is the default and is not here: with it, calls and outcomes are
pickled as they are (``_backends/process/child/_wire.py``).  A worker made
with ``serializer="json"`` or ``"msgpack"`` sends its calls' arguments, results
and exceptions in that format instead, so neither side unpickles call data;
the worker's class (or task function) still travels by cloudpickle once, when
the worker starts.

What crosses:

* what the format holds (JSON: ``None``, bools, numbers, strings, lists and
  dicts with string keys; msgpack adds ``bytes``); tuples arrive as lists;
* pydantic models, as ``model_dump(mode="json")``; on the other side a value
  whose parameter or return annotation mentions a model (``Model``,
  ``list[Model]``, ``Model | None``) is validated back into it;
* exceptions, as their type's name, ``args`` and traceback text: the caller
  rebuilds the type when it has it imported, else raises a ``RemoteError``.

Below every layer that uses it (the caller's side in ``_serialize.py``, the
process and Ray backends, the child side of process mode).  Worker processes
load it by path, as aioconc's child side does (``_backends/process/child/``),
without importing aioconc: so it imports only the standard library; msgpack
is imported when used, and pydantic only used when something else imported it.
"""

from __future__ import annotations

import builtins
import inspect
import json
import sys
import typing
from collections.abc import Callable
from typing import Any

__all__ = [
    "Callee",
    "Codec",
    "Signature",
    "codec_for",
    "describe",
    "encode_exception",
    "rebuild_exception",
]

# Outcome tags, as in process/child/_wire.py (kept in step by a test).
OK, ERROR, UNSERIALIZABLE, SKIPPED = 0, 1, 2, 3

# TaskWorker's methods that run the function bound at init: their arguments and
# result are described by that function's annotations.
BOUND_CALLS = frozenset({"call_bound", "acall_bound"})


def _dump_model(value: Any) -> Any:
    """``default=`` of both formats: pydantic models as their JSON-mode dump."""
    dump = getattr(value, "model_dump", None)
    if dump is not None and callable(dump):
        return dump(mode="json")
    raise TypeError(f"Object of type {type(value).__name__} is not serializable")


class Codec:
    """One data format: ``dumps``/``loads`` of plain values, models as dicts.

    ``dumps`` raises ``TypeError``, ``ValueError`` or ``OverflowError`` for a
    value the format can't hold.
    """

    name = "json"

    def dumps(self, value: Any) -> bytes:
        return json.dumps(value, default=_dump_model, separators=(",", ":")).encode()

    def loads(self, data: bytes | memoryview) -> Any:
        return json.loads(bytes(data))

    def encodable(self, value: Any) -> bool:
        """Whether ``value`` alone can be encoded."""
        try:
            self.dumps(value)
        except Exception:
            return False
        return True

    # -- outcomes (the worker's side) ---------------------------------------

    def encode_outcome(self, outcome: tuple[Any, ...], method: str) -> bytes:
        """``outcome`` as the worker sends it; never raises.

        A result or exception that can't be encoded becomes an UNSERIALIZABLE
        outcome whose message names it, its type and this serializer.
        """
        tag = outcome[0]
        try:
            if tag == ERROR:
                return self.dumps([ERROR, encode_exception(self, outcome[1]), outcome[2], method])
            return self.dumps(list(outcome))
        except Exception as exc:
            what = f"the return value of {method}()" if tag == OK else f"the result of {method}()"
            value = outcome[1] if len(outcome) > 1 else None
            message = (
                f"{what} = {describe(value)} (type {type(value).__name__}) could not be "
                f"encoded by the {self.name} serializer: {exc}"
            )
            return self.dumps([UNSERIALIZABLE, message, ""])


class MsgpackCodec(Codec):
    """msgpack (``aioconc[msgpack]``): JSON's values plus ``bytes``, more compact."""

    name = "msgpack"

    def __init__(self) -> None:
        import msgpack

        self._packb = msgpack.packb
        self._unpackb = msgpack.unpackb

    def dumps(self, value: Any) -> bytes:
        data: bytes = self._packb(value, default=_dump_model, use_bin_type=True)
        return data

    def loads(self, data: bytes | memoryview) -> Any:
        return self._unpackb(data, raw=False, strict_map_key=False)


def codec_for(name: str) -> Codec | None:
    """The codec named ``name``; None for cloudpickle (the wire pickles as it is).

    Raises ``ImportError`` for msgpack when the package is not installed.
    """
    if name == "cloudpickle":
        return None
    if name == "msgpack":
        return MsgpackCodec()
    return Codec()


def describe(value: Any) -> str:
    """A short ``repr`` of ``value`` for error messages (never raises)."""
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__name__} object>"
    return text if len(text) <= 120 else text[:117] + "..."


# ---------------------------------------------------------------------------
# Exceptions by name
# ---------------------------------------------------------------------------


def encode_exception(codec: Codec, exc: BaseException) -> dict[str, Any]:
    """``exc`` as plain data: its type's ``module:qualname``, ``args`` and message."""
    cls = type(exc)
    args: list[Any] = list(exc.args)
    if not codec.encodable(args):
        args = [str(exc)]
    return {"type": f"{cls.__module__}:{cls.__qualname__}", "args": args, "message": str(exc)}


def rebuild_exception(data: dict[str, Any], fallback: Callable[[str, str], BaseException]) -> Any:
    """The exception ``data`` describes, of its own type when the caller has it.

    Only types already imported here are used (nothing is imported on the
    worker's say-so); otherwise ``fallback(type_name, message)`` builds the error.
    """
    name = str(data.get("type", "builtins:Exception"))
    module, _, qualname = name.partition(":")
    owner: Any = builtins if module == "builtins" else sys.modules.get(module)
    cls: Any = owner
    for part in qualname.split("."):
        cls = getattr(cls, part, None) if cls is not None else None
    args = data.get("args") or []
    message = str(data.get("message", ""))
    if isinstance(cls, type) and issubclass(cls, BaseException):
        try:
            return cls(*args)
        except Exception:
            try:
                exc = cls.__new__(cls)
                exc.args = tuple(args)
                return exc
            except Exception:
                pass
    return fallback(name.replace(":", "."), message)


# ---------------------------------------------------------------------------
# Annotations: models validated back on the receiving side
# ---------------------------------------------------------------------------


def _mentions_model(annotation: Any, base: type[Any]) -> bool:
    if isinstance(annotation, type) and issubclass(annotation, base):
        return True
    return any(_mentions_model(arg, base) for arg in typing.get_args(annotation))


class Signature:
    """The model-bearing annotations of one callable: which values to validate.

    With no pydantic imported, no annotation can name a model: nothing to do.
    """

    __slots__ = ("_named", "_positional", "_rest", "_rest_kw", "result")

    def __init__(self, target: Any) -> None:
        self._positional: list[tuple[str, Any]] = []  # (name, adapter or None)
        self._named: dict[str, Any] = {}
        self._rest: Any = None  # *args
        self._rest_kw: Any = None  # **kwargs
        self.result: Any = None
        pydantic = sys.modules.get("pydantic")
        if pydantic is None or target is None:
            return
        try:
            hints = typing.get_type_hints(target)
            params = inspect.signature(target).parameters.values()
        except Exception:
            return
        base = pydantic.BaseModel

        def adapter(name: str) -> Any:
            hint = hints.get(name)
            if hint is None or not _mentions_model(hint, base):
                return None
            return pydantic.TypeAdapter(hint)

        for param in params:
            found = adapter(param.name)
            if param.kind is param.VAR_POSITIONAL:
                self._rest = found
            elif param.kind is param.VAR_KEYWORD:
                self._rest_kw = found
            else:
                if param.kind is not param.KEYWORD_ONLY:
                    self._positional.append((param.name, found))
                if found is not None:
                    self._named[param.name] = found
        self.result = adapter("return")

    @property
    def validates_arguments(self) -> bool:
        return bool(self._named) or self._rest is not None or self._rest_kw is not None

    def arguments(
        self, args: list[Any], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """``args`` and ``kwargs`` with model-annotated values validated back into models.

        Raises pydantic's ``ValidationError`` for data that doesn't fit.
        """
        if not self.validates_arguments:
            return tuple(args), kwargs
        out = list(args)
        for pos, value in enumerate(args):
            found = self._positional[pos][1] if pos < len(self._positional) else self._rest
            if found is not None:
                out[pos] = found.validate_python(value)
        for key, value in kwargs.items():
            found = self._named.get(key, self._rest_kw)
            if found is not None:
                kwargs[key] = found.validate_python(value)
        return tuple(out), kwargs

    def value(self, result: Any) -> Any:
        """``result`` validated back into the return annotation's model, if it names one."""
        return result if self.result is None else self.result.validate_python(result)


class Callee:
    """The worker's side of a json/msgpack worker: decodes calls for ``instance``.

    ``bound`` is the function a task worker's ``call_bound`` runs (its
    annotations describe those calls).
    """

    def __init__(self, codec: Codec, instance: Any, bound: Any = None) -> None:
        self.codec = codec
        self._instance = instance
        self._bound = bound
        self._signatures: dict[str, Signature] = {}

    def decode_call(
        self, data: bytes | memoryview
    ) -> tuple[str, tuple[Any, ...], dict[str, Any], dict[str, Any] | None]:
        """``(method, args, kwargs, context)`` of a call, model-annotated arguments
        validated back; ``context``: the caller's carried context values, or None.

        Raises what the decoder or pydantic raises for data that doesn't fit.
        """
        name, args, kwargs, *context = self.codec.loads(data)
        return (name, *self.arguments(name, args, kwargs), context[0] if context else None)

    def arguments(
        self, name: str, args: list[Any], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """``args``/``kwargs`` of a call to ``name`` with models validated back."""
        signature = self._signatures.get(name)
        if signature is None:
            bound = name in BOUND_CALLS
            target = self._bound if bound else getattr(self._instance, name, None)
            signature = self._signatures[name] = Signature(target)
        return signature.arguments(args, kwargs)
