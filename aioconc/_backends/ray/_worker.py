"""Ray mode, the driver side: each worker is one Ray actor; each call an ``ObjectRef``.

::

    dispatch(call) ── actor.m_<method>.remote(*args) ──► Ray actor (see _actor)
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

The actor side lives in ``_actor``; calls in flight (pending refs, their
completion on Ray's thread, Ray's errors mapped to ours) in ``_calls``; shared
limit sets in ``_limits``.
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
from collections.abc import Mapping
from typing import Any

from ..._call import Call
from ..._carry import CARRIED, carried
from ..._codec import BOUND_CALLS, codec_for
from ..._exceptions import WorkerCrashedError, WorkerStartError
from ..._runtime import background_loop, inbox_for, on_engine_thread
from ..._serialize import CallCodec
from ...limits._export import exporting
from .._base import WorkerSpec, internal_retries
from . import _limits
from ._actor import ENTRY_PREFIX, hosted, run_coded, run_function, run_function_in
from ._calls import (
    RefCalls,
    in_callback,
    map_error,
    object_ref_of,
    on_ray_thread,
    ray_cancel,
    serialization_error,
)

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

    Callable from any thread: the connection is made on the runtime's engine
    thread (Ray ties the processes it starts to the thread that started them,
    and a caller's thread may end).  Raises ``ImportError`` (saying
    ``pip install aioconc[ray]``) without Ray.
    """
    try:
        import ray
    except ImportError as exc:
        raise ImportError(
            "mode='ray' needs Ray, which is not installed: pip install aioconc[ray]"
        ) from exc
    if not ray.is_initialized():
        on_engine_thread(_connect, ray)
    return ray


def _connect(ray: Any) -> None:
    global _started_here
    with _init_lock:
        if not ray.is_initialized():
            # Quietly: no dashboard, no start-up banner.  num_cpus is left to
            # Ray (the machine's cores); RAY_ADDRESS, when set, is honoured.
            ray.init(include_dashboard=False, logging_level=logging.ERROR)
            _started_here = True


def shutdown_ray() -> None:
    """Shut down the local Ray that aioconc started; a connection made by the user stays."""
    if _started_here:
        on_engine_thread(_disconnect)


def _disconnect() -> None:
    global _started_here
    import ray

    ray.shutdown()
    _started_here = False


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


class RayWorker(RefCalls):
    """One worker as one Ray actor (see the module docstring)."""

    def __init__(self, spec: WorkerSpec) -> None:
        ray = ensure_ray()
        super().__init__(ray, spec.name, spec.options.unwrap_futures)
        host = hosted(ray, spec.cls)
        options = _ray_options(dict(spec.extra), for_task=False)
        self._name_id = f"{spec.name}-{id(self):x}"  # names this worker to limit actors
        actor_cls = host.actor_class
        if options:
            actor_cls = actor_cls.options(**options)
        try:
            # Shared "ray" limit sets travel as clients of their limit actor.
            with exporting(functools.partial(_limits.export, client=self._name_id)):
                self._actor = actor_cls.remote(
                    spec.cls, spec.args, spec.kwargs, spec.limits, internal_retries(spec)
                )
        except Exception as exc:
            raise serialization_error(
                exc, f"the class or __init__ arguments of {spec.name}"
            ) from exc
        self._entries = host.entries
        self._remotes: dict[str, Any] = {}  # method name -> its entry point's .remote
        self._serializer = spec.options.serializer
        codec = codec_for(self._serializer)
        if codec is not None:
            self._codec = CallCodec(codec, spec.cls, spec.kwargs.get("fn"), mode="ray")
        self._seq = itertools.count()
        self._ordered = host.ordered
        self._killed = False
        self._start_timeout: float | None = spec.extra.get("start_timeout")
        self._asked = _asked_resources(options)
        self._start_timer: asyncio.TimerHandle | None = None
        self._actor.ready.remote().future().add_done_callback(on_ray_thread(self._on_ready))
        self._actor_error: type[BaseException] = ray.exceptions.RayActorError
        self._actor_id = _actor_id_of(self._actor)
        # An actor Ray restarts is not dead when a call fails: no watch then.
        self._watched = not options.get("max_restarts")
        if self._watched:
            watch = self._actor.watch.remote().future()
            watch.add_done_callback(on_ray_thread(self._on_watch_ended))
        if self._start_timeout is not None:
            inbox_for(background_loop()).post(self._arm_start_timer)

    def _remote(self, call: Call) -> Any:
        values = carried(call.context) if CARRIED else None
        if self._codec is not None:
            blob = self._codec.encode_call(call.method, call.args, call.kwargs, values)
            return self._send(self._actor.coded.remote, (self._serializer,), (blob,), {})
        if values is not None:
            # The caller's carried context values go first, to the host's call_in.
            lead: tuple[Any, ...] = (values, call.method)
            return self._send(self._actor.call_in.remote, lead, call.args, call.kwargs)
        remote = self._remotes.get(call.method)
        if remote is None:
            remote = self._remotes[call.method] = self._entry(call.method)
        return self._send(remote, (), call.args, call.kwargs)

    def _send(
        self, remote: Any, lead: tuple[Any, ...], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """``remote(*lead, *args, **kwargs)``; an ordered actor's call also carries
        its place in line, after ``lead``."""
        if not self._ordered:  # a plain actor: Ray keeps our submission order
            return remote(*lead, *args, **kwargs)
        seq = next(self._seq)
        try:
            return remote(*lead, seq, *args, **kwargs)
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
        if self._start_timer is not None:
            inbox_for(background_loop()).post(self._start_timer.cancel)
        exc = done.exception()
        if exc is None:
            self.ready._set_result(None)
            return
        self._fail_start(map_error(exc, self._name))

    def _fail_start(self, error: BaseException) -> None:
        if self.ready.done():
            return
        self._dead = error  # later calls fail with it too (a pool retries them elsewhere)
        self.ready._set_exception(error)
        # Calls submitted meanwhile fail with __init__'s error, not the kill's.
        for fut in self._pending.copy():
            fut._set_exception(error)
        self._closing = True
        self._kill()
        self.closed._set_result(None)

    # -- start timeout and death watch -----------------------------------------

    def _arm_start_timer(self) -> None:
        # On the background loop: a timer, not a thread, per starting worker.
        if not self.ready.done() and self._start_timeout is not None:
            loop = background_loop()
            self._start_timer = loop.call_later(self._start_timeout, self._start_timed_out)

    def _start_timed_out(self) -> None:
        if self.ready.done():
            return
        ray = ensure_ray()
        try:
            total, free = ray.cluster_resources(), ray.available_resources()
        except Exception as exc:  # the cluster is unreachable: say that instead
            total = free = {"unknown": str(exc)}
        self._fail_start(
            WorkerStartError(
                f"worker {self._name} did not start within {self._start_timeout} s "
                f"(start_timeout): its Ray actor asks for {_show(self._asked)}; the cluster "
                f"has {_show(total)} in all, {_show(free)} available.  Ask for resources a "
                "node has, add such a node, or pass start_timeout=None to wait for an "
                "autoscaler."
            )
        )

    def _on_watch_ended(self, done: Any) -> None:
        # The watch call never returns: it ends when the actor dies.
        exc = done.exception()
        error = map_error(exc, self._name) if exc is not None else None
        if not isinstance(error, WorkerCrashedError):
            error = WorkerCrashedError(
                f"the Ray actor of worker {self._name} ended: {exc}", worker=self._name
            )
        self._died(error)

    def _call_failed(self, exc: BaseException, error: BaseException) -> None:
        # A call that Ray failed because the actor is gone is news of its death
        # as good as the watch's (whichever comes first).
        if not self._watched or not isinstance(exc, self._actor_error):
            return
        # Not an upstream actor's death: Ray's error of a failed argument (a
        # RayTaskError made an instance of its cause) names another actor.
        if self._actor_id is not None and getattr(exc, "actor_id", None) == self._actor_id:
            self._died(error)

    def _died(self, error: BaseException) -> None:
        # Our own kill (stop, a failed start) is not a death to report.
        if self._killed or self._dead is not None or not self.ready.done():
            return
        if self.ready._failure() is not None:
            return
        self._dead = error
        for fut in self._pending.copy():
            fut._set_exception(error)
        self._closing = True
        self._kill()  # what it held of shared limits is given back
        self.closed._set_result(None)  # a pool replaces it

    def _drained(self) -> None:
        # Graceful end: the instance's stop() hook runs in the actor, then the actor goes.
        if self.ready._failure() is not None or self._killed:
            self._kill()
            self.closed._set_result(None)
            return
        self._actor.close.remote().future().add_done_callback(on_ray_thread(self._after_hook))

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
        if getattr(in_callback, "active", False):
            inbox_for(background_loop()).post(self._kill)
            return
        with self._lock:
            if self._killed:
                return
            self._killed = True
        try:
            import ray

            ray.kill(self._actor, no_restart=True)
            _limits.forget(self._name_id)  # what it held of shared limits is free
        except Exception as exc:  # already gone, or Ray shut down
            log.debug("ray.kill of worker %s: %s", self._name, exc)


def _actor_id_of(actor: Any) -> str | None:
    # What Ray's RayActorError.actor_id holds; None where a handle lacks it.
    ident: Any = getattr(actor, "_actor_id", None)
    return str(ident.hex()) if hasattr(ident, "hex") else None


def _asked_resources(options: dict[str, Any]) -> dict[str, Any]:
    # What placing the actor needs: Ray places an actor on 1 CPU unless told.
    asked: dict[str, Any] = {"CPU": options.get("num_cpus", 1)}
    if options.get("num_gpus"):
        asked["GPU"] = options["num_gpus"]
    if options.get("memory"):
        asked["memory"] = options["memory"]
    asked.update(options.get("resources") or {})
    if options.get("scheduling_strategy") is not None:
        asked["scheduling_strategy"] = options["scheduling_strategy"]
    return asked


def _show(resources: Mapping[str, Any]) -> str:
    return "{" + ", ".join(f"{k}: {v}" for k, v in sorted(resources.items())) + "}"


# ---------------------------------------------------------------------------
# Functions as Ray tasks (TaskWorker)
# ---------------------------------------------------------------------------


class RayTaskRunner(RefCalls):
    """Runs functions as Ray tasks with the worker's Ray options.

    ``dispatch(call)`` runs ``call.args[0](*call.args[1:], **call.kwargs)`` as one
    Ray task (for ``call_bound``: the function bound at init, with ``call.args``);
    ``async def`` functions are run to completion in the task.  ``ready`` is finished at once.
    """

    def __init__(self, spec: WorkerSpec) -> None:
        self._ray = ensure_ray()
        super().__init__(self._ray, spec.name, spec.options.unwrap_futures)
        self._options = _ray_options(dict(spec.extra), for_task=True)
        self._remote_fns: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
        self._bound = spec.kwargs.get("fn")
        self._coded_remote: Any = None
        self._carrying_remote: Any = None  # run_function_in, for calls carrying context
        self._serializer = spec.options.serializer
        codec = codec_for(self._serializer)
        if codec is not None:
            self._codec = CallCodec(codec, spec.cls, self._bound, mode="ray")
        self.ready._set_result(None)

    def _remote(self, call: Call) -> Any:
        if call.method in BOUND_CALLS:  # the function bound with init(fn=...)
            fn, args = self._bound, list(call.args)
        else:
            fn, *args = call.args
        if not callable(fn):
            raise TypeError(f"the first argument must be a callable, not {type(fn).__name__}")
        values = carried(call.context) if CARRIED else None
        if self._codec is not None:
            blob = self._codec.encode_call(call.method, tuple(args), call.kwargs, values)
            coded = self._coded_remote
            if coded is None:
                coded = self._coded_remote = self._task_remote(run_coded)
            return coded.remote(self._serializer, fn, blob)
        if values is not None:
            carrying = self._carrying_remote
            if carrying is None:
                carrying = self._carrying_remote = self._task_remote(run_function_in)
            return carrying.remote(values, fn, *args, **call.kwargs)
        try:
            remote = self._remote_fns.get(fn)
        except TypeError:  # not weak-referenceable (e.g. a builtin)
            remote = None
        if remote is None:
            remote = self._task_remote(run_function)
            with contextlib.suppress(TypeError):  # not weak-referenceable: not cached
                self._remote_fns[fn] = remote
        return remote.remote(fn, *args, **call.kwargs)

    def _task_remote(self, fn: Any) -> Any:
        """``fn`` as a Ray task, with this runner's Ray options."""
        remote = self._ray.remote(fn)
        return remote.options(**self._options) if self._options else remote

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
    capabilities = RefCalls.capabilities

    def start(self, spec: WorkerSpec) -> RayWorker:
        """Start one actor; raises ``ImportError`` without Ray."""
        return RayWorker(spec)

    def start_tasks(self, spec: WorkerSpec) -> RayTaskRunner:
        """A runner of plain functions as Ray tasks, with ``spec``'s Ray options."""
        return RayTaskRunner(spec)


backend = RayBackend()
