"""Each limit answers with its status code, a JSON body and the Strangler headers."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from tests.proxy.conftest import one_upstream, run_proxy
from tests.proxy.echo import echo_app
from tests.proxy.rawhttp import send_raw, status_of
from tests.support.net import free_port, serve_app


async def test_header_section_over_the_limit_is_431() -> None:
    seen: list[dict[str, Any]] = []
    config = one_upstream("") | {"limits": {"max_header_size": "2KiB"}}
    async with serve_app(echo_app(seen)) as url:
        config["upstreams"]["legacy"]["url"] = url
        async with run_proxy(config) as proxy:
            big = b"X-Big: " + b"a" * 4096 + b"\r\n"
            answer = await send_raw(proxy.port, b"GET / HTTP/1.1\r\nHost: x\r\n" + big + b"\r\n")
            small = await send_raw(
                proxy.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )
    assert status_of(answer) == 431
    assert b'"status":431' in answer
    assert status_of(small) == 200
    assert len(seen) == 1


async def test_content_length_over_max_body_is_413_without_forwarding() -> None:
    seen: list[dict[str, Any]] = []
    async with (
        serve_app(echo_app(seen)) as url,
        run_proxy(one_upstream(url) | {"limits": {"max_body": 1000}}) as proxy,
        aiohttp.ClientSession() as s,
        s.post(proxy.url + "/up", data=b"a" * 5000) as r,
    ):
        assert r.status == 413
        assert r.headers["X-Strangler-Route"] == "-"
        assert (await r.json())["status"] == 413
    assert seen == []


async def test_chunked_body_growing_over_max_body_is_413() -> None:
    async def chunks() -> Any:
        for _ in range(20):
            yield b"b" * 500
            await asyncio.sleep(0.01)

    async with (
        serve_app(echo_app()) as url,
        run_proxy(one_upstream(url) | {"limits": {"max_body": 4000}}) as proxy,
        aiohttp.ClientSession() as s,
    ):
        try:
            async with s.post(proxy.url + "/up", data=chunks()) as r:
                status = r.status
        except aiohttp.ClientError:
            status = 0  # the proxy may cut the connection while we still send
    assert status in (413, 0)
    assert proxy.records[-1].status == 413


async def test_upstream_read_timeout_is_504() -> None:
    async with (
        serve_app(echo_app()) as url,
        run_proxy(one_upstream(url, timeout="200ms")) as proxy,
        aiohttp.ClientSession() as s,
        s.get(proxy.url + "/slow?s=3") as r,
    ):
        assert r.status == 504
        body = await r.json()
        assert r.headers["X-Strangler-Upstream"] == "legacy"
    assert body["upstream"] == "legacy"
    assert "0.2s" in body["error"]


async def test_upstream_refusing_connections_is_502() -> None:
    async with (
        run_proxy(one_upstream(f"http://127.0.0.1:{free_port()}")) as proxy,
        aiohttp.ClientSession() as s,
        s.get(proxy.url + "/x") as r,
    ):
        assert r.status == 502
        assert r.headers["X-Strangler-Upstream"] == "legacy"
        body = await r.json()
    assert body["upstream"] == "legacy"
    assert "cannot connect" in body["error"]


async def test_idle_keep_alive_connection_is_closed_after_client_idle_timeout() -> None:
    async with serve_app(echo_app()) as url:
        config = one_upstream(url) | {"limits": {"client_idle_timeout": "300ms"}}
        async with run_proxy(config) as proxy:
            reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200")
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            # Nothing more is sent: the proxy must close the connection on its own.
            rest = await asyncio.wait_for(reader.read(), 5)
            assert rest == b""
            writer.close()
