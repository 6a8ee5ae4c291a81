"""Protocol switches: only websocket is tunnelled (h2c would let a client talk to the
upstream around the route table and limits), and a 101 nobody asked for never reaches
a client nor leaves a broken connection in the pool."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from .support import Seen, connect, ok, one, serve, tags, wire_upstream

H2C = (
    b"GET /api/x HTTP/1.1\r\nHost: edge.test\r\nConnection: Upgrade, HTTP2-Settings\r\n"
    b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"
)
WEBSOCKET = (
    b"GET /ws HTTP/1.1\r\nHost: edge.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def switching(seen: Seen) -> bytes:
    """An upstream that agrees to any upgrade it is asked for."""
    protocol = seen.header("upgrade")
    if protocol is None:
        return ok(seen)
    return (
        f"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: {protocol}\r\n\r\n"
    ).encode()


async def test_h2c_upgrade_is_not_tunnelled(tmp_path: Path) -> None:
    async with wire_upstream(switching) as legacy:
        config = {"legacy": "legacy", "upstreams": {"legacy": {"url": legacy.url}}}
        async with serve(tmp_path, config) as proxy:
            async with connect(proxy.port) as ws:  # websocket still switches
                await ws.send(WEBSOCKET)
                assert (await ws.response()).status == 101
            async with connect(proxy.port) as client:
                await client.send(H2C)
                response = await client.response()
                if response.status == 101:
                    # what a smuggler does next: talk to the upstream directly
                    legacy.changed.clear()
                    await client.send(b"GET /internal/admin HTTP/1.1\r\nHost: x\r\n\r\n")
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(legacy.changed.wait(), 5.0)
    h2c = [s for s in legacy.requests if s.target == "/api/x"]
    assert response.status == 200, f"client got {response.status_line!r}"
    assert [s.header("upgrade") for s in h2c] == [None], "h2c upgrade forwarded upstream"
    assert b"/internal/admin" not in legacy.tunnelled


async def test_an_unsolicited_101_is_a_502_and_the_pool_stays_usable(tmp_path: Path) -> None:
    def rogue(seen: Seen) -> bytes:
        if seen.target == "/first":
            return (
                b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: foo\r\n\r\n"
            )
        return ok(seen)

    async with wire_upstream(rogue) as legacy:
        config = {"legacy": "legacy", "upstreams": {"legacy": {"url": legacy.url, "timeout": "3s"}}}
        async with serve(tmp_path, config) as proxy:
            first = await one(proxy.port, b"GET /first HTTP/1.1\r\nHost: edge.test\r\n\r\n")
            second = await one(proxy.port, b"GET /second HTTP/1.1\r\nHost: edge.test\r\n\r\n")
    assert second.status == 200, f"next request got {second.status_line!r} {second.body[:200]!r}"
    assert first.status == 502, f"client got {first.status_line!r}"
    assert tags(first) == ("-", "legacy")


async def test_a_route_listing_a_protocol_tunnels_it(tmp_path: Path) -> None:
    async with wire_upstream(switching) as legacy:
        config = {
            "legacy": "legacy",
            "upstreams": {"legacy": {"url": legacy.url}, "new": {"url": legacy.url}},
            "routes": [
                {
                    "name": "h2",
                    "match": {"path": "/api/**"},
                    "to": "new",
                    "mode": "legacy",
                    "upgrade": ["h2c"],
                }
            ],
        }
        async with serve(tmp_path, config) as proxy, connect(proxy.port) as client:
            await client.send(H2C)
            response = await client.response()
            await client.send(b"after the switch")
            deadline = asyncio.get_running_loop().time() + 5.0
            while b"after the switch" not in legacy.tunnelled:
                assert asyncio.get_running_loop().time() < deadline, bytes(legacy.tunnelled)
                await asyncio.sleep(0.05)
    assert response.status == 101
    assert [s.header("upgrade") for s in legacy.requests] == ["h2c"]


async def test_a_stripped_upgrade_keeps_its_body_and_the_connection(tmp_path: Path) -> None:
    """An h2c upgrade on a POST: served as a normal request, body intact, and the next
    request on the same connection is parsed as usual."""
    async with wire_upstream() as legacy:
        config = {"legacy": "legacy", "upstreams": {"legacy": {"url": legacy.url}}}
        async with serve(tmp_path, config) as proxy, connect(proxy.port) as client:
            await client.send(
                b"POST /api/orders HTTP/1.1\r\nHost: edge.test\r\nConnection: Upgrade\r\n"
                b"Upgrade: h2c\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"5\r\nhello\r\n0\r\n\r\nGET /api/next HTTP/1.1\r\nHost: edge.test\r\n\r\n"
            )
            first = await client.response()
            second = await client.response()
    assert (first.status, second.status) == (200, 200)
    assert [(s.method, s.target, s.body) for s in legacy.requests] == [
        ("POST", "/api/orders", b"hello"),
        ("GET", "/api/next", b""),
    ]
    assert legacy.requests[0].header("upgrade") is None
