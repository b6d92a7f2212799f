"""Worker options: validated when given, resolved once when a worker is made.

:func:`validate_options` checks what a user passes to ``.options(...)``,
``@worker(...)`` or class keywords, with pydantic, at the moment it is passed;
:func:`resolve_options` merges those layers with the configuration into one
frozen :class:`Options`::

    .options() args > @worker args > class keywords > per-mode config > global config

Keys that are not common options (``mp_context``, ``actor_options``, ...) are
mode-specific *extras*: kept as given and checked against the chosen mode in
:func:`resolve_options`.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import types
from collections.abc import Callable, Collection, Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Annotated, Any, Literal, TypeVar, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PlainValidator,
    PositiveFloat,
    Tag,
)

from . import _runtime, config
from ._enums import ExecutionMode, LoadBalancingAlgorithm, RetryAlgorithm

__all__ = ["PRIORITIES", "Options", "parse_priority", "resolve_options", "validate_options"]

PRIORITIES = {"critical": 0, "high": 1, "normal": 2, "low": 3}
"""Priority names and their levels; a lower level is started first."""

RETRY_OPTIONS = (
    "num_retries",
    "retry_on",
    "retry_algorithm",
    "retry_wait",
    "retry_jitter",
    "retry_until",
)
_NO_POOL_MODES = frozenset({ExecutionMode.Sync, ExecutionMode.Asyncio})
# Extras filled from this configuration field when the mode accepts them.
_EXTRA_DEFAULTS = {"mp_context": "mp_context", "start_timeout": "worker_result_queue_timeout"}
# concurry's names for an extra.
_EXTRA_ALIASES = {"process_worker_result_queue_timeout": "start_timeout"}

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Options:
    """The fully resolved options of one worker (or of every worker of a pool)."""

    mode: ExecutionMode
    blocking: bool
    max_workers: int | None
    load_balancing: LoadBalancingAlgorithm
    on_demand: bool
    max_queued_tasks: int | None
    unwrap_futures: bool
    num_retries: int | dict[str, int]
    retry_on: list[Any] | dict[str, list[Any]]
    retry_algorithm: RetryAlgorithm | dict[str, RetryAlgorithm]
    retry_wait: float | dict[str, float]
    retry_jitter: float | dict[str, float]
    retry_until: list[Any] | dict[str, list[Any] | None] | None
    stop_timeout: float
    limits: Any = None
    priority: int = PRIORITIES["normal"]
    timeout: float | None = None
    serializer: str = "cloudpickle"
    extra: Mapping[str, Any] = dataclasses.field(default_factory=dict)


_COMMON = frozenset(f.name for f in dataclasses.fields(Options)) - {"extra"}
_FROM_CONFIG = (
    "blocking",
    "max_workers",
    "on_demand",
    "max_queued_tasks",
    "unwrap_futures",
    *RETRY_OPTIONS,
    "stop_timeout",
)


# ---------------------------------------------------------------------------
# Validation of one layer
# ---------------------------------------------------------------------------


def _parse_mode(value: Any) -> ExecutionMode | str:
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"  # rejected when the worker is made, as concurry does
    return ExecutionMode(value)


def parse_priority(value: int | str) -> int:
    """A priority name ("critical", "high", "normal", "low") or level 0-3, as a level.

    Raises ``ValueError`` for anything else.
    """
    level = _parse_priority(value)
    if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= 3:
        raise ValueError(f"priority must be one of {', '.join(PRIORITIES)} or 0-3, got {value!r}")
    return level


def _parse_priority(value: Any) -> Any:
    if isinstance(value, str):
        if value.strip().lower() not in PRIORITIES:
            raise ValueError(f"priority must be one of {', '.join(PRIORITIES)} or 0-3")
        return PRIORITIES[value.strip().lower()]
    return value


def _as_list(value: Any) -> Any:
    return value if value is None or isinstance(value, (list, dict)) else [value]


def _kind(value: Any) -> str:
    return "per_method" if isinstance(value, dict) else "value"


# A value, or a dict {"*": default, "<method>": value} of them.
PerMethod = Annotated[
    Union[Annotated[T, Tag("value")], Annotated[dict[str, T], Tag("per_method")]],  # noqa: UP007 (Tag needs a real Union)
    Discriminator(_kind),
]
Callables = Annotated[
    Union[Callable[..., Any], list[Callable[..., Any]]],  # noqa: UP007 (as above)
    AfterValidator(_as_list),
]


def _serializer_installed(name: str) -> str:
    # msgpack is an optional extra: say how to get it where the option is given.
    if name == "msgpack" and importlib.util.find_spec("msgpack") is None:
        raise ValueError(
            "serializer='msgpack' needs the msgpack package: pip install 'aioconc[msgpack]'"
        )
    return name


class _Layer(BaseModel):
    """The common options of one layer; anything else is kept as an extra."""

    model_config = ConfigDict(extra="allow", title="options")

    mode: Annotated[Any, PlainValidator(_parse_mode)] = None
    blocking: bool = False
    max_workers: NonNegativeInt | None = None
    load_balancing: LoadBalancingAlgorithm = LoadBalancingAlgorithm.RoundRobin
    on_demand: bool = False
    max_queued_tasks: NonNegativeInt | None = None
    unwrap_futures: bool = True
    num_retries: PerMethod[NonNegativeInt] = 0
    retry_on: PerMethod[Callables] = Field(default_factory=list)
    retry_algorithm: PerMethod[RetryAlgorithm] = RetryAlgorithm.Exponential
    retry_wait: PerMethod[NonNegativeFloat] = 1.0
    retry_jitter: PerMethod[Annotated[float, Field(ge=0, le=1)]] = 0.3
    retry_until: PerMethod[Callables | None] = None
    stop_timeout: NonNegativeFloat = 30.0
    limits: Any = None
    priority: Annotated[int, BeforeValidator(_parse_priority), Field(ge=0, le=3)] = 2
    timeout: PositiveFloat | None = None
    serializer: Annotated[
        Literal["cloudpickle", "json", "msgpack"], AfterValidator(_serializer_installed)
    ] = "cloudpickle"
    mp_context: Literal["fork", "spawn", "forkserver"] = "forkserver"
    actor_options: dict[str, Any] | None = None
    start_timeout: NonNegativeFloat | None = None
    process_worker_result_queue_timeout: NonNegativeFloat | None = None


def validate_options(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Return the options in ``kwargs`` validated and coerced, and only those.

    Raises ``pydantic.ValidationError`` naming the field for an invalid value
    (negative counts, ``retry_jitter`` outside [0, 1], an unknown mode or
    algorithm, ...).  ``mode="auto"`` and unknown keys pass unchanged: they are
    rejected by :func:`resolve_options`, once the mode is known.
    """
    layer = _Layer.model_validate(kwargs)
    known = type(layer).model_fields
    return {key: getattr(layer, key) if key in known else kwargs[key] for key in kwargs}


# ---------------------------------------------------------------------------
# Resolution of all layers
# ---------------------------------------------------------------------------


def _merge(layers: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for layer in reversed(layers):  # lowest precedence first, so higher ones overwrite
        merged.update(validate_options(layer))
    return merged


def _mode_of(merged: Mapping[str, Any]) -> ExecutionMode:
    mode = merged.get("mode")
    if mode is None:
        raise ValueError(
            "mode is required: pass it to .options(mode=...), @worker(mode=...) or as a "
            "class keyword (class C(Worker, mode=...))"
        )
    if not isinstance(mode, ExecutionMode):
        raise ValueError(
            f"mode={mode!r} is not supported: choose sync, asyncio, thread, process or ray"
        )
    return mode


def _extras(
    merged: Mapping[str, Any],
    mode: ExecutionMode,
    mode_specific: AbstractSet[str] | Mapping[ExecutionMode, AbstractSet[str]],
) -> dict[str, Any]:
    allowed = (
        mode_specific.get(mode, frozenset())
        if isinstance(mode_specific, Mapping)
        else mode_specific
    )
    extra = {key: value for key, value in merged.items() if key not in _COMMON}
    for key in extra:
        if key not in allowed:
            choices = ", ".join(sorted(allowed)) or "none"
            raise ValueError(
                f"option {key!r} is not supported in {mode} mode (accepted: {choices})"
            )
    for alias, key in _EXTRA_ALIASES.items():
        if alias in extra:
            extra.setdefault(key, extra[alias])
    for key, field in _EXTRA_DEFAULTS.items():
        value = config.resolve(mode, field)
        if key in allowed and key not in extra and value is not None:
            extra[key] = value
    return extra


def _check_per_method(merged: Mapping[str, Any], method_names: Collection[str] | None) -> None:
    for name in RETRY_OPTIONS:
        value = merged.get(name)
        if not isinstance(value, dict):
            continue
        if "*" not in value:
            raise ValueError(f"{name} dict must have a '*' key for the default value")
        unknown = sorted(set(value) - {"*"} - set(method_names or value))
        if unknown:
            raise ValueError(f"{name} dict names unknown methods: {', '.join(unknown)}")


def _check_pool(mode: ExecutionMode, max_workers: int | None, on_demand: bool) -> None:
    if mode not in _NO_POOL_MODES:
        return
    if max_workers not in (None, 0, 1):
        raise ValueError(f"max_workers must be 1 in {mode} mode, got {max_workers}")
    if on_demand:
        raise ValueError(f"on_demand=True is not supported in {mode} mode")


def _force_sync() -> bool:
    return bool(config.global_config.defaults.force_sync) or _runtime.force_sync()


def resolve_options(
    layers: Sequence[Mapping[str, Any]],
    *,
    mode_specific: AbstractSet[str] | Mapping[ExecutionMode, AbstractSet[str]],
    method_names: Collection[str] | None = None,
) -> Options:
    """Merge ``layers`` (highest precedence first) with the configuration.

    ``mode_specific`` is the set of extra options the mode accepts, or a mapping
    from each mode to its set; ``method_names``, when given, are the methods a
    per-method retry dict may name.  Under force-sync (``global_config.defaults.
    force_sync`` or ``AIOCONC_FORCE_SYNC=1``) the worker becomes one sync worker.

    Raises ``pydantic.ValidationError`` for an invalid value and ``ValueError``
    when no layer gives a mode ("mode is required"), for ``mode="auto"``, for an
    extra the mode does not accept, for a per-method dict without ``"*"`` or
    naming an unknown method, and for a pool or ``on_demand`` in sync/asyncio mode.
    """
    merged = _merge(layers)
    mode = _mode_of(merged)
    extra = _extras(merged, mode, mode_specific)
    _check_per_method(merged, method_names)
    if _force_sync():
        mode, extra = ExecutionMode.Sync, {}
        merged.update(max_workers=1, on_demand=False)
    values = {
        name: merged[name] if name in merged else config.resolve(mode, name)
        for name in _FROM_CONFIG
    }
    _check_pool(mode, values["max_workers"], values["on_demand"])
    balancing = "load_balancing_on_demand" if values["on_demand"] else "load_balancing"
    return Options(
        mode=mode,
        load_balancing=merged.get("load_balancing", config.resolve(mode, balancing)),
        retry_on=_as_list(values.pop("retry_on")),
        retry_until=_as_list(values.pop("retry_until")),
        limits=merged.get("limits"),
        priority=merged.get("priority", PRIORITIES["normal"]),
        timeout=merged.get("timeout"),
        serializer=merged.get("serializer", "cloudpickle"),
        extra=types.MappingProxyType(extra),
        **values,
    )
