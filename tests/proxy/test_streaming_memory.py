"""Bodies far larger than the proxy's memory stream through with back-pressure.

The proxy runs in its own process so its peak resident memory (VmHWM) can be
read from /proc; 200 MB each way must not move it by more than a few tens of MB.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
from aiohttp import web

from tests.proxy.conftest import one_upstream
from tests.proxy.echo import echo_app
from tests.support.net import serve_app

SIZE = 200 * 1024 * 1024
BUDGET = 40 * 1024 * 1024
ROOT = Path(__file__).resolve().parents[2]


def peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def start_proxy(config: dict[str, object]) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.proxy.proxy_process", json.dumps(config)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    return proc, port


async def upload() -> AsyncIterator[bytes]:
    block = b"u" * (1 << 20)
    for _ in range(SIZE // len(block)):
        yield block


async def test_200mb_upload_and_download_do_not_grow_proxy_memory() -> None:
    received: list[int] = []
    app = web.Application(client_max_size=1024**4)

    async def sink(request: web.Request) -> web.Response:
        total = 0
        async for part in request.content.iter_any():
            total += len(part)
        received.append(total)
        return web.json_response({"received": total})

    app.router.add_post("/sink", sink)
    app.add_subapp("/echo", echo_app())
    async with serve_app(app) as url:
        config = one_upstream(url) | {"limits": {"max_body": "1GiB"}}
        proc, port = start_proxy(config)
        try:
            base = f"http://127.0.0.1:{port}"
            async with aiohttp.ClientSession() as s:
                async with s.get(base + "/echo/x") as r:
                    assert r.status == 200
                before = peak_rss(proc.pid)
                async with s.post(base + "/sink", data=upload()) as r:
                    assert (await r.json())["received"] == SIZE
                async with s.get(base + f"/echo/big?size={SIZE}") as r:
                    got = 0
                    async for part in r.content.iter_chunked(1 << 20):
                        got += len(part)
                    assert got == SIZE
                after = peak_rss(proc.pid)
        finally:
            proc.terminate()
            proc.wait(10)
    assert received == [SIZE]
    assert after - before < BUDGET, f"proxy peak RSS grew by {(after - before) >> 20} MiB"
