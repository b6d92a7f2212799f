"""Defining workers: the ``Worker`` base class, the ``@worker`` decorator, ``options()``.

Options reach a worker in layers, highest precedence first::

    Cls.options(...) > @worker(...) > class Cls(Worker, mode=...) > per-mode config > global

``options()`` validates what it is given at once (pydantic, naming the field);
``init()`` resolves the layers, picks the backend and starts the worker.  A
class with options from ``@worker(...)`` or class keywords is *auto-init*:
``Cls(*a)`` then returns a started handle, as ``Cls.options().init(*a)`` does.
"""

from __future__ import annotations

import dataclasses
import inspect
import warnings
from collections.abc import Callable, Collection
from typing import Any, ClassVar, TypeVar, overload

from ._backends import OPTION_NAMES, get_backend
from ._backends._base import WorkerSpec, is_constructing
from ._chain import attempt_handler, build_chain
from ._options import Options, resolve_options, validate_options
from ._proxy import WorkerHandle, worker_name
from ._stats import CallCounters
from .limits._worker_limits import limits_for
from .middleware._queue import SubmissionQueue
from .middleware._stages import stages_for

__all__ = ["Worker", "WorkerBuilder", "start_worker", "worker"]

C = TypeVar("C", bound=type)

_DECORATOR_OPTIONS = "__aioconc_worker_options__"
_CLASS_OPTIONS = "__aioconc_class_options__"
_AUTO_INIT = "__aioconc_auto_init__"

# Names a worker class may not define: they are the class's own entry points
# (``options``, ``init``) or attributes of the handle that would hide the method.
RESERVED = frozenset(
    {"options", "init", "astop", "blocking", "max_queued_tasks", "unwrap_futures", "statistics"}
)

OPTION_KEYWORDS = frozenset(
    {f.name for f in dataclasses.fields(Options)}
    | {name for names in OPTION_NAMES.values() for name in names}
    | {"auto_init"}
)


def _check_reserved(cls: type[Any]) -> None:
    for name in RESERVED:
        if name in cls.__dict__ and not isinstance(
            cls.__dict__[name], (classmethod, _InitDescriptor)
        ):
            raise TypeError(
                f"{cls.__name__} defines {name!r}, which aioconc's handle uses; rename the method"
            )


class WorkerBuilder:
    """What ``Cls.options(...)`` returns: call ``init(*args, **kwargs)`` to start a worker."""

    __slots__ = ("_cls", "_options")

    def __init__(self, cls: type[Any], options: dict[str, Any]) -> None:
        self._cls = cls
        self._options = options

    def options(self, **options: Any) -> WorkerBuilder:
        """Return a builder with ``options`` laid over these."""
        return WorkerBuilder(self._cls, {**self._options, **validate_options(options)})

    def init(self, *args: Any, **kwargs: Any) -> Any:
        """Start the worker, constructed with exactly ``(*args, **kwargs)``.

        Outside a running loop this returns once ``__init__`` has run and
        raises its exception if it failed.  Inside a running loop it never
        blocks the loop: ``await handle`` or ``async with`` waits for
        ``__init__`` and raises its exception; calls made before then wait.
        Raises ``ValueError`` for options that do not fit the mode.
        """
        cls = self._cls
        layers = [
            self._options,
            getattr(cls, _DECORATOR_OPTIONS, {}),
            getattr(cls, _CLASS_OPTIONS, {}),
        ]
        methods = _public_methods(cls)
        options = resolve_options(layers, mode_specific=OPTION_NAMES, method_names=methods)
        if (options.max_workers or 1) > 1 or options.on_demand:
            from ._pool import start_pool

            return start_pool(cls, args, kwargs, options, methods)
        return start_worker(cls, args, kwargs, options, methods)

    def __repr__(self) -> str:
        return f"<WorkerBuilder {self._cls.__name__} {self._options}>"


def start_worker(
    cls: type[Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    options: Options,
    methods: Collection[str],
) -> WorkerHandle:
    """Start one worker of ``cls`` with resolved ``options`` and return its handle.

    ``methods`` are the class's public method names (per-method options).
    """
    backend = get_backend(options.mode)
    name = worker_name(cls)
    limits = limits_for(options.limits, options.mode, pool=False)
    spec = WorkerSpec(cls, args, kwargs, name, options, dict(options.extra), limits)
    backend_worker = backend.start(spec)
    try:
        stages = stages_for(
            options,
            methods,
            worker_class=cls.__name__,
            on_timeout=backend_worker.on_timeout,
            native_queue=backend.capabilities.queues_natively,
        )
    except BaseException:  # invalid retry options: leave no worker running
        backend_worker.force_close()
        raise
    attempts = CallCounters()
    chain = build_chain(stages, attempt_handler(backend_worker.dispatch, attempts))
    # A worker class may bring its own handle type (TaskWorker: submit/map).
    handle_cls: type[WorkerHandle] = getattr(cls, "_aioconc_handle_class", WorkerHandle)
    handle = handle_cls(cls, name, options, backend_worker, chain)
    handle._init_kwargs = kwargs
    if chain is not None:
        handle._attempts = attempts
    for stage in stages:  # the submission queue: told its loop, stopped with the handle
        if isinstance(stage, SubmissionQueue) and handle._chain_loop is not None:
            stage.bind_loop(handle._chain_loop)
            handle._stop_hooks.append(stage.on_stop)
    handle._wait_started()  # outside async code; never blocks a running loop
    return handle


def _public_methods(cls: type[Any]) -> set[str]:
    return {
        name
        for name, value in inspect.getmembers(cls)
        if not name.startswith("_") and callable(value)
    }


# ---------------------------------------------------------------------------
# Auto-init: ``Cls(*a)`` returning a handle
# ---------------------------------------------------------------------------


def _auto_init(cls: type[Any]) -> bool:
    return bool(cls.__dict__.get(_AUTO_INIT, getattr(cls, _AUTO_INIT, False)))


class _InitDescriptor:
    """``Cls.init(*a, **kw)``: shorthand for ``Cls.options().init(*a, **kw)``."""

    def __get__(self, obj: object, cls: type[Any]) -> Callable[..., Any]:
        return WorkerBuilder(cls, {}).init


def _options_method(cls: type[Any], /, **options: Any) -> WorkerBuilder:
    """Validate ``options`` now and return a builder; ``.init(...)`` starts the worker."""
    return WorkerBuilder(cls, validate_options(options))


class Worker:
    """Base class of workers: subclass it, then ``Cls.options(mode=...).init(...)``.

    Class keywords set default options and make the class auto-init::

        class Counter(Worker, mode="thread"): ...
        c = Counter()            # a started handle

    Instantiating ``Worker`` itself raises ``TypeError``.
    """

    options: ClassVar[Callable[..., WorkerBuilder]] = classmethod(_options_method)  # type: ignore[assignment]
    init: ClassVar[Callable[..., Any]] = _InitDescriptor()  # type: ignore[assignment]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        ours = {k: kwargs.pop(k) for k in list(kwargs) if k in OPTION_KEYWORDS}
        super().__init_subclass__(**kwargs)
        _check_reserved(cls)
        if ours:
            auto = ours.pop("auto_init", True)
            setattr(cls, _CLASS_OPTIONS, validate_options(ours))
            setattr(cls, _AUTO_INIT, bool(auto))

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        if cls is Worker:
            raise TypeError("Worker is a base class: subclass it and start it with .init()")
        if not is_constructing() and _auto_init(cls):
            return WorkerBuilder(cls, {}).init(*args, **kwargs)
        return super().__new__(cls)


# ---------------------------------------------------------------------------
# @worker
# ---------------------------------------------------------------------------


@overload
def worker(cls: C, /) -> C: ...


@overload
def worker(*, auto_init: bool | None = None, **options: Any) -> Callable[[C], C]: ...


def worker(cls: Any = None, /, *, auto_init: bool | None = None, **options: Any) -> Any:
    """Make a class a worker class, in place (no new class is built).

    Bare ``@worker`` adds ``options()`` and ``init()``; ``Cls(...)`` stays an
    ordinary instance.  ``@worker(mode=..., ...)`` also stores default options
    and makes ``Cls(...)`` return a started handle unless ``auto_init=False``.
    Options are validated here; an invalid one raises pydantic's
    ``ValidationError`` naming it.
    """
    validated = validate_options(options)

    def decorate(klass: C) -> C:
        _check_reserved(klass)
        if validated and getattr(klass, _CLASS_OPTIONS, None):
            warnings.warn(
                f"{klass.__name__} takes options from both the @worker decorator and "
                "inheritance keywords (class C(Worker, mode=...)); mixing them is an "
                "anti-pattern: the @worker options win, so use one of the two",
                UserWarning,
                stacklevel=3,
            )
        setattr(klass, _DECORATOR_OPTIONS, validated)
        # Bare @worker keeps what class keywords decided.
        auto = auto_init if auto_init is not None else bool(validated) or _auto_init(klass)
        setattr(klass, _AUTO_INIT, auto)
        if not issubclass(klass, Worker):
            klass.options = classmethod(_options_method)  # type: ignore[attr-defined]
            klass.init = _InitDescriptor()  # type: ignore[attr-defined]
            if auto:
                _install_auto_new(klass)
        return klass

    if cls is not None:
        return decorate(cls)
    return decorate


def _install_auto_new(klass: type[Any]) -> None:
    own_new = klass.__dict__.get("__new__")
    base_new = super(klass, klass).__new__ if own_new is None else None

    def __new__(cls: type[Any], *args: Any, **kwargs: Any) -> Any:
        if not is_constructing() and _auto_init(cls):
            return WorkerBuilder(cls, {}).init(*args, **kwargs)
        if own_new is not None:
            return own_new.__func__(cls, *args, **kwargs)
        if base_new is object.__new__:
            return object.__new__(cls)
        return base_new(cls, *args, **kwargs)  # type: ignore[misc]

    klass.__new__ = staticmethod(__new__)  # type: ignore[assignment]
