"""Cutover figures: how long writes are held, and what a cutover costs other routes.

Run: python3 bench/cutover.py [--cutovers 20] [--rounds 5]. Starts the sample shop
(monolith and customers service on SQLite, the real sync worker both ways, the proxy
with the ``customers`` context — the test harness ``tests/cutover/shop.py``), all in
this process, then:

1. **Hold under steady writes.** A writer sends 50 writes/s (POST/PUT, each on its own
   schedule, never waiting for the previous) through the proxy while ``--cutovers``
   cutovers alternate service/legacy one second apart. Reports p50/p99/max of the
   hold each cutover reported (``held_seconds``: gate closed -> released), and of the
   client latency of the writes that arrived while a hold was on, against the writes
   that did not (same run).
2. **Routes outside the context.** ``wrk`` (a separate process) sends GETs of an
   unmatched path (answered by the monolith, never held) through the proxy, in
   alternating rounds with and without cutovers running back to back, the 50 writes/s
   going on in both. Reports requests/s per round and the median ratio.

The machine is shared (2 vCPU): everything here, wrk included, runs on the same two
cores, so ratios within one run are the figures to read, not absolute numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from strangler.devstack.localstack import LogicalPostgres  # noqa: E402
from tests.cutover.shop import TOKEN, Databases, Shop, postgres_databases, shop  # noqa: E402

WRITES_PER_S = 50


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class PacedWriter:
    """50 writes/s through the proxy, each started on time (not after the previous)."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session = session
        self.url = url
        self.writes: list[tuple[float, float, int]] = []
        """(started at, latency s, status)"""
        self.ids: list[int] = []
        self._stop = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    async def _one(self, n: int) -> None:
        started = time.monotonic()
        if self.ids and n % 3 == 2:
            method, path = "PUT", f"/api/customers/{self.ids[n % len(self.ids)]}"
            body: dict[str, Any] = {"CUST_NM": f"bench {n} renamed"}
        else:
            method, path = "POST", "/api/customers"
            body = {"CUST_NM": f"bench {n}", "EMAIL_ADDR": f"bench.{n}@example.com"}
        try:
            async with self.session.request(method, self.url + path, json=body) as response:
                answer = await response.json(content_type=None)
                status = response.status
        except (aiohttp.ClientError, TimeoutError, ValueError):
            status, answer = 0, {}
        if method == "POST" and status == 201:
            self.ids.append(int(answer["CUST_ID"]))
        self.writes.append((started, time.monotonic() - started, status))

    async def run(self) -> None:
        period = 1.0 / WRITES_PER_S
        start = time.monotonic()
        n = 0
        while not self._stop.is_set():
            task = asyncio.create_task(self._one(n))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            n += 1
            await asyncio.sleep(max(0.0, start + n * period - time.monotonic()))

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)


async def cut(session: aiohttp.ClientSession, found: Shop, to: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    started = time.monotonic()
    async with session.post(
        f"{found.admin}/api/contexts/customers/cutover", json={"to": to}, headers=headers
    ) as response:
        body: dict[str, Any] = await response.json()
    body["status"] = response.status
    body["started"] = started
    body["ended"] = time.monotonic()
    return body


async def hold_figures(found: Shop, cutovers: int) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session:
        writer = PacedWriter(session, found.url)
        running = asyncio.create_task(writer.run())
        await asyncio.sleep(1.0)
        results = []
        owner = "legacy"
        for _ in range(cutovers):
            result = await cut(session, found, "service" if owner == "legacy" else "legacy")
            owner = result.get("owner", owner)
            results.append(result)
            await asyncio.sleep(1.0)
        await writer.stop()
        running.cancel()
    done = [r for r in results if r["status"] == 200]
    held = [r for r in results if "held_seconds" in r]  # done or aborted: writes were held
    holds = [r["held_seconds"] for r in held]
    windows = [(r["ended"] - r["held_seconds"] - 0.05, r["ended"]) for r in held]
    during = [lat for at, lat, _ in writer.writes if any(a <= at <= b for a, b in windows)]
    outside = [lat for at, lat, _ in writer.writes if not any(a <= at <= b for a, b in windows)]
    failed = [w for w in writer.writes if w[2] not in (200, 201)]
    return {
        "cutovers": len(results),
        "done": len(done),
        "not done": [r.get("reason") or r.get("error") for r in results if r["status"] != 200],
        "holds (incl. aborted)": len(holds),
        "hold_p50": pct(holds, 0.5),
        "hold_p99": pct(holds, 0.99),
        "hold_max": max(holds, default=float("nan")),
        "writes": len(writer.writes),
        "failed": len(failed),
        "held_writes": len(during),
        "held_latency_p50": pct(during, 0.5),
        "held_latency_p99": pct(during, 0.99),
        "other_latency_p50": pct(outside, 0.5),
        "other_latency_p99": pct(outside, 0.99),
    }


def wrk(url: str, seconds: float) -> float:
    out = subprocess.run(
        ["wrk", "-t", "1", "-c", "16", "-d", f"{seconds:g}s", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    return float(found.group(1)) if found else float("nan")


async def passthrough_figures(found: Shop, rounds: int, seconds: float) -> dict[str, Any]:
    url = found.url + "/healthz"  # unmatched: the monolith answers, never held
    rates: dict[str, list[float]] = {"without": [], "with": []}
    async with aiohttp.ClientSession() as session:
        writer = PacedWriter(session, found.url)
        running = asyncio.create_task(writer.run())
        count = 0
        owner = (await (await session.get(found.admin + "/api/contexts")).json())["contexts"][0][
            "owner"
        ]
        for _ in range(rounds):
            for kind in ("without", "with"):
                stop = asyncio.Event()

                async def cutting(stop: asyncio.Event) -> None:
                    nonlocal count, owner
                    while not stop.is_set():
                        result = await cut(
                            session, found, "service" if owner == "legacy" else "legacy"
                        )
                        owner = result.get("owner", owner)
                        count += 1

                task = asyncio.create_task(cutting(stop)) if kind == "with" else None
                rates[kind].append(await asyncio.to_thread(wrk, url, seconds))
                stop.set()
                if task is not None:
                    await task
        await writer.stop()
        running.cancel()
    ratios = [w / o for w, o in zip(rates["with"], rates["without"], strict=True)]
    return {
        "without": rates["without"],
        "with": rates["with"],
        "ratio_median": statistics.median(ratios),
        "cutovers_during": count,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cutovers", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument(
        "--stack",
        choices=["embedded", "postgres"],
        default="embedded",
        help="SQLite + SQLite capture, or PostgreSQL 15 + Debezium embedded both ways",
    )
    args = parser.parse_args()
    print(f"# cutover bench, {time.strftime('%Y-%m-%d %H:%M')} UTC, stack {args.stack}")
    print(f"{platform.platform()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    with contextlib.ExitStack() as resources:
        folder = resources.enter_context(tempfile.TemporaryDirectory())
        dbs: Databases | None = None
        if args.stack == "postgres":
            pg = resources.enter_context(LogicalPostgres(databases=("shop", "customers")))
            dbs = postgres_databases(pg, "shop", "customers")
        await run(Path(folder), dbs, args)
    print(f"load after: {os.getloadavg()[0]:.1f}")


async def run(folder: Path, dbs: Databases | None, args: argparse.Namespace) -> None:
    async with shop(folder, dbs=dbs) as found:
        hold = await hold_figures(found, args.cutovers)
        print(f"hold under 50 writes/s ({args.stack})")
        for key, value in hold.items():
            print(f"  {key}: {value:.4f}" if isinstance(value, float) else f"  {key}: {value}")
        passthrough = await passthrough_figures(found, args.rounds, args.seconds)
        print("GET of a route outside the context, wrk -c 16, req/s per round")
        print(f"  without a cutover: {[round(x) for x in passthrough['without']]}")
        print(f"  with cutovers back to back: {[round(x) for x in passthrough['with']]}")
        print(f"  median ratio with/without: {passthrough['ratio_median']:.3f}")
        print(f"  cutovers during the 'with' rounds: {passthrough['cutovers_during']}")


if __name__ == "__main__":
    asyncio.run(main())
