"""Aggregation across replicas through real Redis, and the admin API's shadow output."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import aiohttp
import pytest
import redis.asyncio as aioredis

from strangler.admin.app import build_admin_app
from strangler.control.plane import ControlPlane
from strangler.control.state import MemoryStateStore
from strangler.runtime import Runtime
from strangler.shadow.api import MatchRates, admin_extension
from strangler.shadow.compare import Comparison, Difference
from strangler.shadow.store import Batch, RedisShadowStore, Sample
from tests.shadow.conftest import Lab, route_config
from tests.shadow.test_mirror import timed_gets
from tests.support.net import serve_app

REDIS = "redis://127.0.0.1:6379/0"


@pytest.fixture
async def namespace() -> AsyncIterator[str]:
    name = f"test-shadow-{uuid.uuid4().hex[:10]}"
    yield name
    client = aioredis.Redis.from_url(REDIS)
    keys = [k async for k in client.scan_iter(f"strangler:{name}:*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


async def test_two_replicas_aggregate_into_one_view_that_survives_a_restart(
    lab: Lab, namespace: str
) -> None:
    lab.new.body = lambda r: {"id": r.match_info.get("id"), "name": "Bob"}
    replica_a = RedisShadowStore(REDIS, namespace, max_samples=4)
    replica_b = RedisShadowStore(REDIS, namespace, max_samples=4)
    config = route_config(lab.legacy.url, lab.new.url)
    lab.store = replica_a
    url_a, mirror_a, _ = await lab.start(config)
    lab.store = replica_b
    url_b, mirror_b, _ = await lab.start(config)
    await timed_gets(url_a, 3)
    await timed_gets(url_b, 2)
    await mirror_a.drain()
    await mirror_b.drain()
    await mirror_a.close()
    await mirror_b.close()
    await replica_a.close()
    await replica_b.close()

    restarted = RedisShadowStore(REDIS, namespace)
    try:
        data = await restarted.read("customers")
        assert data.counts["mismatch"] == 5
        assert data.fields == {"body.name": 5}
        assert len(data.samples) == 4  # the capped list keeps the latest
        assert sum(mm for _, _, mm in data.trend) == 5
        assert await restarted.routes() == ["customers"]
    finally:
        await restarted.close()


async def test_noise_is_shared_between_replicas(namespace: str) -> None:
    a, b = RedisShadowStore(REDIS, namespace), RedisShadowStore(REDIS, namespace)
    try:
        await a.merge("customers", Batch(noise={"body.request_id"}))
        assert await b.noise("customers") == frozenset({"body.request_id"})
    finally:
        await a.close()
        await b.close()


async def test_the_admin_api_reports_counts_rates_fields_and_samples(lab: Lab) -> None:
    lab.new.body = lambda r: {"id": r.match_info.get("id"), "name": "Bob", "ok": True}
    config = route_config(lab.legacy.url, lab.new.url, shadow={"percent": 100})
    url, mirror, router = await lab.start(config)
    await timed_gets(url, 4)
    await mirror.drain()

    rates = MatchRates(lab.store)
    runtime = Runtime(router, shadow_match_rate=rates)
    await rates.refresh()
    control = ControlPlane(router, MemoryStateStore(), match_rate=rates)
    app = build_admin_app(runtime, control, extensions=[admin_extension(lab.store)])
    async with serve_app(app) as admin, aiohttp.ClientSession() as session:
        async with session.get(admin + "/api/routes/customers/shadow") as resp:
            assert resp.status == 200
            body = await resp.json()
        async with session.get(admin + "/api/routes/nope/shadow") as resp:
            assert resp.status == 404
        async with session.get(admin + "/api/routes") as resp:
            routes = (await resp.json())["routes"]
    assert body["counts"]["mismatch"] == 4
    assert body["match_rate"] == 0.0 and body["mismatch_rate"] == 1.0
    fields = {f["field"]: f for f in body["fields"]}
    assert fields["body.name"] == {
        "field": "body.name",
        "mismatches": 4,
        "rate": 1.0,
        "noise": False,
    }
    assert fields["body.ok"]["rate"] == 1.0
    sample = body["samples"][0]
    assert sample["request"]["target"].startswith("/api/customers/")
    assert {d["path"]: d["kind"] for d in sample["differences"]} == {
        "body.name": "value",
        "body.ok": "extra",
    }
    assert '"Ada"' in sample["legacy"]["body"] and '"Bob"' in sample["new"]["body"]
    assert routes[0]["shadow_match_rate"] == 0.0


async def test_reading_without_samples_returns_none_but_all_counts(namespace: str) -> None:
    store = RedisShadowStore(REDIS, namespace)
    try:
        comparison = Comparison("mismatch", (Difference("body.a", "value", 1, 2),))
        sample = Sample("r", 0.0, "mismatch", {}, {}, {}, ())
        batch = Batch()
        for _ in range(3):
            batch.add(comparison, sample, time.time())
        await store.merge("r", batch)
        empty = await store.read("r", samples=0)
        assert empty.samples == () and empty.counts["mismatch"] == 3
        assert len((await store.read("r", samples=2)).samples) == 2
    finally:
        await store.close()
