"""The figures behind ``python -m benchmarks``.

Every figure is measured in one run, on one machine, for aioconc *and* for the
fastest plain-Python way of doing the same work (the *raw primitive*), and, when
it is importable, for concurry 0.13.2.  The table reports ratios, because the
machine is shared and absolute numbers drift; the targets come from SPEC.md §2.

Figures, per mode:

* ``start-up``   create a worker, get the first call's result, stop it (ms);
* ``burst``      submit N calls to one worker, then collect every result (calls/s);
* ``round trip`` one call and its ``.result()`` at a time (µs per call);
* ``awaited``    inside a running loop, ``asyncio.gather`` of N calls (calls/s);
* ``in coroutines`` each call ``return await w.m(i)`` in a coroutine of its own, N of
  them gathered, the worker made with ``async with`` -- the shape apps write (calls/s);
* ``CPU``        process CPU time used while awaiting a call that sleeps 1 s (s).

Each timing is the best of ``k`` repeats after one warm-up, and the subjects of
a mode take turns (aioconc, raw, concurry, aioconc, ...) so the machine's drift
falls on all of them alike.  A mode is one entry of :data:`MODES` (its raw
primitive, the method it calls, its targets); a mode whose worker cannot be
created yet (``NotImplementedError``, a missing extra) is skipped with a note,
which is how the ``process`` rows wait for the process backend.

The subjects (aioconc, concurry, the raw primitives) are in
``_subjects.py``, the figures inside a running loop in
``_awaited.py``, the table in ``_table.py``; this file reads top to
bottom as modes, timing, rows.
"""

from __future__ import annotations

import asyncio
import functools
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._awaited import (
    AwaitedSetup,
    aioconc_awaited,
    anyio_to_thread,
    asyncio_to_thread,
    awaited,
    bare_coroutines,
    in_coroutines,
    pipe_loop_futures,
    ray_remote,
    run_in_executor,
)
from ._subjects import (
    CONCURRY,
    Caller,
    Subject,
    _ConcurryBench,
    _direct_subject,
    _pipe_subject,
    _ray_subject,
    _rct_subject,
    _tpe_subject,
    _worker_subject,
)
from ._table import UNITS, Row, Target, format_table
from ._timing import Timing, in_turns
from ._workers import _AioconcBench

__all__ = ["MODES", "BenchConfig", "ModeEntry", "Row", "Target", "format_table", "run", "targets"]

UNAVAILABLE = (NotImplementedError, ImportError, ValueError)
"""What creating a worker of a mode that is not built (or not installed) raises."""


# ---------------------------------------------------------------------------
# Targets, modes
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ModeEntry:
    """Everything the benchmark needs to know about one mode.

    ``method`` is what burst, round trip and awaited call; ``raw`` is the raw
    primitive (None: no start-up, burst and round trip rows); ``raw_awaited``
    the raw primitive inside a running loop; ``in_coroutines`` the baselines of
    the in-coroutines figure (its target key is ``"in coroutines/<label>"``);
    ``default`` whether a run without ``--modes`` includes the mode;
    ``cpu_method`` a method that takes one second; ``concurry_mode`` the same mode
    in concurry, by member name, which it accepts on every Python (None: no
    concurry rows); ``targets`` maps
    ``"figure/baseline"`` (baseline ``raw`` or ``concurry``; ``cpu/-``) to a bound.
    """

    mode: str
    method: str
    raw: Callable[[], Subject] | None
    raw_awaited: tuple[str, AwaitedSetup] | None = None
    in_coroutines: tuple[tuple[str, AwaitedSetup], ...] = ()
    default: bool = True
    cpu_method: str | None = None
    concurry_mode: str | None = None
    concurry_share: float = 1.0  # of BenchConfig.concurry_n: concurry's slow modes get fewer
    options: Mapping[str, Any] = field(default_factory=dict)  # aioconc's worker options
    targets: Mapping[str, Target] = field(default_factory=dict)


CPU_TARGET = Target("<=", 0.02, absolute=True)  # s of CPU while awaiting a 1 s call

# The baselines of the in-coroutines figure, by the label the table shows.
BARE = "bare coroutines"
TO_THREAD = "asyncio.to_thread"
ANYIO = "anyio.to_thread.run_sync"
PIPE = "Pipe + loop futures"
RAY = "await actor.m.remote()"

# The targets are SPEC.md §2's, figure by figure; a time ratio's bound is an upper
# one (round trip, start-up: lower is better), a rate's a lower one.
MODES: tuple[ModeEntry, ...] = (
    ModeEntry(
        "sync",
        method="ping",
        raw=_direct_subject,
        concurry_mode="Sync",
        targets={
            "burst/concurry": Target(">=", 3.0),
            "round trip/concurry": Target("<=", round(1 / 3, 2)),
        },
    ),
    ModeEntry(
        "asyncio",
        method="aping",
        raw=_rct_subject,
        raw_awaited=("asyncio.gather(coroutines)", bare_coroutines),
        in_coroutines=((BARE, bare_coroutines),),
        cpu_method="asleep1",
        concurry_mode="Asyncio",
        targets={
            "burst/raw": Target(">=", 2.0),
            "awaited/raw": Target(">=", 0.5),
            f"in coroutines/{BARE}": Target(">=", 0.75),
            "cpu/-": CPU_TARGET,
        },
    ),
    ModeEntry(
        "thread",
        method="ping",
        raw=_tpe_subject,
        raw_awaited=("run_in_executor(TPE(1))", run_in_executor),
        in_coroutines=((TO_THREAD, asyncio_to_thread), (ANYIO, anyio_to_thread)),
        cpu_method="sleep1",
        concurry_mode="Threads",
        targets={
            f"in coroutines/{TO_THREAD}": Target(">=", 2.5),
            "burst/raw": Target(">=", 3.0),
            "burst/concurry": Target(">=", 10.0),
            "round trip/raw": Target("<=", 1.5),
            "cpu/-": CPU_TARGET,
        },
    ),
    ModeEntry(
        "process",
        method="ping",
        raw=_pipe_subject,
        in_coroutines=((PIPE, pipe_loop_futures),),
        cpu_method="sleep1",
        concurry_mode="Processes",
        concurry_share=0.1,
        targets={
            f"in coroutines/{PIPE}": Target(">=", 0.5),
            "start-up/concurry": Target("<=", 0.5),
            "burst/raw": Target(">=", 1.0),
            "burst/concurry": Target(">=", 20.0),
            "round trip/raw": Target("<=", 1.5),
            "cpu/-": CPU_TARGET,
        },
    ),
    # Only when asked for (--modes ray): it starts a local Ray.
    ModeEntry(
        "ray",
        method="ping",
        raw=_ray_subject,
        raw_awaited=(RAY, ray_remote),
        in_coroutines=((RAY, ray_remote),),
        # Every call in flight, as on the raw actor (the default keeps 3 per worker).
        options={"max_queued_tasks": None},
        targets={
            "burst/raw": Target(">=", 0.8),
            "awaited/raw": Target(">=", 0.8),
            f"in coroutines/{RAY}": Target(">=", 0.8),
        },
        default=False,
    ),
)


# ---------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchConfig:
    """Sizes of one run.  ``quick()`` is the smoke-test size."""

    n: int = 20_000
    repeats: int = 3
    concurry_n: int = 4_000
    coroutines_n: int = 5_000  # coroutines gathered in the in-coroutines figure
    modes: tuple[str, ...] = tuple(m.mode for m in MODES if m.default)
    concurry: bool = True

    @classmethod
    def quick(cls, **overrides: Any) -> BenchConfig:
        """A run of a few seconds, for smoke tests."""
        return cls(
            **{"n": 1_000, "repeats": 1, "concurry_n": 300, "coroutines_n": 1_000, **overrides}
        )


def targets(mode: str) -> Mapping[str, Target]:
    """The targets of ``mode`` by ``"figure/baseline"``; raises ``KeyError`` for an unknown mode."""
    for entry in MODES:
        if entry.mode == mode:
            return entry.targets
    raise KeyError(mode)


def _startup(subject: Subject) -> float:
    t0 = time.perf_counter()
    handle = subject.start()
    value = subject.caller(handle)(0)
    if subject.resolve is not None:
        subject.resolve(value)
    subject.stop(handle)
    return time.perf_counter() - t0


def _burst(subject: Subject, call: Caller, n: int) -> float:
    resolve = subject.resolve
    t0 = time.perf_counter()
    futures = [call(i) for i in range(n)]
    if subject.resolve_all is not None:
        subject.resolve_all(futures)
    elif resolve is not None:
        for f in futures:
            resolve(f)
    return time.perf_counter() - t0


def _round_trip(subject: Subject, call: Caller, n: int) -> float:
    resolve = subject.resolve
    t0 = time.perf_counter()
    if resolve is None:
        for i in range(n):
            call(i)
    else:
        for i in range(n):
            resolve(call(i))
    return time.perf_counter() - t0


def _check(subject: Subject, call: Caller) -> float:
    """Fail loudly when the subject returns wrong values: a fast wrong answer is no answer."""
    values = [call(i) for i in range(100)]
    if subject.resolve is not None:
        values = [subject.resolve(v) for v in values]
    if values != list(range(100)):
        raise AssertionError(f"{subject.label} returned wrong results: {values[:5]}...")
    return 0.0


@dataclass
class Measured:
    """What one subject measured (values in the rows' units), or why it could not."""

    label: str
    startup_ms: float = math.nan
    burst_per_s: float = math.nan
    round_trip_us: float = math.nan
    error: str | None = None


def _interleaved(fns: Sequence[Timing], repeats: int, out: Sequence[Measured]) -> list[float]:
    """Best seconds of each timing after a warm-up, in turns (see :func:`in_turns`).

    A timing that raises gets NaN and its error in ``out`` (shown in the table,
    never hidden); a subject that failed before is not timed again.
    """
    errors = [m.error for m in out]
    best = in_turns(fns, repeats, errors=errors, labels=[m.label for m in out])
    for m, error in zip(out, errors):
        m.error = error
    return best


def measure(subjects: Sequence[tuple[Subject, int]], repeats: int) -> list[Measured]:
    """Measure start-up, burst and round trip of each ``(subject, n)``, interleaved.

    Burst submits ``n`` calls; round trip makes ``max(10, n // 10)``.
    """
    out = [Measured(s.label) for s, _ in subjects]
    startups = _interleaved(
        [functools.partial(_startup, s) for s, _ in subjects], max(repeats, 3), out
    )
    handles: list[Any] = []
    try:
        for s, _ in subjects:
            handles.append(s.start())
        calls = [s.caller(h) for (s, _), h in zip(subjects, handles)]
        _interleaved(
            [functools.partial(_check, s, c) for (s, _), c in zip(subjects, calls)], 0, out
        )
        bursts = _interleaved(
            [functools.partial(_burst, s, c, n) for (s, n), c in zip(subjects, calls)], repeats, out
        )
        rts = [max(10, n // 10) for _, n in subjects]
        trips = _interleaved(
            [functools.partial(_round_trip, s, c, k) for (s, _), c, k in zip(subjects, calls, rts)],
            repeats,
            out,
        )
    finally:
        for (s, _), h in zip(subjects, handles):
            s.stop(h)
    for m, (_, n), st, b, rt, k in zip(out, subjects, startups, bursts, trips, rts):
        m.startup_ms, m.burst_per_s, m.round_trip_us = 1e3 * st, n / b, 1e6 * rt / k
    return out


async def _cpu_awaiting(entry: ModeEntry) -> float:
    """Process CPU seconds used while awaiting one call of ``entry.cpu_method`` (1 s)."""
    async with _AioconcBench.options(mode=entry.mode).init() as w:
        await getattr(w, entry.method)(0)  # warm up: the first call pays for set-up
        t0 = time.process_time()
        await getattr(w, str(entry.cpu_method))()
        return time.process_time() - t0


# ---------------------------------------------------------------------------
# Rows
# ---------------------------------------------------------------------------


def _rows_for(
    entry: ModeEntry, ours: Measured, baselines: Sequence[tuple[str, Measured]]
) -> Iterator[Row]:
    """Start-up, burst and round trip rows: aioconc against each ``(kind, baseline)``."""
    figures = (
        ("start-up", "startup_ms"),
        ("burst", "burst_per_s"),
        ("round trip", "round_trip_us"),
    )
    for figure, attr in figures:
        for kind, base in baselines:
            yield Row(
                entry.mode,
                figure,
                UNITS[figure],
                getattr(ours, attr),
                base.label,
                getattr(base, attr),
                entry.targets.get(f"{figure}/{kind}"),
                note=ours.error or base.error or "",
                failed=ours.error is not None,
            )


def _measure_mode(
    entry: ModeEntry, cfg: BenchConfig, log: Callable[[str], None], skipped: list[str]
) -> list[Row]:
    ours = _worker_subject("aioconc", _AioconcBench, entry.mode, entry.method, **entry.options)
    try:
        ours.stop(ours.start())
    except UNAVAILABLE as exc:
        skipped.append(f"{entry.mode}: skipped, not available ({type(exc).__name__}: {exc})")
        log(skipped[-1])
        return []
    rows = [] if entry.raw is None else _outside_a_loop(entry, ours, cfg, log)
    setup = functools.partial(aioconc_awaited, entry.mode, entry.method, **entry.options)
    if entry.raw_awaited is not None:
        label, raw_setup = entry.raw_awaited
        log(f"{entry.mode}: awaited, against {label}")
        mine, base = asyncio.run(awaited([setup, raw_setup], cfg.n, cfg.repeats))
        target = entry.targets.get("awaited/raw")
        rows.append(Row(entry.mode, "awaited", UNITS["awaited"], mine, label, base, target))
    if entry.in_coroutines:
        labels = [label for label, _ in entry.in_coroutines]
        log(f"{entry.mode}: in coroutines, against {', '.join(labels)}")
        # Best of at least 7: a run of 5,000 calls is short, and on a shared
        # machine one turn of a subject is easily hit by a neighbour.
        repeats = max(cfg.repeats, 7)
        setups: list[AwaitedSetup] = [setup, *(s for _, s in entry.in_coroutines)]
        rates = asyncio.run(in_coroutines(setups, cfg.coroutines_n, repeats))
        for label, base in zip(labels, rates[1:]):
            target = entry.targets.get(f"in coroutines/{label}")
            unit = UNITS["in coroutines"]
            rows.append(Row(entry.mode, "in coroutines", unit, rates[0], label, base, target))
    if entry.cpu_method is not None:
        log(f"{entry.mode}: CPU while awaiting a 1 s call")
        cpu = asyncio.run(_cpu_awaiting(entry))
        target = entry.targets.get("cpu/-")
        rows.append(Row(entry.mode, "CPU awaiting 1 s", "s", cpu, target=target))
    return rows


def _outside_a_loop(
    entry: ModeEntry, ours: Subject, cfg: BenchConfig, log: Callable[[str], None]
) -> list[Row]:
    """Start-up, burst and round trip: aioconc against the raw primitive and concurry."""
    assert entry.raw is not None
    subjects = [(ours, cfg.n), (entry.raw(), cfg.n)]
    if cfg.concurry and CONCURRY and entry.concurry_mode is not None:
        theirs = _worker_subject("concurry", _ConcurryBench, entry.concurry_mode, entry.method)
        subjects.append((theirs, max(10, int(cfg.concurry_n * entry.concurry_share))))
    log(f"{entry.mode}: start-up, burst, round trip: {', '.join(s.label for s, _ in subjects)}")
    measured = measure(subjects, cfg.repeats)
    return list(_rows_for(entry, measured[0], list(zip(("raw", "concurry"), measured[1:]))))


def run(
    cfg: BenchConfig, log: Callable[[str], None] = lambda _: None
) -> tuple[list[Row], list[str]]:
    """Measure every mode named in ``cfg``; return the table's rows and the modes skipped."""
    rows: list[Row] = []
    skipped: list[str] = []
    for entry in MODES:
        if entry.mode in cfg.modes:
            rows.extend(_measure_mode(entry, cfg, log, skipped))
    return rows, skipped
