"""Tables the ``pgoutput`` stream keeps by its offsets (``highs.py``), end to end: a real
replication stream into a service database whose tables only declarative maps of that
one stream write. Their rows get no position entries, and still: the initial load,
inserts, updates, deletes, a truncate and a restart all come out exact, and no change
is written twice (a trigger in the service counts every write)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from strangler.devstack.localstack import LogicalPostgres
from tests.cdc.harness import WorkerThread, execute, rows, wait_until

pytestmark = pytest.mark.slow

MONOLITH_DDL = (
    "CREATE TABLE items (id int PRIMARY KEY, label text, qty int)",
    "CREATE TABLE notes (id int PRIMARY KEY, body text)",
)
SERVICE_DDL = (
    "CREATE TABLE items (id int PRIMARY KEY, name text, qty int)",
    "CREATE TABLE notes (id int PRIMARY KEY, body text)",
    "CREATE TABLE item_writes (id int NOT NULL)",
    "CREATE FUNCTION item_written() RETURNS trigger AS $$ BEGIN"
    " INSERT INTO item_writes VALUES (NEW.id); RETURN NEW; END $$ LANGUAGE plpgsql",
    "CREATE TRIGGER item_written AFTER INSERT OR UPDATE ON items"
    " FOR EACH ROW EXECUTE FUNCTION item_written()",
)


class Stack:
    def __init__(self, pg: LogicalPostgres) -> None:
        self.monolith = pg.dsn("monolith_kt")
        self.service = pg.dsn("service_kt")
        self.config: dict[str, Any] = {
            "sources": [
                {"name": "kt", "kind": "pgoutput",
                 "options": {"database": pg.url("monolith_kt", driver="postgresql"),
                             "tables": ["public.items", "public.notes"],
                             "slot": "strangler_kt"}},
            ],
            "targets": {"svc": pg.url("service_kt")},
            "tables": [
                {"source": "public.items", "target": "svc",
                 "adapter": {"table": "items", "key": ["id"], "rename": {"label": "name"}}},
                {"source": "public.notes", "target": "svc",
                 "adapter": {"table": "notes", "key": ["id"]}},
            ],
        }  # fmt: skip
        self.worker = WorkerThread(self.config)

    def aligned(self) -> bool:
        return rows(self.monolith, "SELECT id, label, qty FROM items ORDER BY 1") == rows(
            self.service, "SELECT id, name, qty FROM items ORDER BY 1"
        ) and rows(self.monolith, "SELECT * FROM notes ORDER BY 1") == rows(
            self.service, "SELECT * FROM notes ORDER BY 1"
        )

    def wait_aligned(self, what: str) -> None:
        wait_until(self.aligned, 60, what, lambda: self.worker.counts("kt"))

    def writes(self) -> dict[int, int]:
        return dict(rows(self.service, "SELECT id, count(*) FROM item_writes GROUP BY id"))


@pytest.fixture(scope="module")
def stack(logical_pg: LogicalPostgres) -> Iterator[Stack]:
    s = Stack(logical_pg)
    execute(s.monolith, *MONOLITH_DDL)
    execute(s.service, *SERVICE_DDL)
    execute(s.monolith, "INSERT INTO items SELECT i, 'loaded', i FROM generate_series(1, 50) i")
    s.worker.start()
    try:
        s.wait_aligned("the initial load")
        yield s
    finally:
        s.worker.stop()


def test_the_worker_keeps_both_tables_by_the_stream(stack: Stack) -> None:
    assert stack.worker.worker is not None
    highs = stack.worker.worker.sinks["svc"].highs
    assert highs.kept == {"items": "public.items", "notes": "public.notes"}


def test_changes_apply_exactly_and_store_no_row_positions(stack: Stack) -> None:
    with psycopg.connect(stack.monolith, autocommit=True) as conn:
        for i in range(100, 400):
            conn.execute("INSERT INTO items VALUES (%s, 'new', 1)", (i,))
        conn.execute("UPDATE items SET qty = qty + 1 WHERE id % 7 = 0")
        conn.execute("DELETE FROM items WHERE id BETWEEN 300 AND 349")
        conn.execute("INSERT INTO notes SELECT i, 'n' || i FROM generate_series(1, 20) i")
        conn.execute("UPDATE notes SET body = 'changed' WHERE id < 5")
    stack.wait_aligned("the changes")
    # What the old bookkeeping stored per row (one position row beside each data row)
    # is not there: the stored offsets are the whole record of how far the target is.
    assert rows(stack.service, "SELECT count(*) FROM strangler_positions") == [(0,)]
    writes = stack.writes()
    assert writes[7] == 2 and writes[8] == 1  # loaded, then updated once; loaded only
    # Inserted then updated: twice, or once when one batch held both (the sink writes
    # a row's last version); inserted only: once.
    assert 1 <= writes[105] <= 2 and writes[106] == 1


def test_a_truncate_empties_loaded_and_streamed_rows(stack: Stack) -> None:
    execute(stack.monolith, "TRUNCATE items", "INSERT INTO items VALUES (1, 'after', 5)")
    stack.wait_aligned("the truncate and the row after it")
    assert rows(stack.service, "SELECT id, name FROM items") == [(1, "after")]


def test_a_restart_applies_nothing_twice(stack: Stack) -> None:
    stack.wait_aligned("everything so far")
    execute(stack.service, "TRUNCATE item_writes")
    with psycopg.connect(stack.monolith, autocommit=True) as conn:
        for i in range(500, 700):
            conn.execute("INSERT INTO items VALUES (%s, 'burst', 1)", (i,))
    stack.worker.stop()  # mid-stream, or after: either way the offsets say where it was
    with psycopg.connect(stack.monolith, autocommit=True) as conn:
        for i in range(500, 700):
            conn.execute("UPDATE items SET qty = 2 WHERE id = %s", (i,))
    stack.worker = WorkerThread(stack.config).start()
    stack.wait_aligned("the changes around the restart")
    writes = stack.writes()
    assert sorted(writes) == list(range(500, 700))
    assert all(n <= 2 for n in writes.values()), {i: n for i, n in writes.items() if n > 2}
    assert stack.worker.counts("kt").get("stale", 0) == 0
