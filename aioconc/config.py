"""Library-wide defaults: ``global_config``, ``temp_config`` and ``resolve``.

``global_config.defaults`` holds the global defaults; ``global_config.sync``,
``.asyncio``, ``.thread``, ``.process`` and ``.ray`` hold per-mode overrides in
which ``None`` means "use the global value".  :func:`resolve` reads one value
for one mode through those two levels.

Every section is a pydantic model with ``validate_assignment``, so
``global_config.defaults.num_retries = -1`` raises ``pydantic.ValidationError``
and enum fields accept the aliases of :mod:`aioconc._enums`.

Unlike concurry, :func:`temp_config` is *context-local*: it installs a copy of
the configuration in a :class:`contextvars.ContextVar`, so its overrides are seen
by the code (and the asyncio tasks created) inside the block only, never by
tasks running concurrently or by other threads.  Outside any block, assignments
change the process-wide configuration.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Generic, Literal, TypeVar, overload

from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, NonNegativeInt

from ._enums import ExecutionMode, LoadBalancingAlgorithm, RateLimitAlgorithm, RetryAlgorithm

__all__ = [
    "ExecutionModeDefaults",
    "GlobalConfig",
    "GlobalDefaults",
    "ResolvedDefaults",
    "global_config",
    "resolve",
    "temp_config",
]

MpContext = Literal["fork", "spawn", "forkserver"]
_MODEL_CONFIG = ConfigDict(extra="forbid", validate_assignment=True)


class GlobalDefaults(BaseModel):
    """The global defaults, used where a mode does not override them.

    Field names and values are concurry 0.13.2's, plus ``force_sync``.  The
    ``polling_*``, ``*_poll_interval``, ``*_sleep`` and ``ray_monitor_*`` fields
    are accepted for compatibility only: aioconc waits on events, never polls.
    """

    model_config = _MODEL_CONFIG

    max_workers: NonNegativeInt | None = None
    max_queued_tasks: NonNegativeInt | None = None
    load_balancing: LoadBalancingAlgorithm = LoadBalancingAlgorithm.RoundRobin
    load_balancing_on_demand: LoadBalancingAlgorithm = LoadBalancingAlgorithm.Random
    on_demand: bool = False
    mp_context: MpContext = "forkserver"
    task_decorator_on_demand: bool = True
    blocking: bool = False
    unwrap_futures: bool = True
    num_retries: NonNegativeInt = 0
    retry_on: list[Any] = Field(default_factory=lambda: [Exception])
    retry_algorithm: RetryAlgorithm = RetryAlgorithm.Exponential
    retry_wait: NonNegativeFloat = 1.0
    retry_jitter: float = Field(default=0.3, ge=0, le=1)
    retry_until: Any = None
    stop_timeout: NonNegativeFloat = 30.0
    rate_limit_algorithm: RateLimitAlgorithm = RateLimitAlgorithm.SlidingWindow
    limit_pool_load_balancing: LoadBalancingAlgorithm = LoadBalancingAlgorithm.RoundRobin
    limit_pool_worker_index: NonNegativeInt = 0
    progress_bar_ncols: int = Field(default=100, ge=10)
    progress_bar_smoothing: float = Field(default=0.15, ge=0, le=1)
    progress_bar_miniters: int = Field(default=1, ge=1)
    force_sync: bool = False
    """Run every worker and task inline in sync mode (as ``AIOCONC_FORCE_SYNC=1``)."""

    # Compatibility only (see the class docstring).
    polling_fixed_interval: NonNegativeFloat = 0.01
    polling_adaptive_min_interval: NonNegativeFloat = 0.0001
    polling_adaptive_max_interval: NonNegativeFloat = 0.2
    polling_adaptive_initial_interval: NonNegativeFloat = 0.01
    polling_adaptive_speedup_factor: float = Field(default=0.7, gt=0, le=1)
    polling_adaptive_slowdown_factor: float = Field(default=1.3, ge=1)
    polling_adaptive_consecutive_empty_threshold: int = Field(default=3, ge=1)
    polling_exponential_initial_interval: NonNegativeFloat = 0.01
    polling_exponential_max_interval: NonNegativeFloat = 2.0
    polling_exponential_multiplier: float = Field(default=2.0, gt=1)
    polling_progressive_min_interval: NonNegativeFloat = 0.0001
    polling_progressive_max_interval: NonNegativeFloat = 0.5
    polling_progressive_checks_before_increase: int = Field(default=5, ge=1)
    asyncio_future_poll_interval: NonNegativeFloat = 1e-6
    async_wait_poll_interval: NonNegativeFloat = 100e-6
    async_gather_poll_interval: NonNegativeFloat = 100e-6
    ray_monitor_queue_get_timeout: NonNegativeFloat = 0.01
    ray_monitor_no_futures_sleep: NonNegativeFloat = 0.01
    ray_monitor_sleep: NonNegativeFloat = 0.001
    ray_monitor_error_sleep: NonNegativeFloat = 0.1
    rate_limiter_min_wait_time: NonNegativeFloat = 0.01
    limit_set_acquire_sleep: NonNegativeFloat = 0.01
    worker_pool_cleanup_sleep: NonNegativeFloat = 0.1


class ExecutionModeDefaults(BaseModel):
    """Overrides for one mode; ``None`` means "use ``global_config.defaults``".

    ``worker_result_queue_timeout`` (process, ray) bounds a worker's start-up
    (its ``__init__``; in ray mode also placing its actor), the default of the
    ``start_timeout`` option; ``pool_on_demand_slot_max_wait`` bounds how long an on-demand
    call waits for a slot.  The other ``worker_*`` timeouts are accepted for
    compatibility.
    """

    model_config = _MODEL_CONFIG

    max_workers: NonNegativeInt | None = None
    max_queued_tasks: NonNegativeInt | None = None
    load_balancing: LoadBalancingAlgorithm | None = None
    load_balancing_on_demand: LoadBalancingAlgorithm | None = None
    on_demand: bool | None = None
    mp_context: MpContext | None = None
    task_decorator_on_demand: bool | None = None
    blocking: bool | None = None
    unwrap_futures: bool | None = None
    num_retries: NonNegativeInt | None = None
    retry_on: list[Any] | None = None
    retry_algorithm: RetryAlgorithm | None = None
    retry_wait: NonNegativeFloat | None = None
    retry_jitter: float | None = Field(default=None, ge=0, le=1)
    retry_until: Any = None
    stop_timeout: NonNegativeFloat | None = None
    worker_command_queue_timeout: NonNegativeFloat | None = None
    worker_result_queue_timeout: NonNegativeFloat | None = None
    worker_result_queue_cleanup_timeout: NonNegativeFloat | None = None
    worker_loop_ready_timeout: NonNegativeFloat | None = None
    worker_thread_ready_timeout: NonNegativeFloat | None = None
    worker_sync_queue_timeout: NonNegativeFloat | None = None
    pool_on_demand_cleanup_timeout: NonNegativeFloat | None = None
    pool_on_demand_slot_max_wait: NonNegativeFloat | None = None
    progress_bar_ncols: int | None = Field(default=None, ge=10)
    progress_bar_smoothing: float | None = Field(default=None, ge=0, le=1)
    progress_bar_miniters: int | None = Field(default=None, ge=1)
    # Compatibility only: aioconc never polls.
    polling_fixed_interval: NonNegativeFloat | None = None
    polling_adaptive_min_interval: NonNegativeFloat | None = None
    polling_adaptive_max_interval: NonNegativeFloat | None = None
    polling_adaptive_initial_interval: NonNegativeFloat | None = None
    polling_adaptive_speedup_factor: float | None = Field(default=None, gt=0, le=1)
    polling_adaptive_slowdown_factor: float | None = Field(default=None, ge=1)
    polling_adaptive_consecutive_empty_threshold: int | None = Field(default=None, ge=1)
    polling_exponential_initial_interval: NonNegativeFloat | None = None
    polling_exponential_max_interval: NonNegativeFloat | None = None
    polling_exponential_multiplier: float | None = Field(default=None, gt=1)
    polling_progressive_min_interval: NonNegativeFloat | None = None
    polling_progressive_max_interval: NonNegativeFloat | None = None
    polling_progressive_checks_before_increase: int | None = Field(default=None, ge=1)
    asyncio_future_poll_interval: NonNegativeFloat | None = None
    ray_monitor_queue_get_timeout: NonNegativeFloat | None = None
    ray_monitor_no_futures_sleep: NonNegativeFloat | None = None
    ray_monitor_sleep: NonNegativeFloat | None = None
    ray_monitor_error_sleep: NonNegativeFloat | None = None
    rate_limiter_min_wait_time: NonNegativeFloat | None = None
    limit_set_acquire_sleep: NonNegativeFloat | None = None
    worker_pool_cleanup_sleep: NonNegativeFloat | None = None


_ON_DEMAND_POOL = {"pool_on_demand_cleanup_timeout": 5.0, "pool_on_demand_slot_max_wait": 60.0}
# The library's per-mode values, as in concurry; every other field is None.
_MODE_DEFAULTS: dict[str, dict[str, Any]] = {
    "sync": {"max_workers": 1},
    "asyncio": {
        "max_workers": 1,
        "worker_loop_ready_timeout": 30.0,
        "worker_thread_ready_timeout": 30.0,
        "worker_sync_queue_timeout": 0.1,
    },
    "thread": {"max_workers": 1, "worker_command_queue_timeout": 0.1, **_ON_DEMAND_POOL},
    "process": {
        "max_workers": 1,
        "max_queued_tasks": 100,
        "worker_result_queue_timeout": 30.0,
        "worker_result_queue_cleanup_timeout": 1.0,
        **_ON_DEMAND_POOL,
    },
    "ray": {
        "max_workers": 0,
        "max_queued_tasks": 3,
        # An actor no node can place would otherwise wait for ever.
        "worker_result_queue_timeout": 120.0,
        **_ON_DEMAND_POOL,
    },
}
_SECTION_OF_MODE = {
    ExecutionMode.Sync: "sync",
    ExecutionMode.Asyncio: "asyncio",
    ExecutionMode.Threads: "thread",
    ExecutionMode.Processes: "process",
    ExecutionMode.Ray: "ray",
}
_SECTIONS = ("defaults", *_MODE_DEFAULTS)
_PREFIXES = ("global", *_MODE_DEFAULTS)


class _State:
    """One complete configuration: the global section and the five mode sections."""

    __slots__ = _SECTIONS
    defaults: GlobalDefaults
    sync: ExecutionModeDefaults
    asyncio: ExecutionModeDefaults
    thread: ExecutionModeDefaults
    process: ExecutionModeDefaults
    ray: ExecutionModeDefaults

    def __init__(self, sections: dict[str, BaseModel] | None = None) -> None:
        for name in _SECTIONS:
            value = sections[name] if sections is not None else _library_default(name)
            setattr(self, name, value)

    def copy(self) -> _State:
        """Copy every section; list values are copied too, other values are shared."""
        return _State({name: _copy(getattr(self, name)) for name in _SECTIONS})


def _copy(model: BaseModel) -> BaseModel:
    return model.model_copy(update={k: list(v) for k, v in model if isinstance(v, list)})


def _library_default(section: str) -> BaseModel:
    if section == "defaults":
        return GlobalDefaults()
    return ExecutionModeDefaults(**_MODE_DEFAULTS[section])


_process_state = _State()
_context_state: contextvars.ContextVar[_State | None] = contextvars.ContextVar(
    "aioconc_config", default=None
)


def _current() -> _State:
    state = _context_state.get()
    return _process_state if state is None else state


M = TypeVar("M", bound=BaseModel)


class _Section(Generic[M]):
    """A ``global_config`` attribute that reads the section of the current context."""

    def __init__(self, kind: type[M]) -> None:
        self._kind = kind
        self._name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    @overload
    def __get__(self, obj: None, objtype: type | None = None) -> _Section[M]: ...
    @overload
    def __get__(self, obj: GlobalConfig, objtype: type | None = None) -> M: ...
    def __get__(self, obj: GlobalConfig | None, objtype: type | None = None) -> M | _Section[M]:
        if obj is None:
            return self
        section: M = getattr(_current(), self._name)
        return section

    def __set__(self, obj: GlobalConfig, value: M) -> None:
        """Replace the section; raises ``TypeError`` unless ``value`` is of its model."""
        if not isinstance(value, self._kind):
            raise TypeError(f"global_config.{self._name} must be a {self._kind.__name__}")
        setattr(_current(), self._name, value)


class GlobalConfig:
    """The configuration of the current context (see the module docstring)."""

    __slots__ = ()

    defaults = _Section(GlobalDefaults)
    sync = _Section(ExecutionModeDefaults)
    asyncio = _Section(ExecutionModeDefaults)
    thread = _Section(ExecutionModeDefaults)
    process = _Section(ExecutionModeDefaults)
    ray = _Section(ExecutionModeDefaults)

    def get_defaults(self, mode: ExecutionMode | str) -> ResolvedDefaults:
        """Every setting in force for ``mode`` now: its own value, else the global one.

        A read-only snapshot (call again after changing the configuration).
        Raises ``ValueError`` for an unknown mode.
        """
        return ResolvedDefaults(mode)

    def reset_to_defaults(self) -> None:
        """Restore the library defaults (inside ``temp_config``: until the block ends)."""
        state = _current()
        for name in _SECTIONS:
            setattr(state, name, _library_default(name))

    def __repr__(self) -> str:
        scope = "process" if _context_state.get() is None else "temp_config"
        return f"<GlobalConfig scope={scope}>"


global_config = GlobalConfig()

_ALL_FIELDS = tuple(
    dict.fromkeys([*GlobalDefaults.model_fields, *ExecutionModeDefaults.model_fields])
)


class ResolvedDefaults:
    """What :meth:`GlobalConfig.get_defaults` returns: one mode's settings, resolved.

    Every field of ``GlobalDefaults`` and ``ExecutionModeDefaults`` is an
    attribute (as :func:`resolve` gives it); assigning one raises ``AttributeError``.
    """

    mode: ExecutionMode

    def __init__(self, mode: ExecutionMode | str) -> None:
        parsed = ExecutionMode(ExecutionMode.parse(mode))
        values = {name: resolve(parsed, name) for name in _ALL_FIELDS}
        object.__setattr__(self, "mode", parsed)
        self.__dict__.update(values)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(
            f"cannot set {name!r}: resolved defaults are read-only; "
            f"change global_config.{_SECTION_OF_MODE[self.mode]} or global_config.defaults"
        )

    def __repr__(self) -> str:
        return f"<ResolvedDefaults mode={self.mode.name}>"


def _section_for(key: str, state: _State) -> tuple[BaseModel, str]:
    prefix, _, field = key.partition("_")
    if prefix not in _PREFIXES or not field:
        raise ValueError(
            f"Invalid mode in temp_config key {key!r}: expected '<prefix>_<field>' with "
            f"prefix one of {', '.join(_PREFIXES)}"
        )
    section: BaseModel = getattr(state, "defaults" if prefix == "global" else prefix)
    if field not in type(section).model_fields:
        raise ValueError(
            f"Invalid attribute in temp_config key {key!r}: {prefix} has no field {field!r}"
        )
    return section, field


@contextmanager
def temp_config(**overrides: Any) -> Iterator[GlobalConfig]:
    """Apply ``global_<field>=...`` / ``<mode>_<field>=...`` overrides inside the block.

    Overrides are context-local and restored on exit, also on exception; nested
    blocks compose.  Raises ``ValueError`` for an unknown prefix or field and
    ``pydantic.ValidationError`` for an invalid value, before anything changes.
    """
    state = _current().copy()
    for key, value in overrides.items():
        section, field = _section_for(key, state)
        setattr(section, field, value)
    token = _context_state.set(state)
    try:
        yield global_config
    finally:
        _context_state.reset(token)


def resolve(mode: ExecutionMode | str, name: str) -> Any:
    """Return ``name`` for ``mode``: the per-mode value unless None, else the global one.

    Raises ``ValueError`` for an unknown mode or configuration field.
    """
    state = _current()
    section: ExecutionModeDefaults = getattr(state, _SECTION_OF_MODE[ExecutionMode(mode)])
    if name in ExecutionModeDefaults.model_fields:
        value = getattr(section, name)
        if value is not None or name not in GlobalDefaults.model_fields:
            return value
    if name in GlobalDefaults.model_fields:
        return getattr(state.defaults, name)
    raise ValueError(f"unknown configuration field {name!r}")
