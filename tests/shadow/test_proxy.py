"""The mirror behind the real proxy (``start_proxy``): what a client of the proxy sees."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from strangler.config import parse_config
from strangler.serve import RunningProxy, bind_listener, start_proxy
from strangler.shadow.mirror import ShadowMirror
from tests.shadow.conftest import Upstream, dead_url, drain
from tests.support.net import serve_app


def config(legacy_url: str, new_url: str, shadow_url: str) -> Any:
    return parse_config(
        {
            "listen": "127.0.0.1:0",
            "legacy": "monolith",
            "upstreams": {
                "monolith": {"url": legacy_url},
                "customers": {"url": new_url},
                "slow": {"url": shadow_url, "timeout": "5s"},
            },
            "routes": [
                # Same legacy, one route shadowed to a target that sleeps, one not shadowed.
                {
                    "name": "shadowed",
                    "match": {"path": "/shadowed/**"},
                    "to": "slow",
                    "mode": "shadow",
                    "shadow": {"percent": 100, "methods": ["GET", "PUT"]},
                },
                {"name": "plain", "match": {"path": "/plain/**"}, "to": "customers"},
                # shadow mode with no shadow: block mirrors GETs with the defaults
                {
                    "name": "bounded",
                    "match": {"path": "/bounded/**"},
                    "to": "slow",
                    "mode": "shadow",
                    "shadow": {"max_in_flight": 2},
                },
                {"name": "bare", "match": {"path": "/bare/**"}, "to": "slow", "mode": "shadow"},
                {
                    "name": "dead",
                    "match": {"path": "/dead/**"},
                    "to": "customers",
                    "mode": "shadow",
                    "shadow": {"percent": 100},
                },
            ],
        }
    )


@pytest.fixture
async def proxy() -> AsyncIterator[dict[str, Any]]:
    legacy, slow = Upstream("monolith"), Upstream("slow", delay=2.0)
    async with serve_app(legacy.app()) as legacy_url, serve_app(slow.app()) as slow_url:
        running: RunningProxy = await start_proxy(
            config(legacy_url, dead_url(), slow_url),
            admin=False,
            proxy_sock=bind_listener("127.0.0.1", 0),
        )
        mirror = getattr(running.runtime.shadow, "mirror", None)  # behind ShadowTaps
        assert isinstance(mirror, ShadowMirror)
        try:
            yield {
                "url": running.proxy_url,
                "mirror": mirror,
                "legacy": legacy,
                "slow": slow,
                "metrics": running.metrics,
            }
        finally:
            await running.close(0.5)


async def timings(session: aiohttp.ClientSession, url: str, n: int) -> list[float]:
    out = []
    for _ in range(n):
        started = time.perf_counter()
        async with session.get(url) as resp:
            assert resp.status == 200
            await resp.read()
        out.append(time.perf_counter() - started)
    return out


async def test_a_two_second_shadow_leaves_client_latency_as_without_shadow(
    proxy: dict[str, Any],
) -> None:
    async with aiohttp.ClientSession() as session:
        plain = await timings(session, proxy["url"] + "/plain/1", 30)
        shadowed = await timings(session, proxy["url"] + "/shadowed/1", 30)
    assert proxy["mirror"].in_flight > 0  # shadows are still sleeping on the slow target
    # Generous margin; a client waiting on the shadow would see 2 s per request.
    assert statistics.median(shadowed) < statistics.median(plain) + 0.2
    assert max(shadowed) < 1.0


async def test_a_dead_shadow_target_is_counted_as_error_and_clients_are_served(
    proxy: dict[str, Any],
) -> None:
    async with aiohttp.ClientSession() as session:
        await timings(session, proxy["url"] + "/dead/1", 5)
    await drain(proxy["mirror"])
    data = await proxy["mirror"].store.read("dead")
    assert data.counts["error"] == 5
    text = proxy["metrics"].render()[0].decode()
    assert 'strangler_shadow_total{outcome="error",route="dead"} 5.0' in text


async def test_writes_are_mirrored_only_when_listed_and_always_marked(
    proxy: dict[str, Any],
) -> None:
    proxy["slow"].delay = 0.0
    async with aiohttp.ClientSession() as session:
        async with session.post(proxy["url"] + "/shadowed/1", json={"a": 1}) as resp:
            assert resp.status == 200
        async with session.put(proxy["url"] + "/shadowed/1", json={"a": 2}) as resp:
            assert resp.status == 200
        headers = {"X-Strangler-Shadow": "1"}
        async with session.get(proxy["url"] + "/shadowed/2", headers=headers) as resp:
            assert resp.status == 200
    await drain(proxy["mirror"])
    # POST is not listed; PUT is; a client's own X-Strangler-Shadow neither switches
    # mirroring off nor reaches the target (issue 14, defect 7): one marker, the proxy's.
    seen = sorted((s["method"], s["markers"]) for s in proxy["slow"].seen)
    assert seen == [("GET", ["1"]), ("PUT", ["1"])]
    assert next(s["body"] for s in proxy["slow"].seen if s["method"] == "PUT") == b'{"a": 2}'


async def test_shadow_mode_without_a_shadow_block_mirrors_with_the_defaults(
    proxy: dict[str, Any],
) -> None:
    proxy["slow"].delay = 0.0
    async with aiohttp.ClientSession() as session:
        async with session.get(proxy["url"] + "/bare/7") as resp:
            assert resp.headers["X-Strangler-Upstream"] == "monolith"
        async with session.post(proxy["url"] + "/bare/7", json={}) as resp:
            assert resp.status == 200
    await drain(proxy["mirror"])
    # GET mirrored and marked; POST not (default methods are GET and HEAD)
    assert [(s["method"], s["path"]) for s in proxy["slow"].seen] == [("GET", "/bare/7")]
    data = await proxy["mirror"].store.read("bare")
    assert data.counts["match"] + data.counts["mismatch"] == 1


async def test_shadows_over_the_in_flight_bound_are_dropped_and_counted_once_each(
    proxy: dict[str, Any],
) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(10):
            async with session.get(proxy["url"] + "/bounded/1") as resp:
                assert resp.status == 200
                assert resp.headers["X-Strangler-Upstream"] == "monolith"
    await drain(proxy["mirror"])
    data = await proxy["mirror"].store.read("bounded")
    # two mirrors sit on the 2-second target; the other eight were dropped, once each
    assert data.counts["dropped"] == 8
    assert data.counts["match"] + data.counts["mismatch"] + data.counts["error"] == 2
    text = proxy["metrics"].render()[0].decode()
    assert 'strangler_shadow_total{outcome="dropped",route="bounded"} 8.0' in text


async def wait_until(check: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.1)


@pytest.fixture
async def mismatching() -> AsyncIterator[dict[str, Any]]:
    """A proxy whose new service answers differently, with rollback thresholds and admin."""
    legacy = Upstream("monolith", body=lambda r: {"id": 1, "name": "Ada"})
    new = Upstream("customers", body=lambda r: {"id": 1, "name": "Bob"})
    async with serve_app(legacy.app()) as legacy_url, serve_app(new.app()) as new_url:
        rollback = {"mismatch_rate": 0.2, "min_requests": 5, "window": "30s"}
        running: RunningProxy = await start_proxy(
            parse_config(
                {
                    "listen": "127.0.0.1:0",
                    "admin": {"listen": "127.0.0.1:0", "token": "t0ken"},
                    "legacy": "monolith",
                    "upstreams": {"monolith": {"url": legacy_url}, "customers": {"url": new_url}},
                    "routes": [
                        {
                            "name": "shadowed",
                            "match": {"path": "/shadowed/**"},
                            "to": "customers",
                            "mode": "shadow",
                            "shadow": {"percent": 100},
                            "rollback": rollback,
                        },
                        {
                            "name": "served",
                            "match": {"path": "/served/**"},
                            "to": "customers",
                            "mode": "new",
                            "shadow": {"percent": 100},
                            "rollback": rollback,
                        },
                    ],
                }
            ),
            admin_port=0,
            proxy_sock=bind_listener("127.0.0.1", 0),
        )
        try:
            yield {"proxy": running.proxy_url, "admin": running.admin_url}
        finally:
            await running.close(0.5)


async def test_mismatches_roll_a_served_route_back_to_legacy(
    mismatching: dict[str, Any],
) -> None:
    async with aiohttp.ClientSession() as session:
        url = mismatching["proxy"] + "/served/1"
        async with session.get(url) as resp:
            assert resp.headers["X-Strangler-Upstream"] == "customers"

        async def rolled_back() -> bool:
            async with session.get(url) as resp:
                return resp.headers["X-Strangler-Upstream"] == "monolith"

        await wait_until(rolled_back)
        async with session.get(mismatching["admin"] + "/api/routes") as resp:
            routes = {r["name"]: r for r in (await resp.json())["routes"]}
    assert routes["served"]["source"] == "auto-rollback"
    assert "mismatch" in routes["served"]["reason"]


async def test_flip_to_canary_is_refused_above_the_mismatch_rate_unless_forced(
    mismatching: dict[str, Any],
) -> None:
    headers = {"Authorization": "Bearer t0ken"}
    override = mismatching["admin"] + "/api/routes/shadowed/override"
    async with aiohttp.ClientSession() as session:
        for _ in range(5):
            async with session.get(mismatching["proxy"] + "/shadowed/1") as resp:
                await resp.read()

        async def rate_known() -> bool:
            async with session.get(mismatching["admin"] + "/api/routes") as resp:
                routes = {r["name"]: r for r in (await resp.json())["routes"]}
            return routes["shadowed"]["shadow_match_rate"] == 0.0

        await wait_until(rate_known)
        body = {"mode": "canary", "percent": 10}
        async with session.put(override, json=body, headers=headers) as resp:
            assert resp.status == 409
            assert "mismatch rate" in (await resp.json())["error"]
        async with session.put(override, json={**body, "force": True}, headers=headers) as resp:
            assert resp.status == 200
            assert (await resp.json())["mode"] == "canary"


async def test_in_new_mode_the_adapted_answer_is_compared_with_legacy() -> None:
    legacy = Upstream("monolith", body=lambda r: {"id": "1", "name": "Ada"})
    new = Upstream("customers", body=lambda r: {"id": "1", "fullName": "Ada"})
    async with serve_app(legacy.app()) as legacy_url, serve_app(new.app()) as new_url:
        running: RunningProxy = await start_proxy(
            parse_config(
                {
                    "listen": "127.0.0.1:0",
                    "legacy": "monolith",
                    "upstreams": {"monolith": {"url": legacy_url}, "customers": {"url": new_url}},
                    "routes": [
                        {
                            "name": "customers",
                            "match": {"path": "/api/customers/**"},
                            "to": "customers",
                            "mode": "new",
                            "adapter": "tests.shadow.adapters:CustomerAdapter",
                            "shadow": {"percent": 100},
                        }
                    ],
                }
            ),
            admin=False,
            proxy_sock=bind_listener("127.0.0.1", 0),
        )
        try:
            async with aiohttp.ClientSession() as session:
                for _ in range(3):
                    url = running.proxy_url + "/api/customers/1"
                    async with session.get(url) as resp:
                        assert resp.headers["X-Strangler-Upstream"] == "customers"
                        assert (await resp.json())["name"] == "Ada"
            mirror = getattr(running.runtime.shadow, "mirror", None)  # behind ShadowTaps
            assert isinstance(mirror, ShadowMirror)
            await drain(mirror)
            data = await mirror.store.read("customers")
            assert data.counts["match"] == 3, data.samples
            assert [s["path"] for s in new.seen] == ["/v2/customers/1"] * 3
            assert [s["headers"].get("X-Strangler-Shadow") for s in legacy.seen] == ["1"] * 3
        finally:
            await running.close(0.5)


async def test_identical_answers_are_counted_as_matches_in_the_api_and_metrics() -> None:
    """Through the real proxy: a burst of GETs mirrored (pipelined) to a target that
    answers exactly like legacy is counted once each as a match, in the store and in
    ``strangler_shadow_total``, and the clients all get legacy's answers."""
    legacy = Upstream("monolith")
    async with serve_app(legacy.app()) as legacy_url:
        cfg = parse_config(
            {
                "listen": "127.0.0.1:0",
                "legacy": "monolith",
                "upstreams": {"monolith": {"url": legacy_url}, "twin": {"url": legacy_url}},
                "routes": [
                    {"name": "twin", "match": {"path": "/twin/**"}, "to": "twin", "mode": "shadow"}
                ],
            }
        )
        running = await start_proxy(cfg, admin=False, proxy_sock=bind_listener("127.0.0.1", 0))
        try:
            mirror = getattr(running.runtime.shadow, "mirror", None)  # behind ShadowTaps
            assert isinstance(mirror, ShadowMirror)
            async with aiohttp.ClientSession() as session:

                async def get(i: int) -> int:
                    async with session.get(f"{running.proxy_url}/twin/{i % 7}") as resp:
                        await resp.read()
                        return resp.status

                assert await asyncio.gather(*(get(i) for i in range(60))) == [200] * 60
            await drain(mirror)
            assert mirror.in_flight == 0
            data = await mirror.store.read("twin")
            assert data.counts["match"] == 60
            assert data.counts["mismatch"] == data.counts["error"] == 0
            text = running.metrics.render()[0].decode()
            assert 'strangler_shadow_total{outcome="match",route="twin"} 60.0' in text
            # 60 client requests to legacy and 60 mirrored ones, all to the same server.
            assert len(legacy.seen) == 120
        finally:
            await running.close(0.5)
