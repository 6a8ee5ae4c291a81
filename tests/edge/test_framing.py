"""Request framing a client gets wrong: HTTP/1.0 with chunked, HTTP/0.9, a chunk that
announces more than max_body. Each is answered at once and the connection handled as
RFC 9112 says, instead of waiting for the idle timeout or for bytes that never come."""

from __future__ import annotations

import asyncio
from pathlib import Path

from .support import connect, serve, wire_upstream


def _config(url: str, **limits: object) -> dict[str, object]:
    return {
        "legacy": "legacy",
        "upstreams": {"legacy": {"url": url, "timeout": "30s"}},
        # long enough that an answer "at once" can never be the idle sweep's doing
        "limits": {"client_idle_timeout": "60s", **limits},
    }


async def test_http10_with_chunked_closes_the_connection(tmp_path: Path) -> None:
    """RFC 9112 §6.1: an HTTP/1.0 message with Transfer-Encoding has faulty framing;
    the server must close the connection after it, even when asked to keep it alive."""
    async with (
        wire_upstream() as legacy,
        serve(tmp_path, _config(legacy.url)) as proxy,
        connect(proxy.port) as client,
    ):
        await client.send(
            b"POST /api/orders HTTP/1.0\r\nHost: edge.test\r\nConnection: keep-alive\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        )
        response = await client.response()
        closed = await client.closed(5.0)
    assert response.status in (200, 400)
    assert closed, "the proxy kept an HTTP/1.0 + chunked connection open"


async def test_http09_request_gets_an_immediate_400(tmp_path: Path) -> None:
    async with (
        wire_upstream() as legacy,
        serve(tmp_path, _config(legacy.url)) as proxy,
        connect(proxy.port) as client,
    ):
        await client.send(b"GET /\r\n")
        response = await client.response(timeout=5.0)
    assert response.status == 400
    assert legacy.requests == []


async def test_a_chunk_announcing_more_than_max_body_is_413_at_once(tmp_path: Path) -> None:
    async with (
        wire_upstream() as legacy,
        serve(tmp_path, _config(legacy.url, max_body="1KB")) as proxy,
        connect(proxy.port) as client,
    ):
        # 16 MB announced, three bytes sent: the size alone says it is too large
        await client.send(
            b"POST /api/upload HTTP/1.1\r\nHost: edge.test\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n1000000\r\nabc"
        )
        response = await client.response(timeout=5.0)
    assert response.status == 413


async def test_a_later_chunk_announcing_too_much_is_413_and_never_complete_upstream(
    tmp_path: Path,
) -> None:
    """The body is already streaming upstream when the oversized chunk size arrives."""
    async with (
        wire_upstream() as legacy,
        serve(tmp_path, _config(legacy.url, max_body="1KB")) as proxy,
        connect(proxy.port) as client,
    ):
        await client.send(
            b"POST /api/upload HTTP/1.1\r\nHost: edge.test\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
        )
        await asyncio.sleep(0.3)
        await client.send(b"1000000\r\nabc")
        response = await client.response(timeout=5.0)
    assert response.status == 413
    assert legacy.requests == []  # the upstream never saw a complete request


async def test_many_small_chunks_under_max_body_pass(tmp_path: Path) -> None:
    chunks = b"".join(b"%x\r\n%s\r\n" % (n, b"x" * n) for n in range(1, 40))
    async with (
        wire_upstream() as legacy,
        serve(tmp_path, _config(legacy.url, max_body="1KB")) as proxy,
        connect(proxy.port) as client,
    ):
        await client.send(
            b"POST /api/upload HTTP/1.1\r\nHost: edge.test\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n"
        )
        response = await client.response(timeout=5.0)
    assert response.status == 200
    assert legacy.requests[0].body == b"".join(b"x" * n for n in range(1, 40))
