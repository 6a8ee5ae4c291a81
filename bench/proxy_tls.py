"""TLS on the listener: strangler terminating TLS vs NGINX terminating TLS, same run.

    python bench/proxy_tls.py [--rounds 5] [--duration 8] [--workers 2] [--close]

Starts (free loopback ports, a temp folder, child processes) the upstream of
``bench/proxy.py`` (NGINX, one worker, a 300-byte JSON over plain HTTP), then in
front of it: NGINX terminating TLS (``listen ... ssl``, keep-alive upstream pool,
one worker per strangler worker), ``strangler serve`` with ``tls: {cert, key}``,
and the same strangler without TLS. All use one self-signed P-256 certificate made
with the openssl command line. For several rounds, ``wrk`` runs against each in
turn (over https for the TLS ones) and the report gives medians and the median of
the per-round ratios to NGINX with TLS. By default wrk keeps its connections
(the TLS cost is the record layer); ``--close`` sends ``Connection: close`` so
every request pays a full handshake.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from loopback import free_port, wait_for_port
from proxy import (
    Run,
    Target,
    descendants,
    ensure_tools,
    median_run,
    routes_yaml,
    start_nginx_proxy,
    start_strangler,
    start_upstream,
    stop_all,
    wrk,
)


def make_certificate(tmp: Path) -> tuple[Path, Path]:
    cert, key = tmp / "tls.crt", tmp / "tls.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True,
    )  # fmt: skip
    cert.chmod(0o644)
    key.chmod(0o644)  # the NGINX workers may run as another user
    return cert, key


def wrk_close(target: Target, duration: float, connections: int, threads: int) -> Run:
    """``wrk`` with ``Connection: close``: one handshake per request."""
    return wrk(target, duration, connections, threads, ("-H", "Connection: close"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--close", action="store_true", help="a new connection per request")
    args = parser.parse_args()
    ensure_tools()
    tmp = Path(tempfile.mkdtemp(prefix="strangler-bench-tls-"))
    tmp.chmod(0o777)
    cert, key = make_certificate(tmp)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        up, ngx, s_tls, s_plain = (free_port() for _ in range(4))
        upstream = start_upstream(tmp, up)
        nginx = start_nginx_proxy(tmp, ngx, up, args.workers, tls=(cert, key))
        procs += [upstream, nginx]
        with_tls = routes_yaml(tmp, "stls", s_tls, up, 10)
        with_tls.write_text(with_tls.read_text() + f"tls: {{cert: {cert}, key: {key}}}\n")
        s1 = start_strangler(with_tls, args.workers)
        s2 = start_strangler(routes_yaml(tmp, "splain", s_plain, up, 10), args.workers)
        procs += [s1, s2]
        for port in (up, ngx, s_tls, s_plain):
            wait_for_port(port, 120)
        time.sleep(2)

        path = "/api/r5/12345"
        targets = {
            "nginx": Target(
                "NGINX, TLS", f"https://127.0.0.1:{ngx}{path}", lambda: descendants(nginx.pid)
            ),
            "strangler": Target(
                f"strangler, TLS ({args.workers} workers)",
                f"https://127.0.0.1:{s_tls}{path}",
                lambda: descendants(s1.pid),
            ),
            "plain": Target(
                f"strangler, no TLS ({args.workers} workers)",
                f"http://127.0.0.1:{s_plain}{path}",
                lambda: descendants(s2.pid),
            ),
        }
        measure = wrk_close if args.close else wrk
        for target in targets.values():
            measure(target, 2, args.connections, args.threads)  # warm up
        results: dict[str, list[Run]] = {k: [] for k in targets}
        for round_no in range(args.rounds):
            order = list(targets) if round_no % 2 == 0 else list(reversed(targets))
            for k in order:
                run = measure(targets[k], args.duration, args.connections, args.threads)
                results[k].append(run)
                print(
                    f"round {round_no + 1} {targets[k].name:34} {run.rps:9.0f} req/s "
                    f"{run.cpu_us:7.1f} CPU-us/req  errors {run.errors}",
                    flush=True,
                )
    finally:
        stop_all(procs)
        shutil.rmtree(tmp, ignore_errors=True)

    conn = "Connection: close" if args.close else "keep-alive"
    print(
        f"\nwrk -t{args.threads} -c{args.connections} ({conn}), {args.rounds} rounds of "
        f"{args.duration:g} s, medians; ratio = median of per-round ratios to NGINX, TLS"
    )
    print("| target | req/s | p50 ms | p99 ms | CPU-µs/req | vs NGINX, TLS | errors |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for k, runs in results.items():
        med = median_run(runs)
        ratio = statistics.median(
            r.rps / n.rps for r, n in zip(runs, results["nginx"], strict=True) if n.rps
        )
        print(
            f"| {targets[k].name} | {med.rps:,.0f} | {med.p50:.2f} | {med.p99:.2f} | "
            f"{med.cpu_us:.1f} | {ratio:.2f}x | {med.errors} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
