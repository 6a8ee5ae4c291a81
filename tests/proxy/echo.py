"""A real upstream app for proxy tests: echoes what it received, plus a few fixed answers."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web


def echo_app(seen: list[dict[str, Any]] | None = None, name: str = "legacy") -> web.Application:
    """``/*`` echoes method, path, headers, body size and the proxy's source port as JSON."""
    log = seen if seen is not None else []

    async def echo(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        peer = request.transport.get_extra_info("peername") if request.transport else None
        info = {
            "upstream": name,
            "method": request.method,
            "path": request.path_qs,
            "headers": {k.lower(): v for k, v in request.headers.items()},
            "header_list": [[k.lower(), v] for k, v in request.headers.items()],
            "body_size": len(body),
            "body": body[:200].decode("latin-1"),
            "peer_port": peer[1] if peer else None,
            "chunked": request.headers.get("Transfer-Encoding", "").lower() == "chunked",
        }
        log.append(info)
        return web.json_response(info, headers={"X-Upstream": name})

    async def status(request: web.Request) -> web.Response:
        code = int(request.match_info["code"])
        log.append({"upstream": name, "path": request.path, "method": request.method})
        if code in (204, 304):
            return web.Response(status=code, headers={"ETag": '"v1"'})
        return web.json_response({"upstream": name, "status": code}, status=code)

    async def slow(request: web.Request) -> web.Response:
        log.append({"upstream": name, "path": request.path, "method": request.method})
        await asyncio.sleep(float(request.query.get("s", "2")))
        return web.json_response({"upstream": name, "slow": True})

    async def chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for i in range(5):
            await response.write(f"part{i};".encode())
        await response.write_eof()
        return response

    async def big(request: web.Request) -> web.StreamResponse:
        size = int(request.query["size"])
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        response.content_length = size
        await response.prepare(request)
        block = b"x" * 65536
        sent = 0
        while sent < size:
            part = block[: min(65536, size - sent)]
            await response.write(part)
            sent += len(part)
        await response.write_eof()
        return response

    async def hop(request: web.Request) -> web.Response:
        return web.Response(
            text="ok",
            headers={
                "Connection": "close, X-Secret-Hop",
                "X-Secret-Hop": "leak",
                "Keep-Alive": "timeout=5",
                "X-Strangler-Route": "spoofed",
                "X-Kept": "yes",
            },
        )

    app = web.Application(client_max_size=1024**4)
    app.router.add_route("*", "/status/{code}", status)
    app.router.add_get("/slow", slow)
    app.router.add_get("/chunked", chunked)
    app.router.add_get("/big", big)
    app.router.add_get("/hop", hop)
    app.router.add_route("*", "/{tail:.*}", echo)
    return app
