"""How a shared ``LimitSet`` crosses into a process or Ray worker.

A shared set has one state, so it cannot be copied into a worker: the worker
must get a *client* of the state that stays where the set was made.  The
backend that ships the worker's constructor (and ``self.limits``) installs an
exporter around that pickling::

    with exporting(server.export):
        blob = dumps((cls, args, kwargs, limits))

and ``LimitSet.__reduce__`` asks it how to rebuild the set on the other side.
Outside such a block a shared set refuses to pickle, with a message that says
where it can go.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["Exporter", "current_exporter", "exporting"]

# Given the shared LimitSet being pickled (typed Any: this module sits below
# _limit_set.py, which asks it), returns what __reduce__ returns for it.
Exporter = Callable[[Any], tuple[Any, ...]]

_exporter: contextvars.ContextVar[Exporter | None] = contextvars.ContextVar(
    "aioconc_limit_exporter", default=None
)


@contextlib.contextmanager
def exporting(exporter: Exporter) -> Iterator[None]:
    """Within the block, shared sets pickle as whatever ``exporter`` returns."""
    token = _exporter.set(exporter)
    try:
        yield
    finally:
        _exporter.reset(token)


def current_exporter() -> Exporter | None:
    """The exporter installed by the innermost ``exporting`` block, if any."""
    return _exporter.get()
