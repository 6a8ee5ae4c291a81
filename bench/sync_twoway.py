"""Two-way sync lag: forward (monolith -> service) and reverse (service -> monolith)
measured in the same run, both directions capturing and writing at once.

One context is owned by legacy (``legacy_items`` -> ``items``), the other by the
service (``orders`` -> ``legacy_orders``). Two writers commit ``--rate`` changes/s
each (10 per transaction), one into each database, each row stamped just before its
commit; in each target a trigger records the stamp and the time the worker's write
commits. Prints p50/p90/p99/max of (applied - stamped) per direction.

- ``sqlite``: both databases SQLite files captured by triggers (the demo's capture).
- ``postgres``: a throwaway logical PostgreSQL cluster, one embedded Debezium engine
  per database, one worker.

    python bench/sync_twoway.py [--stack sqlite|postgres|both] [--rate 500] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import psycopg

from strangler.control.ownership import Ownership
from strangler.control.state import MemoryStateStore
from strangler.devstack.localstack import LogicalPostgres
from strangler.sync.worker import Worker
from strangler.sync_config import SyncConfig

CONTEXTS = {"items": ("legacy_items",), "orders": ("legacy_orders",)}

SQLITE_MONOLITH = """
CREATE TABLE legacy_items (item_id INTEGER PRIMARY KEY, nm TEXT, stamped REAL);
CREATE TABLE legacy_orders (ord_no INTEGER PRIMARY KEY, qty INTEGER, stamped REAL);
CREATE TABLE lag_audit (direction TEXT, stamped REAL, applied REAL);
CREATE TRIGGER audit_i AFTER INSERT ON legacy_orders BEGIN INSERT INTO lag_audit VALUES
  ('reverse', NEW.stamped, (julianday('now') - 2440587.5) * 86400.0); END;
CREATE TRIGGER audit_u AFTER UPDATE ON legacy_orders BEGIN INSERT INTO lag_audit VALUES
  ('reverse', NEW.stamped, (julianday('now') - 2440587.5) * 86400.0); END;
"""
SQLITE_SERVICE = """
CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, stamped REAL);
CREATE TABLE orders (id INTEGER PRIMARY KEY, quantity INTEGER, stamped REAL);
CREATE TABLE lag_audit (direction TEXT, stamped REAL, applied REAL);
CREATE TRIGGER audit_i AFTER INSERT ON items BEGIN INSERT INTO lag_audit VALUES
  ('forward', NEW.stamped, (julianday('now') - 2440587.5) * 86400.0); END;
CREATE TRIGGER audit_u AFTER UPDATE ON items BEGIN INSERT INTO lag_audit VALUES
  ('forward', NEW.stamped, (julianday('now') - 2440587.5) * 86400.0); END;
"""
PG_MONOLITH = """
CREATE TABLE legacy_items (item_id INTEGER PRIMARY KEY, nm TEXT, stamped DOUBLE PRECISION);
CREATE TABLE legacy_orders (ord_no INTEGER PRIMARY KEY, qty INTEGER, stamped DOUBLE PRECISION);
CREATE TABLE lag_audit (direction TEXT, stamped DOUBLE PRECISION, applied DOUBLE PRECISION);
CREATE FUNCTION audit_lag() RETURNS trigger AS $$
BEGIN INSERT INTO lag_audit VALUES (TG_ARGV[0], NEW.stamped,
  extract(epoch FROM clock_timestamp())); RETURN NEW; END $$ LANGUAGE plpgsql;
CREATE TRIGGER audit AFTER INSERT OR UPDATE ON legacy_orders
  FOR EACH ROW EXECUTE FUNCTION audit_lag('reverse');
"""
PG_SERVICE = """
CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, stamped DOUBLE PRECISION);
CREATE TABLE orders (id INTEGER PRIMARY KEY, quantity INTEGER, stamped DOUBLE PRECISION);
CREATE TABLE lag_audit (direction TEXT, stamped DOUBLE PRECISION, applied DOUBLE PRECISION);
CREATE FUNCTION audit_lag() RETURNS trigger AS $$
BEGIN INSERT INTO lag_audit VALUES (TG_ARGV[0], NEW.stamped,
  extract(epoch FROM clock_timestamp())); RETURN NEW; END $$ LANGUAGE plpgsql;
CREATE TRIGGER audit AFTER INSERT OR UPDATE ON items
  FOR EACH ROW EXECUTE FUNCTION audit_lag('forward');
"""


def tables(shop: str, svc: str, prefix: str = "") -> list[dict[str, Any]]:
    return [
        {"source": f"{prefix}legacy_items", "target": "service", "from_source": shop,
         "adapter": {"table": "items", "key": ["id"], "rename": {"item_id": "id", "nm": "name"}},
         "reverse": {"source": svc, "target": "monolith"}},
        {"source": f"{prefix}legacy_orders", "target": "service", "from_source": shop,
         "adapter": {"table": "orders", "key": ["id"],
                     "rename": {"ord_no": "id", "qty": "quantity"}},
         "reverse": {"source": svc, "target": "monolith"}},
    ]  # fmt: skip


def write_at(rate: int, seconds: float, commit: Callable[[list[tuple[int, float]]], None]) -> int:
    """Commit ``rate`` changes/s, 10 per transaction (rows cycle over 5,000 ids)."""
    per_tx, written = 10, 0
    interval = per_tx / rate
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        pause = started + (written // per_tx) * interval - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        commit([((written + k) % 5000 + 1, 0.0) for k in range(per_tx)])
        written += per_tx
    return written


def sqlite_writer(
    path: Path, table: str, columns: str
) -> Callable[[list[tuple[int, float]]], None]:
    db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA busy_timeout=30000")

    def commit(rows: list[tuple[int, float]]) -> None:
        db.execute("BEGIN IMMEDIATE")
        stamp = time.time()
        db.executemany(
            f"INSERT INTO {table} VALUES (?, 1, ?) ON CONFLICT DO UPDATE SET {columns}",
            [(i, stamp) for i, _ in rows],
        )
        db.execute("COMMIT")

    return commit


def pg_writer(dsn: str, table: str, columns: str) -> Callable[[list[tuple[int, float]]], None]:
    conn = psycopg.connect(dsn)

    def commit(rows: list[tuple[int, float]]) -> None:
        with conn.transaction():
            conn.execute(
                f"INSERT INTO {table} SELECT g, 1, extract(epoch FROM clock_timestamp())"
                f" FROM unnest(%s::int[]) g ON CONFLICT ({_key(table)}) DO UPDATE SET {columns}",
                ([i for i, _ in rows],),
            )

    return commit


def _key(table: str) -> str:
    return {"legacy_items": "item_id", "orders": "id"}[table]


class Running:
    """The worker on its own thread and event loop, with ownership in a memory store."""

    def __init__(self, config: dict[str, Any], contexts: Mapping[str, tuple[str, ...]]) -> None:
        self.store = MemoryStateStore()
        asyncio.run(self.store.set_ownership(Ownership("orders", "service", 1)))
        self.worker = Worker(
            SyncConfig.model_validate(config), contexts=contexts, owners=self.store
        )
        self.loop = asyncio.new_event_loop()
        self.stop_event = asyncio.Event()
        self.thread = threading.Thread(target=self._main, daemon=True)
        self.thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self.worker.run(self.stop_event))

    def applied(self, source: str) -> int:
        return self.worker.status[source].counts["applied"]

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(60)


def both_ways(
    run: Running,
    writers: dict[str, Callable[[list[tuple[int, float]]], None]],
    audits: dict[str, Callable[[], list[float]]],
    warm: Callable[[], None],
    rate: int,
    seconds: float,
) -> dict[str, dict[str, float]]:
    warm()
    written: dict[str, int] = {}
    threads = [
        threading.Thread(target=lambda d=d, w=w: written.__setitem__(d, write_at(rate, seconds, w)))
        for d, w in writers.items()
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    deadline = time.monotonic() + 60
    lags: dict[str, list[float]] = {}
    while time.monotonic() < deadline:
        lags = {d: audit() for d, audit in audits.items()}
        if all(len(lags[d]) >= written[d] for d in written):
            break
        time.sleep(0.5)
    out = {}
    for direction, values in lags.items():
        values.sort()
        out[direction] = {
            "written": written[direction], "applied": len(values),
            "rate": written[direction] / seconds, "p50": _pick(values, 0.5),
            "p90": _pick(values, 0.9), "p99": _pick(values, 0.99), "max": values[-1],
        }  # fmt: skip
    return out


def _pick(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))]


def sqlite_stack(rate: int, seconds: float) -> dict[str, dict[str, float]]:
    with tempfile.TemporaryDirectory() as folder:
        shop, svc = Path(folder) / "shop.db", Path(folder) / "svc.db"
        for path, ddl in ((shop, SQLITE_MONOLITH), (svc, SQLITE_SERVICE)):
            with sqlite3.connect(path) as db:
                db.executescript(ddl)
        run = Running({
            "batch_size": 1000,
            "sources": [
                {"name": "shop", "kind": "sqlite", "options": {"database": str(shop),
                 "tables": ["legacy_items", "legacy_orders"], "poll_interval": 0.02}},
                {"name": "svc", "kind": "sqlite", "options": {"database": str(svc),
                 "tables": ["items", "orders"], "poll_interval": 0.02}},
            ],
            "targets": {"service": f"sqlite:///{svc}", "monolith": f"sqlite:///{shop}"},
            "tables": tables("shop", "svc"),
        }, CONTEXTS)  # fmt: skip

        def audit(path: Path, direction: str) -> Callable[[], list[float]]:
            def read() -> list[float]:
                with sqlite3.connect(path, timeout=30) as db:
                    return [float(r[0]) for r in db.execute(
                        "SELECT applied - stamped FROM lag_audit WHERE direction = ?"
                        " AND stamped > 0", (direction,))]  # fmt: skip

            return read

        def warm() -> None:
            deadline = time.monotonic() + 30
            while not all(s.caught_up for s in run.worker.status.values()):
                if time.monotonic() > deadline:
                    raise SystemExit("the worker did not start")
                time.sleep(0.05)

        try:
            return both_ways(
                run,
                {"forward": sqlite_writer(shop, "legacy_items", "stamped = excluded.stamped"),
                 "reverse": sqlite_writer(svc, "orders", "stamped = excluded.stamped")},
                {"forward": audit(svc, "forward"), "reverse": audit(shop, "reverse")},
                warm, rate, seconds,
            )  # fmt: skip
        finally:
            run.stop()


def postgres_stack(rate: int, seconds: float) -> dict[str, dict[str, float]]:
    with LogicalPostgres(databases=("monolith", "service")) as pg:
        for db, ddl in (("monolith", PG_MONOLITH), ("service", PG_SERVICE)):
            with psycopg.connect(pg.dsn(db), autocommit=True) as conn:
                conn.execute(ddl)

        def source(name: str, db: str, names: list[str], offsets_in: str) -> dict[str, Any]:
            return {"name": name, "kind": "debezium", "options": {
                "database": pg.url(db, driver="postgresql"), "tables": names,
                "offsets": "target", "offset_target": offsets_in,
                "poll_interval_ms": 20}}  # fmt: skip

        run = Running({
            "batch_size": 1000,
            "sources": [
                source("shop", "monolith", ["public.legacy_items", "public.legacy_orders"],
                       "service"),
                source("svc", "service", ["public.items", "public.orders"], "monolith"),
            ],
            "targets": {"service": pg.url("service"), "monolith": pg.url("monolith")},
            "tables": tables("shop", "svc", "public."),
        }, {name: tuple(f"public.{t}" for t in ts) for name, ts in CONTEXTS.items()})  # fmt: skip

        def audit(db: str, direction: str) -> Callable[[], list[float]]:
            def read() -> list[float]:
                with psycopg.connect(pg.dsn(db)) as conn:
                    return [float(r[0]) for r in conn.execute(
                        "SELECT applied - stamped FROM lag_audit WHERE direction = %s",
                        (direction,))]  # fmt: skip

            return read

        def warm() -> None:
            with psycopg.connect(pg.dsn("monolith"), autocommit=True) as conn:
                conn.execute("INSERT INTO legacy_items VALUES (0, 'warm', 0)")
            with psycopg.connect(pg.dsn("service"), autocommit=True) as conn:
                conn.execute("INSERT INTO orders VALUES (0, 0, 0)")
            deadline = time.monotonic() + 180
            while run.applied("shop") == 0 or run.applied("svc") == 0:
                if time.monotonic() > deadline:
                    raise SystemExit("Debezium did not start streaming")
                time.sleep(0.1)
            for db in ("monolith", "service"):
                with psycopg.connect(pg.dsn(db), autocommit=True) as conn:
                    conn.execute("TRUNCATE lag_audit")

        try:
            return both_ways(
                run,
                {"forward": pg_writer(pg.dsn("monolith"), "legacy_items",
                                      "stamped = excluded.stamped"),
                 "reverse": pg_writer(pg.dsn("service"), "orders", "stamped = excluded.stamped")},
                {"forward": audit("service", "forward"), "reverse": audit("monolith", "reverse")},
                warm, rate, seconds,
            )  # fmt: skip
        finally:
            run.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--rate", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.1f}, Python {platform.python_version()}")  # fmt: skip
    stacks = ["sqlite", "postgres"] if args.stack == "both" else [args.stack]
    for stack in stacks:
        result = (sqlite_stack if stack == "sqlite" else postgres_stack)(args.rate, args.seconds)
        for direction, r in result.items():
            print(f"{stack} {direction}: {r['rate']:,.0f} changes/s, {r['applied']:,}/"
                  f"{r['written']:,} applied; p50 {r['p50'] * 1000:.0f} ms, p90 "
                  f"{r['p90'] * 1000:.0f} ms, p99 {r['p99'] * 1000:.0f} ms, "
                  f"max {r['max'] * 1000:.0f} ms")  # fmt: skip
    print(f"load after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
