"""Proxy p99 while the dashboard polls a large shadow report (issue 13).

Run: python3 bench/shadow_report.py [--keys 100000] [--rounds 3] [--requests 2000]

Starts an aiohttp process serving a legacy and a new upstream whose JSON answers
carry maps keyed by ever-new names (``opt_<n>``, not id-like, so they are not
collapsed into one template), and ``strangler serve --workers 1`` with a route
``/big/**`` in shadow and a route ``/plain/**`` that is not. ``--keys`` distinct
keys are pushed through ``/big`` first (the store keeps its cap and counts the
rest as overflow). Then, alternating, ``--rounds`` times each:

* quiet: ``--requests`` GETs of ``/plain`` (4 at a time), client latency p50/p99;
* polled: the same while a poller fetches ``GET /api/routes/big/shadow?samples=50``
  back to back (far more often than the dashboard's 1.5 s).

Prints the median p50/p99 of each, the report's size and how long it takes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import aiohttp
from loopback import free_port, wait_for_port

ROOT = Path(os.environ.get("STRANGLER_ROOT", Path(__file__).resolve().parents[1]))

UPSTREAMS = """
import itertools, sys
from aiohttp import web
counter = itertools.count()
def word(n):
    out = ""
    while True:
        n, r = divmod(n, 26)
        out += "abcdefghijklmnopqrstuvwxyz"[r]
        if not n:
            return out
def app(side):
    async def handle(request):
        if request.path.startswith("/big"):
            n = next(counter)
            per = int(sys.argv[3])
            keys = {"opt_" + word(n * per + i) + "_" + side: i for i in range(per)}
            return web.json_response({"id": 7, "settings": keys})
        return web.json_response({"id": 7, "name": "Ada", "plan": "gold"})
    a = web.Application()
    a.router.add_route("*", "/{tail:.*}", handle)
    return a
async def main():
    runners = []
    for side, port in (("legacy", int(sys.argv[1])), ("new", int(sys.argv[2]))):
        runner = web.AppRunner(app(side), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runners.append(runner)
    import asyncio
    await asyncio.Event().wait()
import asyncio
asyncio.run(main())
"""


def routes_yaml(legacy: int, new: int, proxy: int, admin: int) -> str:
    return textwrap.dedent(
        f"""
        listen: 127.0.0.1:{proxy}
        admin: {{listen: 127.0.0.1:{admin}}}
        legacy: monolith
        upstreams:
          monolith: {{url: "http://127.0.0.1:{legacy}"}}
          conduit: {{url: "http://127.0.0.1:{new}"}}
        routes:
          - name: big
            match: {{path: /big/**}}
            to: conduit
            mode: shadow
            shadow: {{percent: 100, max_in_flight: 256}}
          - name: plain
            match: {{path: /plain/**}}
            to: conduit
            mode: legacy
        """
    )


async def fill(session: aiohttp.ClientSession, url: str, requests: int) -> None:
    sem = asyncio.Semaphore(8)

    async def one(i: int) -> None:
        async with sem, session.get(f"{url}/big/{i}") as resp:
            await resp.read()

    await asyncio.gather(*(one(i) for i in range(requests)))


async def latencies(session: aiohttp.ClientSession, url: str, n: int) -> list[float]:
    out: list[float] = []

    async def worker(count: int) -> None:
        for _ in range(count):
            started = time.perf_counter()
            async with session.get(f"{url}/plain/1") as resp:
                await resp.read()
            out.append(time.perf_counter() - started)

    await asyncio.gather(*(worker(n // 4) for _ in range(4)))
    return out


POLLER = """
import asyncio, sys, time, aiohttp
admin, every, samples, out = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
async def main():
    took, n = [], 0
    async with aiohttp.ClientSession() as session:
        while True:
            started = time.perf_counter()
            # Vary the query like several dashboards on different windows would.
            window = ("version", "5m", "all")[n % 3]
            url = f"{admin}/api/routes/big/shadow?samples={samples}&window={window}"
            async with session.get(url) as resp:
                await resp.read()
            took.append(time.perf_counter() - started)
            n += 1
            with open(out, "a") as f:
                f.write(f"{took[-1]:.6f} ")
            await asyncio.sleep(max(0.0, every - (time.perf_counter() - started)))
asyncio.run(main())
"""


def start_poller(admin: str, every: float, samples: int, out: Path) -> subprocess.Popen[bytes]:
    """The dashboards, in a process of their own: reading 1.8 MB answers must not
    slow the event loop that measures the proxy's latency."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [sys.executable, "-c", POLLER, admin, str(every), str(samples), str(out)]
    return subprocess.Popen(args, env=env)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def run(args: argparse.Namespace, proxy: str, admin: str) -> None:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=32)) as session:
        per_request = 100
        await fill(session, proxy, args.keys // per_request)
        await asyncio.sleep(2.0)  # the mirror flushes every 0.5 s
        async with session.get(f"{admin}/api/routes/big/shadow?samples=50") as resp:
            body = await resp.read()
            report = await resp.json()
        modes = {
            "quiet": None,
            "10 dashboards (a poll every 150 ms, 5 samples)": (0.15, 5),
            "polling back to back, 50 samples a poll": (0.0, 50),
        }
        runs: dict[str, list[tuple[float, float]]] = {name: [] for name in modes}
        poll_times: dict[str, list[float]] = {name: [] for name in modes}
        for _ in range(args.rounds):
            for name, polling in modes.items():
                poller = None
                out = Path(tempfile.mkstemp(suffix=".txt")[1])
                if polling is not None:
                    poller = start_poller(admin, *polling, out)
                    await asyncio.sleep(0.5)  # the poller is up and polling
                lat = await latencies(session, proxy, args.requests)
                if poller is not None:
                    poller.terminate()
                    poller.wait(10)
                    text = out.read_text().split()
                    poll_times[name] += [float(t) for t in text]
                out.unlink()
                runs[name].append((pct(lat, 0.5), pct(lat, 0.99)))
    load = Path("/proc/loadavg").read_text().split()[0]
    print(f"# {platform.machine()}, Python {platform.python_version()}, load average {load}")
    print(f"# {time.strftime('%Y-%m-%d %H:%M')} UTC; {args.keys:,} distinct keys pushed")
    print(
        f"# report with 50 samples: {len(body):,} bytes, {len(report['fields'])} fields, "
        f"overflow {report.get('overflow', {}).get('fields', 0):,} (past the field cap), "
        f"compared {report['compared']}"
    )
    print("| /plain client latency while ... | p50 ms | p99 ms | report GET median ms |")
    print("|---|---|---|---|")
    for name, results in runs.items():
        p50 = statistics.median(r[0] for r in results)
        p99 = statistics.median(r[1] for r in results)
        took = poll_times[name]
        get = f"{statistics.median(took) * 1000:.1f} ({len(took)} polls)" if took else "-"
        print(f"| {name} (median of {len(results)}) | {p50:.2f} | {p99:.2f} | {get} |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    legacy, new, proxy, admin = (free_port() for _ in range(4))
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "routes.yaml"
        config.write_text(routes_yaml(legacy, new, proxy, admin))
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        upstreams = subprocess.Popen(
            [sys.executable, "-c", UPSTREAMS, str(legacy), str(new), "100"], env=env
        )
        server = subprocess.Popen(
            [sys.executable, "-m", "strangler", "serve", "-c", str(config), "--workers", "1"],
            env=env,
            cwd=tmp,
        )
        try:
            for port in (legacy, new, proxy, admin):
                wait_for_port(port, 30)
            asyncio.run(run(args, f"http://127.0.0.1:{proxy}", f"http://127.0.0.1:{admin}"))
        finally:
            for proc in (server, upstreams):
                proc.terminate()
                proc.wait(10)


if __name__ == "__main__":
    main()
