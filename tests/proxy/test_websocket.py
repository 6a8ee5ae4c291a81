"""Websocket (``Upgrade``) requests are tunnelled to the chosen upstream."""

from __future__ import annotations

from typing import Any

import aiohttp
from aiohttp import web

from tests.proxy.conftest import run_proxy
from tests.support.net import serve_app


def ws_app(name: str) -> web.Application:
    async def echo(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str(f"hello from {name}")
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                await ws.send_str(f"{name}:{msg.data}")
            elif msg.type == aiohttp.WSMsgType.BINARY:
                await ws.send_bytes(msg.data)
        return ws

    async def plain(request: web.Request) -> web.Response:
        return web.Response(text=f"plain {name}")

    app = web.Application()
    app.router.add_get("/ws/echo", echo)
    app.router.add_get("/{tail:.*}", plain)
    return app


def config(legacy: str, new: str) -> dict[str, Any]:
    return {
        "legacy": "legacy",
        "upstreams": {"legacy": {"url": legacy}, "new": {"url": new}},
        "routes": [{"name": "live", "match": {"path": "/ws/**"}, "to": "new", "mode": "new"}],
    }


async def test_websocket_echo_through_the_proxy_reaches_the_routed_upstream() -> None:
    async with (
        serve_app(ws_app("legacy")) as legacy,
        serve_app(ws_app("new")) as new,
        run_proxy(config(legacy, new)) as proxy,
        aiohttp.ClientSession() as s,
    ):
        async with s.ws_connect(proxy.url + "/ws/echo") as ws:
            assert ws._response.headers["X-Strangler-Route"] == "live"
            assert ws._response.headers["X-Strangler-Upstream"] == "new"
            assert (await ws.receive_str()) == "hello from new"
            for i in range(20):
                await ws.send_str(f"m{i}")
                assert await ws.receive_str() == f"new:m{i}"
            blob = bytes(range(256)) * 4000
            await ws.send_bytes(blob)
            assert await ws.receive_bytes() == blob
        # The ordinary path still works next to the tunnel.
        async with s.get(proxy.url + "/other") as r:
            assert await r.text() == "plain legacy"
    assert proxy.records[0].status == 101 and proxy.records[0].upstream == "new"


async def test_upgrade_refused_by_the_upstream_is_relayed() -> None:
    async with (
        serve_app(ws_app("legacy")) as legacy,
        serve_app(ws_app("new")) as new,
        run_proxy(config(legacy, new)) as proxy,
        aiohttp.ClientSession() as s,
    ):
        try:
            async with s.ws_connect(proxy.url + "/ws/not-a-socket"):
                raise AssertionError("the handshake must fail")
        except aiohttp.WSServerHandshakeError as exc:
            assert exc.status == 200
    assert proxy.records[-1].upstream == "new"
