"""Stopping the proxy: a request still running when the shutdown grace ends gets an
answer (503), not a cut connection; the grace is a command-line flag."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator
from pathlib import Path

from strangler.config import parse_config
from strangler.proxy.server import ProxyServer, bind
from strangler.routing.router import Router
from strangler.runtime import Runtime

from .support import Seen, WireUpstream, connect, ok, serve, wire_upstream


@contextlib.asynccontextmanager
async def stuck_upstream() -> AsyncIterator[tuple[WireUpstream, asyncio.Event]]:
    """An upstream that answers ``/stuck`` only once the test lets it (or after 30 s)."""
    release = asyncio.Event()

    async def answer(seen: Seen) -> bytes:
        if seen.target == "/stuck":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(release.wait(), 30.0)
        return ok(seen)

    async with wire_upstream(answer) as upstream:
        try:
            yield upstream, release
        finally:
            release.set()


async def test_serve_grace_flag_and_503_for_what_is_still_running(tmp_path: Path) -> None:
    async with stuck_upstream() as (legacy, _):
        config = {
            "legacy": "legacy",
            "upstreams": {"legacy": {"url": legacy.url, "timeout": "60s"}},
        }
        async with serve(tmp_path, config, "--grace", "1") as proxy, connect(proxy.port) as client:
            await client.send(b"GET /stuck HTTP/1.1\r\nHost: edge.test\r\n\r\n")
            await legacy.wait_for(1)
            proxy.process.send_signal(signal.SIGTERM)
            response = await client.response(timeout=15.0)
            code = await asyncio.wait_for(proxy.process.wait(), 15.0)
    assert response.status == 503
    assert code == 0


async def test_a_request_running_at_the_end_of_the_grace_gets_503() -> None:
    async with stuck_upstream() as (legacy, _):
        config = {
            "legacy": "legacy",
            "upstreams": {"legacy": {"url": legacy.url, "timeout": "60s"}},
        }
        server = ProxyServer(Runtime(Router(parse_config(config))))
        await server.start(bind("127.0.0.1", 0))
        closing: asyncio.Task[None] | None = None
        try:
            async with connect(server.port) as client, connect(server.port) as idle:
                await idle.send(b"GET /quick HTTP/1.1\r\nHost: edge.test\r\n\r\n")
                assert (await idle.response()).status == 200
                await client.send(b"GET /stuck HTTP/1.1\r\nHost: edge.test\r\n\r\n")
                await legacy.wait_for(2)
                closing = asyncio.create_task(server.close(0.5))
                response = await client.response(timeout=10.0)
                idle_closed = await idle.closed(5.0)
        finally:
            if closing is None:
                await server.close(0.0)
            else:
                await closing
    assert idle_closed  # an idle keep-alive connection is simply closed
    assert response.status == 503
    assert response.header("connection") == "close"
