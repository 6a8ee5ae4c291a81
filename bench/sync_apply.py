"""Apply throughput of the CDC sink into PostgreSQL, from pre-built change events.

Measures ``Sink.apply`` alone (no source, no Kafka): each batch is one transaction
with the stale check, the multi-row upserts, the per-row positions and the offsets.
Workloads: inserts of new rows, updates of existing rows, and a full replay (every
event stale). Each legacy row maps to two target tables (declarative adapter).

    python bench/sync_apply.py [--events 20000] [--batch 500] [--url postgresql://...]

Creates and drops a throwaway database ``strangler_bench_<random>``.
"""

from __future__ import annotations

import argparse
import os
import platform
import secrets
import time
from decimal import Decimal

import psycopg

from strangler.sync.adapters import AdapterSet
from strangler.sync.model import ChangeEvent, Op, Position
from strangler.sync.sink import Sink
from strangler.sync_config import SyncConfig

DDL = (
    "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, status TEXT,"
    " balance NUMERIC(12, 2))",
    "CREATE TABLE customer_cards (customer_id INTEGER PRIMARY KEY, email TEXT)",
)


def config(url: str) -> SyncConfig:
    return SyncConfig.model_validate({
        "sources": [{"name": "mono", "kind": "sqlite",
                     "options": {"database": "unused.db", "tables": ["customers"]}}],
        "targets": {"svc": url},
        "tables": [{"source": "customers", "target": "svc", "adapter": [
            {"table": "customers", "key": ["id"], "include": ["id", "nm", "st", "cents"],
             "rename": {"nm": "name", "st": "status", "cents": "balance"},
             "cast": {"balance": "cents"}, "values": {"status": {"A": "active", "I": "inactive"}}},
            {"table": "customer_cards", "key": ["customer_id"], "include": ["id", "mail"],
             "rename": {"id": "customer_id", "mail": "email"}},
        ]}],
    })  # fmt: skip


def events(n: int, first_commit: int, op: Op) -> list[ChangeEvent]:
    out = []
    for i in range(n):
        commit = first_commit + i
        row = {"id": i + 1, "nm": f"name {i} {op}", "st": "AI"[i % 2], "cents": str(i * 7),
               "mail": f"c{i}@example.com"}  # fmt: skip
        out.append(ChangeEvent("mono", "main.customers", op, {"id": i + 1}, None, row,
                               Position(commit, commit), int(time.time() * 1000)))  # fmt: skip
    return out


def run(sink: Sink, batch: list[ChangeEvent], size: int) -> tuple[float, int]:
    start = time.perf_counter()
    applied = 0
    for i in range(0, len(batch), size):
        chunk = batch[i : i + size]
        result = sink.apply("mono", chunk, {"changes": chunk[-1].position.seq})
        applied += result.total("applied")
    return time.perf_counter() - start, applied


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    name = f"strangler_bench_{secrets.token_hex(4)}"
    with psycopg.connect(args.url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = args.url.rsplit("/", 1)[0] + f"/{name}"
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            for ddl in DDL:
                conn.execute(ddl)
        sink = Sink("svc", url, AdapterSet(config(url)))
        sink.setup()
        n = args.events
        inserts = events(n, 1, "c")
        updates = events(n, n + 1, "u")
        machine = f"{os.cpu_count()} cores {platform.machine()}"
        load = os.getloadavg()[0]
        print(f"# sync apply into PostgreSQL: {n} events, batch {args.batch}, {machine}, "
              f"Python {platform.python_version()}, load average {load:.1f}")  # fmt: skip
        for label, batch in (("insert", inserts), ("update", updates), ("replay (stale)", updates)):
            seconds, applied = run(sink, batch, args.batch)
            print(f"{label:15} {n / seconds:9.0f} events/s  ({seconds:.2f} s, applied {applied})")
        with psycopg.connect(url) as conn:
            total = conn.execute("SELECT SUM(balance) FROM customers").fetchone()
        assert total is not None and total[0] == sum(Decimal(i * 7) / 100 for i in range(n))
        sink.close()
    finally:
        with psycopg.connect(args.url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
