"""Backlog drain through the ``debezium`` source: how fast the worker catches up alone.

A logical PostgreSQL (``localstack``) with pgbench's tables (scale 10) and the service
database of ``bench/sync_pgbench.py``; the worker loads and catches up, is stopped
(SIGTERM), pgbench writes for ``--seconds``, and the worker is started again: changes
applied per second from its first applied batch until it reports ``caught_up``, with
its peak RSS and where the CPU went meanwhile (``cpu_split.py``: seconds per kind of
thread or process, µs per change applied, and ``ours``: the worker, the service's
backends and the walsender together). Nothing else runs while it drains. ``REPO``
(environment) runs another checkout's worker, for a before/after in one session.

    python bench/sync_drain.py [--seconds 20]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from sync_pgbench import SERVICE_DDL, SPLIT, Rss, pgbench, routes, sql, status, tps  # noqa: E402

from strangler.devstack.localstack import LogicalPostgres, free_port  # noqa: E402

REPO = Path(os.environ.get("REPO") or ROOT)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=20)
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out: dict[str, Any] = {"repo": str(REPO), "load": round(os.getloadavg()[0], 1)}
    split = SPLIT
    with LogicalPostgres(databases=("monolith", "service")) as pg:
        pgbench(pg, "-i", "-s", "10", "-I", "dtgvp", "-q")
        sql(pg, "service", *SERVICE_DDL)
        port = free_port()
        with tempfile.TemporaryDirectory() as tmp:
            config = Path(tmp) / "routes.yaml"
            config.write_text(routes(pg, port))
            log = (Path(tmp) / "worker.log").open("wb")

            def start() -> subprocess.Popen[bytes]:
                command = [sys.executable, "-m", "strangler", "sync", "-c", str(config)]
                return subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=log)

            def answer() -> dict[str, Any] | None:
                try:
                    return status(port)
                except OSError:
                    return None

            worker = start()
            deadline = time.monotonic() + 600
            while not (answer() or {}).get("caught_up"):
                if time.monotonic() > deadline:
                    raise SystemExit("the worker did not catch up after the load")
                time.sleep(0.1)
            worker.send_signal(signal.SIGTERM)
            worker.wait(60)
            made = tps(pgbench(pg, "-n", "-c", "4", "-j", "2", "-T", str(args.seconds)))
            worker = start()
            rss = Rss(worker.pid)
            rss.start()
            split.worker_pid = worker.pid
            started, first = time.monotonic(), None
            mark, applied_at_first = split.mark(), 0
            while True:
                now = answer()
                if now is not None:
                    if first is None and now.get("applied", 0) > 0:
                        first = time.monotonic()
                        mark, applied_at_first = split.mark(), now.get("applied", 0)
                    if first is not None and now.get("caught_up"):
                        break
                time.sleep(0.05)
            done = time.monotonic()
            applied = (answer() or {}).get("applied", 0)
            cpu = split.since(mark)
            worker.send_signal(signal.SIGTERM)
            worker.wait(60)
            rss.stop.set()
    out.update(
        changes_made=round(made * 3 * args.seconds),
        applied=applied,
        first_applied_after_s=round(first - started, 2),
        drain_s=round(done - first, 2),
        changes_per_s=round(applied / (done - first)),
        peak_rss_mb=round(rss.peak / 2**20),
        cpu_s=cpu,
    )
    counted = max(applied - applied_at_first, 1)
    out["cpu_us_per_change"] = {k: round(v / counted * 1e6, 1) for k, v in cpu.items()}
    ours = [
        v for k, v in cpu.items() if k.startswith(("worker:", "pg:walsender", "pg:backend:service"))
    ]
    out["ours_us_per_change"] = round(sum(ours) / counted * 1e6, 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
