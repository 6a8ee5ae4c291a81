"""One source feeding two service databases: each table goes to its own target, each
target stores the source's offsets with its rows, and a restart resumes from the
target that is furthest behind (the other one rejects what it already has as stale)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from sqlalchemy import text

from strangler.sync.worker import Worker
from strangler.sync_config import SyncConfig


def make(tmp_path: Path) -> SyncConfig:
    with sqlite3.connect(tmp_path / "monolith.db") as db:
        db.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, nm TEXT)")
        db.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, cust INTEGER, total TEXT)")
        db.execute("INSERT INTO customers VALUES (1, 'Ada'), (2, 'Grace')")
    for name, ddl in (("people", "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT)"),
                      ("sales", "CREATE TABLE sales (id INTEGER PRIMARY KEY, customer_id INTEGER,"
                                " total NUMERIC)")):  # fmt: skip
        with sqlite3.connect(tmp_path / f"{name}.db") as db:
            db.execute(ddl)
    return SyncConfig.model_validate({
        "sources": [{"name": "mono", "kind": "sqlite", "options": {
            "database": str(tmp_path / "monolith.db"), "tables": ["customers", "orders"],
            "poll_interval": 0.02}}],
        "targets": {"people": f"sqlite:///{tmp_path / 'people.db'}",
                    "sales": f"sqlite:///{tmp_path / 'sales.db'}"},
        "tables": [
            {"source": "customers", "target": "people",
             "adapter": {"table": "people", "key": ["id"], "rename": {"nm": "name"}}},
            {"source": "orders", "target": "sales",
             "adapter": {"table": "sales", "key": ["id"], "rename": {"cust": "customer_id"},
                         "cast": {"total": "cents"}}},
        ],
    })  # fmt: skip


async def run_until_caught_up(worker: Worker, changes: int) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    for _ in range(300):
        if worker.status["mono"].offsets.get("changes", -1) >= changes:
            break
        await asyncio.sleep(0.05)
    stop.set()
    await task


async def test_two_targets_each_keep_offsets_and_resume_from_the_laggard(tmp_path: Path) -> None:
    config = make(tmp_path)
    worker = Worker(config)
    with sqlite3.connect(tmp_path / "monolith.db") as db:
        db.execute("INSERT INTO orders VALUES (10, 1, '1999')")  # captured once the worker runs
    await run_until_caught_up(worker, 0)
    with sqlite3.connect(tmp_path / "monolith.db") as db:
        db.execute("INSERT INTO orders VALUES (11, 2, '500')")
        db.execute("UPDATE customers SET nm = 'Ada L.' WHERE id = 1")
    await run_until_caught_up(Worker(config), 2)

    reader = Worker(config)
    people, sales = reader.sinks["people"], reader.sinks["sales"]
    with people.engine.connect() as conn:
        assert list(conn.execute(text("SELECT id, name FROM people ORDER BY id"))) == [
            (1, "Ada L."),
            (2, "Grace"),
        ]
    with sales.engine.connect() as conn:
        rows = list(conn.execute(text("SELECT id, customer_id, total FROM sales ORDER BY id")))
    assert rows == [(10, 1, 19.99), (11, 2, 5)]
    assert people.offsets("mono") == sales.offsets("mono") == {"changes": 2}

    # One target falls behind (as after a crash between the two commits): resume from it.
    with sales.engine.begin() as conn:
        conn.execute(text('UPDATE strangler_sync_offsets SET "offset" = 0'))
    again = Worker(config)
    assert again.resume("mono") == {"changes": 0}
    await run_until_caught_up(again, 2)
    assert again.status["mono"].counts["stale"] == 2  # both changes were already there
    assert again.status["mono"].counts["applied"] == 0
    for sink in reader.sinks.values():
        sink.close()
