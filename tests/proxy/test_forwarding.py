"""Forwarding through the real proxy: keep-alive, headers, bodies, HEAD/204/304, 100-continue."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from strangler.config import parse_config
from tests.proxy.conftest import one_upstream, run_proxy
from tests.proxy.echo import echo_app
from tests.support.net import serve_app


async def test_get_is_answered_by_legacy_with_strangler_headers() -> None:
    async with (
        serve_app(echo_app()) as url,
        run_proxy(one_upstream(url)) as proxy,
        aiohttp.ClientSession() as s,
        s.get(proxy.url + "/api/orders?x=1&y=2") as r,
    ):
        data = await r.json()
        assert r.status == 200
        assert r.headers["X-Strangler-Route"] == "-"
        assert r.headers["X-Strangler-Upstream"] == "legacy"
        assert r.headers["X-Upstream"] == "legacy"
    assert data["path"] == "/api/orders?x=1&y=2"
    assert proxy.records[0].route is None and proxy.records[0].status == 200


async def test_keep_alive_reuses_one_upstream_connection() -> None:
    seen: list[dict[str, Any]] = []
    async with (
        serve_app(echo_app(seen)) as url,
        run_proxy(one_upstream(url)) as proxy,
        aiohttp.ClientSession() as s,
    ):
        for _ in range(10):
            async with s.get(proxy.url + "/a") as r:
                assert r.status == 200
    assert len({hit["peer_port"] for hit in seen}) == 1


async def test_client_keep_alive_serves_many_requests_on_one_connection() -> None:
    async with serve_app(echo_app()) as url, run_proxy(one_upstream(url)) as proxy:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        for i in range(3):
            writer.write(f"GET /n{i} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            body = await reader.readexactly(length)
            assert f"/n{i}".encode() in body
        writer.close()


async def test_pipelined_requests_are_answered_in_order() -> None:
    async with serve_app(echo_app()) as url, run_proxy(one_upstream(url)) as proxy:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"".join(f"GET /p{i} HTTP/1.1\r\nHost: x\r\n\r\n".encode() for i in range(4)))
        for i in range(4):
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            assert f'"/p{i}"'.encode() in await reader.readexactly(length)
        writer.close()


async def test_hop_by_hop_request_headers_are_removed() -> None:
    async with serve_app(echo_app()) as url, run_proxy(one_upstream(url)) as proxy:
        headers = {
            "Connection": "keep-alive, X-Drop-Me",
            "X-Drop-Me": "secret",
            "Keep-Alive": "timeout=5",
            "TE": "trailers",
            "Proxy-Authorization": "Basic Zm9v",
            "X-Keep-Me": "1",
        }
        async with aiohttp.ClientSession() as s, s.get(proxy.url + "/h", headers=headers) as r:
            seen = (await r.json())["headers"]
    for name in ("x-drop-me", "keep-alive", "te", "proxy-authorization"):
        assert name not in seen
    assert seen["x-keep-me"] == "1"


async def test_hop_by_hop_response_headers_are_removed_and_tags_not_spoofable() -> None:
    async with (
        serve_app(echo_app()) as url,
        run_proxy(one_upstream(url)) as proxy,
        aiohttp.ClientSession() as s,
        s.get(proxy.url + "/hop") as r,
    ):
        assert await r.text() == "ok"
        assert "X-Secret-Hop" not in r.headers
        assert "Keep-Alive" not in r.headers
        assert r.headers["X-Kept"] == "yes"
        assert r.headers.getall("X-Strangler-Route") == ["-"]


async def test_forwarded_headers_are_appended() -> None:
    async with serve_app(echo_app()) as url, run_proxy(one_upstream(url)) as proxy:
        headers = {"X-Forwarded-For": "203.0.113.9", "Host": "shop.example"}
        async with aiohttp.ClientSession() as s, s.get(proxy.url + "/f", headers=headers) as r:
            seen = (await r.json())["headers"]
    assert seen["x-forwarded-for"] == "203.0.113.9, 127.0.0.1"
    assert seen["x-forwarded-proto"] == "http"
    assert seen["x-forwarded-host"] == "shop.example"


async def test_host_is_the_upstreams_by_default_and_the_clients_on_request() -> None:
    async with serve_app(echo_app()) as url:
        async with (
            run_proxy(one_upstream(url)) as proxy,
            aiohttp.ClientSession() as s,
            s.get(proxy.url + "/", headers={"Host": "shop.example"}) as r,
        ):
            assert (await r.json())["headers"]["host"] == url.removeprefix("http://")
        async with (
            run_proxy(one_upstream(url, host="client")) as proxy,
            aiohttp.ClientSession() as s,
            s.get(proxy.url + "/", headers={"Host": "shop.example"}) as r,
        ):
            assert (await r.json())["headers"]["host"] == "shop.example"


async def test_request_body_with_content_length_and_chunked_arrive_whole() -> None:
    async def chunks() -> Any:
        for i in range(10):
            await asyncio.sleep(0.02)  # so the proxy forwards before the body is complete
            yield b"%d" % i * 1000

    async with (
        serve_app(echo_app()) as url,
        run_proxy(one_upstream(url)) as proxy,
        aiohttp.ClientSession() as s,
    ):
        async with s.post(proxy.url + "/up", data=b"a" * 100_000) as r:
            assert (await r.json())["body_size"] == 100_000
        async with s.post(proxy.url + "/up", data=chunks()) as r:
            data = await r.json()
    assert data["body_size"] == 10_000
    assert data["chunked"] is True


async def test_chunked_response_streams_to_the_client_chunked() -> None:
    async with (
        serve_app(echo_app()) as url,
        run_proxy(one_upstream(url)) as proxy,
        aiohttp.ClientSession() as s,
        s.get(proxy.url + "/chunked") as r,
    ):
        assert r.headers["Transfer-Encoding"] == "chunked"
        assert await r.text() == "part0;part1;part2;part3;part4;"


async def test_large_response_streams_intact() -> None:
    size = 20 * 1024 * 1024 + 7
    async with (
        serve_app(echo_app()) as url,
        run_proxy(one_upstream(url)) as proxy,
        aiohttp.ClientSession() as s,
        s.get(proxy.url + f"/big?size={size}") as r,
    ):
        total = 0
        async for part in r.content.iter_chunked(1 << 16):
            total += len(part)
    assert total == size


async def test_head_has_headers_but_no_body_and_connection_stays_usable() -> None:
    async with serve_app(echo_app()) as url, run_proxy(one_upstream(url)) as proxy:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"HEAD /big?size=5000 HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        assert b"content-length: 5000" in head.lower()
        for _ in range(2):  # the second round runs on warm (pooled) connections
            writer.write(b"GET /after-head HTTP/1.1\r\nHost: x\r\n\r\n")
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200"), "a HEAD body must not have been expected"
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            assert b"/after-head" in await reader.readexactly(length)
            writer.write(b"HEAD /big?size=7000 HTTP/1.1\r\nHost: x\r\n\r\n")
            head = await reader.readuntil(b"\r\n\r\n")
            assert b"content-length: 7000" in head.lower()
        writer.close()


async def test_204_and_304_have_no_body() -> None:
    async with serve_app(echo_app()) as url, run_proxy(one_upstream(url)) as proxy:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        for code in (204, 304):
            writer.write(f"GET /status/{code} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(f"HTTP/1.1 {code}".encode())
            assert b"transfer-encoding" not in head.lower()
        writer.write(b"GET /still-alive HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        writer.close()


async def test_expect_100_continue_gets_continue_then_the_answer() -> None:
    async with serve_app(echo_app()) as url, run_proxy(one_upstream(url)) as proxy:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(
            b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
        )
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert interim.startswith(b"HTTP/1.1 100 Continue")
        writer.write(b"hello")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 200")
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        data = await reader.readexactly(length)
        assert b'"body_size": 5' in data
        assert b"expect" not in data.lower().split(b'"body"')[0]
        writer.close()


async def test_expect_100_continue_over_the_limit_is_refused_without_reading() -> None:
    config = one_upstream("http://127.0.0.1:9") | {"limits": {"max_body": 1000}}
    async with run_proxy(config) as proxy:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(
            b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n"
            b"Expect: 100-continue\r\n\r\n"
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 413")
        writer.close()


async def test_pools_follow_a_config_reload_to_a_changed_upstream_url() -> None:
    async with (
        serve_app(echo_app(name="old")) as old,
        serve_app(echo_app(name="new")) as new,
        run_proxy(one_upstream(old)) as proxy,
        aiohttp.ClientSession() as s,
    ):
        async with s.get(proxy.url + "/x") as r:
            assert r.headers["X-Upstream"] == "old"
        router = proxy.runtime.router
        router.apply_config(parse_config(one_upstream(new)))
        async with s.get(proxy.url + "/x") as r:
            assert r.headers["X-Upstream"] == "new"


async def test_close_lets_an_in_flight_request_finish() -> None:
    async with (
        serve_app(echo_app()) as url,
        run_proxy(one_upstream(url)) as proxy,
        aiohttp.ClientSession() as s,
    ):
        pending = asyncio.ensure_future(s.get(proxy.url + "/slow?s=0.5"))
        await asyncio.sleep(0.2)
        await proxy.server.close(5.0)
        response = await pending
        assert response.status == 200
        assert (await response.json())["slow"] is True
        with pytest.raises(aiohttp.ClientError):
            await s.get(proxy.url + "/after-close")
