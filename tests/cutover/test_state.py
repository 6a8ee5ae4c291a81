"""Ownership in the state store: memory:// and redis://, compare and set, announcements."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import pytest

from strangler.config import parse_config
from strangler.control.ownership import Ownership, dump_ownership, unowned
from strangler.control.redis_store import RedisStateStore
from strangler.control.state import MemoryStateStore, StateStore
from strangler.errors import ConfigError


async def _round_trip(store: StateStore, reopen: Callable[[], StateStore]) -> None:
    assert await store.ownerships() == {}
    async with store.subscribe() as subscription:
        first = unowned("customers")
        holding = first.holding("service", "c1", "token:x")
        assert await store.set_ownership(holding, expect=first)
        assert await subscription.next(2.0) is not None  # announced like an override
        # The same expectation again fails: someone else (here: we) changed it.
        assert not await store.set_ownership(holding.kept("watchdog"), expect=first)
        moved = holding.moved("token:x")
        assert await store.set_ownership(moved, expect=holding)
        # The next cutover aborts; the value keeps both outcomes, newest first.
        second = moved.holding("legacy", "c2", "token:x")
        assert await store.set_ownership(second, expect=moved)
        assert await store.set_ownership(second.kept("token:x"), expect=second)
    again = reopen()
    try:
        owned = (await again.ownerships())["customers"]
        assert (owned.owner, owned.epoch, owned.state) == ("service", 1, "steady")
        assert owned.history == (("c2", "service", 1), ("c1", "service", 1))
        assert owned.outcome("c1") == ("c1", "service", 1)
        assert (await again.snapshot()).ownerships["customers"] == owned
        # The history is compared too: a stale expectation without it fails.
        assert not await again.set_ownership(unowned("customers"), expect=moved)
    finally:
        if again is not store:
            await again.close()


async def test_memory_store_keeps_ownership() -> None:
    store = MemoryStateStore()
    await _round_trip(store, lambda: store)


async def test_redis_store_shares_ownership_across_replicas_and_restarts(
    redis_store: Callable[[], RedisStateStore],
) -> None:
    store = redis_store()
    try:
        await _round_trip(store, redis_store)
        await store.beat("replica-a", 5.0)
        await store.beat("replica-b", 0.001)
        await asyncio.sleep(0.01)
        assert await store.replicas() == {"replica-a"}
    finally:
        await store.close()


def test_ownership_round_trips_through_json() -> None:
    value = Ownership(
        "customers", "service", 3, "holding", 12.5, "me", "c9", "legacy", (("c8", "service", 3),)
    )
    assert Ownership.from_dict(value.to_dict()) == value
    assert Ownership.from_dict(json.loads(dump_ownership(value))) == value
    assert "history" not in value.audited()
    with pytest.raises(ValueError, match="owner 'nobody'"):
        Ownership.from_dict({"context": "c", "owner": "nobody"})


def _config(contexts: dict[str, object]) -> object:
    return parse_config(
        {
            "legacy": "monolith",
            "upstreams": {"monolith": {"url": "http://127.0.0.1:9"}, "svc": {"url": "http://x:1"}},
            "routes": [
                {"name": "reads", "match": {"path": "/a/**"}, "to": "svc"},
                {"name": "writes", "match": {"path": "/a/**", "methods": ["POST"]}, "to": "svc"},
            ],
            "contexts": contexts,
        }
    )


def test_check_validates_contexts() -> None:
    with pytest.raises(ConfigError) as caught:
        _config(
            {
                "one": {"routes": ["reads", "nope"], "tables": ["customer"]},
                "two": {"routes": ["reads"], "hold_timeout": "soon"},
            }
        )
    text = [str(p) for p in caught.value.problems]
    assert any("contexts.two.hold_timeout" in t for t in text), text
    with pytest.raises(ConfigError) as caught:
        _config(
            {
                "one": {"routes": ["reads", "nope"], "tables": ["customer"]},
                "two": {"routes": ["reads"]},
            }
        )
    text = [str(p) for p in caught.value.problems]
    assert "contexts.one.routes: 'nope' is not one of routes" in text
    assert "contexts.one.tables: 'customer' is not a sync.tables[].source entry" in text
    assert (
        "contexts.two.routes: 'reads' already belongs to context 'one' "
        "(a route is in at most one context)" in text
    )
    config = _config({"one": {"routes": ["reads", "writes"], "max_held": 10}})
    assert config.contexts["one"].hold_timeout == 5.0  # type: ignore[attr-defined]
