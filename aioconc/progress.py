"""Progress bars: concurry's ``ProgressBar`` API over tqdm, and the sink the library feeds.

``ProgressBar`` adds three things to tqdm: ``update()`` buffered until ``miniters``
steps have accumulated, end states that recolour the bar (``success`` green,
``failure`` red, ``stop`` grey) and close it, and a ``style`` that picks the
terminal, notebook or Ray bar, falling back to the terminal bar when the
notebook widgets or Ray are missing.  tqdm writes to stderr (or ``file=``).

``make_progress(progress, total, desc)`` turns a user's ``progress=`` option
(``True``, a dict of ``ProgressBar`` options, a ``ProgressBar``, or a callable
``f(completed, total, elapsed)``) into a ``_ProgressSink`` with ``advance()`` and
``done()``, so ``wait``, ``gather`` and ``map`` handle every kind the same way.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sized
from types import TracebackType
from typing import Any, Literal, Union, final

__all__ = ["ProgressBar", "ProgressOption", "make_progress"]

Style = Literal["auto", "std", "notebook", "ray"]
ProgressCallback = Callable[[int, int, float], Any]
ProgressOption = Union[bool, Mapping[str, Any], "ProgressBar", ProgressCallback, None]

_COLORS = {"running": "#0288d1", "success": "#43a047", "failure": "#e64a19", "stopped": "#b0bec5"}
_FALLBACK_DEFAULTS: dict[str, Any] = {"ncols": 100, "smoothing": 0.15, "miniters": 1}


def _default(name: str) -> Any:
    """``global_config.defaults.progress_bar_<name>``, or the built-in value when the
    config module is absent or lacks it (it is imported lazily: it imports us)."""
    try:
        config = importlib.import_module("aioconc.config")
        return getattr(config.global_config.defaults, f"progress_bar_{name}")
    except (ImportError, AttributeError):
        return _FALLBACK_DEFAULTS[name]


def _tqdm_factory(style: str, kwargs: dict[str, Any]) -> Callable[..., Any]:
    """The tqdm class for ``style``; edits ``kwargs`` to what that class accepts.

    Imported by name: Ray only when asked for, and tqdm because it ships no type stubs.
    """
    factory: Callable[..., Any]
    # Widget bars need ipywidgets and the main thread (ipykernel's context is per thread).
    widgets = (
        importlib.util.find_spec("ipywidgets") is not None
        and threading.current_thread() is threading.main_thread()
    )
    if style == "ray" and importlib.util.find_spec("ray") is not None:
        factory = importlib.import_module("ray.experimental.tqdm_ray").tqdm
        params = inspect.signature(factory).parameters
        if all(p.kind is not p.VAR_KEYWORD for p in params.values()):
            for key in [k for k in kwargs if k not in params]:
                del kwargs[key]  # Ray's bar takes few of tqdm's options (no colour, ncols)
    elif style in ("auto", "notebook") and widgets:
        kwargs["ncols"] = None  # widget bars size themselves
        factory = importlib.import_module(f"tqdm.{style}").tqdm
    else:
        factory = importlib.import_module("tqdm.std").tqdm
    return factory


@final
class ProgressBar:
    """A tqdm bar with buffered updates and coloured end states.

    ``ProgressBar(iterable)`` yields the iterable's items (a dict's ``items()``),
    taking ``total`` from ``len()`` when it has one, and ends green when the
    iterable is exhausted, red if it raises, grey if abandoned.
    ``ProgressBar(total=n)`` is driven by ``update``/``set_n`` and ended by
    ``success``/``failure``/``stop``/``close``; ``with`` ends it green, or red
    on an exception.  ``ncols``, ``smoothing`` and ``miniters`` default to
    ``global_config.defaults.progress_bar_*``; other keywords (``file=``,
    ``leave=``, ...) go to tqdm.

    Raises ``ValueError`` if ``miniters < 1`` or ``style`` is unknown.
    """

    def __init__(
        self,
        iterable: Iterable[Any] | None = None,
        *,
        total: int | None = None,
        desc: str | None = None,
        unit: str = "row",
        color: str = _COLORS["running"],
        style: Style = "auto",
        ncols: int | None = None,
        smoothing: float | None = None,
        miniters: int | None = None,
        disable: bool = False,
        **tqdm_kwargs: Any,
    ) -> None:
        if style not in ("auto", "std", "notebook", "ray"):
            raise ValueError(f"style must be 'auto', 'std', 'notebook' or 'ray'; got {style!r}")
        self.miniters: int = _default("miniters") if miniters is None else miniters
        if self.miniters < 1:
            raise ValueError(f"miniters must be >= 1; got {self.miniters}")
        if isinstance(iterable, Mapping):
            iterable = iterable.items()
        if total is None and isinstance(iterable, Sized):
            total = len(iterable)
        self.style = style
        self.color = color
        self.disable = disable
        self.status = "running"
        self._closed = False
        self._iterable = iterable
        self._pending = 0
        self._n = int(tqdm_kwargs.get("initial", 0))
        self._lock = threading.RLock()  # done-callbacks may report from other threads
        kwargs: dict[str, Any] = {
            "total": total,
            "desc": desc,
            "unit": unit,
            "colour": color,
            "ncols": _default("ncols") if ncols is None else ncols,
            "smoothing": _default("smoothing") if smoothing is None else smoothing,
            "miniters": self.miniters,
            "disable": disable,
            **tqdm_kwargs,
        }
        self.pbar: Any = _tqdm_factory(style, kwargs)(**kwargs)

    # ---- reading -------------------------------------------------------------

    @property
    def n(self) -> int:
        """Steps counted so far, buffered ones included."""
        return self._n + self._pending

    @property
    def total(self) -> int | None:
        """The bar's total, or None when unknown."""
        return getattr(self.pbar, "total", None)

    @property
    def closed(self) -> bool:
        """Whether the bar has been closed."""
        return self._closed

    def __iter__(self) -> Iterator[Any]:
        """Yield the wrapped iterable's items.  Raises ``TypeError`` without one."""
        if self._iterable is None:
            raise TypeError("this ProgressBar wraps no iterable; pass one or use update()")
        return self._drive(self._iterable)

    def _drive(self, iterable: Iterable[Any]) -> Iterator[Any]:
        finished = False
        try:
            for item in iterable:
                yield item
                self.update(1)
            finished = True
        except Exception:
            self.failure()
            raise
        finally:  # runs on exhaustion, and on GeneratorExit when the loop is left early
            if finished:
                self.success()
            elif not self.closed:
                self.stop()

    # ---- driving ---------------------------------------------------------------

    def update(self, n: int = 1) -> bool:
        """Count ``n`` more steps; the bar is told once ``miniters`` have accumulated.

        Returns True if the steps reached the bar, False if they are buffered.
        """
        with self._lock:
            self._pending += n
            if abs(self._pending) < self.miniters:
                return False
            self._flush()
            return True

    def _flush(self) -> None:
        if self._pending:
            pending, self._pending = self._pending, 0
            self._n += pending
            self.pbar.update(pending)

    def set_n(self, new_n: int) -> None:
        """Set the count to ``new_n``, discarding buffered steps."""
        with self._lock:
            self._pending = 0
            delta, self._n = new_n - self._n, new_n
            self.pbar.update(delta)

    def set_total(self, new_total: int | None) -> None:
        """Change the total (None: unknown) and redraw."""
        self.pbar.total = new_total
        self.refresh()

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        """Replace the description; redraw when ``refresh``."""
        self.pbar.desc = desc or ""
        if refresh:
            self.refresh()

    def set_unit(self, new_unit: str) -> None:
        """Replace the unit name and redraw."""
        self.pbar.unit = new_unit
        self.refresh()

    def refresh(self) -> None:
        """Redraw the bar in its current colour."""
        with self._lock:
            self.pbar.colour = self.color
            self.pbar.refresh()

    def close(self) -> None:
        """Tell the bar any buffered steps and close it.  Closing twice does nothing."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self.status == "running":
                self.status = "closed"
            self._flush()
            self.pbar.close()

    # ---- end states --------------------------------------------------------------

    def success(
        self, desc: str | None = None, close: bool = True, append_desc: bool = True
    ) -> None:
        """Colour the bar green, prefix ``[desc]`` to the description (or replace it
        when ``append_desc`` is False), and close it unless ``close`` is False."""
        self._finish("success", desc, close, append_desc)

    def failure(
        self, desc: str | None = None, close: bool = True, append_desc: bool = True
    ) -> None:
        """As ``success``, in red."""
        self._finish("failure", desc, close, append_desc)

    def stop(self, desc: str | None = None, close: bool = True, append_desc: bool = True) -> None:
        """As ``success``, in grey: the work was abandoned (cancelled, timed out)."""
        self._finish("stopped", desc, close, append_desc)

    def _finish(self, status: str, desc: str | None, close: bool, append_desc: bool) -> None:
        with self._lock:
            if self._closed:
                return
            self.status = status
            self.color = _COLORS[status]
            if not self.disable:
                if desc is not None:
                    current = getattr(self.pbar, "desc", "")
                    self.pbar.desc = f"[{desc}] {current}" if append_desc and current else desc
                self._flush()
                self.refresh()
            if close:
                self.close()

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.closed:
            return
        if exc_type is None:
            self.success()
        else:
            self.failure()

    def __repr__(self) -> str:
        desc = getattr(self.pbar, "desc", "")
        return f"ProgressBar(desc={desc!r}, n={self.n}, total={self.total}, status={self.status!r})"


@final
class _ProgressSink:
    """Where the library reports progress: a ``ProgressBar``, a callable
    ``f(completed, total, elapsed_seconds)``, or both."""

    __slots__ = ("_bar", "_callback", "_clock", "_started", "completed", "finished", "total")

    def __init__(
        self,
        total: int,
        bar: ProgressBar | None = None,
        callback: ProgressCallback | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = total
        self.completed = 0
        self.finished = False
        self._bar = bar
        self._callback = callback
        self._clock = clock
        self._started = clock()

    @property
    def bar(self) -> ProgressBar | None:
        """The bar fed, if any."""
        return self._bar

    def advance(self, n: int = 1) -> None:
        """Report ``n`` more items completed; ignored once finished.

        An exception raised by the user's callable propagates.
        """
        if self.finished:
            return
        self.completed += n
        if self._bar is not None:
            self._bar.update(n)
        if self._callback is not None:
            self._callback(self.completed, self.total, self._clock() - self._started)

    def done(self, ok: bool, desc: str | None = None) -> None:
        """End the report: the bar turns green (``ok``) or red, and closes.  Once only."""
        if self.finished:
            return
        self.finished = True
        if self._bar is not None:
            (self._bar.success if ok else self._bar.failure)(desc)

    def stop(self, desc: str | None = "Timeout") -> None:
        """End the report early (timeout, cancellation): the bar turns grey and closes."""
        if self.finished:
            return
        self.finished = True
        if self._bar is not None:
            self._bar.stop(desc)

    def __repr__(self) -> str:
        return f"_ProgressSink({self.completed}/{self.total}, finished={self.finished})"


def make_progress(
    progress: ProgressOption,
    total: int,
    desc: str,
    *,
    clock: Callable[[], float] = time.monotonic,
) -> _ProgressSink | None:
    """Turn a ``progress=`` option into a sink, or None when it is None or False.

    ``True`` makes a ``ProgressBar(total=total, desc=desc)`` updating every
    ``total // 100`` items; a dict is ``ProgressBar`` options laid over those; a
    ``ProgressBar`` is used as it is (its total set if unknown); a callable is
    called ``f(completed, total, elapsed_seconds)`` on each ``advance``, with
    ``clock`` measuring elapsed time.

    Raises ``ValueError`` for any other kind of value (as concurry does).
    """
    if progress is None or progress is False:
        return None
    if isinstance(progress, ProgressBar):
        if progress.total is None:
            progress.set_total(total)
        return _ProgressSink(total, bar=progress, clock=clock)
    options: dict[str, Any] = {"total": total, "desc": desc, "miniters": max(1, total // 100)}
    if progress is True:
        return _ProgressSink(total, bar=ProgressBar(**options), clock=clock)
    if isinstance(progress, Mapping):
        return _ProgressSink(total, bar=ProgressBar(**{**options, **progress}), clock=clock)
    if callable(progress):
        return _ProgressSink(total, callback=progress, clock=clock)
    raise ValueError(
        f"progress must be a bool, dict, ProgressBar or callable(completed, total, elapsed); "
        f"got {type(progress).__name__}"
    )
