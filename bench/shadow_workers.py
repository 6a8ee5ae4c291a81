"""What sharing shadow results through the supervisor costs (``memory://``, ``--workers 2``).

Run: python3 bench/shadow_workers.py [--requests 4000] [--rounds 3] [--baseline DIR].
A legacy and a new upstream (aiohttp, in this process) that answer differently, so
every request is a mismatch with a sample (the costliest results to share), and one
real ``strangler serve --workers 2`` with ``state: memory://`` and the route in
``shadow`` mode. Each round sends ``--requests`` GETs on 16 keep-alive connections
and reads the CPU time the supervisor and its children used (/proc). With
``--baseline`` (another checkout, e.g. the main branch before this change) the
rounds alternate with that build under the same load. Prints per build: requests/s,
supervisor CPU ms per 1000 requests, workers' CPU ms per request, and what
``/api/routes/customers/shadow`` counts (all of them, when shared).
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

from tests.serve.workers import children  # noqa: E402
from tests.support.net import free_port, serve_app, wait_for_port  # noqa: E402

TOKEN = "bench-token"
CONNECTIONS = 16
TICKS = os.sysconf("SC_CLK_TCK")


def _upstream(name: str) -> web.Application:
    async def answer(request: web.Request) -> web.Response:
        return web.json_response({"id": request.match_info["id"], "side": name, "n": 1})

    app = web.Application()
    app.router.add_get("/api/customers/{id}", answer)
    return app


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


async def _round(root: Path, legacy: str, new: str, requests: int) -> dict[str, float]:
    folder = Path(tempfile.mkdtemp(prefix="strangler-bench-shadow-workers-"))
    port, admin_port = free_port(), free_port()
    document = {
        "listen": f"127.0.0.1:{port}",
        "admin": {"listen": f"127.0.0.1:{admin_port}", "token": TOKEN},
        "state": "memory://",
        "legacy": "monolith",
        "upstreams": {"monolith": {"url": legacy}, "customers": {"url": new}},
        "routes": [
            {
                "name": "customers",
                "match": {"path": "/api/customers/**"},
                "to": "customers",
                "mode": "shadow",
            }
        ],
    }
    path = folder / "routes.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    command = [sys.executable, "-m", "strangler", "serve", "-c", str(path), "--workers", "2"]
    env = {**os.environ, "PYTHONPATH": str(root)}
    proc = subprocess.Popen(
        command, cwd=root, env=env, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        wait_for_port(port)
        wait_for_port(admin_port)
        await asyncio.sleep(1.0)  # both workers accepting
        pids = children(proc.pid)
        before = {pid: _cpu(pid) for pid in (proc.pid, *pids)}
        connector = aiohttp.TCPConnector(limit=CONNECTIONS)
        async with aiohttp.ClientSession(connector=connector) as session:
            queue = iter(range(requests))

            async def client() -> None:
                for i in queue:
                    async with session.get(f"http://127.0.0.1:{port}/api/customers/{i}") as r:
                        await r.read()

            started = time.perf_counter()
            await asyncio.gather(*(client() for _ in range(CONNECTIONS)))
            took = time.perf_counter() - started
            await asyncio.sleep(2.0)  # the last mirrors compared and flushed
            after = {pid: _cpu(pid) for pid in before}
            url = f"http://127.0.0.1:{admin_port}/api/routes/customers/shadow"
            headers = {"Authorization": f"Bearer {TOKEN}"}
            async with session.get(url, headers=headers) as response:
                counts = (await response.json())["counts"]
        supervisor = after[proc.pid] - before[proc.pid]
        workers = sum(after[p] - before[p] for p in pids)
        return {
            "rps": requests / took,
            "supervisor_ms_per_1000": supervisor * 1000 / requests * 1000,
            "children_ms_per_request": workers * 1000 / requests,
            "counted": float(sum(counts.values())),
        }
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
        shutil.rmtree(folder, ignore_errors=True)


async def bench(requests: int, rounds: int, baseline: Path | None) -> None:
    builds = {"this": ROOT} | ({"baseline": baseline} if baseline else {})
    results: dict[str, list[dict[str, float]]] = {name: [] for name in builds}
    async with serve_app(_upstream("legacy")) as legacy, serve_app(_upstream("new")) as new:
        for _ in range(rounds):
            for name, root in builds.items():
                results[name].append(await _round(root, legacy, new, requests))
    print(f"# shadow results through the supervisor: {requests} mismatching GETs x {rounds}")
    print(f"# {platform.platform()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}")
    print("| build | req/s | supervisor CPU ms / 1000 req | children CPU ms / req | counted |")
    print("|---|---|---|---|---|")
    for name, rows in results.items():
        med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
        print(
            f"| {name} | {med['rps']:.0f} | {med['supervisor_ms_per_1000']:.1f} | "
            f"{med['children_ms_per_request']:.3f} | {med['counted']:.0f} of {requests} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", type=Path, default=None)
    args = parser.parse_args()
    asyncio.run(bench(args.requests, args.rounds, args.baseline))


if __name__ == "__main__":
    main()
