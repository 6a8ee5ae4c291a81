"""The ``pgoutput`` source end to end: a logical PostgreSQL monolith's replication stream
read by the worker itself -> adapters -> the service's PostgreSQL database.

The same schema, adapters and checks as the ``debezium`` source's tests
(``test_debezium_source.py``), so both sources are held to one behaviour.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from strangler.devstack.localstack import LogicalPostgres
from strangler.errors import SyncError
from strangler.sync.source import build_source
from strangler.sync_config import SyncConfig
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

SLOT = "strangler_mono_p"


class Stack:
    def __init__(self, pg: LogicalPostgres) -> None:
        self.monolith = pg.dsn("monolith_p")
        self.service = pg.dsn("service_p")
        self.config: dict[str, Any] = {
            "sources": [
                {"name": "mono", "kind": "pgoutput",
                 "options": {"database": pg.url("monolith_p", driver="postgresql"),
                             "tables": [*TABLES, "public.loose"], "heartbeat": 0.2,
                             # Slot names are cluster-wide: the debezium tests' "mono"
                             # has strangler_mono in another database of this cluster.
                             "slot": SLOT}},
            ],
            "targets": {"svc": pg.url("service_p")},
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

    def status(self) -> Any:
        return self.worker.worker.snapshot()["sources"] if self.worker.worker else None

    def source(self) -> dict[str, Any]:
        found = [s for s in self.status() or () if s["name"] == "mono"]
        return dict(found[0]) if found else {}

    def restart(self) -> None:
        self.worker.stop()
        self.worker = WorkerThread(self.config).start()


@pytest.fixture(scope="module")
def stack(logical_pg: LogicalPostgres) -> Iterator[Stack]:
    s = Stack(logical_pg)
    execute(s.monolith, MONOLITH_DDL, "CREATE TABLE loose (a INTEGER, b TEXT)")
    execute(s.service, SERVICE_DDL)
    # Rows that exist before capture starts: they arrive by the bulk initial load.
    for i in range(1, 21):
        execute(s.monolith, "INSERT INTO customers VALUES (%s, %s, 'A', %s, %s, 'short')",
                params=(i, f"c{i}", str(i * 1001), f"city{i % 3}"))  # fmt: skip
    execute(s.monolith, "INSERT INTO payments VALUES (1, 0.000001,"
                        " '2024-02-29 23:59:59.999999+05:30', '1999-12-31',"
                        " '2000-01-01 00:00:00.000001')")  # fmt: skip
    s.worker.start()
    try:
        s.wait_aligned(60, "the initial load to arrive")
        yield s
    finally:
        s.worker.stop()


def test_initial_load_copies_existing_rows_into_both_service_tables(stack: Stack) -> None:
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


def test_a_changed_primary_key_moves_the_row(stack: Stack) -> None:
    execute(stack.monolith, "INSERT INTO tags VALUES (50, 'moving')")
    wait_until(lambda: rows(stack.service, "SELECT label FROM tags WHERE id = 50") == [("moving",)],
               30, "the tag")  # fmt: skip
    execute(stack.monolith, "UPDATE tags SET id = 51 WHERE id = 50")
    stack.wait_aligned(30, "the key change")
    assert rows(stack.service, "SELECT id, label FROM tags WHERE id IN (50, 51)") == [
        (51, "moving")
    ]


def test_unchanged_toasted_column_keeps_its_value(stack: Stack) -> None:
    big = secrets.token_hex(20_000)  # 40 kB, stored out of line
    execute(stack.monolith, "UPDATE customers SET note = %s WHERE id = 9", params=(big,))
    stack.wait_aligned(30, "the long note to arrive")
    # REPLICA IDENTITY DEFAULT: this update does not send the untouched note.
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
    wait_until(lambda: len(rows(stack.service, "SELECT * FROM tags")) >= 3, 30, "the tags")
    execute(stack.monolith, "TRUNCATE tags")
    wait_until(lambda: rows(stack.service, "SELECT count(*) FROM tags") == [(0,)], 30, "truncate")
    execute(stack.monolith, "INSERT INTO tags VALUES (2, 'again')")
    stack.wait_aligned(30, "a row after the truncate")


def test_an_undecodable_value_is_dead_lettered_and_the_rest_flow_on(stack: Stack) -> None:
    # 'infinity' is a valid PostgreSQL date that Python's date cannot hold.
    execute(stack.monolith, "INSERT INTO payments VALUES (90, 1, NULL, 'infinity', NULL)",
            "INSERT INTO payments VALUES (91, 2, NULL, '2020-01-01', NULL)")  # fmt: skip
    wait_until(lambda: rows(stack.service, "SELECT amount FROM payments WHERE id = 91")
               == [(Decimal("2.000000"),)], 30, "the payment after the bad one")  # fmt: skip
    letters = rows(stack.service, "SELECT source_table, error FROM strangler_raw_dead_letters")
    assert any(t == "public.payments" and "infinity" in e for t, e in letters), letters
    assert rows(stack.service, "SELECT count(*) FROM payments WHERE id = 90") == [(0,)]
    execute(stack.monolith, "DELETE FROM payments WHERE id = 90")


def test_a_keyless_table_is_refused_and_the_monolith_can_still_write_it(stack: Stack) -> None:
    assert stack.worker.worker is not None
    refused = getattr(stack.worker.worker.sources["mono"], "refused", ())
    assert [k.table for k in refused] == ["public.loose"]
    execute(stack.monolith, "INSERT INTO loose VALUES (1, 'x')", "UPDATE loose SET b = 'y'",
            "DELETE FROM loose")  # fmt: skip


def test_lag_is_measured_and_caught_up_is_true_only_when_it_is(stack: Stack) -> None:
    wait_until(lambda: stack.source().get("caught_up") is True, 30, "caught up", stack.source)
    lag = stack.source()["lag_seconds"]
    assert lag is not None and 0 <= lag < 1.0


def test_restart_resumes_from_stored_offsets_without_reapplying(stack: Stack) -> None:
    stack.wait_aligned(30, "everything so far")
    before = stack.writes("customers", 1)
    stack.worker.stop()
    execute(stack.monolith, "UPDATE customers SET nm = 'while-stopped' WHERE id = 2",
            "INSERT INTO customers VALUES (102, 'later', 'I', '1', 'Oslo', 'n')")  # fmt: skip
    stack.worker = WorkerThread(stack.config).start()
    stack.wait_aligned(60, "the changes made while stopped")
    # Nothing already applied came back: customer 1 was written once, by the load.
    assert stack.writes("customers", 1) == before == 1
    assert stack.writes("customers", 102) == 1
    assert stack.worker.counts("mono").get("stale", 0) == 0


def test_the_slot_is_confirmed_once_changes_are_applied(stack: Stack) -> None:
    # The slot must not hold the monolith's WAL for ever: what is applied is confirmed.
    stack.wait_aligned(30, "everything so far")
    execute(stack.monolith, "UPDATE tags SET label = 'confirm' WHERE id = 2")
    stack.wait_aligned(30, "the update")
    current = rows(stack.monolith, "SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")[0][0]

    def confirmed() -> bool:
        found = rows(
            stack.monolith,
            "SELECT confirmed_flush_lsn - '0/0'::pg_lsn"
            f" FROM pg_replication_slots WHERE slot_name = '{SLOT}'",
        )
        return bool(found) and found[0][0] >= current  # fmt: skip

    wait_until(confirmed, 30, "the slot to confirm past the applied change", stack.source)


def test_a_column_added_to_the_monolith_does_not_stop_the_table(stack: Stack) -> None:
    execute(stack.monolith, "ALTER TABLE tags ADD COLUMN colour TEXT",
            "INSERT INTO tags VALUES (60, 'after-alter', 'red')")  # fmt: skip
    try:
        wait_until(lambda: rows(stack.service, "SELECT label FROM tags WHERE id = 60")
                   == [("after-alter",)], 30, "a tag written after the new column",
                   stack.source)  # fmt: skip
        letters = rows(stack.service, "SELECT count(*) FROM strangler_dead_letters"
                                      " WHERE source_table = 'public.tags'")  # fmt: skip
        assert letters == [(0,)]
    finally:
        execute(stack.monolith, "ALTER TABLE tags DROP COLUMN colour")


def test_restarted_mid_stream_loses_nothing_and_applies_nothing_twice(stack: Stack) -> None:
    """Restarted while a burst is in flight (``test_pgoutput_kill.py`` SIGKILLs it)."""
    stack.wait_aligned(30, "everything so far")
    with psycopg.connect(stack.monolith, autocommit=True) as conn:
        for i in range(200, 260):
            conn.execute("INSERT INTO customers VALUES (%s, 'burst', 'A', '1', 'Rome', 'n')",
                         (i,))  # fmt: skip
    time.sleep(0.05)
    stack.restart()
    with psycopg.connect(stack.monolith, autocommit=True) as conn:
        for i in range(200, 260):
            conn.execute("UPDATE customers SET cents = %s WHERE id = %s", (str(i), i))
    stack.wait_aligned(60, "the burst after a restart mid-stream")
    audit = rows(stack.service, "SELECT id, count(*) FROM write_audit WHERE tbl = 'customers'"
                                " AND id BETWEEN 200 AND 259 GROUP BY id")  # fmt: skip
    # Two versions per row (insert, update): written once each, or once when one batch
    # held both (the sink writes a row's last version); never a version twice.
    assert len(audit) == 60 and all(1 <= n <= 2 for _, n in audit), [a for a in audit if a[1] > 2]


def test_a_slot_of_another_database_is_refused_by_name(stack: Stack) -> None:
    # Slot names are cluster-wide: reading another database's slot would stream its
    # changes (or fail obscurely); the source says whose slot it is instead.
    execute(
        stack.service, "SELECT pg_create_logical_replication_slot('strangler_other', 'pgoutput')"
    )
    try:
        source = dict(stack.config["sources"][0])
        source["options"] = {**source["options"], "slot": "strangler_other"}
        config = SyncConfig.model_validate({**stack.config, "sources": [source]})
        built = build_source(config.sources[0], config)
        with pytest.raises(SyncError, match="belongs to database service_p"):
            asyncio.run(built.start(dict))
    finally:
        execute(stack.service, "SELECT pg_drop_replication_slot('strangler_other')")
