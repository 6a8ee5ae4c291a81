"""``strangler sync -c routes.yaml`` with the ``debezium`` source, as an operator runs it:
SIGTERM stops it cleanly (exit 0), a restart resumes where it left off, and SIGKILL at
random points loses nothing and applies nothing twice."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psycopg
import pytest

from strangler.devstack.localstack import LogicalPostgres, free_port
from tests.cdc.harness import execute, rows, wait_until

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def test_sigterm_exits_cleanly_and_a_restart_applies_nothing_twice(
    logical_pg: LogicalPostgres, tmp_path: Path
) -> None:
    monolith, service = logical_pg.dsn("monolith_c"), logical_pg.dsn("service_c")
    execute(monolith, "CREATE TABLE customer (id INTEGER PRIMARY KEY, name TEXT)",
            "INSERT INTO customer VALUES (1, 'a'), (2, 'b')")  # fmt: skip
    execute(service, "CREATE TABLE customer (id INTEGER PRIMARY KEY, name TEXT)",
            "CREATE TABLE writes (id INTEGER)",
            "CREATE FUNCTION count_write() RETURNS trigger AS $$ BEGIN"
            " INSERT INTO writes VALUES (NEW.id); RETURN NEW; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER count_write AFTER INSERT OR UPDATE ON customer"
            " FOR EACH ROW EXECUTE FUNCTION count_write()")  # fmt: skip
    port = free_port()
    routes = tmp_path / "routes.yaml"
    routes.write_text(f"""
legacy: monolith
upstreams: {{monolith: {{url: "http://127.0.0.1:9"}}}}
sync:
  listen: 127.0.0.1:{port}
  sources:
    - name: mono
      kind: debezium
      options:
        database: "{logical_pg.url("monolith_c", driver="postgresql")}"
        tables: [public.customer]
        slot: strangler_cli
  targets: {{svc: "{logical_pg.url("service_c")}"}}
  tables:
    - {{source: public.customer, target: svc, adapter: {{table: customer, key: [id]}}}}
""")

    def start() -> subprocess.Popen[bytes]:
        log = (tmp_path / "worker.log").open("ab")
        return subprocess.Popen([sys.executable, "-m", "strangler", "sync", "-c", str(routes)],
                                cwd=REPO, stdout=log, stderr=log)  # fmt: skip

    def aligned() -> bool:
        return rows(monolith, "SELECT * FROM customer ORDER BY id") == rows(
            service, "SELECT * FROM customer ORDER BY id"
        )

    def log() -> str:
        return (tmp_path / "worker.log").read_text(errors="replace")[-3000:]

    worker = start()
    try:
        wait_until(aligned, 120, "the snapshot", log)
        execute(monolith, "UPDATE customer SET name = 'b2' WHERE id = 2")
        wait_until(aligned, 30, "the update", log)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/sync") as answer:
            status = json.load(answer)
        assert status["sources"][0]["applied"] == 3
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(60) == 0, log()

        execute(monolith, "INSERT INTO customer VALUES (3, 'c')")
        worker = start()
        wait_until(aligned, 120, "the change made while stopped", log)
        # Rows 1 and 2 were not written again: one write each for the snapshot, one more
        # for the update of 2, and one for the new row 3.
        assert rows(service, "SELECT id, count(*) FROM writes GROUP BY id ORDER BY id") == [
            (1, 1), (2, 2), (3, 1)
        ]  # fmt: skip
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(60) == 0, log()
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(10)


def test_sigkill_at_random_points_applies_every_change_exactly_once(
    logical_pg: LogicalPostgres, tmp_path: Path
) -> None:
    monolith, service = logical_pg.dsn("monolith_c"), logical_pg.dsn("service_c")
    execute(monolith, "CREATE TABLE account (id INTEGER PRIMARY KEY, version INTEGER NOT NULL)",
            "INSERT INTO account VALUES (0, 1)")  # fmt: skip
    execute(service, "CREATE TABLE account (id INTEGER PRIMARY KEY, version INTEGER NOT NULL)",
            "CREATE TABLE account_writes (seq SERIAL, id INTEGER, version INTEGER)",
            "CREATE FUNCTION account_write() RETURNS trigger AS $$ BEGIN"
            " INSERT INTO account_writes (id, version) VALUES (NEW.id, NEW.version);"
            " RETURN NEW; END $$"
            " LANGUAGE plpgsql",
            "CREATE TRIGGER account_write AFTER INSERT OR UPDATE ON account"
            " FOR EACH ROW EXECUTE FUNCTION account_write()")  # fmt: skip
    routes = tmp_path / "routes.yaml"
    routes.write_text(f"""
legacy: monolith
upstreams: {{monolith: {{url: "http://127.0.0.1:9"}}}}
sync:
  listen: 127.0.0.1:{free_port()}
  sources:
    - name: accounts
      kind: debezium
      options:
        database: "{logical_pg.url("monolith_c", driver="postgresql")}"
        tables: [public.account]
        slot: strangler_kill
  targets: {{svc: "{logical_pg.url("service_c")}"}}
  tables:
    - {{source: public.account, target: svc, adapter: {{table: account, key: [id]}}}}
""")

    def start() -> subprocess.Popen[bytes]:
        log = (tmp_path / "worker.log").open("ab")
        return subprocess.Popen([sys.executable, "-m", "strangler", "sync", "-c", str(routes)],
                                cwd=REPO, stdout=log, stderr=log)  # fmt: skip

    def aligned() -> bool:
        return rows(monolith, "SELECT * FROM account ORDER BY id") == rows(
            service, "SELECT * FROM account ORDER BY id"
        )

    def log() -> str:
        return (tmp_path / "worker.log").read_text(errors="replace")[-3000:]

    rng = random.Random(5)
    changes = 1  # the snapshot's row
    worker = start()
    try:
        wait_until(aligned, 120, "the snapshot", log)
        time.sleep(1.5)  # let Debezium save the end of its snapshot (saved once a second)
        for _round in range(4):
            deadline = time.monotonic() + rng.uniform(1.0, 6.0)
            with psycopg.connect(monolith, autocommit=True) as conn:
                while time.monotonic() < deadline:
                    with conn.transaction():
                        for ident in rng.sample(range(1, 300), 5):
                            conn.execute(
                                "INSERT INTO account VALUES (%s, 1) ON CONFLICT (id)"
                                " DO UPDATE SET version = account.version + 1", (ident,)
                            )  # fmt: skip
                            changes += 1
                    time.sleep(0.002)
            worker.kill()  # SIGKILL: no goodbye, mid-batch or mid-start-up
            worker.wait(10)
            worker = start()
        wait_until(aligned, 120, "everything after the kills", log)
        # No version of a row was written twice, and no row ever went back to an older
        # version (several changes of one row in one batch are written as the last one).
        written = "SELECT count(*), count(DISTINCT (id, version)) FROM account_writes"
        [(total, distinct)] = rows(service, written)
        assert total == distinct and 0 < total <= changes
        regressions = rows(service, "SELECT count(*) FROM (SELECT version <= lag(version)"
                                    " OVER (PARTITION BY id ORDER BY seq) AS back"
                                    " FROM account_writes) w WHERE back")  # fmt: skip
        assert regressions == [(0,)]
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(10)
