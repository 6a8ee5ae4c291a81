"""Shadow cost in CPU instructions: a figure the machine's other load cannot move.

Run: python3 bench/shadow_instructions.py [--requests 3000] [--connections 16] [--rounds 3]
                                         [--access-log FILE]

Runs ``strangler serve --workers 1`` under ``valgrind --tool=callgrind`` in front
of nginx (the same routes as ``bench/shadow.py``), warms each route up, zeroes
the counters, sends a fixed number of keep-alive GETs from 16 concurrent
connections, and dumps: instructions the proxy process executed per request,
for ``/pass`` (no shadow) and ``/fast`` (100 % shadow to a fast target; ``--route
dead``: to a port nobody listens on).

Counted: user-space instructions (Python, uvloop, httptools, libc). Not
counted: the kernel's share (socket syscalls, ~40 % of the proxy's CPU time on
pass-through here), which a pipelined mirror adds little to (one write and one
read per batch). So the ratio below overstates the CPU-time cost a little, and
it does not depend on the machine's other load, where wall-clock runs on a shared
VM swing by 2x. How many mirrors share one write and one read still varies from
run to run (and the per-batch costs with it), so it alternates the routes and
reports medians. Prints a Markdown snippet. ``--access-log FILE`` runs the same
with ``access_log: FILE`` (compare its pass-through figure with a run without).
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from loopback import free_port, wait_for_port
from shadow import nginx_conf, routes_yaml


async def _client(port: int, path: str, count: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()
    for _ in range(count):
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        start = head.lower().index(b"content-length: ") + 16
        await reader.readexactly(int(head[start : head.index(b"\r\n", start)]))
    writer.close()


def load(port: int, path: str, total: int, connections: int) -> None:
    async def run() -> None:
        each = total // connections
        await asyncio.gather(*(_client(port, path, each) for _ in range(connections)))

    asyncio.run(run())


def newest_dump(out: Path) -> Path:
    return Path(max(glob.glob(f"{out}*"), key=os.path.getmtime))


def instructions(dump: Path) -> int:
    for line in dump.read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise RuntimeError(f"no totals in {dump}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3, help="alternations; medians reported")
    parser.add_argument(
        "--route", default="fast", choices=["fast", "dead"], help="what to set against /pass"
    )
    parser.add_argument(
        "--keep", type=Path, help="copy the callgrind dumps here (callgrind_annotate)"
    )
    parser.add_argument("--access-log", help="serve with access_log: this file")
    args = parser.parse_args()
    per_request: dict[str, list[float]] = {"pass": [], args.route: []}
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        legacy, new, slow, port, admin = (free_port() for _ in range(5))
        out = tmp / "callgrind.out"
        config = routes_yaml(tmp, port, admin, legacy, new, slow)
        if args.access_log:
            config.write_text(config.read_text() + f"access_log: {args.access_log}\n")
        nginx = subprocess.Popen(
            ["nginx", "-p", str(tmp), "-c", str(nginx_conf(tmp, legacy, new)), "-g", "daemon off;"],
            stderr=subprocess.DEVNULL,
        )
        proxy = subprocess.Popen(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={out}",
                sys.executable,
                "-m",
                "strangler",
                "serve",
                "-c",
                str(config),
                "--workers",
                "1",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_port(legacy, 20.0)
            wait_for_port(port, 300.0)  # Python under valgrind starts slowly
            # A warm-up round first: its figures are dropped.
            for route in ("pass", args.route) * (args.rounds + 1):
                path = f"/{route}/1"
                load(port, path, 400, args.connections)  # warm pools, caches, plans
                time.sleep(1)
                subprocess.run(["callgrind_control", "-z", str(proxy.pid)], capture_output=True)
                load(port, path, args.requests, args.connections)
                time.sleep(0.5)
                subprocess.run(["callgrind_control", "-d", str(proxy.pid)], capture_output=True)
                time.sleep(1)
                dump = newest_dump(out)
                figure = instructions(dump) / args.requests
                per_request[route].append(figure)
                if args.keep is not None:
                    args.keep.mkdir(parents=True, exist_ok=True)
                    shutil.copy(dump, args.keep / f"{route}.callgrind")
                print(f"{route}: {figure:,.0f} instructions per request", file=sys.stderr)
        finally:
            for proc in (proxy, nginx):
                proc.send_signal(signal.SIGTERM)
            for proc in (proxy, nginx):
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
    # How many mirrors share one write and one read varies run to run, and the
    # per-batch costs with it: the median of the alternations, not one run.
    passed = statistics.median(per_request["pass"][1:])
    shadowed = statistics.median(per_request[args.route][1:])
    print("| scenario | instructions per request (user space) |")
    print("|---|---|")
    print(f"| pass-through | {passed:,.0f} |")
    target = "a fast target" if args.route == "fast" else "a dead target (refused)"
    print(f"| 100% shadow to {target} | {shadowed:,.0f} |")
    print(
        f"\nA mirror adds {shadowed - passed:,.0f} instructions per request: "
        f"**{1 - passed / shadowed:.1%}** of a CPU-bound proxy's throughput at 100% shadow "
        f"({args.requests} requests over {args.connections} connections, Python "
        f"{sys.version.split()[0]}; medians of {args.rounds} alternations after a warm-up "
        f"round)."
    )
    for route, label in (("pass", "pass-through"), (args.route, "100% shadow")):
        rounds = ", ".join(f"{figure:,.0f}" for figure in per_request[route][1:])
        print(f"- {label}, each round: {rounds}")


if __name__ == "__main__":
    main()
