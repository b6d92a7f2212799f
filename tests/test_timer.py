"""Timer: conformance items 263-266, on an injected clock."""

from __future__ import annotations

import logging
import re
from datetime import timedelta

import pytest

from aioconc._exceptions import AioconcError
from aioconc._timer import Timer, TimerError, human_seconds

SEC = 1_000_000_000


class FakeClock:
    """A nanosecond clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 5 * SEC

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += round(seconds * SEC)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


# ---- 263: elapsed time ---------------------------------------------------------


def test_context_manager_measures_elapsed_time(clock: FakeClock) -> None:
    with Timer(task="t", silent=True, clock=clock) as tm:
        clock.advance(1.5)
    clock.advance(10)  # after stop() the reading is frozen
    assert tm.has_started
    assert tm.has_stopped
    assert tm.time_taken_ns == 1_500_000_000
    assert tm.time_taken_us == 1_500_000.0
    assert tm.time_taken_ms == 1_500.0
    assert tm.time_taken_sec == 1.5
    assert tm.time_taken_td == timedelta(seconds=1.5)
    assert tm.time_taken_str == "1.5 seconds"
    assert tm.time_taken_human == "1.5 seconds"
    assert repr(tm) == "Timer(task='t', stopped, 1.5 seconds)"


def test_a_running_timer_reads_time_so_far(clock: FakeClock) -> None:
    tm = Timer(silent=True, clock=clock)
    assert repr(tm) == "Timer(task='', not started)"
    tm.start()
    clock.advance(2)
    assert tm.time_taken_sec == 2.0
    clock.advance(1)
    assert tm.time_taken_sec == 3.0
    assert not tm.has_stopped
    assert tm.start_datetime is not None
    assert tm.end_datetime is None


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0 seconds"),
        (3e-7, "300.0 nanoseconds"),
        (4.2e-5, "42.0 microseconds"),
        (0.0042, "4.2 milliseconds"),
        (1.234, "1.23 seconds"),
        (90, "1.5 mins"),
        (5400, "1.5 hours"),
        (2 * 86_400, "2.0 days"),
    ],
)
def test_human_readable_durations(seconds: float, text: str) -> None:
    assert human_seconds(seconds) == text


# ---- 264: misuse raises TimerError ---------------------------------------------


def test_timer_error_is_an_aioconc_error() -> None:
    assert issubclass(TimerError, AioconcError)


def test_stopping_an_unstarted_timer_raises(clock: FakeClock) -> None:
    with pytest.raises(TimerError, match="not been started"):
        Timer(silent=True, clock=clock).stop()


def test_starting_twice_raises(clock: FakeClock) -> None:
    tm = Timer(silent=True, clock=clock)
    tm.start()
    with pytest.raises(TimerError, match="already started"):
        tm.start()


def test_stopping_twice_raises(clock: FakeClock) -> None:
    tm = Timer(silent=True, clock=clock)
    tm.start()
    tm.stop()
    with pytest.raises(TimerError, match="already stopped"):
        tm.stop()
    with pytest.raises(TimerError):
        tm.alert()


@pytest.mark.parametrize(
    "attr",
    [
        "time_taken_ns",
        "time_taken_us",
        "time_taken_ms",
        "time_taken_sec",
        "time_taken_td",
        "time_taken_str",
    ],
)
def test_reading_before_start_raises(clock: FakeClock, attr: str) -> None:
    with pytest.raises(TimerError):
        getattr(Timer(silent=True, clock=clock), attr)


# ---- 265: messages -------------------------------------------------------------

ISO = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}[+-]\d\d:\d\d"


def test_logger_gets_start_and_end_messages(clock: FakeClock) -> None:
    sent: list[str] = []
    with Timer(task="load", logger=sent.append, clock=clock) as tm:
        clock.advance(2)
        tm.alert("halfway")
    assert len(sent) == 3
    assert re.fullmatch(rf"\(load\) Started at {ISO}\.\.\.", sent[0])
    assert sent[1] == "(load) Timer has been running for 2.0 seconds. halfway"
    assert sent[2] == "(load) ...completed in 2.0 seconds."


def test_single_line_sends_one_message(clock: FakeClock) -> None:
    sent: list[str] = []
    with Timer(logger=sent.append, single_line=True, clock=clock):
        clock.advance(0.25)
    assert len(sent) == 1
    assert re.fullmatch(rf"Started at {ISO}, completed in 250.0 milliseconds\.", sent[0])


@pytest.mark.parametrize("kwargs", [{"silent": True}, {"logger": False}])
def test_silent_or_no_logger_sends_nothing(clock: FakeClock, kwargs: dict[str, bool]) -> None:
    sent: list[str] = []
    logger = sent.append if "silent" in kwargs else False
    with Timer(task="t", clock=clock, **{**kwargs, "logger": logger}):  # type: ignore[arg-type]
        clock.advance(1)
    assert sent == []


@pytest.mark.parametrize(
    ("i", "max_i", "prefix"),
    [(4, 10, "[05/10] "), (0, 100, "[001/100] "), (8, 9, "[9/9] "), (3, None, "[3] ")],
)
def test_i_and_max_i_add_a_padded_prefix(
    clock: FakeClock, i: int, max_i: int | None, prefix: str
) -> None:
    sent: list[str] = []
    with Timer(task="b", logger=sent.append, i=i, max_i=max_i, clock=clock):
        pass
    assert all(m.startswith(f"(b) {prefix}") for m in sent)


@pytest.mark.parametrize(("i", "max_i"), [(10, 10), (-1, 5)])
def test_i_out_of_range_raises(i: int, max_i: int) -> None:
    with pytest.raises(ValueError):
        Timer(i=i, max_i=max_i)


def test_default_logger_is_the_aioconc_logger_not_print(
    clock: FakeClock, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    with caplog.at_level(logging.INFO, logger="aioconc"), Timer(task="quiet", clock=clock):
        clock.advance(1)
    assert [r.name for r in caplog.records] == ["aioconc", "aioconc"]
    assert caplog.records[-1].getMessage() == "(quiet) ...completed in 1.0 seconds."
    assert capsys.readouterr().out == ""


# ---- 266: time_taken(fmt) ------------------------------------------------------


@pytest.mark.parametrize(
    ("fmts", "expected"),
    [
        (["s", "sec", "seconds"], 1.5),
        (["ms", "milli", "millis", "millisec", "milliseconds"], 1_500.0),
        (["us", "micro", "micros", "microsec", "microseconds"], 1_500_000.0),
        (["ns", "nano", "nanos", "nanosec", "nanoseconds"], 1_500_000_000),
        (["str", "string", str], "1.5 seconds"),
        (["td", "dt", "datetime", "timedelta"], timedelta(seconds=1.5)),
    ],
)
def test_time_taken_accepts_formats_and_aliases(
    clock: FakeClock, fmts: list[object], expected: object
) -> None:
    with Timer(silent=True, clock=clock) as tm:
        clock.advance(1.5)
    for fmt in fmts:
        assert tm.time_taken(fmt) == expected, fmt


@pytest.mark.parametrize("fmt", ["minutes", "", None, ["s"]])
def test_time_taken_rejects_unknown_formats(clock: FakeClock, fmt: object) -> None:
    with Timer(silent=True, clock=clock) as tm:
        pass
    with pytest.raises(ValueError, match="unknown time format"):
        tm.time_taken(fmt)
