"""Shared limits for process workers: the state stays in the parent.

A shared ``LimitSet(mode="process")`` handed to process workers keeps its one
state (a ``LocalLimitEngine``) in the process that made it.  Each worker's child
gets a :class:`ChildLimitClient` in its place, which sends every acquire,
release and refund over the worker's own socket; the parent answers on its
background loop, from the same engine, so the algorithms, FIFO order and
refunds are exactly those of an in-process set and a limit of N per window is N
across every worker using the set.

::

    child: self.limits.acquire({"tokens": 5})
      ── LIMIT_REQUEST (id, ("acquire", token, amounts, timeout)) ──►  parent's loop:
                                                                       engine.async_acquire
      ◄── LIMIT_REPLY (id, ok, value) ──  granted / TimeoutError / cancelled

A coroutine in the child that is cancelled while it waits sends ``abandon``:
the parent stops waiting for it.  When a worker process dies, what it held
(ResourceLimit units) is released, so a crash leaks no capacity; rate units it
took stay spent, as they would have been.  A request is served by whichever
thread reads it from the socket (see :class:`LimitServer`).
"""

from __future__ import annotations

import asyncio
import collections
import pickle
import sys
import threading
from collections.abc import Callable, Mapping
from typing import Any

from ..._enums import ExecutionMode
from ...limits._definitions import Limit, ResourceLimit
from ...limits._engine import LocalLimitEngine
from ...limits._limit_set import LimitSet
from .child._child import NAME_IN_CHILD

__all__ = ["ChildLimitClient", "LimitServer", "child_limit_set"]

Amounts = Mapping[str, float]


class LimitServer:
    """The parent's end: serves the shared sets one process worker was given.

    ``send(reply_body)`` writes a ``LIMIT_REPLY`` frame to that worker;
    ``post(fn, *args)`` runs ``fn`` on the background loop, in order.
    ``handle`` runs in whichever thread read the request (the loop, or a thread
    waiting in ``result()``): releases, refunds, ``try_acquire`` and acquires
    that fit at once are served there, so the parent sees a child's release
    before that call's result; waits, and whatever follows a wait not yet
    queued, go to the loop in the order sent.  ``close`` runs on the loop.
    """

    def __init__(self, send: Callable[[bytes], None], post: Callable[..., None]) -> None:
        self._send = send
        self._post = post
        self._sets: list[LimitSet] = []
        self._waits: dict[int, asyncio.Task[None]] = {}  # on the loop only
        self._lock = threading.Lock()  # _held, _closed, _deferred
        # ResourceLimit units this worker holds, per set: given back if it dies.
        self._held: dict[int, collections.Counter[str]] = {}
        self._closed = False
        self._deferred = 0  # requests posted to the loop and not yet served there

    def export(self, limit_set: LimitSet) -> tuple[Any, ...]:
        """How ``limit_set`` pickles into this worker (installed with ``exporting``).

        Raises ``TypeError`` for a shared set that is not a "process" set.
        """
        if limit_set.mode is not ExecutionMode.Processes:
            raise TypeError(
                f"a shared LimitSet made for mode {limit_set.mode} cannot be used in a "
                "process worker: create it with mode='process'"
            )
        token = next((i for i, known in enumerate(self._sets) if known is limit_set), None)
        if token is None:
            token = len(self._sets)
            self._sets.append(limit_set)
        return (child_limit_set, (token, limit_set.limits, limit_set.config))

    # -- requests ------------------------------------------------------------

    def handle(self, body: bytes) -> None:
        """Serve one request of the child (malformed input raises: the caller kills it)."""
        ident, payload = pickle.loads(body)
        op = payload[0]
        if op == "release":
            token, amounts, used = payload[1], payload[2], payload[3]
            if self._gave_back(token, amounts):
                self._engine(token).release(amounts, used)
        elif op == "stats":
            self._reply(ident, True, self._engine(payload[1]).stats())
        elif op in ("acquire", "try"):
            with self._lock:
                if self._closed:
                    return  # read before the worker ended: nobody to answer
                # FIFO: behind a wait not yet queued, a request waits its turn.
                direct = not self._deferred
                if not direct:
                    self._deferred += 1
            if not direct:
                self._post(self._on_loop, ident, payload)
            elif not self._take(ident, payload):
                with self._lock:
                    self._deferred += 1
                self._post(self._on_loop, ident, payload)  # an acquire that must wait
        elif op == "abandon":
            with self._lock:
                self._deferred += 1
            self._post(self._on_loop, ident, payload)  # after the wait it ends
        else:
            raise ValueError(f"unknown limit request {op!r}")

    def _take(self, ident: int, payload: tuple[Any, ...]) -> bool:
        """Serve a try, or an acquire that fits now; False: the acquire must wait."""
        op, token, amounts = payload[0], payload[1], payload[2]
        taken = self._engine(token).try_acquire(amounts)
        if op == "acquire" and not taken:
            return False
        if not taken or self._took(token, amounts):
            self._reply(ident, True, None if op == "acquire" else taken)
        return True

    def _on_loop(self, ident: int, payload: tuple[Any, ...]) -> None:
        if self._closed:
            self._undefer()
        elif payload[0] == "abandon":
            self._undefer()
            task = self._waits.get(payload[1])
            if task is not None:
                task.cancel()
        elif self._take(ident, payload):
            self._undefer()
        else:  # still counted until the wait is queued in the engine (FIFO)
            token, amounts, timeout = payload[1], payload[2], payload[3]
            self._waits[ident] = asyncio.get_running_loop().create_task(
                self._wait(ident, token, amounts, timeout)
            )

    def _undefer(self) -> None:
        with self._lock:
            self._deferred -= 1

    async def _wait(self, ident: int, token: int, amounts: Amounts, timeout: float | None) -> None:
        try:
            # async_acquire queues its waiter before it first suspends: from
            # then on, later requests served directly respect its place.
            self._undefer()
            await self._engine(token).async_acquire(amounts, timeout)
        except TimeoutError as exc:
            self._reply(ident, False, exc)
        except asyncio.CancelledError:
            self._reply(ident, False, TimeoutError("the limit request was abandoned"))
        else:
            if self._took(token, amounts):
                self._reply(ident, True, None)
        finally:
            self._waits.pop(ident, None)

    def _engine(self, token: int) -> LocalLimitEngine:
        engine = self._sets[token]._backend
        assert isinstance(engine, LocalLimitEngine)
        return engine

    def _reply(self, ident: int, ok: bool, value: Any) -> None:
        if not self._closed:
            self._send(pickle.dumps((ident, ok, value), pickle.HIGHEST_PROTOCOL))

    def _took(self, token: int, amounts: Amounts) -> bool:
        """Record a grant; False when the worker is gone (the grant is given back)."""
        held = self._resources(token, amounts)
        with self._lock:
            if not self._closed:
                if held:
                    self._held.setdefault(token, collections.Counter()).update(held)
                return True
        self._engine(token).release(amounts, dict.fromkeys(amounts, 0))
        return False

    def _gave_back(self, token: int, amounts: Amounts) -> bool:
        """Record a release; False once closed (``close`` gave everything back)."""
        held = self._resources(token, amounts)
        with self._lock:
            if self._closed:
                return False
            if held:
                self._held.setdefault(token, collections.Counter()).subtract(held)
            return True

    def _resources(self, token: int, amounts: Amounts) -> dict[str, float]:
        limit_set = self._sets[token]
        return {
            key: amount
            for key, amount in amounts.items()
            if amount and isinstance(limit_set[key], ResourceLimit)
        }

    def close(self) -> None:
        """On the loop, once the worker is gone: stop its waits, give back the
        resources it held."""
        with self._lock:
            self._closed = True
            held, self._held = self._held, {}
        for task in list(self._waits.values()):
            task.cancel()
        for token, counts in held.items():
            units = {key: amount for key, amount in counts.items() if amount > 0}
            if units:
                self._engine(token).release(units, units)


# ---------------------------------------------------------------------------
# The child's end
# ---------------------------------------------------------------------------


def child_limit_set(token: int, limits: list[Limit], config: dict[str, Any]) -> LimitSet:
    """Rebuild, in a worker process, the shared set the parent exported as ``token``."""
    return LimitSet._client(limits, ExecutionMode.Processes, config, ChildLimitClient(token))


class ChildLimitClient:
    """A ``LimitBackend`` whose state is the parent's engine, reached over the
    worker's socket.  Usable from the worker's methods, their threads and their
    coroutines; only inside the worker process it was sent to."""

    waiting = 0  # its requests queue in the parent's engine, not here

    def __init__(self, token: int) -> None:
        self._token = token

    @staticmethod
    def _channel() -> Any:
        module = sys.modules.get(NAME_IN_CHILD)
        child = getattr(module, "CURRENT", None)
        if child is None:
            raise RuntimeError(
                "this shared LimitSet was sent to a process worker and works only inside it"
            )
        return child

    def try_acquire(self, amounts: Amounts) -> bool:
        return bool(self._channel().request(("try", self._token, dict(amounts))))

    def acquire(self, amounts: Amounts, timeout: float | None) -> None:
        self._channel().request(("acquire", self._token, dict(amounts), timeout))

    async def async_acquire(self, amounts: Amounts, timeout: float | None) -> None:
        await self._channel().arequest(("acquire", self._token, dict(amounts), timeout))

    def release(self, amounts: Amounts, used: Amounts) -> None:
        self._channel().post(("release", self._token, dict(amounts), dict(used)))

    def stats(self) -> dict[str, dict[str, Any]]:
        stats: dict[str, dict[str, Any]] = self._channel().request(("stats", self._token))
        return stats

    def __repr__(self) -> str:
        return f"<ChildLimitClient token={self._token}>"
