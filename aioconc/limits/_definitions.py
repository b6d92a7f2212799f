"""The limit definitions: frozen value objects that say what to enforce.

A ``Limit`` only describes a constraint; it holds no state and cannot be acquired.
``LimitSet`` turns definitions into enforcers; ``make_state`` gives the state
machine (``_algorithms.py``) that enforces one.  All three kinds are frozen pydantic
models, so they compare by value, hash and pickle, and every invalid argument raises
``pydantic.ValidationError`` (a ``ValueError``) naming the field.

``RateLimit.window`` is stored as a positive, finite number of seconds.  The
constructor also accepts a ``RateWindow`` member or one of its aliases ("hour",
"per_minute", ...), the readability alias ``per=`` and the deprecated
``window_seconds=``.
"""

from __future__ import annotations

import math
import time
import warnings
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from .._enums import RateLimitAlgorithm, RateWindow
from ._algorithms import RateState, ResourceState, UnboundedState, state_class

__all__ = ["CALL_LIMIT_KEY", "CallLimit", "Limit", "RateLimit", "ResourceLimit", "make_state"]

CALL_LIMIT_KEY = "call_count"

# How far ``warnings.warn`` must climb from the validator to reach the user's
# ``RateLimit(...)`` line: validator -> BaseModel.__init__ -> caller.
_WARN_STACKLEVEL = 3


def _default_algorithm() -> RateLimitAlgorithm:
    """Return ``global_config.defaults.rate_limit_algorithm``, else SlidingWindow.

    Imported here, not at module level: the config module imports the limit types.
    """
    try:
        from ..config import global_config  # type: ignore[import-not-found,unused-ignore]

        configured = global_config.defaults.rate_limit_algorithm
    except (ImportError, AttributeError):
        return RateLimitAlgorithm.SlidingWindow
    return RateLimitAlgorithm(RateLimitAlgorithm.parse(configured))


def _positive(name: str, value: object) -> float:
    """Return ``value`` as a positive finite float, or raise ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


def _format_number(value: float) -> str:
    """Render ``value`` as an int when integral, ``inf`` when infinite, else its repr."""
    if math.isinf(value):
        return "inf"
    return str(int(value)) if value == int(value) else repr(value)


class Limit(BaseModel):
    """Base of every limit definition: ``key`` names the limit inside a ``LimitSet``.

    Use one of the subclasses; a ``Limit`` is a definition, never an enforcer.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str
    # The LimitSet this copy was read from (``limit_set[key]``); None for a
    # definition made on its own.  Not part of the value: ignored by ==, hash
    # and pickling.
    _owner: Any = PrivateAttr(default=None)

    def get_stats(self) -> dict[str, Any]:
        """This limit's live statistics (``available``, ``capacity``, ...).

        Read from a set (``limit_set[key]``, ``self.limits[0][key]`` in a worker)
        it reports that set's state; a definition made on its own reports a
        fresh, unused limit.
        """
        owner = self._owner
        if owner is None:  # what a set of this one limit, just made, reports
            return {"key": self.key, **make_state(self).stats(time.monotonic())}
        stats: dict[str, Any] = owner.get_stats()[self.key]
        return stats

    def can_acquire(self, amount: float = 1) -> bool:
        """Whether ``amount`` units could be taken now (nothing is taken)."""
        return bool(amount <= self.get_stats()["available"])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Limit):
            return NotImplemented
        return type(self) is type(other) and self.__dict__ == other.__dict__

    def __hash__(self) -> int:
        return hash((type(self), *self.__dict__.values()))

    def __getstate__(self) -> dict[Any, Any]:
        state = super().__getstate__()
        private = state.get("__pydantic_private__")
        if private and private.get("_owner") is not None:
            state = {**state, "__pydantic_private__": {**private, "_owner": None}}
        return state


class RateLimit(Limit):
    """At most ``capacity`` units per ``window`` seconds, admitted by ``algorithm``.

    Parameters:
        key: the name requests use, e.g. ``"input_tokens"``.
        window: seconds (> 0), a ``RateWindow`` or an alias such as ``"minute"``;
            ``per=`` is the same parameter, ``window_seconds=`` its deprecated name.
        capacity: units per window (> 0); may be fractional, or ``inf``.
        algorithm: a ``RateLimitAlgorithm`` or alias; ``None`` or omitted means
            ``global_config.defaults.rate_limit_algorithm`` at construction time.

    Raises:
        ValueError: (a ``pydantic.ValidationError``) for a missing, boolean,
            non-positive or unknown window, a non-positive capacity, an unknown
            algorithm, or both ``window`` and ``per``/``window_seconds``.

    ``capacity=True`` is taken as 1, as concurry does.  ``window_seconds=`` emits
    ``DeprecationWarning``.
    """

    window: float
    capacity: float = Field(gt=0)
    algorithm: RateLimitAlgorithm = Field(default_factory=_default_algorithm)

    if TYPE_CHECKING:  # the signature callers see; pydantic builds the real one

        def __init__(
            self,
            *,
            key: str,
            capacity: float,
            window: float | RateWindow | str | None = None,
            per: float | RateWindow | str | None = None,
            window_seconds: float | None = None,
            algorithm: RateLimitAlgorithm | str | None = None,
        ) -> None: ...

    @model_validator(mode="before")
    @classmethod
    def _resolve_window_aliases(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        given = {k: data.pop(k) for k in ("window", "per", "window_seconds") if k in data}
        given = {k: v for k, v in given.items() if v is not None}
        if len(given) > 1:
            raise ValueError(
                f"window: pass only one of {' / '.join(f'{k}=' for k in given)}"
                " (per= and window_seconds= are aliases of window=)"
            )
        if "window_seconds" in given:
            warnings.warn(
                "RateLimit(window_seconds=...) is deprecated; use window=...",
                DeprecationWarning,
                stacklevel=_WARN_STACKLEVEL,
            )
        if given:
            data["window"] = next(iter(given.values()))
        return data

    @field_validator("window", mode="before")
    @classmethod
    def _parse_window(cls, value: object) -> float:
        if isinstance(value, RateWindow):
            return value.to_seconds()
        if isinstance(value, str):
            return RateWindow(RateWindow.parse(value)).to_seconds()
        return _positive("window (seconds)", value)

    @field_validator("capacity", mode="before")
    @classmethod
    def _bool_capacity(cls, value: object) -> object:
        # concurry takes True as 1 (False stays invalid: not > 0).
        return int(value) if isinstance(value, bool) else value

    @field_validator("algorithm", mode="before")
    @classmethod
    def _parse_algorithm(cls, value: object) -> RateLimitAlgorithm:
        if value is None:
            return _default_algorithm()
        return RateLimitAlgorithm(RateLimitAlgorithm.parse(value))

    def params_signature(self) -> str:
        """Return a short string that differs whenever capacity, window or algorithm do.

        Format ``c{capacity}w{window seconds}{first 3 letters of the algorithm}``,
        numbers as ints when integral: ``"c300w60sli"``, ``"c2.5w0.5tok"``,
        ``"cinfw1gcr"``.  The key is not part of it.
        """
        algo = self.algorithm.name[:3].lower()
        return f"c{_format_number(self.capacity)}w{_format_number(self.window)}{algo}"


class CallLimit(RateLimit):
    """A ``RateLimit`` on the number of calls; its key is always ``"call_count"``.

    Takes the same parameters as ``RateLimit`` except ``key``: any key given is
    replaced by ``"call_count"``, as in concurry.  Raises as ``RateLimit`` does.
    """

    key: str = CALL_LIMIT_KEY

    if TYPE_CHECKING:

        def __init__(
            self,
            *,
            capacity: float,
            window: float | RateWindow | str | None = None,
            per: float | RateWindow | str | None = None,
            window_seconds: float | None = None,
            algorithm: RateLimitAlgorithm | str | None = None,
            key: str = CALL_LIMIT_KEY,
        ) -> None: ...

    @model_validator(mode="before")
    @classmethod
    def _force_call_count_key(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = {**data, "key": CALL_LIMIT_KEY}
        return data


class ResourceLimit(Limit):
    """At most ``capacity`` holders at once (a semaphore), with no time component.

    Raises:
        ValueError: (a ``pydantic.ValidationError`` on ``capacity``) unless capacity
            is an integer >= 1; fractional numbers and ``False`` are rejected
            (``True`` is 1, as in concurry).
    """

    capacity: int = Field(ge=1)

    if TYPE_CHECKING:

        def __init__(self, *, key: str, capacity: int) -> None: ...

    @field_validator("capacity", mode="before")
    @classmethod
    def _bool_capacity(cls, value: object) -> object:
        # As RateLimit: True is 1, False is rejected (< 1).
        return int(value) if isinstance(value, bool) else value


def make_state(limit: Limit) -> RateState | ResourceState:
    """A fresh state object enforcing ``limit``.

    Raises ``TypeError`` for a kind of limit with no state (a bare ``Limit``).
    """
    if isinstance(limit, ResourceLimit):
        return ResourceState(limit.capacity)
    if not isinstance(limit, RateLimit):
        raise TypeError(f"cannot enforce {type(limit).__name__}: not a known limit kind")
    if math.isinf(limit.capacity):
        return UnboundedState(limit.capacity, limit.window)
    return state_class(limit.algorithm)(limit.capacity, limit.window)
