"""Shared limits for Ray workers: the state lives in one async Ray actor.

A shared ``LimitSet(mode="ray")`` is served by one :class:`_LimitActor` (an
async actor holding the set's ``LocalLimitEngine``, made when the set is first
handed to a Ray worker; it asks for no CPU).  Every Ray worker using the set --
and, from then on, the driver too -- gets a :class:`RayLimitClient` in its place,
so a limit of N per window is N across the whole cluster, with the same
algorithms, FIFO order and refunds as an in-process set.

A client's ``acquire`` is one actor call (``ray.get`` in sync code, ``await`` in
a coroutine, so an async worker method waits without blocking its actor).  A
coroutine cancelled while it waits tells the actor to stop waiting for it, and
gives back a grant that was already on its way.
"""

from __future__ import annotations

import asyncio
import collections
import threading
import time
import uuid
import weakref
from collections.abc import Mapping
from typing import Any

from ..._enums import ExecutionMode
from ...limits._definitions import Limit, ResourceLimit
from ...limits._engine import LocalLimitEngine
from ...limits._limit_set import LimitSet

__all__ = ["RayLimitClient", "export", "ray_limit_set"]

Amounts = Mapping[str, float]

# An "abandon" can overtake its "acquire" (an async actor does not order calls):
# it is remembered this long, so the acquire that arrives late does not wait.
_ABANDON_MEMORY = 300.0


class _LimitActor:
    """The one state of a shared Ray set (run as an async Ray actor)."""

    def __init__(self, limits: list[Limit]) -> None:
        self._engine = LocalLimitEngine(limits)
        self._waits: dict[str, asyncio.Task[Any]] = {}
        self._abandoned: dict[str, float] = {}
        self._resources = {limit.key for limit in limits if isinstance(limit, ResourceLimit)}
        self._held: dict[str, collections.Counter[str]] = {}  # client -> units held
        # Clients forgotten (their actor died): what they still send is stale.
        self._gone: set[str] = set()

    async def try_acquire(self, client: str, amounts: dict[str, float]) -> bool:
        taken = self._engine.try_acquire(amounts)
        if taken:
            self._hold(client, amounts, +1)
        return taken and self._keep(client, amounts)

    async def acquire(
        self, client: str, ident: str, amounts: dict[str, float], timeout: float | None
    ) -> tuple[bool, str]:
        """``(True, "")`` once taken; ``(False, why)`` on timeout or abandon."""
        granted = await self._acquire(ident, amounts, timeout)
        if granted[0]:
            self._hold(client, amounts, +1)
            if not self._keep(client, amounts):
                return (False, "the worker is gone")
        return granted

    async def _acquire(
        self, ident: str, amounts: dict[str, float], timeout: float | None
    ) -> tuple[bool, str]:
        if self._abandoned.pop(ident, None) is not None:
            return (False, "abandoned")
        if self._engine.try_acquire(amounts):
            return (True, "")
        task = asyncio.current_task()
        assert task is not None
        self._waits[ident] = task
        try:
            await self._engine.async_acquire(amounts, timeout)
        except TimeoutError as exc:
            return (False, str(exc))
        except asyncio.CancelledError:
            return (False, "abandoned")
        finally:
            self._waits.pop(ident, None)
        return (True, "")

    async def abandon(self, ident: str) -> None:
        task = self._waits.get(ident)
        if task is not None:
            task.cancel()
            return
        now = time.monotonic()
        self._abandoned = {
            key: at for key, at in self._abandoned.items() if now - at < _ABANDON_MEMORY
        }
        self._abandoned[ident] = now

    def _keep(self, client: str, amounts: dict[str, float]) -> bool:
        # A grant to a client already forgotten would never be given back.
        if client not in self._gone:
            return True
        self._held.pop(client, None)
        self._engine.release(amounts, dict.fromkeys(amounts, 0))
        return False

    async def release(self, client: str, amounts: dict[str, float], used: dict[str, float]) -> None:
        if client in self._gone:  # sent before it died, and already given back by forget
            return
        self._hold(client, amounts, -1)
        self._engine.release(amounts, used)

    async def forget(self, client: str) -> None:
        """``client`` is gone: give back the resources it still held."""
        self._gone.add(client)
        held = self._held.pop(client, None)
        units = {key: amount for key, amount in (held or {}).items() if amount > 0}
        if units:
            self._engine.release(units, units)

    def _hold(self, client: str, amounts: dict[str, float], sign: int) -> None:
        units = {k: sign * a for k, a in amounts.items() if a and k in self._resources}
        if units:
            self._held.setdefault(client, collections.Counter()).update(units)

    async def stats(self) -> dict[str, dict[str, Any]]:
        return self._engine.stats()


class RayLimitClient:
    """A ``LimitBackend`` whose state is a :class:`_LimitActor`."""

    waiting = 0  # its requests queue in the actor's engine, not here

    def __init__(self, actor: Any, client: str) -> None:
        self._actor = actor
        self._client = client  # whose holdings these are (a worker, or the driver)
        self._pending: set[asyncio.Task[None]] = set()

    def __reduce__(self) -> tuple[Any, ...]:
        return (RayLimitClient, (self._actor, self._client))

    def try_acquire(self, amounts: Amounts) -> bool:
        import ray

        return bool(ray.get(self._actor.try_acquire.remote(self._client, dict(amounts))))

    def acquire(self, amounts: Amounts, timeout: float | None) -> None:
        import ray

        ref = self._actor.acquire.remote(self._client, uuid.uuid4().hex, dict(amounts), timeout)
        ok, why = ray.get(ref)
        if not ok:
            raise TimeoutError(why)

    async def async_acquire(self, amounts: Amounts, timeout: float | None) -> None:
        ident = uuid.uuid4().hex
        ref = self._actor.acquire.remote(self._client, ident, dict(amounts), timeout)
        try:
            ok, why = await ref
        except asyncio.CancelledError:
            self._actor.abandon.remote(ident)
            task = asyncio.get_running_loop().create_task(self._give_back(ref, dict(amounts)))
            self._pending.add(task)  # kept alive until it ends
            task.add_done_callback(self._pending.discard)
            raise
        if not ok:
            raise TimeoutError(why)

    async def _give_back(self, ref: Any, amounts: dict[str, float]) -> None:
        # The grant may have crossed the abandon: if so, it is returned unused.
        ok, _ = await ref
        if ok:
            self.release(amounts, dict.fromkeys(amounts, 0))

    def release(self, amounts: Amounts, used: Amounts) -> None:
        self._actor.release.remote(self._client, dict(amounts), dict(used))

    def stats(self) -> dict[str, dict[str, Any]]:
        import ray

        stats: dict[str, dict[str, Any]] = ray.get(self._actor.stats.remote())
        return stats


_actors: weakref.WeakKeyDictionary[LimitSet, Any] = weakref.WeakKeyDictionary()
_clients: dict[str, list[Any]] = {}  # worker -> the limit actors it was given
_lock = threading.Lock()


def export(limit_set: LimitSet, client: str) -> tuple[Any, ...]:
    """How a shared set pickles into the Ray worker ``client`` (installed with
    ``exporting``).

    Makes the set's actor on first use and moves the driver's own use of the set
    to it.  Raises ``TypeError`` for a shared set that is not a "ray" set.
    """
    if limit_set.mode is not ExecutionMode.Ray:
        raise TypeError(
            f"a shared LimitSet made for mode {limit_set.mode} cannot be used in a Ray "
            "worker: create it with mode='ray'"
        )
    import ray

    with _lock:
        actor = _actors.get(limit_set)
        if actor is None:
            # No CPU: it must not take a slot a worker needs; many waiters at once.
            # On the driver's node: the state lives as long as the driver can use
            # it, whichever worker node is lost.
            remote = ray.remote(_LimitActor).options(
                num_cpus=0, max_concurrency=100_000, **_on_this_node(ray)
            )
            actor = _actors[limit_set] = remote.remote(limit_set.limits)
            limit_set._backend = RayLimitClient(actor, "driver")
        _clients.setdefault(client, []).append(actor)
    return (ray_limit_set, (actor, client, limit_set.limits, limit_set.config))


def _on_this_node(ray: Any) -> dict[str, Any]:
    # It asks for nothing, so the driver's node can always take it.  Through
    # Ray Client the driver is on no node of the cluster: Ray chooses.
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    try:
        here = ray.get_runtime_context().get_node_id()
    except Exception:
        return {}
    if not here:
        return {}
    return {"scheduling_strategy": NodeAffinitySchedulingStrategy(node_id=here, soft=False)}


def forget(client: str) -> None:
    """The worker ``client`` is gone: its limit actors give back what it held."""
    with _lock:
        actors = _clients.pop(client, [])
    for actor in actors:
        actor.forget.remote(client)


def ray_limit_set(actor: Any, client: str, limits: list[Limit], config: dict[str, Any]) -> LimitSet:
    """Rebuild, in a Ray worker, a shared set whose state is ``actor``."""
    return LimitSet._client(limits, ExecutionMode.Ray, config, RayLimitClient(actor, client))
