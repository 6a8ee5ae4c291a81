"""Replicas sharing one real Redis: flips, resets, restarts, and Redis going away."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis.asyncio as redis

from strangler.control.redis_store import RedisStateStore
from strangler.control.state import MemoryStateStore
from strangler.errors import StateStoreError

from .conftest import RedisServer, eventually, make_config, replica

WHO = "token:test"


async def test_a_flip_on_one_replica_reaches_the_other(
    redis_store: Callable[[], RedisStateStore],
) -> None:
    config = make_config()
    async with replica(config, redis_store()) as a, replica(config, redis_store()) as b:
        await a.plane.set_override("customers", "canary", 30, who=WHO)
        # The writer applies at once; the other replica follows the announcement.
        assert (a.route().mode, a.route().percent, a.route().source) == ("canary", 30.0, "override")
        await eventually(lambda: b.route().mode == "canary" and b.route().percent == 30.0)
        assert b.route().source == "override"

        await b.plane.clear_override("customers", who=WHO)
        await eventually(lambda: a.route().mode == "legacy" and a.route().source == "config")


async def test_overrides_survive_a_restart_of_the_replica(
    redis_store: Callable[[], RedisStateStore],
) -> None:
    config = make_config()
    async with replica(config, redis_store()) as a:
        await a.plane.set_override("customers", "new", who=WHO)
    async with replica(config, redis_store()) as restarted:
        # Loaded before start() returned: the first request already sees it.
        assert restarted.route().mode == "new"
        assert restarted.route().override is not None
        assert restarted.route().override.by == WHO


async def test_redis_down_keeps_routing_and_refuses_writes_then_reconciles(
    redis_up: RedisServer, redis_store: Callable[[], RedisStateStore]
) -> None:
    config = make_config()
    async with replica(config, redis_store()) as a, replica(config, redis_store()) as b:
        await a.plane.set_override("customers", "canary", 10, who=WHO)
        await eventually(lambda: b.route().mode == "canary")

        redis_up.stop()
        await eventually(lambda: not a.plane.connected and not b.plane.connected)
        # Last-known table keeps serving.
        assert (a.route().mode, b.route().mode) == ("canary", "canary")
        with pytest.raises(StateStoreError, match="unreachable"):
            await a.plane.set_override("customers", "new", who=WHO)
        assert a.route().mode == "canary"  # nothing half-applied

        # Redis comes back empty (no persistence): both reconcile to "no overrides".
        redis_up.start()
        await eventually(lambda: a.plane.connected and b.plane.connected)
        await eventually(lambda: a.route().mode == "legacy" and b.route().mode == "legacy")

        await b.plane.set_override("customers", "new", who=WHO)
        await eventually(lambda: a.route().mode == "new" and b.route().mode == "new")


async def test_a_replica_starting_while_redis_is_down_serves_the_config_then_catches_up(
    redis_up: RedisServer, redis_store: Callable[[], RedisStateStore]
) -> None:
    config = make_config(mode="shadow")
    redis_up.stop()
    async with replica(config, redis_store()) as a:
        assert a.route().mode == "shadow" and not a.plane.connected
        redis_up.start()
        await eventually(lambda: a.plane.connected)
        async with replica(config, redis_store()) as b:
            await b.plane.set_override("customers", "legacy", who=WHO)
        await eventually(lambda: a.route().mode == "legacy")


async def test_audit_records_who_what_and_the_previous_value(
    redis_store: Callable[[], RedisStateStore],
) -> None:
    async with replica(make_config(), redis_store()) as a:
        await a.plane.set_override("customers", "canary", 5, who="token:ann")
        await a.plane.set_override("customers", "canary", 50, who="token:bob")
        await a.plane.clear_override("customers", who="token:ann")
        entries = await a.plane.audit.latest()
    assert [e["action"] for e in entries] == ["override.clear", "override.set", "override.set"]
    clear, second, first = entries
    assert first["previous"] is None and first["current"]["percent"] == 5
    assert second["who"] == "token:bob" and second["previous"]["percent"] == 5
    assert clear["previous"]["percent"] == 50 and clear["current"] is None
    assert all(isinstance(e["at"], float) for e in entries)


async def test_memory_store_serves_a_single_process() -> None:
    async with replica(make_config(), MemoryStateStore()) as a:
        await a.plane.set_override("customers", "shadow", who=WHO)
        assert a.route().mode == "shadow"
        assert (await a.plane.audit.latest())[0]["current"]["mode"] == "shadow"


async def test_replicas_follow_a_store_that_lost_its_data(
    redis_up: RedisServer, redis_store: Callable[[], RedisStateStore]
) -> None:
    config = make_config()
    async with replica(config, redis_store()) as a:
        for percent in (1, 2, 3):
            await a.plane.set_override("customers", "canary", percent, who=WHO)
        client = redis.Redis.from_url(redis_up.url)
        await client.flushall()  # e.g. an operator wiped it: the version counter restarts
        await client.aclose()
        async with replica(config, redis_store()) as b:
            assert b.route().mode == "legacy"
            await b.plane.set_override("customers", "new", who=WHO)  # version 1 again
            await eventually(lambda: a.route().mode == "new")
