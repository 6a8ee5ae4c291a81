"""The state store against a real Redis (and the in-process memory store)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from strangler.config import StateConfig
from strangler.control.redis_store import RedisStateStore
from strangler.control.state import MemoryStateStore, StateStore
from strangler.control.stores import open_store
from strangler.errors import StateStoreError
from strangler.override import Override

from .conftest import RedisServer


@pytest.fixture(params=["memory", "redis"])
async def store(
    request: pytest.FixtureRequest, redis_store: Callable[[], RedisStateStore]
) -> AsyncIterator[StateStore]:
    made: StateStore = MemoryStateStore() if request.param == "memory" else redis_store()
    yield made
    await made.close()


async def test_an_override_is_stored_versioned_and_announced(store: StateStore) -> None:
    async with store.subscribe() as subscription:
        change = await store.set_override("customers", Override("canary", 25.0, by="ann"))
        assert await subscription.next(2.0) == change.version
    assert change.previous is None
    snapshot = await store.snapshot()
    assert snapshot.version == change.version == await store.version()
    assert snapshot.overrides["customers"].mode == "canary"
    assert snapshot.overrides["customers"].percent == 25.0
    assert snapshot.overrides["customers"].by == "ann"

    cleared = await store.set_override("customers", None)
    assert cleared.version == change.version + 1
    assert cleared.previous is not None and cleared.previous.percent == 25.0
    assert (await store.snapshot()).overrides == {}


async def test_quiet_subscription_returns_none(store: StateStore) -> None:
    async with store.subscribe() as subscription:
        assert await subscription.next(0.1) is None


async def test_counts_add_up_across_keys_and_lists_are_capped(store: StateStore) -> None:
    await store.add("c:1", {"requests": 3, "errors": 1}, 60)
    await store.add("c:1", {"requests": 2}, 60)
    await store.add("c:2", {"requests": 5}, 60)
    assert await store.totals(["c:1", "c:2", "c:3"]) == {"requests": 10, "errors": 1}
    await store.delete(["c:1"])
    assert await store.totals(["c:1", "c:2"]) == {"requests": 5}

    for i in range(5):
        await store.push("log", f"entry {i}", keep=3)
    assert await store.latest("log", 10) == ["entry 4", "entry 3", "entry 2"]


async def test_lock_is_taken_once_until_released(store: StateStore) -> None:
    assert await store.acquire("lock", 10)
    assert not await store.acquire("lock", 10)
    await store.release("lock")
    assert await store.acquire("lock", 10)


async def test_namespaces_keep_two_proxies_apart(redis_up: RedisServer) -> None:
    one, two = RedisStateStore(redis_up.url, "one-ns"), RedisStateStore(redis_up.url, "two-ns")
    try:
        await one.set_override("customers", Override("new"))
        assert "customers" not in (await two.snapshot()).overrides
    finally:
        await one.set_override("customers", None)
        await one.close()
        await two.close()


async def test_redis_down_is_a_state_store_error_naming_the_store(
    redis_up: RedisServer, namespace: str
) -> None:
    store = RedisStateStore(redis_up.url, namespace)
    try:
        redis_up.stop()
        with pytest.raises(StateStoreError, match=f"127.0.0.1:{redis_up.port}"):
            await store.set_override("customers", Override("new"))
        with pytest.raises(StateStoreError):
            await store.snapshot()
    finally:
        await store.close()


def test_open_store_follows_the_state_url() -> None:
    assert isinstance(open_store(StateConfig(url="memory://")), MemoryStateStore)
    redis_store = open_store(StateConfig(url="redis://:pw@127.0.0.1:1/0", namespace="x"))
    assert isinstance(redis_store, RedisStateStore)
    assert "pw" not in redis_store.url  # never shown in /api/routes or messages
