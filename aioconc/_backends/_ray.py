"""Ray mode, the driver side: each worker is one Ray actor; each call an ``ObjectRef``.

::

    dispatch(call) ── actor.m_<method>.remote(*args) ──► Ray actor (see _ray_actor)
         │                 ObjectRef                        instance = cls(*a, **kw)
         └─ ref._on_completed ◄──────────────────────────  instance.<method>(*args)
              Ray's own thread hands over the value and finishes our Future
              (no polling, no thread per call)

A class with an ``async def`` method gets an async actor (its methods run on the
actor's event loop, concurrently; a plain method there blocks that loop while it
runs); any other class gets a plain actor that runs calls one at a time, in order.

``import ray`` happens only here, when the first Ray worker is made.  Without a
connection, a local Ray is started quietly (no dashboard, sized to the machine);
an existing connection (``ray.init(address="auto")``, ``ray://...``) is used as is.

A Ray-mode future passed as a top-level argument to another Ray worker travels as
its ``ObjectRef``: Ray hands the value to the actor without a round trip through
the driver.  :class:`RayTaskRunner` runs plain functions as Ray tasks (TaskWorker).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib.util
import itertools
import logging
import threading
import weakref
from typing import Any

from .._call import Call
from .._exceptions import SerializationError, WorkerCrashedError
from .._future import CancelledError, Future
from .._runtime import background_loop, inbox_for
from .._unwrap import defer, needs_unwrap
from ._base import Capabilities, WorkerSpec
from ._ray_actor import ENTRY_PREFIX, hosted, raised_cause, run_function

__all__ = [
    "RayBackend",
    "RayTaskRunner",
    "RayWorker",
    "backend",
    "ensure_ray",
    "object_ref_of",
    "shutdown_ray",
]

log = logging.getLogger("aioconc")

# Checked without importing Ray: the mode is then not "available" (the test
# fixture skips it) and init() fails with this message.
if importlib.util.find_spec("ray") is None:
    raise ImportError("mode='ray' needs Ray, which is not installed: pip install aioconc[ray]")

# Options that configure an actor but mean nothing to a Ray task.
_ACTOR_ONLY = frozenset(
    {
        "max_restarts",
        "max_task_retries",
        "max_concurrency",
        "max_pending_calls",
        "concurrency_groups",
        "lifetime",
        "name",
        "namespace",
        "get_if_exists",
        "allow_out_of_order_execution",
    }
)
# aioconc's own options of this mode that are not Ray options.
_NOT_RAY = frozenset({"actor_options", "start_timeout"})


# ---------------------------------------------------------------------------
# Ray itself, imported and started on first use
# ---------------------------------------------------------------------------

_init_lock = threading.Lock()
_started_here = False


def ensure_ray() -> Any:
    """Import Ray and connect to it, starting a local Ray when none is connected.

    Raises ``ImportError`` (saying ``pip install aioconc[ray]``) without Ray.
    """
    global _started_here
    try:
        import ray
    except ImportError as exc:
        raise ImportError(
            "mode='ray' needs Ray, which is not installed: pip install aioconc[ray]"
        ) from exc
    if not ray.is_initialized():
        with _init_lock:
            if not ray.is_initialized():
                # Quietly: no dashboard, no start-up banner.  num_cpus is left to
                # Ray (the machine's cores); RAY_ADDRESS, when set, is honoured.
                ray.init(include_dashboard=False, logging_level=logging.ERROR)
                _started_here = True
    return ray


def shutdown_ray() -> None:
    """Shut down the local Ray that aioconc started; a connection made by the user stays."""
    global _started_here
    if _started_here:
        import ray

        ray.shutdown()
        _started_here = False


# Ray's completion callbacks run on a thread of Ray's core worker, which must not
# call back into Ray (ray.kill, .remote() there can deadlock the core worker).
# Work that needs Ray and may be reached from such a callback (including user
# done-callbacks of our futures) is relayed to aioconc's background loop.
_in_callback = threading.local()


def _off_ray_thread(fn: Any, *args: Any) -> None:
    """Run ``fn(*args)`` now, or on the background loop when on Ray's callback thread."""
    if getattr(_in_callback, "active", False):
        inbox_for(background_loop()).post(fn, *args)
    else:
        fn(*args)


def _on_ray_thread(fn: Any) -> Any:
    """Wrap a callback given to Ray so that Ray API calls made under it are relayed."""

    def callback(*args: Any) -> None:
        _in_callback.active = True
        try:
            fn(*args)
        finally:
            _in_callback.active = False

    return callback


# ObjectRef of each Ray-mode future, for as long as the future lives: a future
# passed to another Ray worker travels as its ref (see RayWorker.dispatch).
_refs: weakref.WeakKeyDictionary[Future[Any], Any] = weakref.WeakKeyDictionary()


def object_ref_of(future: Future[Any]) -> Any:
    """The ``ObjectRef`` behind a Ray-mode future, or None for any other future."""
    return _refs.get(future)


# ---------------------------------------------------------------------------
# Errors: Ray's exceptions mapped to the user's own and to aioconc's
# ---------------------------------------------------------------------------


def map_error(exc: BaseException, worker: str) -> BaseException:
    """The exception a call's future fails with, for what Ray raised.

    A user exception comes back as its own type, with the remote traceback as a
    note; a dead actor is :class:`WorkerCrashedError`; a cancelled Ray task is
    ``CancelledError``.  Anything else is passed on unchanged.
    """
    import ray.exceptions as rex

    if isinstance(exc, rex.RayTaskError):
        cause = exc.cause
        cause = raised_cause(cause)
        if isinstance(cause, rex.RayActorError):  # an upstream ref's actor died
            return map_error(cause, worker)
        if isinstance(cause, BaseException):
            if hasattr(cause, "add_note"):
                # str() of Ray's error is the remote traceback.
                cause.add_note(f"Remote traceback (Ray, worker {worker}):\n{exc}")
            return cause
        return exc
    if isinstance(exc, rex.RayActorError):
        crashed = WorkerCrashedError(
            f"the Ray actor of worker {worker} died: {exc}",
            worker=worker,
            pid=getattr(exc, "pid", None),
        )
        crashed.__cause__ = exc
        return crashed
    if isinstance(exc, rex.TaskCancelledError):
        return CancelledError()
    return exc


def _serialization_error(exc: Exception, what: str) -> BaseException:
    if isinstance(exc, (TypeError, AttributeError)) or "pickl" in str(exc).lower():
        err = SerializationError(f"{what} could not be serialised for ray mode: {exc}")
        err.__cause__ = exc
        return err
    return exc


def _with_refs(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, Any]:
    """``args``/``kwargs`` with top-level Ray-mode futures replaced by their ObjectRefs."""
    refs = _refs
    new_args = tuple(refs.get(a, a) if isinstance(a, Future) else a for a in args)
    new_kwargs = {k: refs.get(v, v) if isinstance(v, Future) else v for k, v in kwargs.items()}
    return new_args, new_kwargs


# ---------------------------------------------------------------------------
# The worker
# ---------------------------------------------------------------------------


def _ray_options(extra: dict[str, Any], *, for_task: bool) -> dict[str, Any]:
    options = dict(extra.get("actor_options") or {})
    options.update({k: v for k, v in extra.items() if k not in _NOT_RAY})
    if for_task:
        retries = options.pop("max_task_retries", None)
        options = {k: v for k, v in options.items() if k not in _ACTOR_ONLY}
        if retries is not None:
            options.setdefault("max_retries", retries)
    return options


class _RefCalls:
    """What the worker and the task runner share: pending refs, completion, closing."""

    capabilities = Capabilities(
        needs_pickling=True, shares_memory=False, unwraps_futures=True, scales_out=True
    )

    def __init__(self, ray: Any, name: str, unwrap: bool) -> None:
        self.ready: Future[None] = Future()
        self.closed: Future[None] = Future()
        self._name = name
        self._unwrap = unwrap
        self._pending: dict[Future[Any], Any] = {}
        self._closing = False
        self._drain_begun = False
        self._lock = threading.Lock()
        # What a ref's completion callback gets when the call failed: a RayError
        # (a value of any other type is the call's result); through Ray Client,
        # any exception (a lost connection too).
        client = ray.util.client.ray.is_connected()
        self._failed: type[BaseException] = Exception if client else ray.exceptions.RayError

    @property
    def home(self) -> asyncio.AbstractEventLoop | None:
        return None  # completions arrive on Ray's thread; nothing runs on a loop

    def dispatch(self, call: Call) -> None:
        """Submit ``call`` to Ray; thread-safe and non-blocking."""
        args, kwargs = call.args, call.kwargs
        if self._unwrap and (args or kwargs) and needs_unwrap(args, kwargs):
            args, kwargs = _with_refs(args, kwargs)
            if needs_unwrap(args, kwargs):  # futures of other modes, or nested ones
                defer(Call(call.method, args, kwargs, call.future, call.timeout), self._submit)
                return
            call = Call(call.method, args, kwargs, call.future, call.timeout)
        self._submit(call)

    def _submit(self, call: Call) -> None:
        if getattr(_in_callback, "active", False):  # e.g. a deferred call released by a ref
            inbox_for(background_loop()).post(self._submit, call)
            return
        fut = call.future
        if self._closing:
            fut._set_cancelled()
            return
        if not fut._start():
            return  # cancelled before it was submitted: never runs
        try:
            ref = self._remote(call)
        except Exception as exc:
            fut._set_exception(_serialization_error(exc, f"an argument of {call.method}()"))
            return
        self._pending[fut] = ref
        _refs[fut] = ref
        # Ray hands the value (or the RayError the call failed with) to this
        # callback on its own thread.  ref.future() would first wrap it in a
        # concurrent.futures.Future: about a third of the driver's cost per call.
        ref._on_completed(functools.partial(self._complete, fut))

    def _remote(self, call: Call) -> Any:
        raise NotImplementedError

    def _complete(self, fut: Future[Any], value: Any) -> None:
        # Runs on Ray's callback thread (see _in_callback); the flag is set here
        # rather than by a wrapper, to keep the per-call cost down.
        _in_callback.active = True
        try:
            self._pending.pop(fut, None)
            if isinstance(value, self._failed):
                exc = value
                try:
                    exc = map_error(value, self._name)
                finally:  # whatever happens, the call ends
                    fut._set_exception(exc)
            else:
                fut._set_result(value)
            if self._closing and not self._pending:
                _off_ray_thread(self._drain)
        finally:
            _in_callback.active = False

    def _drain(self) -> None:
        # begin_close and the last completion can both find nothing pending
        # (the completion's check may follow begin_close's): end only once.
        with self._lock:
            if self._drain_begun:
                return
            self._drain_begun = True
        self._drained()

    def _drained(self) -> None:
        self.closed._set_result(None)

    def _cancel_pending(self) -> None:
        for fut in self._pending.copy():
            fut._set_cancelled()
        self._pending.clear()

    def begin_close(self, graceful: bool) -> None:
        """Stop taking calls; graceful: let submitted calls finish, else cancel them."""
        with self._lock:
            if self._closing:
                return
            self._closing = True
        if not graceful:
            self._cancel_pending()
        if not self._pending:
            self._drain()

    def force_close(self) -> None:
        """End everything now: cancel what is pending and release Ray's side."""
        self._closing = True
        self._cancel_pending()
        self.closed._set_result(None)


class RayWorker(_RefCalls):
    """One worker as one Ray actor (see the module docstring)."""

    def __init__(self, spec: WorkerSpec) -> None:
        if _is_pydantic_model(spec.cls):
            raise ValueError(
                f"{spec.cls.__name__} is a pydantic model: pydantic-model workers are not "
                "supported in ray mode; use a plain class or a dataclass"
            )
        ray = ensure_ray()
        super().__init__(ray, spec.name, spec.options.unwrap_futures)
        host = hosted(ray, spec.cls)
        options = _ray_options(dict(spec.extra), for_task=False)
        actor_cls = host.actor_class
        if options:
            actor_cls = actor_cls.options(**options)
        try:
            self._actor = actor_cls.remote(spec.cls, spec.args, spec.kwargs, spec.limits)
        except Exception as exc:
            raise _serialization_error(
                exc, f"the class or __init__ arguments of {spec.name}"
            ) from exc
        self._entries = host.entries
        self._remotes: dict[str, Any] = {}  # method name -> its entry point's .remote
        self._seq = itertools.count()
        self._ordered = host.ordered
        self._killed = False
        self._actor.ready.remote().future().add_done_callback(_on_ray_thread(self._on_ready))

    def _remote(self, call: Call) -> Any:
        remote = self._remotes.get(call.method)
        if remote is None:
            remote = self._remotes[call.method] = self._entry(call.method)
        if not self._ordered:  # a plain actor: Ray keeps our submission order
            return remote(*call.args, **call.kwargs)
        seq = next(self._seq)
        try:
            return remote(seq, *call.args, **call.kwargs)
        except BaseException:  # the call never reaches the actor: do not make the next wait
            self._actor.skip.remote(seq)
            raise

    def _entry(self, method: str) -> Any:
        # The method's own entry point; any other name goes through the generic
        # call(method, ...), which fails on the actor as the lookup would.
        if method in self._entries:
            return getattr(self._actor, ENTRY_PREFIX + method).remote
        return functools.partial(self._actor.call.remote, method)

    def _on_ready(self, done: Any) -> None:
        exc = done.exception()
        if exc is None:
            self.ready._set_result(None)
            return
        error = map_error(exc, self._name)
        self.ready._set_exception(error)
        # Calls submitted meanwhile fail with __init__'s error, not the kill's.
        for fut in self._pending.copy():
            fut._set_exception(error)
        self._closing = True
        self._kill()
        self.closed._set_result(None)

    def _drained(self) -> None:
        # Graceful end: the instance's stop() hook runs in the actor, then the actor goes.
        if self.ready._exception is not None or self._killed:
            self._kill()
            self.closed._set_result(None)
            return
        self._actor.close.remote().future().add_done_callback(_on_ray_thread(self._after_hook))

    def _after_hook(self, done: Any) -> None:
        exc = done.exception()
        if exc is not None:
            log.warning("stop() of worker %s raised: %s", self._name, map_error(exc, self._name))
        self._kill()
        self.closed._set_result(None)

    def _cancel_pending(self) -> None:
        # Queued actor calls are dropped by Ray; a running one finishes (a sync
        # actor cannot be interrupted) before the stop() hook, unless killed.
        for ref in self._pending.copy().values():
            with contextlib.suppress(Exception):  # already finished
                ray_cancel(ref)
        super()._cancel_pending()

    def force_close(self) -> None:
        super().force_close()
        self._kill()

    def _kill(self) -> None:
        if getattr(_in_callback, "active", False):
            inbox_for(background_loop()).post(self._kill)
            return
        with self._lock:
            if self._killed:
                return
            self._killed = True
        try:
            import ray

            ray.kill(self._actor, no_restart=True)
        except Exception as exc:  # already gone, or Ray shut down
            log.debug("ray.kill of worker %s: %s", self._name, exc)


def ray_cancel(ref: Any) -> None:
    """Ask Ray to drop the task or actor call behind ``ref``."""
    import ray

    ray.cancel(ref)


def _is_pydantic_model(cls: type[Any]) -> bool:
    try:
        import pydantic
    except ImportError:  # pragma: no cover - pydantic is a dependency
        return False
    return isinstance(cls, type) and issubclass(cls, pydantic.BaseModel)


# ---------------------------------------------------------------------------
# Functions as Ray tasks (TaskWorker)
# ---------------------------------------------------------------------------


class RayTaskRunner(_RefCalls):
    """Runs functions as Ray tasks with the worker's Ray options.

    ``dispatch(call)`` runs ``call.args[0](*call.args[1:], **call.kwargs)`` as one
    Ray task (``call.method`` is ignored); ``async def`` functions are run to
    completion in the task.  ``ready`` is finished at once.
    """

    def __init__(self, spec: WorkerSpec) -> None:
        self._ray = ensure_ray()
        super().__init__(self._ray, spec.name, spec.options.unwrap_futures)
        self._options = _ray_options(dict(spec.extra), for_task=True)
        self._remote_fns: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
        self.ready._set_result(None)

    def _remote(self, call: Call) -> Any:
        fn, *args = call.args
        if not callable(fn):
            raise TypeError(f"the first argument must be a callable, not {type(fn).__name__}")
        try:
            remote = self._remote_fns.get(fn)
        except TypeError:  # not weak-referenceable (e.g. a builtin)
            remote = None
        if remote is None:
            remote = self._ray.remote(run_function)
            if self._options:
                remote = remote.options(**self._options)
            with contextlib.suppress(TypeError):  # not weak-referenceable: not cached
                self._remote_fns[fn] = remote
        return remote.remote(fn, *args, **call.kwargs)

    def _cancel_pending(self) -> None:
        for ref in self._pending.copy().values():
            with contextlib.suppress(Exception):  # already finished
                ray_cancel(ref)
        super()._cancel_pending()


# ---------------------------------------------------------------------------
# The backend
# ---------------------------------------------------------------------------


class RayBackend:
    """Starts :class:`RayWorker` s (and, for TaskWorker, :class:`RayTaskRunner` s)."""

    option_names: frozenset[str] = frozenset()
    capabilities = _RefCalls.capabilities

    def start(self, spec: WorkerSpec) -> RayWorker:
        """Start one actor; raises ``ImportError`` without Ray, ``ValueError`` for a
        pydantic-model class."""
        return RayWorker(spec)

    def start_tasks(self, spec: WorkerSpec) -> RayTaskRunner:
        """A runner of plain functions as Ray tasks, with ``spec``'s Ray options."""
        return RayTaskRunner(spec)


backend = RayBackend()
