"""A real CDC stack for the worker tests: a SQLite monolith, a PostgreSQL service database
with a write audit, and ``strangler sync`` running as a subprocess."""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg

from strangler.sync.sources.sqlite import change_count
from tests.support.net import free_port

SERVICE_DDL = """
CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, status TEXT,
                        balance NUMERIC(12, 2), version INTEGER NOT NULL);
CREATE TABLE write_audit (id INTEGER NOT NULL, version INTEGER NOT NULL);
CREATE FUNCTION audit_write() RETURNS trigger AS $$
BEGIN INSERT INTO write_audit VALUES (NEW.id, NEW.version); RETURN NEW; END $$ LANGUAGE plpgsql;
CREATE TRIGGER audit_write AFTER INSERT OR UPDATE ON customers
    FOR EACH ROW EXECUTE FUNCTION audit_write();
"""

ROUTES = """
legacy: monolith
upstreams: {{monolith: {{url: "http://127.0.0.1:9"}}}}
sync:
  listen: 127.0.0.1:{port}
  batch_size: {batch}
  verify: {{lag_window: 0.3}}
  sources:
    - name: mono
      kind: sqlite
      options: {{database: monolith.db, tables: [customers], poll_interval: 0.05}}
  targets:
    svc: {target}
  tables:
    - source: customers
      target: svc
      adapter:
        table: customers
        key: [id]
        rename: {{nm: name, st: status, cents: balance}}
        cast: {{balance: cents}}
        values: {{status: {{A: active, I: inactive}}}}
"""

REPO = Path(__file__).resolve().parents[2]


class Stack:
    def __init__(self, folder: Path, target_url: str, batch: int = 200) -> None:
        self.folder = folder
        self.target_url = target_url
        self.port = free_port()
        self.routes = folder / "routes.yaml"
        self.routes.write_text(ROUTES.format(port=self.port, batch=batch, target=target_url))
        self.monolith = folder / "monolith.db"
        self.proc: subprocess.Popen[bytes] | None = None
        self.versions: dict[int, int] = {}
        self.live: set[int] = set()
        with sqlite3.connect(self.monolith) as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, nm TEXT, st TEXT,"
                       " cents TEXT, version INTEGER NOT NULL)")  # fmt: skip
        with psycopg.connect(target_url, autocommit=True) as conn:
            conn.execute(SERVICE_DDL)

    # ------------------------------------------------------------ the worker

    def start(self) -> None:
        log = (self.folder / "worker.log").open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "strangler", "sync", "-c", str(self.routes)],
            cwd=REPO, stdout=log, stderr=log,
        )  # fmt: skip

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)
        self.proc = None

    def terminate(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(20)
        self.proc = None
        return code

    def close(self) -> None:
        if self.proc is not None:
            self.kill()

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "strangler", *args, "-c", str(self.routes)],
            cwd=REPO, capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    # ----------------------------------------------------------- the monolith

    def write(self, changes: int, *, seed: int = 7, pause: float = 0.0, per_tx: int = 5) -> None:
        """``changes`` random inserts/updates/deletes; every write bumps the row's version."""
        rng = random.Random(seed)
        with sqlite3.connect(self.monolith, timeout=30) as db:
            done = 0
            while done < changes:
                for _ in range(per_tx):
                    ident = rng.randint(1, 300)
                    version = self.versions.get(ident, 0) + 1
                    if ident not in self.live:
                        cents = str(rng.randint(0, 10**6))
                        db.execute("INSERT INTO customers VALUES (?, ?, 'A', ?, ?)",
                                   (ident, f"n{ident}", cents, version))  # fmt: skip
                        self.live.add(ident)
                        self.versions[ident] = version
                    elif rng.random() < 0.1:
                        db.execute("DELETE FROM customers WHERE id = ?", (ident,))
                        self.live.discard(ident)
                    else:
                        db.execute(
                            "UPDATE customers SET st = ?, cents = ?, nm = ?, version = ?"
                            " WHERE id = ?",
                            (rng.choice("AI"), str(rng.randint(-999, 10**6)), f"v{version}",
                             version, ident),
                        )  # fmt: skip
                        self.versions[ident] = version
                    done += 1
                db.commit()
                if pause:
                    time.sleep(pause)

    def changes(self) -> int:
        return change_count(self.monolith)

    # ---------------------------------------------------------------- target

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.target_url) as conn:
            return conn.execute(sql).fetchall()

    def applied_offset(self) -> int:
        try:
            rows = self.query(
                "SELECT \"offset\" FROM strangler_sync_offsets WHERE partition = 'changes'"
            )
        except psycopg.errors.UndefinedTable:
            return -1
        return int(rows[0][0]) if rows else -1

    def wait_caught_up(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.applied_offset() >= self.changes():
                return
            time.sleep(0.1)
        raise AssertionError(f"worker did not catch up: {self.applied_offset()} < {self.changes()}")

    def duplicate_writes(self) -> list[tuple[Any, ...]]:
        return self.query(
            "SELECT id, version, COUNT(*) FROM write_audit GROUP BY id, version HAVING COUNT(*) > 1"
        )

    def api(self, path: str) -> Any:
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as resp:
            body = resp.read().decode()
        return json.loads(body) if path.startswith("/api") or path == "/healthz" else body
