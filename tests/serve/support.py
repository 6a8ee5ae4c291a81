"""Real pieces for the serve tests: two upstreams on loopback and `strangler serve` runs."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohttp import web

from tests.support.net import serve_app


@dataclass
class Upstreams:
    legacy: str
    new: str
    hits: list[str]
    """Every path either upstream was asked for, in order."""


def _app(side: str, hits: list[str]) -> web.Application:
    async def answer(request: web.Request) -> web.Response:
        hits.append(request.raw_path)
        delay = float(request.query.get("sleep", "0"))
        if delay:
            await asyncio.sleep(delay)
        return web.json_response({"side": side, "path": request.path})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    return app


@contextlib.asynccontextmanager
async def upstreams() -> AsyncIterator[Upstreams]:
    """A legacy and a new service answering ``{"side": ..., "path": ...}`` (``?sleep=s``)."""
    hits: list[str] = []
    async with serve_app(_app("legacy", hits)) as legacy, serve_app(_app("new", hits)) as new:
        yield Upstreams(legacy, new, hits)


async def side(session: aiohttp.ClientSession, url: str) -> str:
    async with session.get(url) as response:
        assert response.status == 200, await response.text()
        data = await response.json()
        return str(data["side"])


async def wait_until_serving(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.get(url) as response:
                    if response.status < 500:
                        return
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not answer within {timeout}s")
            await asyncio.sleep(0.1)


@dataclass
class ServeProcess:
    process: asyncio.subprocess.Process
    proxy: str
    admin: str

    def send(self, signum: int) -> None:
        self.process.send_signal(signum)

    async def wait(self, timeout: float = 30.0) -> int:
        return await asyncio.wait_for(self.process.wait(), timeout)


@contextlib.asynccontextmanager
async def strangler_serve(
    config: Path, port: int, admin_port: int, *args: str, ready: bool = True
) -> AsyncIterator[ServeProcess]:
    """Run `strangler serve -c config` as a real process; killed if still running at the end.

    With ``ready`` (the default) it is yielded once its admin listener answers."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "strangler",
        "serve",
        "-c",
        str(config),
        *args,
        cwd=str(config.parent),
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=None,  # pytest captures it and shows it if the test fails
        start_new_session=True,
    )
    running = ServeProcess(process, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{admin_port}")
    try:
        if ready:
            await wait_until_serving(running.admin + "/healthz")
        yield running
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
