"""Request framing a client gets wrong: HTTP/1.0 with chunked, HTTP/0.9, a chunk that
announces more than max_body. Each is answered at once and the connection handled as
RFC 9112 says, instead of waiting for the idle timeout or for bytes that never come."""

from __future__ import annotations

from pathlib import Path

import pytest

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


@pytest.mark.xfail(
    strict=True,
    reason="issue 14: chunk size above max_body not refused until the bytes arrive"
    " — fix lands after the proxy restructuring",
)
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
