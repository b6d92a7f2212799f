"""The benchmarks' targets are SPEC.md §2's, and their one way of timing (benchmarks/)."""

from __future__ import annotations

import math

import pytest

from benchmarks import _run, _timing
from benchmarks._table import Target

# SPEC.md §2, written out figure by figure: "≥ 3x ThreadPoolExecutor(1)" is the thread
# burst's bound on aioconc ÷ baseline; a time ratio (round trip, start-up) has an upper one.
SPEC = {
    "sync": {
        "burst/concurry": Target(">=", 3.0),
        "round trip/concurry": Target("<=", 0.33),  # at least 3x concurry's speed
    },
    "asyncio": {
        "burst/raw": Target(">=", 2.0),
        "awaited/raw": Target(">=", 0.5),
        "in coroutines/bare coroutines": Target(">=", 0.75),
        "cpu/-": Target("<=", 0.02, absolute=True),
    },
    "thread": {
        "burst/raw": Target(">=", 3.0),
        "burst/concurry": Target(">=", 10.0),
        "round trip/raw": Target("<=", 1.5),
        "in coroutines/asyncio.to_thread": Target(">=", 2.5),
        "cpu/-": Target("<=", 0.02, absolute=True),
    },
    "process": {
        "burst/raw": Target(">=", 1.0),
        "burst/concurry": Target(">=", 20.0),
        "round trip/raw": Target("<=", 1.5),
        "start-up/concurry": Target("<=", 0.5),
        "in coroutines/Pipe + loop futures": Target(">=", 0.5),
        "cpu/-": Target("<=", 0.02, absolute=True),
    },
    "ray": {
        "burst/raw": Target(">=", 0.8),
        "awaited/raw": Target(">=", 0.8),
        "in coroutines/await actor.m.remote()": Target(">=", 0.8),
    },
}


@pytest.mark.parametrize("mode", list(SPEC))
def test_the_targets_are_the_specs(mode: str) -> None:
    assert dict(_run.targets(mode)) == SPEC[mode]


def test_an_unknown_mode_has_no_targets() -> None:
    with pytest.raises(KeyError):
        _run.targets("carrier pigeon")


def test_turns_keep_the_best_time_and_leave_the_warm_up_out() -> None:
    order: list[str] = []
    times = {"a": iter([9.0, 3.0, 2.0]), "b": iter([8.0, 5.0, 6.0])}

    def timing(name: str) -> _timing.Timing:
        def run() -> float:
            order.append(name)
            return next(times[name])

        return run

    best = _timing.in_turns([timing("a"), timing("b")], repeats=2)
    assert best == [2.0, 5.0]  # the warm-up's 9 and 8 are not counted
    assert order == ["a", "b", "a", "b", "a", "b"]  # turns, not one subject after another


def test_a_failing_timing_is_named_and_gets_no_more_turns() -> None:
    calls = 0

    def broken() -> float:
        nonlocal calls
        calls += 1
        raise RuntimeError("no pipe")

    errors: list[str | None] = [None, None]
    best = _timing.in_turns([lambda: 1.0, broken], 3, errors=errors, labels=["ok", "raw"])
    assert best[0] == 1.0
    assert math.isnan(best[1])
    assert errors == [None, "raw failed: RuntimeError: no pipe"]
    assert calls == 1
    with pytest.raises(RuntimeError, match="no pipe"):
        _timing.in_turns([broken], 1)  # without ``errors`` the exception propagates


def test_seconds_times_the_whole_function() -> None:
    ran: list[int] = []
    elapsed = _timing.seconds(lambda: ran.append(1))()
    assert ran == [1]
    assert 0.0 <= elapsed < 1.0
