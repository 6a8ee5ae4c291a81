"""Pass-through benchmark: upstream direct vs NGINX as a proxy vs strangler, side by side.

    python bench/proxy.py [--rounds 5] [--duration 10] [--workers 2] [--uvloop] [--write]
                          [--builds compiled,pure] [--throughput-only]

Starts (all on free loopback ports, in a temp folder, as child processes):

* the upstream: NGINX with one worker answering a 300-byte JSON from a
  ``return 200`` location (so the upstream costs as little as possible);
* NGINX as a reverse proxy in front of it (keep-alive upstream pool, one worker
  per strangler worker), and HAProxy likewise (one thread per strangler worker);
* ``strangler serve --workers N`` in front of it (10 routes; Redis state, as
  several workers need), once per build (``--builds``: the compiled build, and
  the same code as pure Python with ``STRANGLER_PURE=1``), and for the
  route-count comparison one more with 10,000 routes;
* with ``--uvloop``, the same data plane as bare ``ProxyServer`` processes on
  uvloop sharing the port with SO_REUSEPORT (``bench/proxy_worker.py``).

Then, for several rounds, runs ``wrk -t2 -c64`` against each in turn and reports
medians: req/s, p50/p99 latency, CPU-µs per request (utime+stime of the proxy's
processes from /proc, divided by requests served) and the ratio to NGINX, with
each round's ratios; then (unless ``--throughput-only``) the per-hop latency at
one connection (``wrk -c1``: proxy p50 minus direct p50) and 10 vs 10,000 routes.
``--write`` records the table in bench/results/proxy.md.
Installs nginx, haproxy and wrk with apt-get if they are missing.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from loopback import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[1]
BODY = (
    '{"id":12345,"name":"Ada Lovelace","email":"ada@example.com","tier":"gold",'
    '"addresses":[{"street":"12 St James Square","city":"London","postcode":"SW1Y 4JH",'
    '"country":"GB"}],"orders":[101,102,103,104,105],"created_at":"2026-11-21T10:00:00Z",'
    '"flags":{"beta":true,"vip":false},"pad":"xxxxxxxxxxxxxx"}'
)
TICK = os.sysconf("SC_CLK_TCK")


def ensure_tools() -> None:
    missing = [tool for tool in ("nginx", "haproxy", "wrk") if shutil.which(tool) is None]
    if missing:
        subprocess.run(["apt-get", "update", "-q"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-q", *missing], check=True)


# ------------------------------------------------------------------ processes


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (by scanning /proc for parent ids)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo.extend(parents.get(current, []))
    return out


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICK


@dataclass
class Target:
    name: str
    url: str
    pids: Callable[[], list[int]]


NGINX_COMMON = """
daemon off;
pid {dir}/{name}.pid;
error_log {dir}/{name}.error.log warn;
events {{ worker_connections 8192; }}
"""
NGINX_HTTP_COMMON = """
  access_log off;
  client_body_temp_path {dir}/{name}-body; proxy_temp_path {dir}/{name}-proxy;
  fastcgi_temp_path {dir}/{name}-fcgi; uwsgi_temp_path {dir}/{name}-uwsgi;
  scgi_temp_path {dir}/{name}-scgi;
  keepalive_requests 10000000;
"""


def start_nginx(tmp: Path, name: str, workers: int, server: str) -> subprocess.Popen[bytes]:
    conf = tmp / f"{name}.conf"
    conf.write_text(
        f"worker_processes {workers};\n"
        + NGINX_COMMON.format(dir=tmp, name=name)
        + "http {\n"
        + NGINX_HTTP_COMMON.format(dir=tmp, name=name)
        + server
        + "\n}\n"
    )
    return subprocess.Popen(["nginx", "-c", str(conf), "-p", str(tmp)], stderr=subprocess.DEVNULL)


def start_upstream(tmp: Path, port: int) -> subprocess.Popen[bytes]:
    """The upstream every proxy here sits in front of: NGINX, one worker, ``BODY``."""
    body = BODY.replace("'", "")
    return start_nginx(
        tmp,
        "upstream",
        1,
        f"server {{ listen 127.0.0.1:{port}; location / {{ default_type application/json; "
        f"return 200 '{body}'; }} }}",
    )


def start_nginx_proxy(
    tmp: Path, port: int, upstream: int, workers: int, tls: tuple[Path, Path] | None = None
) -> subprocess.Popen[bytes]:
    """NGINX as a reverse proxy (keep-alive upstream pool, X-Forwarded-For), terminating
    TLS with ``tls`` (certificate, key; then also ``X-Forwarded-Proto``)."""
    listen = f"127.0.0.1:{port}"
    tls_conf = proto = ""
    if tls is not None:
        listen += " ssl"
        tls_conf = (
            f"ssl_certificate {tls[0]}; ssl_certificate_key {tls[1]}; "
            "ssl_protocols TLSv1.2 TLSv1.3; "
        )
        proto = "proxy_set_header X-Forwarded-Proto $scheme; "
    return start_nginx(
        tmp,
        "proxy",
        workers,
        f"upstream app {{ server 127.0.0.1:{upstream}; keepalive 256; }}\n"
        f"server {{ listen {listen}; {tls_conf}location / {{ proxy_pass http://app; "
        "proxy_http_version 1.1; proxy_set_header Connection ''; "
        f"proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for; {proto}"
        "proxy_set_header Host $host; } }",
    )


def stop_all(procs: list[subprocess.Popen[bytes]]) -> None:
    """Stop the children, last started first (NGINX gracefully with SIGQUIT)."""
    for proc in reversed(procs):
        nginx = isinstance(proc.args, list) and proc.args[0] == "nginx"
        proc.send_signal(signal.SIGQUIT if nginx else signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


def start_haproxy(tmp: Path, port: int, upstream: int, threads: int) -> subprocess.Popen[bytes]:
    """HAProxy as the other reference proxy: keep-alive to the upstream, X-Forwarded-For."""
    conf = tmp / "haproxy.cfg"
    conf.write_text(
        f"global\n  nbthread {threads}\n  maxconn 4096\n"
        "defaults\n  mode http\n  timeout connect 5s\n  timeout client 60s\n"
        "  timeout server 60s\n  option http-keep-alive\n  option forwardfor\n"
        f"frontend proxy\n  bind 127.0.0.1:{port}\n  default_backend app\n"
        f"backend app\n  http-reuse always\n  server app 127.0.0.1:{upstream} maxconn 256\n"
    )
    return subprocess.Popen(["haproxy", "-db", "-f", str(conf)], stderr=subprocess.DEVNULL)


def routes_yaml(
    tmp: Path, name: str, port: int, upstream: int, routes: int, access_log: bool = False
) -> Path:
    lines = [
        *([f"access_log: {tmp / (name + '.access.log')}"] if access_log else []),
        f"listen: 127.0.0.1:{port}",
        f"admin: {{listen: 127.0.0.1:{free_port()}}}",
        f"state: {{url: 'redis://127.0.0.1:6379/0', namespace: bench-{uuid.uuid4().hex[:8]}}}",
        "legacy: app",
        "upstreams:",
        f"  app: {{url: 'http://127.0.0.1:{upstream}'}}",
        f"  new: {{url: 'http://127.0.0.1:{upstream}'}}",
        "routes:",
    ]
    for i in range(routes):
        lines.append(
            f"  - {{name: r{i}, match: {{path: '/api/r{i}/{{id}}'}}, to: new, mode: legacy}}"
        )
    path = tmp / f"{name}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def start_bare_workers(config: Path, port: int, workers: int) -> list[subprocess.Popen[bytes]]:
    """``workers`` bare ProxyServer processes on uvloop sharing ``port`` (SO_REUSEPORT)."""
    return [
        subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "bench" / "proxy_worker.py"),
                str(config),
                str(port),
                "--uvloop",
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(workers)
    ]


def build_env(build: str) -> dict[str, str]:
    """The environment that runs ``build``: ``pure`` loads every compiled module's source."""
    return {**os.environ, "STRANGLER_PURE": "1" if build == "pure" else ""}


def build_name(build: str) -> str:
    """What ``strangler --version`` says this build is (``compiled: mypyc, 21 modules``)."""
    out = subprocess.run(
        [sys.executable, "-m", "strangler", "--version"],
        cwd=ROOT,
        env=build_env(build),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.strip().split(" (", 1)[1].rstrip(")")


def start_strangler(config: Path, workers: int, build: str = "compiled") -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "strangler", "serve", "-c", str(config), "--workers", str(workers)],
        cwd=ROOT,
        env=build_env(build),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


# ------------------------------------------------------------------------ wrk

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    assert match, text
    return float(match.group(1)) * _UNITS[match.group(2)]


@dataclass
class Run:
    rps: float
    p50: float
    p99: float
    cpu_us: float
    errors: int


def wrk(
    target: Target, duration: float, connections: int, threads: int, extra: tuple[str, ...] = ()
) -> Run:
    pids = target.pids()
    before = cpu_seconds(pids)
    out = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{duration:g}s",
            "--latency",
            *extra,
            target.url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    used = cpu_seconds(pids) - before
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: .*", out)
    bad = int(errors.group(1)) if errors else 0
    if socket_errors:
        bad += sum(int(n) for n in re.findall(r"\d+", socket_errors.group(0)))
    return Run(rps, p50, p99, used * 1e6 / max(requests, 1), bad)


def median_run(runs: list[Run]) -> Run:
    return Run(
        statistics.median(r.rps for r in runs),
        statistics.median(r.p50 for r in runs),
        statistics.median(r.p99 for r in runs),
        statistics.median(r.cpu_us for r in runs),
        sum(r.errors for r in runs),
    )


# ---------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--write", action="store_true", help="write bench/results/proxy.md")
    parser.add_argument(
        "--builds",
        default="compiled,pure",
        help="strangler builds side by side: compiled (as installed), pure (STRANGLER_PURE=1)",
    )
    parser.add_argument(
        "--throughput-only",
        action="store_true",
        help="skip the one-connection latency and the 10,000-route runs",
    )
    parser.add_argument(
        "--uvloop", action="store_true", help="also run bare ProxyServer workers on uvloop"
    )
    parser.add_argument(
        "--access-log",
        action="store_true",
        help="also run the first build with access_log: to a file, in the same rounds "
        "(before or after its twin without the log, alternating)",
    )
    args = parser.parse_args()
    ensure_tools()
    if args.uvloop and importlib.util.find_spec("uvloop") is None:
        print("uvloop is not installed (pip install 'strangler[fast]'): skipping that row")
        args.uvloop = False

    tmp = Path(tempfile.mkdtemp(prefix="strangler-bench-"))
    tmp.chmod(0o777)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        up, ngx, hap, s10k, bare, slog = (free_port() for _ in range(6))
        builds = [b.strip() for b in args.builds.split(",") if b.strip()]
        ports = {build: free_port() for build in builds}
        upstream = start_upstream(tmp, up)
        procs.append(upstream)
        proxy = start_nginx_proxy(tmp, ngx, up, args.workers)
        procs.append(proxy)
        haproxy = start_haproxy(tmp, hap, up, args.workers)
        procs.append(haproxy)
        servers = {
            build: start_strangler(
                routes_yaml(tmp, f"s10-{build}", ports[build], up, 10), args.workers, build
            )
            for build in builds
        }
        procs += servers.values()
        big = start_strangler(routes_yaml(tmp, "s10k", s10k, up, 10_000), args.workers, builds[0])
        procs.append(big)
        logged_ports = [slog] if args.access_log else []
        if args.access_log:
            logged = start_strangler(
                routes_yaml(tmp, "slog", slog, up, 10, access_log=True), args.workers, builds[0]
            )
            procs.append(logged)
        uv_workers: list[subprocess.Popen[bytes]] = []
        if args.uvloop:
            uv_workers = start_bare_workers(
                routes_yaml(tmp, "bare", bare, up, 10), bare, args.workers
            )
            procs += uv_workers
        for port in (
            up,
            ngx,
            hap,
            *ports.values(),
            s10k,
            *([bare] if args.uvloop else []),
            *logged_ports,
        ):
            wait_for_port(port, 120)
        time.sleep(2)

        path = "/api/r5/12345"
        targets = {
            "direct": Target(
                "upstream direct", f"http://127.0.0.1:{up}{path}", lambda: descendants(upstream.pid)
            ),
            "nginx": Target(
                "NGINX proxy", f"http://127.0.0.1:{ngx}{path}", lambda: descendants(proxy.pid)
            ),
            "haproxy": Target(
                "HAProxy proxy", f"http://127.0.0.1:{hap}{path}", lambda: descendants(haproxy.pid)
            ),
        }
        for build, server in servers.items():
            targets[build] = Target(
                f"strangler, {build_name(build)} ({args.workers} workers)",
                f"http://127.0.0.1:{ports[build]}{path}",
                lambda server=server: descendants(server.pid),
            )
        if args.uvloop:
            targets["uvloop"] = Target(
                f"ProxyServer on uvloop ({args.workers} procs)",
                f"http://127.0.0.1:{bare}{path}",
                lambda: [pid for w in uv_workers for pid in descendants(w.pid)],
            )
        if args.access_log:
            targets["logged"] = Target(
                f"strangler, {build_name(builds[0])}, access log on",
                f"http://127.0.0.1:{slog}{path}",
                lambda: descendants(logged.pid),
            )
        big_target = Target(
            "strangler, 10,000 routes",
            f"http://127.0.0.1:{s10k}/api/r5000/12345",
            lambda: descendants(big.pid),
        )
        # Warm up (connection pools, code paths).
        for target in [*targets.values(), *([] if args.throughput_only else [big_target])]:
            wrk(target, 2, args.connections, args.threads)

        results: dict[str, list[Run]] = {key: [] for key in targets}
        for round_no in range(args.rounds):
            order = list(targets)
            if args.access_log and round_no % 2:
                # The logged server runs right after its twin in even rounds, right
                # before it in odd ones: drift during a round favours neither.
                order.remove("logged")
                order.insert(order.index(builds[0]), "logged")
            for key in order:
                target = targets[key]
                run = wrk(target, args.duration, args.connections, args.threads)
                results[key].append(run)
                print(
                    f"round {round_no + 1} {target.name:28} {run.rps:10.0f} req/s  "
                    f"{run.cpu_us:6.1f} CPU-us/req",
                    flush=True,
                )
        single: dict[str, list[Run]] = {key: [] for key in targets}
        routes: dict[str, list[Run]] = {"10": [], "10000": []}
        for _ in range(0 if args.throughput_only else args.rounds):
            for key, target in targets.items():
                single[key].append(wrk(target, min(args.duration, 5), 1, 1))
        for _ in range(0 if args.throughput_only else args.rounds):
            routes["10"].append(
                wrk(targets[builds[0]], args.duration, args.connections, args.threads)
            )
            routes["10000"].append(wrk(big_target, args.duration, args.connections, args.threads))
    finally:
        stop_all(procs)
        shutil.rmtree(tmp, ignore_errors=True)

    logged_runs = results.pop("logged", None)
    single.pop("logged", None)
    names = {k: t.name for k, t in targets.items() if k != "logged"}
    report = render(args, results, single, routes, names)
    print(report)
    if logged_runs is not None:
        # Paired per round (the same round's run without the log), medians of the ratios.
        off_runs = results[builds[0]]
        rps = statistics.median(
            on.rps / off.rps for on, off in zip(logged_runs, off_runs, strict=True)
        )
        cpu = statistics.median(
            on.cpu_us / off.cpu_us for on, off in zip(logged_runs, off_runs, strict=True)
        )
        print(
            f"access log on vs off ({build_name(builds[0])}, {len(logged_runs)} rounds, medians of "
            f"per-round ratios): throughput {rps:.3f}x, CPU per request {cpu:.3f}x"
        )
        for i, (on, off) in enumerate(zip(logged_runs, off_runs, strict=True)):
            print(
                f"| {i + 1} | {off.rps:,.0f}, {off.cpu_us:.1f} | {on.rps:,.0f}, {on.cpu_us:.1f} "
                f"| {on.rps / off.rps:.3f} | {on.cpu_us / off.cpu_us:.3f} |"
            )
    if args.write:
        out = ROOT / "bench" / "results" / "proxy.md"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(report)
        print(f"written to {out}")
    return 0


def render(
    args: argparse.Namespace,
    results: dict[str, list[Run]],
    single: dict[str, list[Run]],
    routes: dict[str, list[Run]],
    names: dict[str, str],
) -> str:
    med = {k: median_run(v) for k, v in results.items()}
    one = {k: median_run(v) for k, v in single.items() if v}
    cpu = os.cpu_count()
    model = "unknown CPU"
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    lines = [
        "# Proxy pass-through benchmark",
        "",
        f"Measured {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC with"
        f" `python bench/proxy.py --rounds {args.rounds} --duration {args.duration:g}"
        f" --workers {args.workers} --builds {args.builds}`"
        f" on {cpu} cores ({model}),"
        f" {platform.system()} {platform.release()}, Python {platform.python_version()}.",
        f"wrk -t{args.threads} -c{args.connections} runs on the same cores as the proxies;"
        " the upstream is NGINX (1 worker) returning a 300-byte JSON. Medians of"
        f" {args.rounds} rounds; the targets are measured in turn within each round, and"
        ' "vs NGINX" is the median of the per-round ratios.',
        "",
        "| target | req/s | p50 ms | p99 ms | CPU-µs/req | vs NGINX | errors |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for key, run in med.items():
        # Median of per-round ratios: each round measures the targets back to back,
        # which cancels most of the drift from other load on the machine.
        ratio = statistics.median(
            r.rps / n.rps for r, n in zip(results[key], results["nginx"], strict=True) if n.rps
        )
        lines.append(
            f"| {names[key]} | {run.rps:,.0f} | {run.p50:.2f} | {run.p99:.2f} | "
            f"{run.cpu_us:.1f} | {ratio:.2f}x | {run.errors} |"
        )
    lines += [
        "",
        "Each round's req/s as a ratio to NGINX's in the same round:",
        "",
        "| target | " + " | ".join(f"round {i + 1}" for i in range(args.rounds)) + " |",
        "|---|" + "---:|" * args.rounds,
    ]
    for key, runs in results.items():
        ratios = [
            r.rps / n.rps if n.rps else 0.0 for r, n in zip(runs, results["nginx"], strict=True)
        ]
        lines.append(f"| {names[key]} | " + " | ".join(f"{x:.2f}x" for x in ratios) + " |")
    if not one:
        return "\n".join([*lines, ""])
    lines += [
        "",
        "Per-hop latency at one connection (`wrk -t1 -c1`, p50):",
        "",
        "| target | p50 ms | added by the proxy, ms |",
        "|---|---:|---:|",
    ]
    for key, run in one.items():
        added = run.p50 - one["direct"].p50
        lines.append(
            f"| {names[key]} | {run.p50:.3f} | {added:+.3f} |"
            if key != "direct"
            else f"| {names[key]} | {run.p50:.3f} | — |"
        )
    r10, r10k = median_run(routes["10"]), median_run(routes["10000"])
    lines += [
        "",
        "Route table size (same traffic, a `{param}` route in the table):",
        "",
        "| routes | req/s | p50 ms | CPU-µs/req |",
        "|---:|---:|---:|---:|",
        f"| 10 | {r10.rps:,.0f} | {r10.p50:.2f} | {r10.cpu_us:.1f} |",
        f"| 10,000 | {r10k.rps:,.0f} | {r10k.p50:.2f} | {r10k.cpu_us:.1f} |",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
