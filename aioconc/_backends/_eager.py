"""Starting an ``async def`` call eagerly: its first step runs inside ``dispatch``.

A call made on the worker's own loop used to cost a task and a task switch even
when the method never suspends: the call's task ran on the next loop turn, and
the awaiting coroutine woke a turn after that.  Here the method's first step
runs at once, in the caller's stack (as Python 3.12's eager tasks do)::

    dispatch(call) ──► the worker's spare task becomes the current task
                       └─ first step now ──┬─► returned / raised: the future is done
                                           │   before dispatch returns, ``await`` does
                                           │   not suspend, the spare waits for the next
                                           └─► suspended: the spare task goes on with
                                               this call; the next call makes a new spare

The task exists before the first step runs, so ``asyncio.current_task()``,
``asyncio.timeout``, ``TaskGroup`` and anyio cancel scopes used there see the
task that runs the rest of the call, not the caller's.  Every step of the call
runs in the call's context (its copy of the caller's contextvars).

A spare task's coroutine is a :class:`_Runner`: a small object speaking the
coroutine protocol (``send``/``throw``/``close``).  While idle it parks the task
on a loop future; given a suspended call it hands the task what the first step
yielded and then drives the method's coroutine.  Every outcome goes into the
call's future; the task itself always ends normally.

Making the call's task current for the first step takes asyncio's private
record of current tasks (``_private_asyncio.tasks_by_loop``).  Where there is
none that works (or ``AIOCONC_NO_PRIVATE_ASYNCIO=1``), nothing runs inline: each
call gets a runner of its own from its first step, in a task made by
``loop.create_task``, and its future finishes when that task has run.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable, Coroutine, Generator
from typing import Any

from .. import _private_asyncio
from .._future import _STARTED, Future
from .._runtime import running_loop, task_in_context

__all__ = ["EagerStarter"]

_copy_context = contextvars.copy_context

_IDLE = 0  # no call: parked (or not started yet); a first step may run under it
_HANDOFF = 1  # a call suspended in its first step; the task has not taken its yield yet
_RUNNING = 2  # the task drives the call
_ENDED = 3  # the call it took ended, or the spare was retired


class _Runner(Coroutine[Any, Any, None]):
    """The coroutine of one spare task (see the module docstring)."""

    __slots__ = ("_coro", "_ctx", "_fut", "_loop", "_park", "_yielded", "on_end", "state", "task")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._coro: Coroutine[Any, Any, Any] | None = None
        self._fut: Future[Any] | None = None
        self._ctx: contextvars.Context | None = None
        self._yielded: Any = None
        self._park: asyncio.Future[None] | None = None
        self.state = _IDLE
        self.on_end: Callable[[Future[Any]], None] | None = None
        self.task: asyncio.Task[None] | None = None

    def take_over(
        self,
        coro: Coroutine[Any, Any, Any],
        fut: Future[Any],
        ctx: contextvars.Context,
        yielded: Any,
    ) -> None:
        """Carry on with a call that suspended in its first step, yielding ``yielded``."""
        self._coro, self._fut, self._ctx, self._yielded = coro, fut, ctx, yielded
        self.state = _HANDOFF
        park = self._park
        if park is not None and not park.done():
            park.set_result(None)  # wake the parked task: it takes the call's yield

    def run_whole(
        self, coro: Coroutine[Any, Any, Any], fut: Future[Any], ctx: contextvars.Context
    ) -> None:
        """Run a call that has not started, first step included (no eager start)."""
        self._coro, self._fut, self._ctx = coro, fut, ctx
        self.state = _RUNNING

    def _step(self, value: Any, exc: BaseException | None) -> Any:
        coro = self._coro
        assert coro is not None
        assert self._fut is not None
        try:
            if exc is None:
                return coro.send(value)
            return coro.throw(exc)
        except StopIteration as stop:
            self._fut._set_result(stop.value)
        except asyncio.CancelledError as cancelled:
            self._fut._set_cancelled(cancelled)  # may be the awaiting task's (Future.__await__)
        except BaseException as err:  # the call's outcome, whatever it is
            self._fut._set_exception(err)
        self._end()
        return None

    def _end(self) -> None:
        fut = self._fut
        self.state = _ENDED
        self._coro = self._ctx = None
        on_end = self.on_end
        if on_end is not None and fut is not None:
            on_end(fut)

    # -- the coroutine protocol, spoken to the task ------------------------------

    def send(self, value: Any) -> Any:
        state = self.state
        if state is _RUNNING:
            assert self._ctx is not None
            yielded = self._ctx.run(self._step, value, None)
            if self.state is _ENDED:
                raise StopIteration
            return yielded
        if state is _HANDOFF:
            self.state = _RUNNING
            yielded, self._yielded = self._yielded, None
            return yielded
        if state is _IDLE:
            park = self._park = self._loop.create_future()
            park._asyncio_future_blocking = True  # what ``yield`` from a future's __await__ sets
            return park
        raise StopIteration

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        exc = val if val is not None else (typ() if isinstance(typ, type) else typ)
        if self.state is _IDLE or self.state is _ENDED:
            self.state = _ENDED  # a parked spare cancelled (its loop ends): end quietly
            raise StopIteration
        self.state = _RUNNING
        self._yielded = None
        assert self._ctx is not None
        yielded = self._ctx.run(self._step, None, exc)
        if self.state is _ENDED:
            raise StopIteration
        return yielded

    def close(self) -> None:
        coro = self._coro
        if coro is not None:
            self._coro = None
            coro.close()
            if self._fut is not None:
                self._fut._set_cancelled()
        self.state = _ENDED

    def __await__(self) -> Generator[Any, None, None]:
        raise TypeError("a spare task's runner is driven by its task, not awaited")

    # What inspect.getcoroutinestate reads (anyio asks it of tasks in cancel scopes).

    @property
    def cr_running(self) -> bool:
        coro = self._coro
        return coro is not None and bool(coro.cr_running)  # type: ignore[attr-defined]

    @property
    def cr_suspended(self) -> bool:
        return self.state is not _ENDED and not self.cr_running

    @property
    def cr_frame(self) -> Any:
        return getattr(self._coro, "cr_frame", None)

    def __repr__(self) -> str:
        return f"<aioconc call runner state={self.state} {self._coro!r}>"


class EagerStarter:
    """Starts a worker's ``async def`` calls eagerly on its loop; keeps its spare task."""

    __slots__ = ("_busy", "_cur", "_loop", "_on_end", "_spare", "methods", "tasks")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        on_end: Callable[[Future[Any]], None],
        tasks: dict[Future[Any], asyncio.Task[None]],
    ) -> None:
        self._loop = loop
        self._on_end = on_end
        # The worker's running calls (start_inline adds the ones that suspend) and
        # the async def methods start_inline may start: filled by the worker while
        # it is open, emptied when it closes.
        self.tasks = tasks
        self.methods: dict[str, Callable[..., Coroutine[Any, Any, Any]]] = {}
        self._spare: _Runner | None = None
        self._busy = False  # a first step is running (a nested call gets its own task)
        # asyncio's record of current tasks, read when the worker is made (a
        # test that reloads _private_asyncio changes the workers made after).
        self._cur = _private_asyncio.tasks_by_loop

    @property
    def inline(self) -> bool:
        """True when first steps run inline; False when every call starts in its task."""
        return self._cur is not None

    def start(
        self, coro: Coroutine[Any, Any, Any], fut: Future[Any], ctx: contextvars.Context
    ) -> asyncio.Task[None] | None:
        """Run ``coro``'s first step now; the task carrying on with it, or None when
        that step ended the call.  Must be called on the loop's thread."""
        loop = self._loop
        cur = self._cur
        if cur is None:
            return self._start_in_task(coro, fut, ctx)
        runner = self._spare
        if runner is None or runner.state is not _IDLE or self._busy:
            # None yet, or ended by a cancellation that came too late for its
            # call; or a call starts from inside another's first step.
            runner = self._new_runner()
            if not self._busy:
                self._spare = runner
        task = runner.task
        assert task is not None
        # Bound before the method runs: from its first line on, cancel() of the
        # call (from any thread) reaches the task that runs it.
        fut._aio, fut._loop, fut._asyncio_future_blocking = task, loop, False  # _bind_task
        caller = cur.get(loop)
        cur[loop] = task
        busy, self._busy = self._busy, True
        try:
            yielded = ctx.run(coro.send, None)
        except StopIteration as stop:
            # Done on this loop: it stays an asyncio future here, as in start_inline.
            fut._aio = None
            fut._set_result(stop.value)
            if runner is not self._spare:
                runner.state = _ENDED  # a one-off runner (a nested call's): its task ends
            return None
        except asyncio.CancelledError:
            fut._unbind_task()
            fut._set_cancelled()
            self._ended_at_once(runner)
            return None
        except BaseException as exc:  # the call's outcome, whatever it is
            fut._unbind_task()
            fut._set_exception(exc)
            self._ended_at_once(runner)
            return None
        finally:
            self._busy = busy
            if caller is None:
                del cur[loop]
            else:
                cur[loop] = caller
        self._hand_off(runner, coro, fut, ctx, yielded)
        return task

    def start_inline(
        self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any], fut: Future[Any]
    ) -> bool:
        """A call of ``method`` made right here, whose future no one else holds yet.

        When the caller runs on this loop and ``method`` is in ``methods``, the
        call starts now: ``method(*args, **kwargs)`` runs its first step in a copy
        of the caller's context, and True is returned.  Nothing can cancel the
        call during that step, so the future is bound to the task only if the
        step suspends.  Otherwise False, with ``fut`` untouched.
        """
        loop = self._loop
        if running_loop() is not loop:
            return False
        fn = self.methods.get(method)
        cur = self._cur
        if fn is None or cur is None or self._busy:  # a nested call goes by start()
            return False
        fut._state = _STARTED  # what _start() does, with no one to race
        fut.started_at = fut.submitted_at
        fut.attempts = 1
        try:
            coro = fn(*args, **kwargs)
        except BaseException as exc:  # arguments the method does not take
            fut._set_exception(exc)
            return True
        runner = self._spare
        if runner is None or runner.state is not _IDLE:
            runner = self._spare = self._new_runner()
        task = runner.task
        assert task is not None
        ctx = _copy_context()
        caller = cur.get(loop)
        cur[loop] = task
        self._busy = True
        try:
            yielded = ctx.run(coro.send, None)
        except StopIteration as stop:
            fut._set_result_unshared(stop.value, loop)  # no one else holds it yet
            return True
        except asyncio.CancelledError:
            fut._set_cancelled()
            return True
        except BaseException as exc:  # the call's outcome, whatever it is
            fut._set_exception(exc)
            return True
        finally:
            self._busy = False
            if caller is None:
                del cur[loop]
            else:
                cur[loop] = caller
        fut._aio, fut._loop, fut._asyncio_future_blocking = task, loop, False  # _bind_task
        self._hand_off(runner, coro, fut, ctx, yielded)
        self.tasks[fut] = task
        return True

    def _start_in_task(
        self, coro: Coroutine[Any, Any, Any], fut: Future[Any], ctx: contextvars.Context
    ) -> asyncio.Task[None]:
        # No eager start: the whole call, first step included, runs in a task
        # of its own, bound to the future at once so cancel() reaches it.
        runner = _Runner(self._loop)
        runner.run_whole(coro, fut, ctx)
        runner.on_end = self._on_end
        task = runner.task = task_in_context(self._loop, runner, contextvars.Context())
        fut._bind_task(task, self._loop)
        return task

    def _new_runner(self) -> _Runner:
        # Its task starts in an empty context: each call it runs brings its own.
        runner = _Runner(self._loop)
        runner.task = task_in_context(self._loop, runner, contextvars.Context())
        return runner

    def _hand_off(
        self,
        runner: _Runner,
        coro: Coroutine[Any, Any, Any],
        fut: Future[Any],
        ctx: contextvars.Context,
        yielded: Any,
    ) -> None:
        # The call suspended in its first step: the runner's task carries on
        # with it, so the runner stops being the spare.
        runner.take_over(coro, fut, ctx, yielded)
        runner.on_end = self._on_end
        if runner is self._spare:
            self._spare = None

    def _ended_at_once(self, runner: _Runner) -> None:
        if runner is not self._spare:
            runner.state = _ENDED  # a one-off runner (a nested call's): its task ends

    def retire(self) -> None:
        """End the spare task (the worker is closing)."""
        runner, self._spare = self._spare, None
        if runner is not None and runner.task is not None:
            runner.task.cancel()
