"""Honest lag with the ``debezium`` source, as an operator sees it in ``/api/sync``:
never caught up while a backlog is being applied (after a restart, between Debezium's
batches), caught up and under a second when idle."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import psycopg
import pytest

from strangler.devstack.localstack import LogicalPostgres, free_port
from tests.cdc.harness import execute, rows, wait_until

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def test_lag_is_honest_across_a_restart_with_a_backlog_and_while_idle(
    logical_pg: LogicalPostgres, tmp_path: Path
) -> None:
    monolith, service = logical_pg.dsn("monolith_c"), logical_pg.dsn("service_c")
    ddl = "CREATE TABLE lag_account (id INTEGER PRIMARY KEY, version INTEGER NOT NULL)"
    execute(monolith, ddl, "INSERT INTO lag_account SELECT g, 0 FROM generate_series(1, 500) g")
    execute(service, ddl)
    port = free_port()
    routes = tmp_path / "routes.yaml"
    routes.write_text(f"""
legacy: monolith
upstreams: {{monolith: {{url: "http://127.0.0.1:9"}}}}
sync:
  listen: 127.0.0.1:{port}
  sources:
    - name: lagged
      kind: debezium
      options:
        database: "{logical_pg.url("monolith_c", driver="postgresql")}"
        tables: [public.lag_account]
        slot: strangler_lag
  targets: {{svc: "{logical_pg.url("service_c")}"}}
  tables:
    - {{source: public.lag_account, target: svc, adapter: {{table: lag_account, key: [id]}}}}
""")

    def start() -> subprocess.Popen[bytes]:
        out = (tmp_path / "worker.log").open("ab")
        return subprocess.Popen([sys.executable, "-m", "strangler", "sync", "-c", str(routes)],
                                cwd=REPO, stdout=out, stderr=out)  # fmt: skip

    def log() -> str:
        return (tmp_path / "worker.log").read_text(errors="replace")[-3000:]

    def status() -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/sync", timeout=5) as a:
                found: dict[str, Any] = json.load(a)["sources"][0]
                return found
        except OSError:
            return None

    def aligned() -> bool:
        query = "SELECT * FROM lag_account ORDER BY id"
        return rows(monolith, query) == rows(service, query)

    def caught_up() -> bool:
        now = status()
        return bool(now and now["caught_up"])

    worker = start()
    try:
        wait_until(aligned, 120, "the snapshot", log)
        wait_until(caught_up, 30, "caught_up after the snapshot", log)
        # Idle: no change for seconds. Caught up, with the lag of a heartbeat's trip.
        idle = [status() for _ in range(12) if time.sleep(0.25) is None]
        assert all(s and s["caught_up"] and s["lag_from"] == "heartbeat" for s in idle), idle
        assert max(s["lag_seconds"] for s in idle if s) < 1.0, idle

        worker.send_signal(signal.SIGTERM)
        assert worker.wait(60) == 0, log()
        stopped_at = time.time()
        # A backlog piles up while the worker is down: 40,000 changes, 400 commits.
        with psycopg.connect(monolith, autocommit=True) as conn:
            for n in range(400):
                lo = (n * 100) % 500
                conn.execute("UPDATE lag_account SET version = version + 1"
                             " WHERE id > %s AND id <= %s", (lo, lo + 100))  # fmt: skip
        time.sleep(3)
        worker = start()
        samples: list[dict[str, Any]] = []
        while True:
            # Status first, then alignment: a status read before the service was seen
            # still behind was surely read while the backlog was on its way.
            now = status()
            if aligned():
                break
            if now is not None:
                samples.append(now)
            assert time.time() - stopped_at < 240, log()
            time.sleep(0.1)
        # Until the backlog was applied the worker never called itself caught up, and
        # whatever lag it reported was at least the time it had been away.
        assert samples, "no status while catching up"
        assert not any(s["caught_up"] for s in samples), samples
        reported = [s["lag_seconds"] for s in samples if s["lag_seconds"] is not None]
        assert all(lag >= 3.0 for lag in reported), reported
        wait_until(caught_up, 30, "caught_up after the backlog", log)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(60) == 0, log()
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(10)
