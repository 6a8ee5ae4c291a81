"""How fast a flip reaches every replica: PUT returned -> first answer reflecting it.

Run: python3 bench/flip.py [--flips 200]. Starts a private redis-server on a free
port, a legacy and a new upstream (aiohttp, in this process) and two real
``strangler serve`` processes sharing the Redis. Each round flips the route
between ``legacy`` and ``new`` through replica A's admin API; as soon as the
PUT returns, both proxies are polled (one keep-alive connection each, requests
back to back) until ``X-Strangler-Upstream`` names the new target. Prints
p50/p90/p99/max per replica: A applies the write itself before answering; B
learns it from the Redis change channel.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import yaml
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.net import free_port, serve_app, wait_for_port  # noqa: E402

TOKEN = "bench-token"


def _upstream(name: str) -> web.Application:
    async def answer(request: web.Request) -> web.Response:
        return web.Response(text=name)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    return app


def _config(
    folder: Path, redis_url: str, legacy: str, new: str, name: str
) -> tuple[Path, int, int]:
    port, admin = free_port(), free_port()
    document = {
        "listen": f"127.0.0.1:{port}",
        "admin": {"listen": f"127.0.0.1:{admin}", "token": TOKEN},
        "state": {"url": redis_url, "namespace": "bench-flip"},
        "legacy": "monolith",
        "upstreams": {"monolith": {"url": legacy}, "customers": {"url": new}},
        "routes": [
            {"name": "customers", "match": {"path": "/api/customers/**"}, "to": "customers"}
        ],
    }
    path = folder / name
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path, port, admin


async def _until(session: aiohttp.ClientSession, url: str, upstream: str, since: float) -> float:
    while True:
        async with session.get(url) as response:
            await response.read()
            if response.headers.get("X-Strangler-Upstream") == upstream:
                return time.perf_counter() - since


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def bench(flips: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="strangler-bench-flip-"))
    redis_port = free_port()
    redis = subprocess.Popen(
        [shutil.which("redis-server") or "redis-server", "--port", str(redis_port), "--save", "",
         "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    wait_for_port(redis_port)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        async with serve_app(_upstream("legacy")) as legacy, serve_app(_upstream("new")) as new:
            sites = [
                _config(folder, f"redis://127.0.0.1:{redis_port}/0", legacy, new, f"r{i}.yaml")
                for i in (1, 2)
            ]
            for path, _, _ in sites:
                command = ["serve", "-c", str(path), "--workers", "1"]
                procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "strangler", *command],
                        stderr=subprocess.DEVNULL,
                        start_new_session=True,
                    )
                )  # fmt: skip
            for _, port, admin in sites:
                wait_for_port(port)
                wait_for_port(admin)
            put = f"http://127.0.0.1:{sites[0][2]}/api/routes/customers/override"
            urls = [f"http://127.0.0.1:{port}/api/customers/1" for _, port, _ in sites]
            auth = {"Authorization": f"Bearer {TOKEN}"}
            seen: list[list[float]] = [[], []]
            connector = [aiohttp.TCPConnector(limit=1) for _ in urls]
            sessions = [aiohttp.ClientSession(connector=c) for c in connector]
            async with aiohttp.ClientSession() as admin:
                try:
                    for i in range(flips + 5):
                        mode, upstream = (
                            ("new", "customers") if i % 2 == 0 else ("legacy", "monolith")
                        )
                        async with admin.put(put, json={"mode": mode}, headers=auth) as response:
                            assert response.status == 200, await response.text()
                        since = time.perf_counter()
                        took = await asyncio.gather(
                            *(
                                _until(s, u, upstream, since)
                                for s, u in zip(sessions, urls, strict=True)
                            )
                        )
                        if i >= 5:  # warm-up rounds are not counted
                            for j, t in enumerate(took):
                                seen[j].append(t * 1000)
                        await asyncio.sleep(0.01)
                finally:
                    for s in sessions:
                        await s.close()
                    await admin.delete(put, headers=auth)
    finally:
        for proc in procs:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(15)
        redis.terminate()
        redis.wait(10)
        shutil.rmtree(folder, ignore_errors=True)

    print(f"# flip propagation, {flips} flips, 2 `strangler serve` processes sharing Redis")
    print(f"# {platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print("| replica | p50 ms | p90 ms | p99 ms | max ms |")
    print("|---|---|---|---|---|")
    for name, values in zip(("A (took the PUT)", "B (via Redis pub/sub)"), seen, strict=True):
        print(
            f"| {name} | {statistics.median(values):.2f} | {_pct(values, 0.90):.2f} | "
            f"{_pct(values, 0.99):.2f} | {max(values):.2f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--flips", type=int, default=200)
    asyncio.run(bench(parser.parse_args().flips))


if __name__ == "__main__":
    main()
