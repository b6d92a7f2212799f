"""``Timer``: measure how long a block takes, as concurry's ``Timer`` does.

``with Timer(task="load", silent=True) as tm: ...`` then ``tm.time_taken_sec``.
Time comes from ``time.perf_counter_ns`` unless a ``clock`` (a callable
returning nanoseconds) is given, which is how the tests control time.  Messages
go to ``logging.getLogger("aioconc").info`` by default; aioconc never prints.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, final

from ._exceptions import AioconcError

__all__ = ["Timer", "TimerError"]

_LOGGER = logging.getLogger("aioconc")

# Larger units first: a duration is shown in the largest unit in which it is >= 1.
_HUMAN_UNITS: tuple[tuple[str, float], ...] = (
    ("days", 86_400.0),
    ("hours", 3_600.0),
    ("mins", 60.0),
    ("seconds", 1.0),
    ("milliseconds", 1e-3),
    ("microseconds", 1e-6),
    ("nanoseconds", 1e-9),
)

# time_taken(fmt): every spelling concurry documents, mapped to one canonical name.
_FORMATS: dict[object, str] = {
    str: "str",
    **dict.fromkeys(("str", "string"), "str"),
    **dict.fromkeys(("s", "sec", "seconds"), "s"),
    **dict.fromkeys(("ms", "milli", "millis", "millisec", "milliseconds"), "ms"),
    **dict.fromkeys(("us", "micro", "micros", "microsec", "microseconds"), "us"),
    **dict.fromkeys(("ns", "nano", "nanos", "nanosec", "nanoseconds"), "ns"),
    **dict.fromkeys(("dt", "td", "datetime", "timedelta"), "td"),
}


class TimerError(AioconcError):
    """Raised by ``Timer`` when it is used out of order: started twice, stopped
    before ``start()`` or twice, or read before ``start()``."""


def human_seconds(seconds: float) -> str:
    """Return ``seconds`` as text in the largest unit where it is at least 1,
    rounded to 2 decimals: ``90`` -> ``"1.5 mins"``, ``0.0042`` -> ``"4.2 milliseconds"``."""
    for name, size in _HUMAN_UNITS:
        value = round(seconds / size, 2)
        if value >= 1:
            return f"{value} {name}"
    return f"{seconds} seconds"


@final
class Timer:
    """Measures the time between ``start()`` and ``stop()`` (or a ``with`` block).

    ``task`` names the work in messages; ``logger`` is called with the start and
    end messages (default: the ``"aioconc"`` logger at INFO; ``False`` sends
    nothing); ``silent=True`` suppresses them; ``single_line=True`` sends one
    message at the end.  ``i`` (0-based) and ``max_i`` prefix messages with
    ``"[i+1/max_i]"``, zero-padded to the width of ``max_i``; ``i`` alone gives
    ``"[i]"``.  ``clock`` returns nanoseconds.

    Raises ``ValueError`` if ``i`` is negative or not below ``max_i``.
    """

    __slots__ = (
        "_clock",
        "_end_dt",
        "_end_ns",
        "_logger",
        "_start_dt",
        "_start_ns",
        "i",
        "max_i",
        "silent",
        "single_line",
        "task",
    )

    def __init__(
        self,
        task: str = "",
        *,
        logger: Callable[[str], Any] | bool | None = None,
        silent: bool = False,
        single_line: bool = False,
        i: int | None = None,
        max_i: int | None = None,
        clock: Callable[[], int] = time.perf_counter_ns,
    ) -> None:
        if i is not None and (i < 0 or (max_i is not None and i >= max_i)):
            raise ValueError(f"Timer needs 0 <= i < max_i; got i={i}, max_i={max_i}")
        self.task = task
        self.silent = silent
        self.single_line = single_line
        self.i = i
        self.max_i = max_i
        if logger is None or logger is True:
            self._logger: Callable[[str], Any] | None = _LOGGER.info
        else:
            self._logger = logger or None
        self._clock = clock
        self._start_ns: int | None = None
        self._end_ns: int | None = None
        self._start_dt: datetime | None = None
        self._end_dt: datetime | None = None

    # ---- state ------------------------------------------------------------

    @property
    def has_started(self) -> bool:
        """Whether ``start()`` has been called."""
        return self._start_ns is not None

    @property
    def has_stopped(self) -> bool:
        """Whether ``stop()`` has been called."""
        return self._end_ns is not None

    @property
    def start_datetime(self) -> datetime | None:
        """Local wall-clock time of ``start()``, or None before it."""
        return self._start_dt

    @property
    def end_datetime(self) -> datetime | None:
        """Local wall-clock time of ``stop()``, or None before it."""
        return self._end_dt

    def start(self) -> None:
        """Start timing and send the start message.  Raises ``TimerError`` if already started."""
        if self._start_ns is not None:
            raise TimerError(f"Timer {self.task!r} was already started at {self._start_dt}")
        self._start_dt = datetime.now().astimezone()
        self._start_ns = self._clock()
        if not self.single_line:
            self._log(f"Started at {self._start_dt.isoformat(timespec='microseconds')}...")

    def stop(self) -> None:
        """Stop timing and send the end message.

        Raises ``TimerError`` if the timer was not started or is already stopped.
        """
        self._require_running()
        self._end_ns = self._clock()
        self._end_dt = datetime.now().astimezone()
        taken = human_seconds(self.time_taken_sec)
        if self.single_line and self._start_dt is not None:
            started = self._start_dt.isoformat(timespec="microseconds")
            self._log(f"Started at {started}, completed in {taken}.")
        else:
            self._log(f"...completed in {taken}.")

    def alert(self, text: str | None = None) -> None:
        """Send a message with the time elapsed so far, and ``text`` if given.

        Raises ``TimerError`` if the timer is not running.
        """
        self._require_running()
        message = f"Timer has been running for {human_seconds(self.time_taken_sec)}."
        self._log(f"{message} {text}" if text else message)

    def __enter__(self) -> Timer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ---- elapsed time ------------------------------------------------------

    @property
    def time_taken_ns(self) -> int:
        """Nanoseconds from ``start()`` to ``stop()`` (or to now, while running).

        Raises ``TimerError`` before ``start()``.
        """
        if self._start_ns is None:
            raise TimerError(f"Timer {self.task!r} has not been started; call start() first")
        end = self._end_ns if self._end_ns is not None else self._clock()
        return end - self._start_ns

    @property
    def time_taken_us(self) -> float:
        """Elapsed microseconds.  Raises ``TimerError`` before ``start()``."""
        return self.time_taken_ns / 1e3

    @property
    def time_taken_ms(self) -> float:
        """Elapsed milliseconds.  Raises ``TimerError`` before ``start()``."""
        return self.time_taken_ns / 1e6

    @property
    def time_taken_sec(self) -> float:
        """Elapsed seconds.  Raises ``TimerError`` before ``start()``."""
        return self.time_taken_ns / 1e9

    @property
    def time_taken_td(self) -> timedelta:
        """Elapsed time as a ``timedelta`` (microsecond resolution).

        Raises ``TimerError`` before ``start()``.
        """
        return timedelta(microseconds=self.time_taken_us)

    @property
    def time_taken_str(self) -> str:
        """Elapsed time as text, e.g. ``"1.5 mins"``.  Raises ``TimerError`` before ``start()``."""
        return human_seconds(self.time_taken_sec)

    time_taken_human = time_taken_str

    def time_taken(self, fmt: object) -> timedelta | int | float | str:
        """Elapsed time in format ``fmt``: ``"s"``, ``"ms"``, ``"us"``, ``"ns"``, ``"str"``
        or ``"td"``, or an alias concurry accepts (``"sec"``, ``"millis"``, ``"timedelta"``, ...).

        Raises ``ValueError`` for an unknown format, ``TimerError`` before ``start()``.
        """
        try:
            canonical = _FORMATS[fmt]
        except (KeyError, TypeError):
            raise ValueError(
                f"unknown time format {fmt!r}; expected one of s, ms, us, ns, str, td"
            ) from None
        readers: dict[str, Callable[[], timedelta | int | float | str]] = {
            "str": lambda: self.time_taken_str,
            "s": lambda: self.time_taken_sec,
            "ms": lambda: self.time_taken_ms,
            "us": lambda: self.time_taken_us,
            "ns": lambda: self.time_taken_ns,
            "td": lambda: self.time_taken_td,
        }
        return readers[canonical]()

    # ---- messages ----------------------------------------------------------

    def _require_running(self) -> None:
        if self._start_ns is None:
            raise TimerError(f"Timer {self.task!r} has not been started; call start() first")
        if self._end_ns is not None:
            raise TimerError(f"Timer {self.task!r} was already stopped at {self._end_dt}")

    def _prefix(self) -> str:
        out = f"({self.task}) " if self.task else ""
        if self.i is not None and self.max_i is not None:
            width = len(str(self.max_i))
            out += f"[{self.i + 1:0{width}d}/{self.max_i:0{width}d}] "
        elif self.i is not None:
            out += f"[{self.i}] "
        return out

    def _log(self, message: str) -> None:
        if self._logger is not None and not self.silent:
            self._logger(self._prefix() + message)

    def __repr__(self) -> str:
        if self._start_ns is None:
            state = "not started"
        else:
            running = "running" if self._end_ns is None else "stopped"
            state = f"{running}, {self.time_taken_str}"
        return f"Timer(task={self.task!r}, {state})"
