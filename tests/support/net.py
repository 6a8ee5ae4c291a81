"""Loopback helpers shared by the tests: free ports and real aiohttp servers."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from aiohttp import web

from strangler.devstack.localstack import free_port

__all__ = ["free_port", "raw_upstream", "serve_app", "wait_for_port"]


def wait_for_port(port: int, host: str = "127.0.0.1", timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")


@asynccontextmanager
async def serve_app(app: web.Application, port: int = 0) -> AsyncIterator[str]:
    """Run a real aiohttp app on loopback; yields its base URL."""
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port or free_port())
    await site.start()
    assert site._server is not None
    sockets = site._server.sockets  # type: ignore[attr-defined]
    bound = sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{bound}"
    finally:
        await runner.cleanup()
        await asyncio.sleep(0)


RawHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def raw_upstream(handle: RawHandler) -> AsyncIterator[tuple[str, asyncio.Server]]:
    """An upstream whose every byte the test writes itself; yields its URL and server."""
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", server
    finally:
        server.close()
        await server.wait_closed()
