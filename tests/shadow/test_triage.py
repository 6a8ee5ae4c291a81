"""The bounded store, windows, reset, endpoints and redaction, through the mirror and
both stores (memory and real Redis)."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp import web

from strangler.admin.app import build_admin_app
from strangler.control.plane import ControlPlane
from strangler.control.state import MemoryStateStore
from strangler.routing.router import Router
from strangler.runtime import Runtime
from strangler.shadow.api import admin_extension
from strangler.shadow.endpoints import Endpoints
from strangler.shadow.report import report
from strangler.shadow.results import OVERFLOW, Batch
from strangler.shadow.store import MemoryShadowStore, RedisShadowStore, ShadowStore
from tests.shadow.conftest import Lab, route_config
from tests.support.net import serve_app

REDIS = "redis://127.0.0.1:6379/0"


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[ShadowStore]:
    if request.param == "memory":
        yield MemoryShadowStore()
        return
    namespace = f"test-triage-{uuid.uuid4().hex[:10]}"
    made = RedisShadowStore(REDIS, namespace)
    try:
        yield made
    finally:
        await made.close()
        client = aioredis.Redis.from_url(REDIS)
        keys = [k async for k in client.scan_iter(f"strangler:{namespace}:*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


async def test_the_store_stays_bounded_under_100000_distinct_keys(store: ShadowStore) -> None:
    for chunk in range(10):
        batch = Batch(max_fields=500)
        batch.counts["mismatch"] += 10_000
        for i in range(10_000):
            batch.fields[f"body.config.setting_{chunk}_{i}"] += 1
            batch.signatures[f"sig {chunk} {i}"] += 1
            batch.endpoints[(f"GET /x{chunk}/{i}", "mismatch")] += 1
        await store.merge("r", batch)
    data = await store.read("r")
    assert len(data.fields) == 501  # the cap, plus the overflow bucket that counts the rest
    assert data.fields[OVERFLOW] == 100_000 - 500
    assert sum(data.fields.values()) == 100_000
    assert len(data.signatures) <= 101 and len(data.endpoints) <= 1001
    assert data.counts["mismatch"] == 100_000
    # What a dashboard downloads stays small: the report of all that is bounded.
    body = json.dumps(report("r", data))
    assert len(body) < 200_000
    assert json.loads(body)["overflow"]["fields"] == 100_000 - 500


async def test_maps_keyed_by_ids_are_one_field_not_thousands(lab: Lab) -> None:
    def users(seed: str) -> web.Response:
        body = {"users": {str(uuid.uuid4()): {"name": seed} for _ in range(1000)}}
        return web.json_response(body)

    lab.legacy.body = lambda r: users("legacy")
    lab.new.body = lambda r: users("new")
    url, mirror, _ = await lab.start(route_config(lab.legacy.url, lab.new.url))
    async with aiohttp.ClientSession() as session:
        for i in range(100):  # 100,000 distinct id keys on each side
            async with session.get(f"{url}/api/customers/{i}") as resp:
                await resp.read()
    await mirror.drain()
    data = await lab.store.read("customers")
    assert set(data.fields) == {"body.users.<key>"}
    assert data.counts["mismatch"] == 100


async def test_version_window_shows_a_fix_at_once_and_reset_forgets(lab: Lab) -> None:
    lab.legacy.body = lambda r: {"id": 7, "name": "Ada"}
    lab.new.body = lambda r: {"id": "7", "name": "Ada"}
    url, mirror, router = await lab.start(route_config(lab.legacy.url, lab.new.url))

    async def gets(n: int) -> None:
        async with aiohttp.ClientSession() as session:
            for i in range(n):
                async with session.get(f"{url}/api/customers/{i}") as resp:
                    await resp.read()
        await mirror.drain()

    await gets(6)
    fixed = {"compare": {"rules": [{"path": "body.id", "numeric_strings": True}]}}
    router.apply_config(route_config(lab.legacy.url, lab.new.url, shadow=fixed))
    await gets(3)
    everything = await lab.store.read("customers", window="all")
    since_fix = await lab.store.read("customers", window="version")
    recent = await lab.store.read("customers", window="5m")
    assert (everything.counts["match"], everything.counts["mismatch"]) == (3, 6)
    assert (since_fix.counts["match"], since_fix.counts["mismatch"]) == (3, 0)
    assert recent.compared == 9
    assert since_fix.endpoints == {"GET /api/customers/{id}": {"match": 3}}

    await lab.store.reset("customers")
    assert (await lab.store.read("customers")).compared == 0


async def test_reset_through_the_api_needs_the_token(lab: Lab) -> None:
    lab.new.body = lambda r: {"other": 1}
    config = route_config(lab.legacy.url, lab.new.url)
    url, mirror, _ = await lab.start(config)
    async with aiohttp.ClientSession() as session, session.get(f"{url}/api/customers/1") as resp:
        await resp.read()
    await mirror.drain()
    data = config.model_dump(mode="json")
    data["admin"] = {"token": "t0k3n"}
    runtime = Runtime(Router(type(config).model_validate(data)))
    app = build_admin_app(
        runtime,
        ControlPlane(runtime.router, MemoryStateStore()),
        extensions=[admin_extension(lab.store)],
    )
    async with serve_app(app) as admin, aiohttp.ClientSession() as session:
        reset = f"{admin}/api/routes/customers/shadow/reset"
        async with session.post(reset) as resp:
            assert resp.status == 401
        assert (await lab.store.read("customers")).compared == 1
        async with session.post(reset, headers={"Authorization": "Bearer t0k3n"}) as resp:
            assert resp.status == 200
        async with session.get(f"{admin}/api/routes/customers/shadow?window=version") as resp:
            assert (await resp.json())["compared"] == 0
        async with session.get(f"{admin}/api/routes/customers/shadow?window=week") as resp:
            assert resp.status == 400


JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZGEifQ.c2lnbmF0dXJlLXNlY3JldA"


async def test_secrets_are_never_stored(lab: Lab) -> None:
    lab.legacy.body = lambda r: {"user": {"name": "Ada", "token": JWT, "password": "pw-1"}}
    lab.new.body = lambda r: {"user": {"name": "Bob", "token": JWT + "x", "api_key": "k-2"}}
    url, mirror, _ = await lab.start(
        route_config(lab.legacy.url, lab.new.url, shadow={"redact": ["ssn"], "reveal": ["x-trace"]})
    )
    headers = {
        "X-Api-Key": "hdr-key-3",
        "X-Auth-Token": "hdr-token-4",
        "Authorization": "Bearer bearer-5",
        "X-Trace": "visible-6",
    }
    async with aiohttp.ClientSession() as session:
        target = f"{url}/api/customers/1?access_token=qs-token-7&page=2"
        async with session.get(target, headers=headers) as resp:
            await resp.read()
    await mirror.drain()
    data = await lab.store.read("customers")
    stored = json.dumps([s.to_dict() for s in data.samples]) + json.dumps(data.examples)
    for secret in (JWT, "pw-1", "k-2", "hdr-key-3", "hdr-token-4", "bearer-5", "qs-token-7"):
        assert secret not in stored
    assert "visible-6" in stored and "page=2" in stored and '"Bob"' in stored
    (sample,) = data.samples
    kinds = {d["path"]: d["new"] for d in sample.differences}
    assert kinds["body.user.token"] == "<redacted>"


def test_endpoints_collapse_ids_and_learn_varying_segments() -> None:
    endpoints = Endpoints()
    names = Counter(endpoints.of("GET", f"/api/tags/{word}") for word in _words(30))
    assert names.most_common(1)[0][0] == "GET /api/tags/{id}"
    assert endpoints.of("GET", "/api/users/42/orders?x=1") == "GET /api/users/{id}/orders"
    assert endpoints.of("POST", "/api/articles/how-to-9/comments") == (
        "POST /api/articles/{id}/comments"
    )


def _words(n: int) -> list[str]:
    base = ["alpha", "bravo", "charlie", "delta", "echo", "fox", "golf", "hotel", "india"]
    return [f"{base[i % len(base)]}{'x' * (i // len(base))}" for i in range(n)]


async def test_a_rule_that_never_applies_is_pointed_out_with_a_fix(lab: Lab) -> None:
    lab.legacy.body = lambda r: {"articles": [{"id": 1, "createdAt": "2026-01-01"}]}
    lab.new.body = lambda r: {"articles": [{"id": 1, "createdAt": "2026-01-02"}]}
    shadow = {"compare": {"ignore": ["body.articles.createdAt", "body.articles[*].id"]}}
    config = route_config(lab.legacy.url, lab.new.url, shadow=shadow)
    url, mirror, router = await lab.start(config)
    async with aiohttp.ClientSession() as session, session.get(f"{url}/api/customers/1") as resp:
        await resp.read()
    await mirror.drain()
    runtime = Runtime(router)
    app = build_admin_app(
        runtime,
        ControlPlane(runtime.router, MemoryStateStore()),
        extensions=[admin_extension(lab.store)],
    )
    async with (
        serve_app(app) as admin,
        aiohttp.ClientSession() as session,
        session.get(f"{admin}/api/routes/customers/shadow?window=version") as resp,
    ):
        report = await resp.json()
    assert report["counts"]["mismatch"] == 1
    # body.articles[*].id never differed, so it never applied either.
    assert report["unapplied_rules"] == [
        {"path": "body.articles.createdAt", "suggest": "body.articles[*].createdAt"},
        {"path": "body.articles[*].id", "suggest": None},
    ]


async def test_applied_rules_are_kept_per_rules_version(store: ShadowStore) -> None:
    await store.merge("r", Batch(generation="g1", reached={"body.a"}))
    await store.merge("r", Batch(generation="g1", reached={"body.b"}))
    assert (await store.read("r")).reached == frozenset({"body.a", "body.b"})
    await store.merge("r", Batch(generation="g2", reached={"body.c"}))
    assert (await store.read("r")).reached == frozenset({"body.c"})


async def test_byte_identical_answers_are_counted_per_endpoint(lab: Lab) -> None:
    url, mirror, _ = await lab.start(route_config(lab.legacy.url, lab.new.url))
    async with aiohttp.ClientSession() as session:
        for path in ("/api/customers/1", "/api/customers/2", "/api/customers/search"):
            async with session.get(url + path) as resp:
                await resp.read()
    await mirror.drain()
    data = await lab.store.read("customers")
    assert data.counts["match"] == 3
    assert data.endpoints == {
        "GET /api/customers/{id}": {"match": 2},
        "GET /api/customers/search": {"match": 1},
    }
