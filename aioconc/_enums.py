"""The enumerations of the public API, with the aliases concurry users type.

Every enum here is a ``str`` enum whose value is its member name, so a member
compares equal to that name and serialises as it.  Parsing is case-insensitive
and accepts the documented aliases: ``ExecutionMode("procs") is
ExecutionMode.Processes``.  An unknown name raises ``ValueError`` listing the
accepted ones.
"""

from __future__ import annotations

import enum
from typing import ClassVar

__all__ = [
    "ExecutionMode",
    "LoadBalancingAlgorithm",
    "PollingAlgorithm",
    "RateLimitAlgorithm",
    "RateWindow",
    "RetryAlgorithm",
    "ReturnWhen",
]


def _norm(text: str) -> str:
    return text.strip().lower().replace("-", "_").replace(" ", "_")


class _AliasEnum(str, enum.Enum):
    """A ``str`` enum parsed case-insensitively from its name or an alias."""

    # Filled in per subclass: alias -> member name.  A ClassVar so Enum leaves it alone.
    _aliases_: ClassVar[dict[str, str]]

    @classmethod
    def _missing_(cls, value: object) -> _AliasEnum | None:
        if not isinstance(value, str):
            return None
        key = _norm(value)
        for member in cls:
            if _norm(member.name) == key:
                return member
        name = cls._alias_table().get(key)
        return cls[name] if name is not None else None

    @classmethod
    def _alias_table(cls) -> dict[str, str]:
        return {_norm(k): v for k, v in getattr(cls, "_aliases_", {}).items()}

    @classmethod
    def parse(cls, value: object) -> _AliasEnum:
        """Return the member ``value`` names, or raise ``ValueError`` listing the choices."""
        try:
            return cls(value)
        except ValueError:
            names = sorted({m.name for m in cls} | set(cls._alias_table()))
            raise ValueError(
                f"Could not find enum with value {value!r}: not a valid {cls.__name__}; "
                f"expected one of {', '.join(names)}"
            ) from None

    def __str__(self) -> str:
        return self.name


class ExecutionMode(_AliasEnum):
    """Where a worker runs: ``sync``, ``asyncio``, ``thread``, ``process`` or ``ray``."""

    Sync = "Sync"
    Asyncio = "Asyncio"
    Threads = "Threads"
    Processes = "Processes"
    Ray = "Ray"


ExecutionMode._aliases_ = {
    "synchronous": "Sync",
    "async": "Asyncio",
    "asynchronous": "Asyncio",
    "thread": "Threads",
    "process": "Processes",
    "proc": "Processes",
    "procs": "Processes",
}


class LoadBalancingAlgorithm(_AliasEnum):
    """How a pool picks the worker for each call."""

    RoundRobin = "RoundRobin"
    LeastActiveLoad = "LeastActiveLoad"
    LeastTotalLoad = "LeastTotalLoad"
    Random = "Random"


LoadBalancingAlgorithm._aliases_ = {
    "rr": "RoundRobin",
    "round_robin": "RoundRobin",
    "active": "LeastActiveLoad",
    "least_active": "LeastActiveLoad",
    "least_active_load": "LeastActiveLoad",
    "total": "LeastTotalLoad",
    "least_total": "LeastTotalLoad",
    "least_total_load": "LeastTotalLoad",
    "rand": "Random",
}


class RateLimitAlgorithm(_AliasEnum):
    """The algorithm a ``RateLimit`` uses to admit requests."""

    TokenBucket = "TokenBucket"
    LeakyBucket = "LeakyBucket"
    SlidingWindow = "SlidingWindow"
    FixedWindow = "FixedWindow"
    GCRA = "GCRA"


RateLimitAlgorithm._aliases_ = {
    "token": "TokenBucket",
    "token_bucket": "TokenBucket",
    "leaky": "LeakyBucket",
    "leaky_bucket": "LeakyBucket",
    "sliding": "SlidingWindow",
    "sliding_window": "SlidingWindow",
    "fixed": "FixedWindow",
    "fixed_window": "FixedWindow",
    "generic_cell_rate_algorithm": "GCRA",
    "generic_cell_rate": "GCRA",
}


class RateWindow(_AliasEnum):
    """Named rate-limit windows; ``to_seconds()`` gives their length.

    There is deliberately no month: months differ in length.
    """

    Secondly = "Secondly"
    Minutely = "Minutely"
    Hourly = "Hourly"
    Daily = "Daily"
    Weekly = "Weekly"

    def to_seconds(self) -> float:
        """Return the window's length in seconds."""
        return _WINDOW_SECONDS[self.name]


_WINDOW_SECONDS = {
    "Secondly": 1.0,
    "Minutely": 60.0,
    "Hourly": 3600.0,
    "Daily": 86400.0,
    "Weekly": 604800.0,
}


def _window_aliases() -> dict[str, str]:
    forms = {
        "Secondly": ("second", "seconds", "sec", "secs"),
        "Minutely": ("minute", "minutes", "min", "mins"),
        "Hourly": ("hour", "hours", "hr", "hrs"),
        "Daily": ("day", "days"),
        "Weekly": ("week", "weeks", "wk", "wks"),
    }
    table: dict[str, str] = {}
    for member, words in forms.items():
        for word in words:
            table[word] = member
            table[f"per_{word}"] = member
    return table


RateWindow._aliases_ = _window_aliases()


class RetryAlgorithm(_AliasEnum):
    """Backoff between retry attempts."""

    Linear = "Linear"
    Exponential = "Exponential"
    Fibonacci = "Fibonacci"


class PollingAlgorithm(_AliasEnum):
    """Accepted for compatibility; aioconc waits on events and never polls."""

    Fixed = "Fixed"
    Adaptive = "Adaptive"
    Exponential = "Exponential"
    Progressive = "Progressive"


class ReturnWhen(_AliasEnum):
    """When ``wait`` returns."""

    ALL_COMPLETED = "ALL_COMPLETED"
    FIRST_COMPLETED = "FIRST_COMPLETED"
    FIRST_EXCEPTION = "FIRST_EXCEPTION"


ReturnWhen._aliases_ = {
    "all": "ALL_COMPLETED",
    "first": "FIRST_COMPLETED",
    "exception": "FIRST_EXCEPTION",
}
