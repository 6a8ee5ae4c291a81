"""Failures on a reused (pooled) upstream connection: retried, fallen back, or reported."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

from tests.proxy.conftest import run_proxy
from tests.proxy.echo import echo_app
from tests.proxy.test_resilience import NewService, get, migration
from tests.support.net import raw_upstream, serve_app

ANSWER = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 20\r\n\r\n"
    b'{"upstream":"flaky"}'
)


@asynccontextmanager
async def drops_second_request() -> AsyncIterator[tuple[str, list[int]]]:
    """An upstream that answers the first request on a connection and silently closes
    the connection when a second one arrives: a keep-alive connection gone stale."""
    served: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            served.append(1)
            writer.write(ANSWER)
            await writer.drain()
            await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    async with raw_upstream(handle) as (url, _):
        yield url, served


async def test_a_stale_pooled_connection_is_retried_for_get() -> None:
    async with (
        serve_app(echo_app()) as legacy,
        drops_second_request() as (flaky, served),
        run_proxy(migration(legacy, flaky, fallback=False)) as proxy,
    ):
        for _ in range(3):
            status, upstream, body = await get(proxy.url + "/orders/1")
            assert (status, upstream, body["upstream"]) == (200, "new", "flaky")
    assert len(served) == 3
    assert all(r.error is None for r in proxy.records)


async def test_a_stale_pooled_connection_is_not_retried_for_post() -> None:
    async with (
        serve_app(echo_app()) as legacy,
        drops_second_request() as (flaky, _),
        run_proxy(migration(legacy, flaky, fallback=False)) as proxy,
    ):
        assert (await get(proxy.url + "/orders/1", "POST"))[0] == 200
        status, upstream, body = await get(proxy.url + "/orders/1", "POST")
    assert (status, upstream) == (502, "new")
    assert body["route"] == "orders"


async def test_fallback_when_a_warm_connection_starts_answering_5xx() -> None:
    new = NewService()
    async with (
        serve_app(echo_app()) as legacy,
        serve_app(new.app()) as new_url,
        run_proxy(migration(legacy, new_url)) as proxy,
    ):
        assert (await get(proxy.url + "/orders/1"))[1] == "new"
        new.mode = "failing"
        status, upstream, body = await get(proxy.url + "/orders/1")
    assert (status, upstream, body["upstream"]) == (200, "legacy", "legacy")
    assert proxy.records[-1].fallback and proxy.records[-1].error == "status"


async def test_fallback_when_a_warm_connection_times_out() -> None:
    new = NewService()
    async with (
        serve_app(echo_app()) as legacy,
        serve_app(new.app()) as new_url,
        run_proxy(migration(legacy, new_url, timeout="300ms")) as proxy,
    ):
        assert (await get(proxy.url + "/orders/1"))[1] == "new"
        new.mode = "slow"
        status, upstream, _ = await get(proxy.url + "/orders/1")
    assert (status, upstream) == (200, "legacy")
    assert proxy.records[-1].error == "timeout"


async def test_many_concurrent_clients_all_get_their_own_answers() -> None:
    seen: list[dict[str, Any]] = []
    async with serve_app(echo_app(seen)) as url:
        config = {"legacy": "legacy", "upstreams": {"legacy": {"url": url, "max_connections": 4}}}
        async with run_proxy(config) as proxy, aiohttp.ClientSession() as s:

            async def one(i: int) -> str:
                async with s.get(proxy.url + f"/item/{i}") as r:
                    return str((await r.json())["path"])

            paths = await asyncio.gather(*(one(i) for i in range(200)))
    assert paths == [f"/item/{i}" for i in range(200)]
    assert len({hit["peer_port"] for hit in seen}) <= 4
