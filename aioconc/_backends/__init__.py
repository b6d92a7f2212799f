"""Backends, one per mode, imported on first use.

The in-process modes are one module each (``_sync``, ``_asyncio``, ``_thread``,
with ``_eager`` for starting coroutines); process and Ray mode are families of
modules, each in a subpackage (``process/``, ``ray/``) whose ``__init__``
describes it.  Every backend module exposes ``backend`` (see ``_base``).

``get_backend(mode)`` is the only place that maps a mode to its module, so a
Ray worker imports ``ray`` only when one is made.
"""

from __future__ import annotations

import importlib
from typing import cast

from .._enums import ExecutionMode
from ._base import Backend

__all__ = ["OPTION_NAMES", "available_modes", "get_backend"]

# The mode-specific options each mode accepts, known without importing the
# backend (so validating a Ray worker's options does not import Ray).
OPTION_NAMES: dict[ExecutionMode, frozenset[str]] = {
    ExecutionMode.Sync: frozenset(),
    ExecutionMode.Asyncio: frozenset(),
    ExecutionMode.Threads: frozenset({"start_timeout"}),
    ExecutionMode.Processes: frozenset(
        {"mp_context", "start_timeout", "process_worker_result_queue_timeout", "on_timeout"}
    ),
    ExecutionMode.Ray: frozenset(
        {
            "actor_options",
            "num_cpus",
            "num_gpus",
            "resources",
            "memory",
            "max_restarts",
            "max_task_retries",
            "max_concurrency",
            "runtime_env",
            "scheduling_strategy",
            "start_timeout",
        }
    ),
}

_MODULES = {
    ExecutionMode.Sync: "_sync",
    ExecutionMode.Asyncio: "_asyncio",
    ExecutionMode.Threads: "_thread",
    ExecutionMode.Processes: "process._worker",
    ExecutionMode.Ray: "ray._worker",
}
_cache: dict[ExecutionMode, Backend] = {}


def get_backend(mode: ExecutionMode) -> Backend:
    """Return the backend of ``mode``.

    Raises ``NotImplementedError`` for a mode this release does not ship yet.
    """
    backend = _cache.get(mode)
    if backend is None:
        try:
            module = importlib.import_module(f"{__name__}.{_MODULES[mode]}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{_MODULES[mode]}":
                raise
            raise NotImplementedError(f"{mode.name} mode is not available yet") from None
        backend = _cache[mode] = cast(Backend, module.backend)
    return backend


def available_modes() -> list[ExecutionMode]:
    """The modes whose backend can be loaded here."""
    modes = []
    for mode in ExecutionMode:
        try:
            get_backend(mode)
        except (NotImplementedError, ImportError):
            continue
        modes.append(mode)
    return modes
