"""How fast a flip reaches every worker of one ``strangler serve --workers 2`` with
``state: memory://`` (the supervisor holds the state and pushes each change).

Run: python3 bench/flip_workers.py [--flips 200]. A legacy and a new upstream
(aiohttp, in this process) and one real ``strangler serve --workers 2``. Six
keep-alive connections are opened to the proxy; a keep-alive connection stays
with the worker that accepted it, and which worker that is is read from /proc,
so every worker is measured. Each round flips the route between ``legacy`` and
``new`` through the admin API; as soon as the PUT returns, every connection is
polled back to back until ``X-Strangler-Upstream`` names the new target. Prints
p50/p90/p99/max of the slowest connection of each worker.
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from flip import TOKEN, _pct, _upstream  # noqa: E402

from tests.serve.workers import worker_of_client  # noqa: E402
from tests.support.net import free_port, serve_app, wait_for_port  # noqa: E402

CONNECTIONS = 6


async def bench(flips: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="strangler-bench-flip-workers-"))
    port, admin_port = free_port(), free_port()
    proc: subprocess.Popen[bytes] | None = None
    try:
        async with serve_app(_upstream("legacy")) as legacy, serve_app(_upstream("new")) as new:
            path = folder / "routes.yaml"
            document = {
                "listen": f"127.0.0.1:{port}",
                "admin": {"listen": f"127.0.0.1:{admin_port}", "token": TOKEN},
                "state": "memory://",
                "legacy": "monolith",
                "upstreams": {"monolith": {"url": legacy}, "customers": {"url": new}},
                "routes": [
                    {"name": "customers", "match": {"path": "/api/customers/**"}, "to": "customers"}
                ],
            }
            path.write_text(yaml.safe_dump(document), encoding="utf-8")
            command = [
                sys.executable,
                "-m",
                "strangler",
                "serve",
                "-c",
                str(path),
                "--workers",
                "2",
            ]
            proc = subprocess.Popen(command, stderr=subprocess.DEVNULL, start_new_session=True)
            wait_for_port(port)
            wait_for_port(admin_port)
            await asyncio.sleep(1.0)  # both workers accepting
            put = f"http://127.0.0.1:{admin_port}/api/routes/customers/override"
            auth = {"Authorization": f"Bearer {TOKEN}"}
            conns: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
            workers: list[int | None] = []
            for _ in range(100):  # until each worker holds CONNECTIONS // 2 of them
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                await _until_raw(reader, writer, "monolith", 0.0)  # accepted and served
                worker = worker_of_client(writer, proc.pid)
                if worker is None or workers.count(worker) >= CONNECTIONS // 2:
                    writer.close()
                    continue
                conns.append((reader, writer))
                workers.append(worker)
                if len(conns) == CONNECTIONS:
                    break
            covered = {w for w in workers if w is not None}
            seen: dict[int, list[float]] = {w: [] for w in covered}
            try:
                async with aiohttp.ClientSession() as admin:
                    for i in range(flips + 5):
                        mode, upstream = (
                            ("new", "customers") if i % 2 == 0 else ("legacy", "monolith")
                        )
                        async with admin.put(put, json={"mode": mode}, headers=auth) as response:
                            assert response.status == 200, await response.text()
                        since = time.perf_counter()
                        took = await asyncio.gather(
                            *(_until_raw(r, w, upstream, since) for r, w in conns)
                        )
                        if i >= 5:
                            for worker in covered:
                                slowest = max(
                                    t for t, w in zip(took, workers, strict=True) if w == worker
                                )
                                seen[worker].append(slowest * 1000)
                        await asyncio.sleep(0.01)
                    await admin.delete(put, headers=auth)
            finally:
                for _, writer in conns:
                    writer.close()
    finally:
        if proc is not None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(15)
        shutil.rmtree(folder, ignore_errors=True)

    print(f"# flip propagation, {flips} flips, `strangler serve --workers 2`, state memory://")
    print(f"# {platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"# {CONNECTIONS} keep-alive connections over {len(seen)} workers")
    print("| worker | p50 ms | p90 ms | p99 ms | max ms |")
    print("|---|---|---|---|---|")
    for n, values in enumerate(seen.values(), 1):
        print(
            f"| {n} | {statistics.median(values):.2f} | {_pct(values, 0.90):.2f} | "
            f"{_pct(values, 0.99):.2f} | {max(values):.2f} |"
        )


async def _until_raw(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, upstream: str, since: float
) -> float:
    """Requests back to back on one keep-alive connection until ``upstream`` answers."""
    while True:
        writer.write(b"GET /api/customers/1 HTTP/1.1\r\nHost: bench\r\n\r\n")
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
        length = int(head.split("content-length:")[1].split("\r\n")[0])
        await reader.readexactly(length)
        if f"x-strangler-upstream: {upstream}\r\n" in head:
            return time.perf_counter() - since


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--flips", type=int, default=200)
    asyncio.run(bench(parser.parse_args().flips))


if __name__ == "__main__":
    main()
