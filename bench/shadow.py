"""Shadow cost, side by side in one run: throughput, client p99, memory under a dead target.

Run: python3 bench/shadow.py [--duration 10] [--memory-duration 60]

Starts nginx (the fast legacy and new upstreams, one worker), an aiohttp
target that sleeps 2 s, and ``strangler serve --workers 1`` with four routes
that differ only in shadowing: ``/pass`` (legacy mode, no shadow), ``/fast``
(100 % shadow to the fast new upstream), ``/slow`` (100 % shadow to the
2-second target), ``/dead`` (100 % shadow to a port nobody listens on). Then,
with wrk:

1. throughput of /pass vs /fast at full load (32 connections), alternated
   twice, median of each -> the cost of shadowing everything;
2. client p50/p99 of /pass vs /slow at light load (4 connections) -> whether a
   slow shadow target moves the client's latency;
3. /dead at full load for ``--memory-duration`` s, the proxy's RSS every 5 s
   -> whether memory stays flat (bounded in-flight work, drops counted).

With ``--pin`` (the default on a machine with 2+ cores and ``taskset``) the proxy
runs alone on CPU 0 and nginx, the slow target and wrk share CPU 1, so the
proxy's figures are not perturbed by its own load generator. The shadow target
still shares that core with the legacy upstream and the load: in production it
runs elsewhere, so the req/s ratio here is a pessimistic bound.

Prints a Markdown report (paste into bench/results/shadow.md).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import urllib.request
from pathlib import Path

from loopback import free_port, wait_for_port

BODY = '{"id":7,"name":"Ada","plan":"gold","tags":["a","b"],"balance":12.5}'

SLOW_SERVER = """
import asyncio, sys
BODY = sys.argv[2]
from aiohttp import web
async def handle(request):
    await asyncio.sleep(2.0)
    return web.Response(body=BODY.encode(), headers={"Content-Type": "application/json"})
app = web.Application()
app.router.add_route("*", "/{tail:.*}", handle)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


def nginx_conf(tmp: Path, legacy: int, new: int) -> Path:
    conf = tmp / "nginx.conf"
    conf.write_text(
        textwrap.dedent(
            f"""
            worker_processes 1;
            pid {tmp}/nginx.pid;
            error_log {tmp}/error.log;
            events {{ worker_connections 4096; }}
            http {{
              access_log off;
              client_body_temp_path {tmp}/body;
              proxy_temp_path {tmp}/proxy;
              fastcgi_temp_path {tmp}/fastcgi;
              uwsgi_temp_path {tmp}/uwsgi;
              scgi_temp_path {tmp}/scgi;
              keepalive_requests 1000000;
              server {{ listen 127.0.0.1:{legacy};
                location / {{ default_type application/json; return 200 '{BODY}'; }} }}
              server {{ listen 127.0.0.1:{new};
                location / {{ default_type application/json; return 200 '{BODY}'; }} }}
            }}
            """
        )
    )
    return conf


def routes_yaml(tmp: Path, port: int, admin: int, legacy: int, new: int, slow: int) -> Path:
    dead = free_port()
    path = tmp / "routes.yaml"
    shadow = "shadow: {percent: 100}"
    path.write_text(
        textwrap.dedent(
            f"""
            listen: 127.0.0.1:{port}
            admin: {{listen: "127.0.0.1:{admin}"}}
            state: memory://
            legacy: monolith
            upstreams:
              monolith: {{url: "http://127.0.0.1:{legacy}"}}
              fast: {{url: "http://127.0.0.1:{new}"}}
              slow: {{url: "http://127.0.0.1:{slow}", timeout: 5s}}
              dead: {{url: "http://127.0.0.1:{dead}", timeout: 2s}}
            routes:
              - {{name: pass, match: {{path: /pass/**}}, to: fast, mode: legacy}}
              - {{name: fast, match: {{path: /fast/**}}, to: fast, mode: shadow, {shadow}}}
              - {{name: quarter, match: {{path: /quarter/**}}, to: fast, mode: shadow,
                  shadow: {{percent: 25}}}}
              - {{name: slow, match: {{path: /slow/**}}, to: slow, mode: shadow, {shadow}}}
              - {{name: dead, match: {{path: /dead/**}}, to: dead, mode: shadow, {shadow}}}
            """
        )
    )
    return path


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (robust to other load on the box)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_times() -> list[int]:
    """The machine's CPU time so far, in ticks, by kind (``/proc/stat``'s ``cpu`` line)."""
    return [int(n) for n in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]


def steal_share(before: list[int], after: list[int]) -> float:
    """Share of the CPU time between two readings that the hypervisor gave to others."""
    spent = [b - a for a, b in zip(before, after, strict=True)]
    return spent[7] / max(sum(spent), 1)


PIN: dict[str, list[str]] = {"proxy": [], "load": []}
"""Command prefixes placing the proxy and the rest on separate CPUs (``--pin``)."""


def wrk(url: str, connections: int, duration: int, pid: int | None = None) -> dict[str, float]:
    cpu_before = cpu_seconds(pid) if pid else 0.0
    machine_before = cpu_times()
    out = subprocess.run(
        [*PIN["load"], "wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    result = {"rps": rps, "steal": steal_share(machine_before, cpu_times())}
    if pid:
        result["cpu_us"] = (cpu_seconds(pid) - cpu_before) / max(total, 1) * 1e6
    for pct in ("50", "99"):
        m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        assert m, out
        result[f"p{pct}_ms"] = float(m.group(1)) * _UNITS[m.group(2)]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    result["non2xx"] = float(errors.group(1)) if errors else 0.0
    return result


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def shadow_counts(admin: int, route: str) -> dict[str, int]:
    url = f"http://127.0.0.1:{admin}/api/routes/{route}/shadow?samples=0"
    with urllib.request.urlopen(url, timeout=5) as resp:
        counts: dict[str, int] = json.load(resp)["counts"]
    return counts


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--memory-duration", type=int, default=60)
    parser.add_argument("--runs", type=int, default=4, help="alternations at 32 connections")
    parser.add_argument(
        "--pin",
        action=argparse.BooleanOptionalAction,
        default=(os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None,
    )
    args = parser.parse_args()
    if args.pin:
        PIN["proxy"], PIN["load"] = ["taskset", "-c", "0"], ["taskset", "-c", "1"]
    procs: list[subprocess.Popen[bytes]] = []
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        legacy, new, slow, port, admin = (free_port() for _ in range(5))
        try:
            procs.append(
                subprocess.Popen(
                    [
                        *PIN["load"],
                        "nginx",
                        "-p",
                        str(tmp),
                        "-c",
                        str(nginx_conf(tmp, legacy, new)),
                        "-g",
                        "daemon off;",
                    ],
                    stderr=subprocess.DEVNULL,
                )
            )
            procs.append(
                subprocess.Popen([*PIN["load"], sys.executable, "-c", SLOW_SERVER, str(slow), BODY])
            )
            config = routes_yaml(tmp, port, admin, legacy, new, slow)
            env = {**os.environ, "PYTHONUNBUFFERED": "1"}
            proxy = subprocess.Popen(
                [
                    *PIN["proxy"],
                    sys.executable,
                    "-m",
                    "strangler",
                    "serve",
                    "-c",
                    str(config),
                    "--workers",
                    "1",
                ],
                env=env,
                stderr=subprocess.DEVNULL,
            )
            procs.append(proxy)
            for p in (legacy, new, slow, port, admin):
                wait_for_port(p, 20.0)
            base = f"http://127.0.0.1:{port}"
            wrk(base + "/pass/1", 32, 2)  # warm up pools
            wrk(base + "/fast/1", 32, 2)

            runs: dict[str, list[dict[str, float]]] = {"pass": [], "fast": [], "quarter": []}
            for _ in range(args.runs):
                for route in ("pass", "fast", "quarter"):
                    runs[route].append(wrk(f"{base}/{route}/1", 32, args.duration, proxy.pid))
                    time.sleep(1)
            light = {"pass": [], "slow": []}  # type: dict[str, list[dict[str, float]]]
            for _ in range(5):
                for route in ("pass", "slow"):
                    light[route].append(wrk(f"{base}/{route}/1", 4, args.duration, proxy.pid))
                    time.sleep(1)

            samples: list[tuple[int, float]] = []
            stop = threading.Event()

            def sample_memory() -> None:
                started = time.monotonic()
                while not stop.is_set():
                    samples.append((round(time.monotonic() - started), rss_mb(proxy.pid)))
                    stop.wait(5)

            before = rss_mb(proxy.pid)
            sampler = threading.Thread(target=sample_memory)
            sampler.start()
            dead = wrk(base + "/dead/1", 32, args.memory_duration, proxy.pid)
            stop.set()
            sampler.join()
            after = rss_mb(proxy.pid)
            counts = {r: shadow_counts(admin, r) for r in ("fast", "quarter", "slow", "dead")}
        finally:
            for proc in reversed(procs):
                proc.send_signal(signal.SIGTERM)
            for proc in procs:
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()

    med = lambda rs, k: statistics.median(r[k] for r in rs)  # noqa: E731
    pass_rps, fast_rps = med(runs["pass"], "rps"), med(runs["fast"], "rps")
    cost = 1 - fast_rps / pass_rps
    p99_pass, p99_slow = med(light["pass"], "p99_ms"), med(light["slow"], "p99_ms")
    cpu = platform.processor() or platform.machine()
    print(f"## Shadow ({datetime.date.today().isoformat()})\n")
    print(
        f"Machine: {os.cpu_count()} cores ({cpu}), Linux {platform.release()}, Python "
        f"{platform.python_version()}; proxy `strangler serve --workers 1`, upstreams nginx "
        "(1 worker) and an aiohttp server sleeping 2 s, load from wrk (1 thread) on the same "
        f"machine{'; proxy pinned to CPU 0, the rest to CPU 1' if args.pin else ''}. Medians "
        f"of alternated runs ({args.runs} each at 32 connections, 5 each at 4) of "
        f"{args.duration} s each. Load average at the start: {load}.\n"
    )
    print("| scenario | req/s | p50 ms | p99 ms | proxy CPU µs per request |")
    print("|---|---|---|---|---|")
    for label, rs in (
        ("pass-through, 32 conns", runs["pass"]),
        ("100% shadow to a fast target, 32 conns", runs["fast"]),
        ("25% shadow to a fast target, 32 conns", runs["quarter"]),
        ("pass-through, 4 conns", light["pass"]),
        ("100% shadow to a 2 s target, 4 conns", light["slow"]),
    ):
        print(
            f"| {label} | {med(rs, 'rps'):.0f} | {med(rs, 'p50_ms'):.2f} | "
            f"{med(rs, 'p99_ms'):.2f} | {med(rs, 'cpu_us'):.0f} |"
        )
    print(
        f"| 100% shadow to a dead target, 32 conns, {args.memory_duration} s | "
        f"{dead['rps']:.0f} | {dead['p50_ms']:.2f} | {dead['p99_ms']:.2f} | "
        f"{dead['cpu_us']:.0f} |"
    )
    print()
    quarter = 1 - med(runs["quarter"], "rps") / pass_rps
    cpu_pass, cpu_fast = med(runs["pass"], "cpu_us"), med(runs["fast"], "cpu_us")
    cpu_quarter = med(runs["quarter"], "cpu_us")
    pairs = sorted(1 - f["rps"] / p["rps"] for p, f in zip(runs["pass"], runs["fast"], strict=True))
    print(
        f"- Throughput cost of shadowing every request: **{cost:.1%}** (target ≤ 25%); "
        f"of shadowing 25% of users: {quarter:.1%}. Each alternation's own ratio: "
        + ", ".join(f"{c:.1%}" for c in pairs)
        + "."
    )
    steals = [(p["steal"], f["steal"]) for p, f in zip(runs["pass"], runs["fast"], strict=True)]
    print(
        "- CPU time the hypervisor gave to other guests during each alternation "
        "(pass-through / 100% shadow; a quiet machine shows 0%): "
        + ", ".join(f"{a:.0%} / {b:.0%}" for a, b in steals)
        + "."
    )
    print(
        "- By the proxy's own CPU per request (not skewed by other load on the machine): "
        f"{cpu_pass:.0f} µs pass-through, {cpu_fast:.0f} µs with 100% shadow, "
        f"{cpu_quarter:.0f} µs with 25%: a CPU-bound proxy loses "
        f"**{1 - cpu_pass / cpu_fast:.1%}** of its throughput at 100% "
        f"and {1 - cpu_pass / cpu_quarter:.1%} at 25%."
    )
    print(
        f"- Client p99 with a 2 s shadow target vs none: **{p99_slow - p99_pass:+.2f} ms** "
        "(target < 1 ms)."
    )
    print(
        f"- Proxy RSS under a dead shadow target at full load: {before:.1f} MB before, "
        f"{after:.1f} MB after {args.memory_duration} s; samples (s, MB): "
        + ", ".join(f"{t}: {m:.1f}" for t, m in samples)
    )
    print(f"- Shadow outcomes: {json.dumps(counts)}")
    print(f"- Non-2xx client answers: {sum(r['non2xx'] for rs in runs.values() for r in rs)}")


if __name__ == "__main__":
    main()
