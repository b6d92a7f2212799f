"""Context variables that travel with each call to process and Ray workers.

Sync, asyncio and thread workers run a call in a copy of the caller's context
(:class:`~aioconc._call.Call` takes it).  A worker process or Ray actor has
contexts of its own; :func:`carry_context` names the variables whose values
go along::

    caller                                         worker process / actor
      call.context ── carried() ──► {key: value} ──► enter(): var.set(value)
                     (only vars set there)            method runs
                                                      leave(): var.reset(token)

A variable is known on both sides by a key, ``"module:attribute"``, where the
caller found it as a module global.  The worker resolves the key to its own
copy of that variable: one registered there (the module that defines it
registers it when imported), else the module's attribute (imported if need
be).  A registered variable also pickles by its key, so a class or function
from ``__main__`` that uses it travels to workers by value and meets the same
variable there.

With nothing registered, a call costs one test of an empty dict.
"""

from __future__ import annotations

import contextvars
import copyreg
import importlib
import sys
import threading
from typing import Any

from ._codec import describe

__all__ = [
    "CARRIED",
    "carried",
    "carry_context",
    "context_culprit",
    "enter",
    "find",
    "leave",
    "run_with",
]

CARRIED: dict[str, contextvars.ContextVar[Any]] = {}
"""Key -> variable: those registered here, and (in a worker) those found for a key."""

_KEYS: dict[contextvars.ContextVar[Any], str] = {}
# A snapshot the callers iterate, replaced whole on registration (never mutated),
# so a registration in another thread cannot break an iteration in progress.
_VARS: tuple[tuple[str, contextvars.ContextVar[Any]], ...] = ()
_MISSING: set[str] = set()  # keys this worker could not resolve (not retried)
_LOCK = threading.Lock()
_UNSET = object()


def carry_context(*variables: contextvars.ContextVar[Any]) -> None:
    """Carry the values of ``variables`` into process and Ray workers with every call.

    A value set in the caller's context when a call is made is set around the
    method in the worker (and reset after it); a variable not set there is
    left alone.  Each variable must be a module-level global (of an importable
    module or of ``__main__``) so that a worker process can find it; register
    it once, at import, after it is assigned.  Registering again is a no-op.

    Raises ``TypeError`` for something other than a ``ContextVar`` and
    ``ValueError`` for a variable that is not a module global.
    """
    caller = sys._getframe(1).f_globals
    for var in variables:
        if not isinstance(var, contextvars.ContextVar):
            raise TypeError(f"carry_context() takes ContextVar objects, not {type(var).__name__}")
        if var not in _KEYS:
            _register(_key_of(var, caller), var)
    copyreg.pickle(contextvars.ContextVar, _reduce)


def _register(key: str, var: contextvars.ContextVar[Any]) -> None:
    global _VARS
    with _LOCK:
        CARRIED[key] = var
        _KEYS[var] = key
        _VARS = tuple(CARRIED.items())


def _name_in(namespace: dict[str, Any], var: contextvars.ContextVar[Any]) -> str | None:
    for name, value in list(namespace.items()):
        if value is var:
            return name
    return None


def _key_of(var: contextvars.ContextVar[Any], caller: dict[str, Any]) -> str:
    # An importable module first: a worker can import it to find the variable;
    # __main__ only as the last resort (its variables reach workers by value).
    module = caller.get("__name__")
    attr = _name_in(caller, var)
    if attr is not None and isinstance(module, str) and module != "__main__":
        return f"{module}:{attr}"
    for name, mod in list(sys.modules.items()):
        try:  # sys.modules may hold lazy proxies that raise on any attribute
            namespace = getattr(mod, "__dict__", None)
        except Exception:
            continue
        if name != "__main__" and isinstance(namespace, dict):
            found = _name_in(namespace, var)
            if found is not None:
                return f"{name}:{found}"
    main = sys.modules.get("__main__")
    found = attr if attr is not None else _name_in(getattr(main, "__dict__", {}), var)
    if found is None:
        raise ValueError(
            f"carry_context(): the ContextVar {var.name!r} is not a module-level global; "
            "define it at module level (and register it after assigning it) so that "
            "worker processes can find it"
        )
    return f"__main__:{found}"


# ---------------------------------------------------------------------------
# The caller's side
# ---------------------------------------------------------------------------


def carried(context: contextvars.Context) -> dict[str, Any] | None:
    """The values of registered variables set in ``context``, by key; None when none is."""
    values: dict[str, Any] | None = None
    for key, var in _VARS:
        value = context.get(var, _UNSET)
        if value is not _UNSET:
            if values is None:
                values = {}
            values[key] = value
    return values


def context_culprit(values: dict[str, Any], fits: Any) -> str | None:
    """What to name in an error: the first carried value ``fits(value)`` rejects."""
    for key, value in values.items():
        if not fits(value):
            var = CARRIED.get(key)
            name = var.name if var is not None else key
            kind = type(value).__name__
            return f"context variable {name!r} ({key}) = {describe(value)} (type {kind})"
    return None


# ---------------------------------------------------------------------------
# The worker's side
# ---------------------------------------------------------------------------


def find(key: str) -> contextvars.ContextVar[Any] | None:
    """This process's variable for ``key``, importing its module if need be; None if none."""
    var = CARRIED.get(key)
    if var is not None or key in _MISSING:
        return var
    module, _, attr = key.partition(":")
    if module == "__main__":
        return None  # arrives with a class or function that uses it, if any does
    try:
        found = getattr(importlib.import_module(module), attr, None)
    except Exception:
        found = None
    if isinstance(found, contextvars.ContextVar):
        _register(key, found)
        return found
    _MISSING.add(key)
    return None


def enter(values: dict[str, Any]) -> list[tuple[contextvars.ContextVar[Any], Any]]:
    """Set each carried value in the current context; the tokens to :func:`leave` with.

    A key this process has no variable for is skipped: nothing here can read it.
    """
    tokens = []
    for key, value in values.items():
        var = find(key)
        if var is not None:
            tokens.append((var, var.set(value)))
    return tokens


def leave(tokens: list[tuple[contextvars.ContextVar[Any], Any]]) -> None:
    """Undo :func:`enter`, so that the next call starts from the same context."""
    for var, token in reversed(tokens):
        var.reset(token)


def run_with(values: dict[str, Any], fn: Any, /, *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` in a copy of the current context with ``values`` set.

    Neither the values nor what ``fn`` sets outlive the call (as in thread mode).
    """
    return contextvars.copy_context().run(_entered, values, fn, args, kwargs)


def _entered(values: dict[str, Any], fn: Any, args: Any, kwargs: dict[str, Any]) -> Any:
    enter(values)
    return fn(*args, **kwargs)


# ---------------------------------------------------------------------------
# A registered variable pickles by its key
# ---------------------------------------------------------------------------


def _reduce(var: contextvars.ContextVar[Any]) -> tuple[Any, ...]:
    key = _KEYS.get(var)
    if key is None:
        raise TypeError(
            f"cannot pickle the ContextVar {var.name!r}: register it with "
            "aioconc.carry_context() to use it in process and Ray workers"
        )
    try:
        default: tuple[Any, ...] = (contextvars.Context().run(var.get),)
    except LookupError:
        default = ()
    return (_var_for, (key, var.name, default))


def _var_for(key: str, name: str, default: tuple[Any, ...]) -> contextvars.ContextVar[Any]:
    """The variable of ``key`` in this process; made (and registered) when there is none."""
    var = find(key)
    if var is None:
        if default:
            var = contextvars.ContextVar(name, default=default[0])
        else:
            var = contextvars.ContextVar(name)
        _register(key, var)
    return var
