"""CDC end to end: apply throughput from a pre-filled Kafka topic, and commit-to-commit
lag through Debezium embedded at a steady write rate.

1. ``throughput``: fills a topic on a local Tansu broker with Debezium-shaped JSON
   change events (inserts, then updates of the same rows), then runs the worker with
   the ``kafka`` source into PostgreSQL (127.0.0.1:5432, a throwaway database) and
   times from the first applied batch to the last (group join excluded).
2. ``lag``: a throwaway logical PostgreSQL cluster as the monolith; a writer commits
   ``--rate`` row changes per second (10 per transaction); the worker with the
   ``debezium`` source applies them to the service database, where a trigger records,
   per write, the monolith's commit-time stamp and the service's commit time.
   Prints p50/p90/p99/max of (service commit - monolith commit).

    python bench/sync_e2e.py [--events 30000] [--rate 1000] [--seconds 30] [--part both]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import statistics
import threading
import time
from typing import Any

import psycopg
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from strangler.devstack.localstack import LogicalPostgres, TansuBroker
from strangler.sync.worker import Worker
from strangler.sync_config import SyncConfig

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
TOPIC = "bench.public.items"
TARGET_DDL = "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, amount NUMERIC(12, 2))"


def envelope(i: int, ident: int, op: str, lsn: int) -> tuple[bytes, bytes]:
    after = {"id": ident, "name": f"item {ident} v{i}", "amount": f"{ident % 10_000}.{i % 100:02d}"}
    value = {
        "before": None,
        "after": after,
        "source": {"version": "3.6.3.Final", "connector": "postgresql", "name": "bench",
                   "ts_ms": int(time.time() * 1000), "snapshot": "false", "db": "monolith",
                   "sequence": json.dumps([str(lsn), str(lsn)]), "schema": "public",
                   "table": "items", "txId": 1000 + i, "lsn": lsn},
        "op": op,
        "ts_ms": int(time.time() * 1000),
    }  # fmt: skip
    return json.dumps({"id": ident}).encode(), json.dumps(value).encode()


def fill_topic(bootstrap: str, events: int, partitions: int) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(TOPIC, num_partitions=partitions, replication_factor=1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, batch_size=256 * 1024)
    rows = events * 2 // 3
    for i in range(events):
        ident = i if i < rows else (i - rows) * 2
        key, value = envelope(i, ident, "c" if i < rows else "u", 1_000_000 + i * 100)
        producer.send(TOPIC, key=key, value=value)
    producer.flush()
    producer.close()


class Run:
    """The worker on its own thread; ``stop()`` ends it."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.worker = Worker(SyncConfig.model_validate(config))
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), daemon=True)
        self._thread.start()

    async def _main(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        await self.worker.run(self._stop)

    def applied(self, source: str) -> int:
        counts = self.worker.status[source].counts
        return counts.get("applied", 0) + counts.get("stale", 0)

    def stop(self) -> None:
        while self._loop is None or self._stop is None:
            time.sleep(0.05)
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(60)


def throughput(events: int, batch: int, partitions: int, target: str) -> dict[str, float]:
    with TansuBroker() as broker:
        fill_topic(broker.bootstrap, events, partitions)
        run = Run({
            "sources": [{"name": "bench", "kind": "kafka", "options": {
                "bootstrap_servers": broker.bootstrap, "topics": [TOPIC],
                "max_poll_interval_ms": 10_000, "session_timeout_ms": 6_000,
                "consumer": {"max_partition_fetch_bytes": 8 * 1024 * 1024}}}],
            "targets": {"svc": target},
            "tables": [{"source": "public.items", "target": "svc",
                        "adapter": {"table": "items", "key": ["id"]}}],
            "batch_size": batch,
        })  # fmt: skip
        try:
            while run.applied("bench") == 0:
                time.sleep(0.005)
            first_seen, first = time.perf_counter(), run.applied("bench")
            while run.applied("bench") < events:
                time.sleep(0.01)
            seconds = time.perf_counter() - first_seen
        finally:
            run.stop()
    return {"events": events - first, "seconds": seconds, "per_second": (events - first) / seconds}


LAG_MONOLITH = "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, stamped TIMESTAMPTZ)"
LAG_SERVICE = """
CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, stamped TIMESTAMPTZ);
CREATE TABLE lag_audit (stamped TIMESTAMPTZ, applied TIMESTAMPTZ);
CREATE FUNCTION audit_lag() RETURNS trigger AS $$
BEGIN INSERT INTO lag_audit VALUES (NEW.stamped, clock_timestamp()); RETURN NEW; END $$
LANGUAGE plpgsql;
CREATE TRIGGER audit_lag AFTER INSERT OR UPDATE ON items
    FOR EACH ROW EXECUTE FUNCTION audit_lag();
"""


def writer(dsn: str, rate: int, seconds: float, stop: threading.Event) -> int:
    """Commit ``rate`` changes/s, 10 per transaction; each row stamped just before commit."""
    per_tx, written = 10, 0
    interval = per_tx / rate
    with psycopg.connect(dsn) as conn:
        started = time.perf_counter()
        while not stop.is_set() and time.perf_counter() - started < seconds:
            due = started + (written // per_tx) * interval
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            with conn.transaction():
                conn.execute(
                    "INSERT INTO items SELECT g, 'n', clock_timestamp()"
                    " FROM generate_series(%s::int, %s::int) g ON CONFLICT (id) DO UPDATE"
                    " SET name = 'u', stamped = clock_timestamp()",
                    ((written % 5000) + 1, (written % 5000) + per_tx),
                )
            written += per_tx
    return written


def lag(rate: int, seconds: float) -> dict[str, float]:
    with LogicalPostgres(databases=("monolith", "service")) as pg:
        with psycopg.connect(pg.dsn("monolith"), autocommit=True) as conn:
            conn.execute(LAG_MONOLITH)
        with psycopg.connect(pg.dsn("service"), autocommit=True) as conn:
            conn.execute(LAG_SERVICE)  # type: ignore[arg-type]
        run = Run({
            "sources": [{"name": "mono", "kind": "debezium", "options": {
                "database": pg.url("monolith", driver="postgresql"),
                "tables": ["public.items"], "offsets": "target", "poll_interval_ms": 20}}],
            "targets": {"svc": pg.url("service")},
            "tables": [{"source": "public.items", "target": "svc",
                        "adapter": {"table": "items", "key": ["id"]}}],
            "batch_size": 1000,
        })  # fmt: skip
        try:
            # Warm-up: the engine is streaming once a first change comes through.
            with psycopg.connect(pg.dsn("monolith"), autocommit=True) as conn:
                conn.execute("INSERT INTO items VALUES (0, 'warm', clock_timestamp())")
            deadline = time.monotonic() + 120
            while run.applied("mono") == 0 and time.monotonic() < deadline:
                time.sleep(0.1)
            with psycopg.connect(pg.dsn("service"), autocommit=True) as conn:
                conn.execute("TRUNCATE lag_audit")
            written = writer(pg.dsn("monolith"), rate, seconds, threading.Event())
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                with psycopg.connect(pg.dsn("service")) as conn:
                    row = conn.execute("SELECT count(*) FROM lag_audit").fetchone()
                if row and row[0] >= written:
                    break
                time.sleep(0.2)
            with psycopg.connect(pg.dsn("service")) as conn:
                lags = [
                    float(r[0])
                    for r in conn.execute(
                        "SELECT extract(epoch FROM applied - stamped) FROM lag_audit"
                    )
                ]
        finally:
            run.stop()
    lags.sort()
    pick = lambda q: lags[min(len(lags) - 1, int(q * len(lags)))]  # noqa: E731
    return {
        "written": written, "applied": len(lags), "rate": written / seconds,
        "p50": pick(0.50), "p90": pick(0.90), "p99": pick(0.99), "max": lags[-1],
        "mean": statistics.fmean(lags),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["throughput", "lag", "both"], default="both")
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.1f}, Python {platform.python_version()}")  # fmt: skip
    if args.part in ("throughput", "both"):
        name = f"strangler_bench_{secrets.token_hex(4)}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
        target = f"postgresql://postgres@127.0.0.1:5432/{name}"
        try:
            with psycopg.connect(target, autocommit=True) as conn:
                conn.execute(TARGET_DDL)
            result = throughput(args.events, args.batch, args.partitions, target)
            print(f"throughput: {result['events']:,} events in {result['seconds']:.2f}s = "
                  f"{result['per_second']:,.0f} events/s (kafka -> PostgreSQL, batch "
                  f"{args.batch}, {args.partitions} partitions)")  # fmt: skip
        finally:
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]
    if args.part in ("lag", "both"):
        r = lag(args.rate, args.seconds)
        print(f"lag at {r['rate']:,.0f} changes/s ({r['applied']:,}/{r['written']:,} applied): "
              f"p50 {r['p50'] * 1000:.0f} ms, p90 {r['p90'] * 1000:.0f} ms, "
              f"p99 {r['p99'] * 1000:.0f} ms, max {r['max'] * 1000:.0f} ms, "
              f"mean {r['mean'] * 1000:.0f} ms")  # fmt: skip
    print(f"load after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
