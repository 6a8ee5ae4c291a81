"""Clients that stop reading are the client's problem, never the upstream's.

A few clients start a large download and never read: the proxy stops reading the
upstream for them (back-pressure), and no byte moves on those upstream connections
for much longer than the upstream's ``timeout``. That pause must not count as the
upstream timing out: the upstream's circuit stays closed (other clients keep being
served by it) and a route with ``rollback:`` is not rolled back.

Deterministic: the upstream ``timeout`` is 300 ms and the stalled downloads are
64 MB against a 4 KB client receive buffer, so the stall is certain; the test
waits until the proxy has dropped every stalled upstream exchange (what it does
today), or ten upstream timeouts without it having done so (what a fixed proxy
shows), and then asserts what the next client sees.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from .support import Serving, get, one, serve, tags

BIG = 64 * 1024 * 1024
STALLED = 3
TIMEOUT = 0.3


class Downloads:
    """An upstream serving ``/api/files/big`` (64 MB, written as fast as the socket
    takes it) and anything else as a short 200; it records how far each big
    download got and whether its connection was dropped before the end."""

    def __init__(self) -> None:
        self.progress: list[int] = []
        self.dropped: set[int] = set()
        self.url = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        current: int | None = None
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                target = head.split(b" ", 2)[1]
                if not target.startswith(b"/api/files/big"):
                    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nsmall")
                    await writer.drain()
                    continue
                current = len(self.progress)
                self.progress.append(0)
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % BIG)
                block = b"x" * 65536
                while self.progress[current] < BIG:
                    writer.write(block)
                    await writer.drain()
                    self.progress[current] += len(block)
                current = None
        except (ConnectionError, asyncio.IncompleteReadError):
            if current is not None:
                self.dropped.add(current)
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def downloads() -> AsyncIterator[Downloads]:
    upstream = Downloads()
    server = await asyncio.start_server(upstream.handle, "127.0.0.1", 0)
    upstream.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        yield upstream
    finally:
        server.close()


@contextlib.asynccontextmanager
async def stalled_clients(proxy: Serving, files: Downloads) -> AsyncIterator[None]:
    """``STALLED`` clients that ask for the big file and never read a byte."""
    loop = asyncio.get_running_loop()
    socks = []
    try:
        for _ in range(STALLED):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.setblocking(False)
            await loop.sock_connect(sock, ("127.0.0.1", proxy.port))
            await loop.sock_sendall(sock, get("/api/files/big"))
            socks.append(sock)
        await _until(lambda: len(files.progress) == STALLED, 10.0, "downloads started")
        # Now: the proxy gives up on them (today), or ten upstream timeouts pass.
        with contextlib.suppress(TimeoutError):
            await _until(lambda: len(files.dropped) == STALLED, 10 * TIMEOUT, "")
        yield
    finally:
        for sock in socks:
            sock.close()


async def _until(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.02)


def _config(url: str, **route: Any) -> dict[str, Any]:
    return {
        "legacy": "legacy",
        "upstreams": {
            "legacy": {"url": url},
            "files": {"url": url, "timeout": TIMEOUT, "circuit": route.pop("circuit")},
        },
        "routes": [
            {
                "name": "files",
                "match": {"path": "/api/files/**"},
                "to": "files",
                "mode": "new",
                **route,
            }
        ],
    }


async def test_stalled_clients_do_not_open_a_healthy_upstreams_circuit(tmp_path: Path) -> None:
    async with downloads() as files:
        config = _config(files.url, circuit={"failures": STALLED - 1, "cooldown": "60s"})
        async with serve(tmp_path, config) as proxy, stalled_clients(proxy, files):
            stalled_at = list(files.progress)
            after = await one(proxy.port, get("/api/files/small"))
    assert all(sent < BIG for sent in stalled_at), "the downloads never stalled"
    assert (after.status, tags(after)) == (200, ("files", "files")), after.body[:200]


async def test_stalled_clients_do_not_roll_a_healthy_route_back(tmp_path: Path) -> None:
    async with downloads() as files:
        config = _config(
            files.url,
            circuit={"failures": 100},
            rollback={"error_rate": 0.05, "min_requests": STALLED, "window": "60s"},
        )
        async with serve(tmp_path, config) as proxy, stalled_clients(proxy, files):
            stalled_at = list(files.progress)
            # the rollback monitor flushes every 0.5 s: give it a few rounds
            with contextlib.suppress(TimeoutError):
                route: dict[str, Any] = {}

                async def rolled_back() -> bool:
                    route.update((await proxy.routes())["files"])
                    return bool(route["source"] != "config")

                deadline = time.monotonic() + 2.0
                while not await rolled_back() and time.monotonic() < deadline:
                    await asyncio.sleep(0.1)
            after = await one(proxy.port, get("/api/files/small"))
    assert all(sent < BIG for sent in stalled_at), "the downloads never stalled"
    assert (route["source"], route["mode"]) == ("config", "new"), route.get("override")
    assert tags(after) == ("files", "files")


async def test_a_client_that_stays_stalled_is_cut_and_counted_499(tmp_path: Path) -> None:
    """The client-side limit (``client_idle_timeout``) bounds a stalled client: its
    connection and the upstream exchange are dropped, the request counts as 499, and
    the upstream's circuit never hears of it."""
    async with downloads() as files:
        config = _config(files.url, circuit={"failures": 1, "cooldown": "60s"})
        config["limits"] = {"client_idle_timeout": "1s"}
        async with serve(tmp_path, config) as proxy:
            loop = asyncio.get_running_loop()
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.setblocking(False)
            try:
                await loop.sock_connect(sock, ("127.0.0.1", proxy.port))
                await loop.sock_sendall(sock, get("/api/files/big"))
                await _until(lambda: files.dropped == {0}, 10.0, "the stalled download dropped")
            finally:
                sock.close()
            after = await one(proxy.port, get("/api/files/small"))
            counted: list[str] = []
            deadline = time.monotonic() + 5.0
            async with aiohttp.ClientSession() as session:
                while not counted and time.monotonic() < deadline:
                    async with session.get(proxy.admin + "/metrics") as response:
                        metrics = await response.text()
                    counted = [
                        line
                        for line in metrics.splitlines()
                        if line.startswith("strangler_requests_total{") and 'code="499"' in line
                    ]
                    await asyncio.sleep(0.2)
    assert files.progress[0] < BIG
    assert (after.status, tags(after)) == (200, ("files", "files"))
    assert counted and float(counted[0].rsplit(" ", 1)[1]) == 1, counted or metrics[:2000]
