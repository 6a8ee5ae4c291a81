"""Fallback to legacy, never for POST; the circuit breaker opening and recovering."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from aiohttp import web

from tests.proxy.conftest import run_proxy
from tests.proxy.echo import echo_app
from tests.support.net import free_port, serve_app


class NewService:
    """A new upstream whose behaviour the test switches: ok, failing (503) or slow."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.hits = 0

    def app(self) -> web.Application:
        async def handle(request: web.Request) -> web.Response:
            self.hits += 1
            if self.mode == "failing":
                return web.json_response({"upstream": "new"}, status=503)
            if self.mode == "slow":
                await asyncio.sleep(3)
            return web.json_response({"upstream": "new"})

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        return app


def migration(legacy: str, new: str, *, fallback: bool = True, **new_extra: Any) -> dict[str, Any]:
    return {
        "legacy": "legacy",
        "upstreams": {"legacy": {"url": legacy}, "new": {"url": new, **new_extra}},
        "routes": [
            {
                "name": "orders",
                "match": {"path": "/orders/**"},
                "to": "new",
                "mode": "new",
                "fallback": fallback,
            }
        ],
    }


async def get(url: str, method: str = "GET") -> tuple[int, str, dict[str, Any]]:
    async with aiohttp.ClientSession() as s, s.request(method, url) as r:
        return r.status, r.headers["X-Strangler-Upstream"], await r.json()


async def test_fallback_when_the_new_upstream_refuses() -> None:
    async with serve_app(echo_app()) as legacy:
        config = migration(legacy, f"http://127.0.0.1:{free_port()}")
        async with run_proxy(config) as proxy:
            status, upstream, body = await get(proxy.url + "/orders/1")
    assert (status, upstream, body["upstream"]) == (200, "legacy", "legacy")
    record = proxy.records[-1]
    assert record.fallback and record.error == "connect" and record.to_new
    assert record.upstream == "legacy"


async def test_fallback_when_the_new_upstream_times_out() -> None:
    new = NewService()
    new.mode = "slow"
    async with (
        serve_app(echo_app()) as legacy,
        serve_app(new.app()) as new_url,
        run_proxy(migration(legacy, new_url, timeout="200ms")) as proxy,
    ):
        status, upstream, _ = await get(proxy.url + "/orders/1")
    assert (status, upstream) == (200, "legacy")
    assert proxy.records[-1].error == "timeout" and proxy.records[-1].fallback


async def test_fallback_when_the_new_upstream_answers_5xx() -> None:
    new = NewService()
    new.mode = "failing"
    async with (
        serve_app(echo_app()) as legacy,
        serve_app(new.app()) as new_url,
        run_proxy(migration(legacy, new_url)) as proxy,
    ):
        status, upstream, body = await get(proxy.url + "/orders/1")
    assert (status, upstream, body["upstream"]) == (200, "legacy", "legacy")
    assert proxy.records[-1].error == "status"
    assert new.hits == 1


async def test_fallback_when_the_circuit_is_open() -> None:
    new = NewService()
    new.mode = "failing"
    async with serve_app(echo_app()) as legacy, serve_app(new.app()) as new_url:
        config = migration(legacy, new_url, circuit={"failures": 2, "cooldown": "60s"})
        async with run_proxy(config) as proxy:
            for _ in range(5):
                status, upstream, _ = await get(proxy.url + "/orders/1")
                assert (status, upstream) == (200, "legacy")
    assert new.hits == 2, "an open circuit must not send traffic to the new upstream"
    assert [r.error for r in proxy.records] == ["status"] * 2 + ["circuit"] * 3
    assert all(r.fallback for r in proxy.records)


async def test_never_falls_back_for_post() -> None:
    seen: list[dict[str, Any]] = []
    async with serve_app(echo_app(seen)) as legacy:
        config = migration(legacy, f"http://127.0.0.1:{free_port()}")
        async with run_proxy(config) as proxy:
            status, upstream, body = await get(proxy.url + "/orders/1", "POST")
    assert (status, upstream) == (502, "new")
    assert body["route"] == "orders" and body["upstream"] == "new"
    assert seen == []
    assert not proxy.records[-1].fallback


async def test_without_fallback_a_5xx_is_passed_through() -> None:
    new = NewService()
    new.mode = "failing"
    async with (
        serve_app(echo_app()) as legacy,
        serve_app(new.app()) as new_url,
        run_proxy(migration(legacy, new_url, fallback=False)) as proxy,
    ):
        status, upstream, _ = await get(proxy.url + "/orders/1")
    assert (status, upstream) == (503, "new")
    assert proxy.records[-1].error == "status"


async def test_circuit_opens_then_a_half_open_probe_closes_it() -> None:
    new = NewService()
    new.mode = "failing"
    async with serve_app(echo_app()) as legacy, serve_app(new.app()) as new_url:
        config = migration(
            legacy, new_url, fallback=False, circuit={"failures": 2, "cooldown": "300ms"}
        )
        async with run_proxy(config) as proxy:
            assert (await get(proxy.url + "/orders/1"))[0] == 503
            assert (await get(proxy.url + "/orders/1"))[0] == 503
            status, _, body = await get(proxy.url + "/orders/1")
            assert status == 502 and "circuit" in body["error"]
            assert new.hits == 2
            new.mode = "ok"
            await asyncio.sleep(0.4)
            assert (await get(proxy.url + "/orders/1"))[0] == 200  # the probe
            assert (await get(proxy.url + "/orders/1"))[0] == 200
    assert new.hits == 4


async def test_a_failed_probe_opens_the_circuit_again() -> None:
    new = NewService()
    new.mode = "failing"
    async with serve_app(echo_app()) as legacy, serve_app(new.app()) as new_url:
        config = migration(
            legacy, new_url, fallback=False, circuit={"failures": 1, "cooldown": "300ms"}
        )
        async with run_proxy(config) as proxy:
            assert (await get(proxy.url + "/orders/1"))[0] == 503
            assert (await get(proxy.url + "/orders/1"))[0] == 502
            await asyncio.sleep(0.4)
            assert (await get(proxy.url + "/orders/1"))[0] == 503  # probe fails
            assert (await get(proxy.url + "/orders/1"))[0] == 502  # open again
    assert new.hits == 2
