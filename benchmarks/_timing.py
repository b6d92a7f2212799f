"""One way of timing for every benchmark: subjects take turns, best time kept.

A *timing* is a function that does the work once and returns the seconds the
part under test took (so that setting up and checking stay outside the clock);
:func:`seconds` makes one from a plain function.  :func:`in_turns` runs the
timings of several subjects one after another, round after round, so that the
drift of a shared machine falls on all of them alike, with the garbage
collector paused during each turn (:func:`paused_gc`), as ``timeit`` does.
"""

from __future__ import annotations

import contextlib
import gc
import math
import time
from collections.abc import Callable, Iterator, MutableSequence, Sequence

__all__ = ["Timing", "in_turns", "paused_gc", "seconds"]

Timing = Callable[[], float]
"""Does the work once; returns the seconds the part under test took."""


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Collect garbage, then keep the collector off for the block.

    A collection landing in one subject's turn would skew that subject alone.
    """
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def seconds(fn: Callable[[], object]) -> Timing:
    """A timing of all of ``fn``: calling it runs ``fn`` and returns the seconds it took."""

    def timing() -> float:
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0

    return timing


def in_turns(
    timings: Sequence[Timing],
    repeats: int,
    *,
    warm_up: bool = True,
    errors: MutableSequence[str | None] | None = None,
    labels: Sequence[str] = (),
) -> list[float]:
    """The best seconds of each timing over ``repeats`` rounds in which they take turns.

    With ``warm_up`` a first round is run and not counted (``repeats=0`` then
    only runs each timing once, as a check).  A timing that raises propagates
    its exception, unless ``errors`` is given: then the error, named by
    ``labels[i]``, is kept at ``errors[i]``, the timing gets no more turns and
    its result is NaN; a timing whose ``errors[i]`` is already set is skipped.
    """
    best = [math.inf] * len(timings)
    first = 0 if warm_up else 1
    for rnd in range(first, repeats + 1):
        for i, timing in enumerate(timings):
            if errors is not None and errors[i] is not None:
                continue
            try:
                with paused_gc():
                    dt = timing()
            except Exception as exc:
                if errors is None:
                    raise
                label = labels[i] if i < len(labels) else f"subject {i}"
                errors[i] = f"{label} failed: {type(exc).__name__}: {exc}"
                continue
            if rnd:
                best[i] = min(best[i], dt)
    return [math.nan if b == math.inf else b for b in best]
