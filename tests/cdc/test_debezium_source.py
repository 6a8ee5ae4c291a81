"""The ``debezium`` source end to end: real Debezium (embedded) on a logical PostgreSQL
monolith -> the worker -> adapters -> the service's PostgreSQL database.

One worker (one Java engine) serves the whole module: Java start-up is slow.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from strangler.devstack.localstack import LogicalPostgres
from tests.cdc.harness import (
    MONOLITH_DDL,
    SERVICE_DDL,
    TABLES,
    WorkerThread,
    execute,
    mappings,
    rows,
    service_diff,
    service_matches,
    wait_until,
)

pytestmark = pytest.mark.slow


class Stack:
    def __init__(self, pg: LogicalPostgres) -> None:
        self.monolith = pg.dsn("monolith")
        self.service = pg.dsn("service")
        self.config: dict[str, Any] = {
            "sources": [
                {"name": "mono", "kind": "debezium",
                 "options": {"database": pg.url("monolith", driver="postgresql"),
                             "tables": list(TABLES), "offsets": "target"}},
            ],
            "targets": {"svc": pg.url("service")},
            "tables": mappings("svc"),
        }  # fmt: skip
        self.worker = WorkerThread(self.config)

    def matches(self) -> bool:
        return service_matches(self.monolith, self.service)

    def wait_aligned(self, timeout: float, what: str) -> None:
        wait_until(self.matches, timeout, what, lambda: self.explain())

    def explain(self) -> str:
        return f"{service_diff(self.monolith, self.service)}; worker: {self.status()}"

    def writes(self, table: str, ident: int) -> int:
        found = rows(self.service, f"SELECT count(*) FROM write_audit WHERE tbl = '{table}'"
                                   f" AND id = {ident}")  # fmt: skip
        return int(found[0][0])

    def status(self) -> object:
        return self.worker.worker.snapshot()["sources"] if self.worker.worker else None


@pytest.fixture(scope="module")
def stack(logical_pg: LogicalPostgres) -> Iterator[Stack]:
    s = Stack(logical_pg)
    execute(s.monolith, MONOLITH_DDL)
    execute(s.service, SERVICE_DDL)
    # Rows that exist before capture starts: they arrive by the snapshot.
    for i in range(1, 21):
        execute(s.monolith, "INSERT INTO customers VALUES (%s, %s, 'A', %s, %s, 'short')",
                params=(i, f"c{i}", str(i * 1001), f"city{i % 3}"))  # fmt: skip
    execute(s.monolith, "INSERT INTO payments VALUES (1, 0.000001,"
                        " '2024-02-29 23:59:59.999999+05:30', '1999-12-31',"
                        " '2000-01-01 00:00:00.000001')")  # fmt: skip
    s.worker.start()
    try:
        s.wait_aligned(120, "the snapshot to arrive")
        yield s
    finally:
        s.worker.stop()


def test_snapshot_copies_existing_rows_into_both_service_tables(stack: Stack) -> None:
    assert rows(stack.service, "SELECT count(*) FROM customers") == [(20,)]
    assert rows(stack.service, "SELECT name, status, balance FROM customers WHERE id = 7") == [
        ("c7", "active", Decimal("70.07"))
    ]
    assert rows(stack.service, "SELECT city FROM addresses WHERE customer_id = 7") == [("city1",)]


def test_inserts_updates_and_deletes_stream_through_the_adapter(stack: Stack) -> None:
    execute(
        stack.monolith,
        "INSERT INTO customers VALUES (101, 'new', 'A', '999', 'Lyon', 'n')",
        "UPDATE customers SET st = 'I', cents = '5' WHERE id = 3",
        "UPDATE customers SET city = 'Gent' WHERE id = 4",
        "DELETE FROM customers WHERE id = 5",
    )
    stack.wait_aligned(30, "the changes to stream")
    assert rows(stack.service, "SELECT status, balance FROM customers WHERE id = 3") == [
        ("inactive", Decimal("0.05"))
    ]
    assert rows(stack.service, "SELECT count(*) FROM addresses WHERE customer_id = 5") == [(0,)]
    assert rows(stack.service, "SELECT city FROM addresses WHERE customer_id = 101") == [("Lyon",)]


def test_unchanged_toasted_column_keeps_its_value(stack: Stack) -> None:
    big = secrets.token_hex(20_000)  # 40 kB, stored out of line
    execute(stack.monolith, "UPDATE customers SET note = %s WHERE id = 9", params=(big,))
    stack.wait_aligned(30, "the long note to arrive")
    # REPLICA IDENTITY DEFAULT: this update sends the placeholder for the untouched note.
    execute(stack.monolith, "UPDATE customers SET nm = 'renamed' WHERE id = 9")
    wait_until(
        lambda: rows(stack.service, "SELECT name FROM customers WHERE id = 9") == [("renamed",)],
        30, "the rename",
    )  # fmt: skip
    assert rows(stack.service, "SELECT note FROM customers WHERE id = 9") == [(big,)]
    assert stack.matches()


def test_decimals_dates_and_timestamps_arrive_exactly(stack: Stack) -> None:
    execute(
        stack.monolith,
        "INSERT INTO payments VALUES (2, 123456789012.345678, '1970-01-01 00:00:00+00',"
        " '0001-01-01', '2262-04-11 23:47:16.854775')",
        "INSERT INTO payments VALUES (3, -0.5, NULL, NULL, NULL)",
        "UPDATE payments SET amount = 42.100000 WHERE id = 1",
    )
    stack.wait_aligned(30, "the payments")
    got = dict((r[0], r[1:]) for r in rows(stack.service, "SELECT * FROM payments"))
    assert got[2][0] == Decimal("123456789012.345678")
    assert got[2][1] == dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    assert got[2][2] == dt.date(1, 1, 1)
    assert got[2][3] == dt.datetime(2262, 4, 11, 23, 47, 16, 854775)
    assert got[1][1] == dt.datetime(2024, 2, 29, 18, 29, 59, 999999, tzinfo=dt.UTC)
    assert got[1][3] == dt.datetime(2000, 1, 1, 0, 0, 0, 1)
    assert got[3] == (Decimal("-0.5"), None, None, None)


def test_truncate_empties_what_the_table_fed(stack: Stack) -> None:
    execute(stack.monolith, "INSERT INTO tags VALUES (1, 'a'), (2, 'b'), (3, 'c')")
    wait_until(lambda: len(rows(stack.service, "SELECT * FROM tags")) == 3, 30, "the tags")
    execute(stack.monolith, "TRUNCATE tags")
    wait_until(lambda: rows(stack.service, "SELECT count(*) FROM tags") == [(0,)], 30, "truncate")
    execute(stack.monolith, "INSERT INTO tags VALUES (2, 'again')")
    stack.wait_aligned(30, "a row after the truncate")


def _events_debezium_counted() -> int:
    """Debezium's own streaming MBean: the changes its per-event metrics saw."""
    jpype = pytest.importorskip("jpype")
    server = jpype.JClass("java.lang.management.ManagementFactory").getPlatformMBeanServer()
    name = jpype.JClass("javax.management.ObjectName")(
        "debezium.postgres:type=connector-metrics,context=streaming,server=mono"
    )
    return int(server.getAttribute(name, "TotalNumberOfEventsSeen"))


def test_debeziums_per_event_metrics_are_off_while_changes_stream(stack: Stack) -> None:
    # They cost ~10% of the worker's CPU (a JSON rendering of every event); strangler
    # reads none of them. Changes stream as before, and Debezium no longer counts them.
    stack.wait_aligned(30, "everything so far")
    seen = _events_debezium_counted()
    applied = stack.worker.counts("mono").get("applied", 0)
    for i in range(300, 400):
        execute(stack.monolith, "INSERT INTO customers VALUES (%s, 'm', 'A', '1', 'Oslo', 'n')",
                params=(i,))  # fmt: skip
    stack.wait_aligned(30, "the hundred new customers")
    assert stack.worker.counts("mono").get("applied", 0) - applied >= 100
    assert _events_debezium_counted() == seen


def test_restart_resumes_from_stored_offsets_without_reapplying(stack: Stack) -> None:
    stack.wait_aligned(30, "everything so far")
    before = stack.writes("customers", 1)
    stack.worker.stop()
    execute(stack.monolith, "UPDATE customers SET nm = 'while-stopped' WHERE id = 2",
            "INSERT INTO customers VALUES (102, 'later', 'I', '1', 'Oslo', 'n')")  # fmt: skip
    stack.worker = WorkerThread(stack.config).start()
    stack.wait_aligned(60, "the changes made while stopped")
    # Nothing already applied came back: customer 1 was written once, by the snapshot.
    assert stack.writes("customers", 1) == before == 1
    assert stack.writes("customers", 102) == 1
    assert stack.worker.counts("mono").get("stale", 0) == 0
