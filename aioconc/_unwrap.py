"""Future unwrapping: futures among a call's arguments are replaced by their results.

::

    handle.m(f1, [f2, 3], key=f3)      f1..f3 pending futures
       │  needs_unwrap(args, kwargs)   one cheap scan; plain scalars are skipped
       ▼
    defer(call, dispatch)              a done-callback on each input future; nothing blocks
       │  last input done
       ├─ all succeeded ──► dispatch(Call with the results put in place)
       └─ one failed    ──► the call's future fails with that exception; it never runs

Nothing waits on a loop or a thread: the callback of the last input to finish
hands the call on, from whichever thread finished that input.  Containers
(lists, tuples, dicts' values, sets) are searched at any depth and rebuilt only
where they hold a future.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._future import Future
from ._wrap import wrap_future

if TYPE_CHECKING:
    from ._call import Call

__all__ = ["defer", "needs_unwrap"]

# Values that can never hold a future: the common case costs one set look-up.
_PLAIN = frozenset({int, float, str, bytes, bool, type(None), complex})
_CONTAINERS = (list, tuple, dict, set, frozenset)


def _is_future(value: Any) -> bool:
    return isinstance(value, (Future, concurrent.futures.Future)) or asyncio.isfuture(value)


def _holds_future(value: Any) -> bool:
    kind = type(value)
    if kind in _PLAIN:
        return False
    if _is_future(value):
        return True
    if isinstance(value, dict):
        return any(_holds_future(v) for v in value.values())
    if isinstance(value, _CONTAINERS):
        return any(_holds_future(v) for v in value)
    return False


def needs_unwrap(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """True when a future sits anywhere in ``args`` or ``kwargs``' values."""
    for value in args:
        if type(value) not in _PLAIN and _holds_future(value):
            return True
    if kwargs:
        for value in kwargs.values():
            if type(value) not in _PLAIN and _holds_future(value):
                return True
    return False


def _collect(value: Any, found: dict[int, Future[Any]]) -> None:
    if type(value) in _PLAIN:
        return
    if _is_future(value):
        if id(value) not in found:
            found[id(value)] = wrap_future(value)
    elif isinstance(value, dict):
        for item in value.values():
            _collect(item, found)
    elif isinstance(value, _CONTAINERS):
        for item in value:
            _collect(item, found)


def _replace(value: Any, found: dict[int, Future[Any]]) -> Any:
    if type(value) in _PLAIN:
        return value
    if _is_future(value):
        return found[id(value)].result()  # done: every input succeeded
    if isinstance(value, dict):
        if not any(_holds_future(v) for v in value.values()):
            return value
        return type(value)({k: _replace(v, found) for k, v in value.items()})
    if isinstance(value, _CONTAINERS):
        if not any(_holds_future(v) for v in value):
            return value
        items = [_replace(v, found) for v in value]
        if isinstance(value, tuple) and hasattr(value, "_fields"):  # a namedtuple
            return type(value)(*items)
        return type(value)(items)
    return value


def defer(call: Call, dispatch: Callable[[Call], None]) -> None:
    """Hand ``call`` to ``dispatch`` once every future in its arguments is done.

    Their results replace them.  If one failed (or was cancelled) ``call``
    fails with that exception (``CancelledError``) and never runs; if ``call``
    itself is cancelled while it waits, it is never dispatched.
    """
    found: dict[int, Future[Any]] = {}
    for value in call.args:
        _collect(value, found)
    for value in call.kwargs.values():
        _collect(value, found)
    inputs = list(found.values())
    state = {"left": len(inputs)}
    lock = threading.Lock()

    def on_input_done(_: Future[Any]) -> None:
        with lock:
            state["left"] -= 1
            if state["left"]:
                return
        _release(call, inputs, found, dispatch)

    for fut in inputs:
        fut.add_done_callback(on_input_done)


def _release(
    call: Call,
    inputs: list[Future[Any]],
    found: dict[int, Future[Any]],
    dispatch: Callable[[Call], None],
) -> None:
    if call.future.done():
        return  # cancelled while its inputs were pending: it never runs
    for fut in inputs:
        if fut.cancelled():
            call.future._set_cancelled()
            return
        error = fut._failure()
        if error is not None:
            call.future._set_exception(error)
            return
    call.args = tuple(_replace(v, found) for v in call.args)
    call.kwargs = {k: _replace(v, found) for k, v in call.kwargs.items()}
    dispatch(call)
