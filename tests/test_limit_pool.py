"""LimitPool: CONFORMANCE items 217-221."""

from __future__ import annotations

import pytest

from aioconc._enums import LoadBalancingAlgorithm
from aioconc.config import temp_config
from aioconc.limits import LimitPool, LimitSet, ResourceLimit


def _sets(n: int = 2) -> list[LimitSet]:
    return [
        LimitSet(
            [ResourceLimit(key="c", capacity=1)],
            shared=True,
            mode="thread",
            config={"name": f"set{i}"},
        )
        for i in range(n)
    ]


def test_round_robin_by_default_and_config_names_the_set() -> None:
    pool = LimitPool(limit_sets=_sets())
    names = []
    for _ in range(4):
        with pool.acquire() as acq:
            names.append(acq.config["name"])
    assert names == ["set0", "set1", "set0", "set1"]
    assert pool.load_balancing is LoadBalancingAlgorithm.RoundRobin


def test_worker_index_offsets_round_robin() -> None:
    pool = LimitPool(_sets(3), worker_index=2)
    assert [pool.try_acquire().config["name"] for _ in range(3)] == ["set2", "set0", "set1"]


def test_defaults_come_from_global_config() -> None:
    with temp_config(global_limit_pool_load_balancing="random", global_limit_pool_worker_index=1):
        pool = LimitPool(_sets())
    assert (pool.load_balancing, pool.worker_index) == (LoadBalancingAlgorithm.Random, 1)


def test_random_picks_every_set() -> None:
    pool = LimitPool(_sets(3), load_balancing="random")
    seen = set()
    for _ in range(200):
        acq = pool.try_acquire()
        seen.add(acq.config["name"])
        acq.release()
    assert seen == {"set0", "set1", "set2"}
    assert sum(pool.get_stats()["balancer_stats"]["picks"]) == 200


@pytest.mark.parametrize("balancing", ["least_active", "least_total"])
def test_only_round_robin_and_random(balancing: str) -> None:
    with pytest.raises(ValueError, match="round_robin or random"):
        LimitPool(_sets(), load_balancing=balancing)


def test_unknown_balancing_name_raises() -> None:
    with pytest.raises(ValueError, match="LoadBalancingAlgorithm"):
        LimitPool(_sets(), load_balancing="fastest")


def test_empty_pool_raises() -> None:
    with pytest.raises(ValueError, match="at least one"):
        LimitPool(limit_sets=[])


def test_items_must_be_limit_sets() -> None:
    with pytest.raises(TypeError, match="LimitSet"):
        LimitPool([ResourceLimit(key="c", capacity=1)])  # type: ignore[list-item]


def test_indexing() -> None:
    sets = _sets()
    pool = LimitPool(sets)
    assert pool[1] is sets[1] and pool[-1] is sets[1] and len(pool) == 2
    assert pool[0]["c"].capacity == 1
    with pytest.raises(TypeError, match="integers"):
        pool["c"]  # type: ignore[index]


def test_try_acquire_reports_failure_of_the_chosen_set() -> None:
    pool = LimitPool(_sets(2))
    held = [pool.acquire(), pool.acquire()]  # both sets full now
    assert not pool.try_acquire().successful
    for acq in held:
        acq.release()
    assert pool.try_acquire().successful


@pytest.mark.anyio
async def test_async_acquire() -> None:
    pool = LimitPool(_sets())
    async with await pool.async_acquire() as first, await pool.async_acquire() as second:
        assert {first.config["name"], second.config["name"]} == {"set0", "set1"}


def test_get_stats() -> None:
    pool = LimitPool(_sets(), worker_index=0)
    pool.try_acquire()
    stats = pool.get_stats()
    assert stats["num_limit_sets"] == 2
    assert stats["load_balancing"] == "RoundRobin"
    assert stats["worker_index"] == 0
    assert stats["limit_sets"][0]["c"]["current_usage"] == 1
    assert stats["limit_sets"][1]["c"]["current_usage"] == 0
    assert "picks=[1, 0]" in repr(pool)
