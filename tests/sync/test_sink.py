"""Applying change events into a real target (SQLite and PostgreSQL): rows match through
an adapter that writes two tables, replays are stale, deletes stay deleted, bad events
are dead-lettered with their key parked, and ``retry_dead`` drains them in order."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import text

from strangler.sync.adapters import AdapterSet
from strangler.sync.model import ChangeEvent, Op, Position
from strangler.sync.sink import Sink
from tests.sync.conftest import sync_config
from tests.sync.rowadapters import SERVICE_DDL

ADAPTER = "tests.sync.rowadapters:CustomerRows"
FIXED = "tests.sync.rowadapters:FixedCustomerRows"


def event(op: Op, ident: int, commit: int, before: Any = None, **after: Any) -> ChangeEvent:
    row = {"id": ident, **after} if op != "d" else None
    return ChangeEvent(
        source="mono",
        table="main.customers",
        op=op,
        key={"id": ident} if op != "t" else {},
        before=before if before is not None else ({"id": ident} if op == "d" else None),
        after=row,
        position=Position(commit, commit),
        ts_ms=1_700_000_000_000 + commit,
    )


def full(ident: int, commit: int, op: Op = "c", **changes: Any) -> ChangeEvent:
    values = {"nm": f"n{ident}", "st": "A", "cents": "1050", "city": f"c{ident}", "note": "x"}
    return event(op, ident, commit, **{**values, **changes})


@pytest.fixture
def sink(target_url: str) -> Iterator[Sink]:
    made = Sink("svc", target_url, AdapterSet(sync_config(target_url, ADAPTER)), retries=1)
    with made.engine.begin() as conn:
        for ddl in SERVICE_DDL:
            conn.execute(text(ddl))
    made.setup()
    yield made
    made.close()


def rows(sink: Sink, sql: str) -> list[tuple[Any, ...]]:
    with sink.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql))]


def customers(sink: Sink) -> list[tuple[Any, ...]]:
    return [
        (i, n, s, Decimal(str(b)).quantize(Decimal("0.01")), note)
        for i, n, s, b, note in rows(
            sink, "SELECT id, name, status, balance, note FROM customers ORDER BY id"
        )
    ]


def test_changes_land_in_both_tables_with_translated_values(sink: Sink) -> None:
    sink.apply("mono", [full(1, 1), full(2, 2), full(3, 3)], {"changes": 3})
    sink.apply(
        "mono",
        [full(2, 4, op="u", st="I", cents="-5"), event("d", 3, 5), full(1, 6, op="u", city="")],
        {"changes": 6},
    )
    assert customers(sink) == [
        (1, "n1", "active", Decimal("10.50"), "x"),
        (2, "n2", "inactive", Decimal("-0.05"), "x"),
    ]
    assert rows(sink, "SELECT customer_id, city FROM addresses ORDER BY 1") == [(2, "c2")]
    assert sink.offsets("mono") == {"changes": 6}


def test_truncate_deletes_every_row_that_came_from_the_table(sink: Sink) -> None:
    sink.apply("mono", [full(1, 1), full(2, 2)], {"changes": 2})
    result = sink.apply("mono", [event("t", 0, 3), full(5, 4)], {"changes": 4})
    assert result.total("applied") == 2
    assert [r[0] for r in customers(sink)] == [5]
    assert rows(sink, "SELECT customer_id FROM addresses") == [(5,)]


def test_unchanged_toast_column_keeps_the_target_value(sink: Sink) -> None:
    sink.apply("mono", [full(1, 1, note="a very long note")], {})
    toast = ChangeEvent("mono", "main.customers", "u", {"id": 1}, None,
                        {"id": 1, "nm": "renamed", "st": "A", "cents": "1050", "city": "c1"},
                        Position(2, 2), 0, unavailable=frozenset({"note"}))  # fmt: skip
    sink.apply("mono", [toast], {})
    assert customers(sink) == [(1, "renamed", "active", Decimal("10.50"), "a very long note")]


def test_replayed_events_are_stale_and_change_nothing(sink: Sink) -> None:
    batch = [full(1, 1), full(1, 2, op="u", nm="second"), full(2, 3)]
    first = sink.apply("mono", batch, {"changes": 3})
    before = customers(sink)
    again = sink.apply("mono", batch, {"changes": 3})
    older = sink.apply("mono", [full(1, 1, op="u", nm="stale write")], {})
    assert first.total("applied") == 3
    assert again.total("stale") == 3 and again.total("applied") == 0
    assert older.total("stale") == 1
    assert customers(sink) == before and before[0][1] == "second"


def test_deleted_row_is_not_resurrected_by_an_older_upsert(sink: Sink) -> None:
    sink.apply("mono", [full(1, 1), full(1, 2, op="u", nm="v2"), event("d", 1, 3)], {})
    replay = sink.apply("mono", [full(1, 2, op="u", nm="v2")], {})
    assert replay.total("stale") == 1
    assert customers(sink) == []
    assert rows(sink, "SELECT COUNT(*) FROM addresses") == [(0,)]
    sink.apply("mono", [full(1, 4, nm="reborn")], {})  # a genuinely newer insert does apply
    assert [r[1] for r in customers(sink)] == ["reborn"]


def test_primary_key_change_moves_the_row_in_one_batch(sink: Sink) -> None:
    sink.apply("mono", [full(1, 1)], {})
    after = {"id": 9, "nm": "n1", "st": "A", "cents": "1050", "city": "c1", "note": "x"}
    moved = ChangeEvent("mono", "main.customers", "u", {"id": 9}, {"id": 1}, after,
                        Position(2, 2), 0, old_key={"id": 1})  # fmt: skip
    sink.apply("mono", [moved], {})
    assert [r[0] for r in customers(sink)] == [9]
    assert rows(sink, "SELECT customer_id FROM addresses") == [(9,)]


def test_poison_is_dead_lettered_same_key_parked_others_flow(sink: Sink, target_url: str) -> None:
    sink.apply("mono", [full(1, 1), full(2, 2)], {})
    result = sink.apply(
        "mono",
        [
            full(1, 3, op="u", st="X"),  # unknown status: the adapter cannot map it
            full(2, 4, op="u", nm="two"),
            full(1, 5, op="u", nm="after poison", st="X"),
            full(1, 6, op="u", nm="latest", st="A"),
        ],
        {"changes": 6},
    )
    assert (result.total("dead_letter"), result.total("parked"), result.total("applied")) == (
        1,
        2,
        1,
    )
    assert [r[1] for r in customers(sink)] == ["n1", "two"]  # key 1 held at its last good state
    later = sink.apply("mono", [full(1, 7, op="u", nm="even later")], {"changes": 7})
    assert later.total("parked") == 1
    (error,) = rows(sink, "SELECT error FROM strangler_dead_letters")
    assert "X" in error[0]
    assert rows(sink, "SELECT COUNT(*) FROM strangler_parked") == [(3,)]

    # Still broken: retrying changes nothing and loses nothing.
    assert sink.retry_dead().total("dead_letter") == 1
    assert rows(sink, "SELECT COUNT(*) FROM strangler_parked") == [(3,)]

    fixed = Sink("svc", target_url, AdapterSet(sync_config(target_url, FIXED)), retries=1)
    drained = fixed.retry_dead()
    fixed.close()
    assert drained.total("applied") == 4
    assert customers(sink)[0][1:3] == ("even later", "active")
    assert rows(sink, "SELECT COUNT(*) FROM strangler_parked") == [(0,)]
    assert rows(sink, "SELECT COUNT(*) FROM strangler_dead_letters WHERE resolved_at IS NULL") == [
        (0,)
    ]
    assert sink.apply("mono", [full(1, 8, op="u", nm="flowing")], {}).total("applied") == 1


def test_database_rejection_is_dead_lettered_and_the_batch_goes_on(sink: Sink) -> None:
    with sink.engine.begin() as conn:
        conn.execute(text("CREATE UNIQUE INDEX customers_name ON customers (name)"))
    result = sink.apply(
        "mono", [full(1, 1, nm="same"), full(2, 2, nm="same"), full(3, 3)], {"changes": 3}
    )
    assert (result.total("applied"), result.total("dead_letter")) == (2, 1)
    assert [r[0] for r in customers(sink)] == [1, 3]
    (error,) = rows(sink, "SELECT error FROM strangler_dead_letters")
    assert "unique" in error[0].lower()
    assert sink.offsets("mono") == {"changes": 3}


def test_a_batch_is_freed_once_applied_not_left_to_the_cycle_collector(sink: Sink) -> None:
    # Found in a profile of the worker under pgbench: compiled, ``apply``'s nested
    # function and the environment holding the batch referenced each other, so every
    # batch's events outlived it until a collection found the cycle (a tenth of the
    # worker's CPU went to those collections).
    sink.apply("mono", [full(1, 10)], {"p": 1})  # tables reflected, statements cached
    gc.collect()
    gc.disable()
    try:
        sink.apply("mono", [full(i, 100 + i) for i in range(2, 40)], {"p": 2})
        left = [o for o in gc.get_objects() if isinstance(o, ChangeEvent) and o.source == "mono"]
    finally:
        gc.enable()
    assert left == []
    assert len(customers(sink)) == 39
