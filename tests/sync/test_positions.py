"""The compact per-row positions (``rowpos``) on real targets: a target written by an
older version (``strangler_row_positions``) is migrated on start and keeps rejecting
replays and resurrections; rows the bulk load COPYed straight in have no entry yet a
truncate of their source table deletes them (and only them); stored keys read back
exactly as ``key_text``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import text

from strangler.sync import rowpos
from strangler.sync.adapters import AdapterSet
from strangler.sync.codec import encode_value, key_text
from strangler.sync.sink import Sink
from tests.sync.conftest import sync_config
from tests.sync.rowadapters import SERVICE_DDL
from tests.sync.test_sink import event, full

ADAPTER = "tests.sync.rowadapters:CustomerRows"

OLD_LAYOUT = (
    "CREATE TABLE strangler_row_positions (target_table VARCHAR(200) NOT NULL,"
    " row_key TEXT NOT NULL, pos_commit BIGINT NOT NULL, pos_seq BIGINT NOT NULL,"
    " deleted BOOLEAN NOT NULL, source_table VARCHAR(300) NOT NULL,"
    " applied_at FLOAT NOT NULL, PRIMARY KEY (target_table, row_key))"
)


@pytest.fixture
def service(target_url: str) -> Iterator[Sink]:
    made = Sink("svc", target_url, AdapterSet(sync_config(target_url, ADAPTER)), retries=1)
    with made.engine.begin() as conn:
        for ddl in SERVICE_DDL:
            conn.execute(text(ddl))
    yield made
    made.close()


def rows(sink: Sink, sql: str) -> list[tuple[Any, ...]]:
    with sink.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql))]


def test_a_target_of_the_old_layout_is_migrated_and_stays_exact(service: Sink) -> None:
    with service.engine.begin() as conn:
        conn.execute(text(OLD_LAYOUT))
        conn.execute(
            text("INSERT INTO strangler_row_positions VALUES (:t, :k, :c, :c, :d, :s, 1.0)"),
            [
                {"t": "customers", "k": '{"id":1}', "c": 5, "d": False, "s": "main.customers"},
                {"t": "customers", "k": '{"id":2}', "c": 6, "d": True, "s": "main.customers"},
                {"t": "addresses", "k": '{"customer_id":1}', "c": 5, "d": False,
                 "s": "main.customers"},
            ],
        )  # fmt: skip
        conn.execute(text("INSERT INTO customers (id, name) VALUES (1, 'kept')"))
    service.setup()
    service.setup()  # a second start finds nothing left to move

    with service.engine.connect() as conn:
        assert not conn.dialect.has_table(conn, "strangler_row_positions")
    stored = rows(service, "SELECT t.name, p.row_key, p.pos_commit, p.deleted_at IS NULL"
                           " FROM strangler_positions p JOIN strangler_row_tables t"
                           " ON t.id = p.tbl ORDER BY 1, 2")  # fmt: skip
    assert stored == [("addresses", "1", 5, True), ("customers", "1", 5, True),
                      ("customers", "2", 6, False)]  # fmt: skip
    # Older than the migrated positions: stale; the deleted row stays deleted.
    stale = service.apply("mono", [full(1, 4, nm="old"), event("u", 2, 5, nm="x")], {"p": 1})
    assert stale.total("stale") == 2
    assert rows(service, "SELECT id, name FROM customers") == [(1, "kept")]
    newer = service.apply("mono", [full(1, 7, nm="new"), full(2, 8)], {"p": 2})
    assert newer.total("applied") == 2
    assert rows(service, "SELECT id, name FROM customers ORDER BY 1") == [(1, "new"), (2, "n2")]


@pytest.mark.parametrize("target_url", ["postgres"], indirect=True)
def test_truncate_deletes_the_loaded_rows_of_its_table_only(service: Sink) -> None:
    service.setup()
    with service.engine.begin() as conn:
        # As the bulk load leaves them: 1-5 from main.customers, 6-10 from another
        # source table, straight in, no entry per row; the ranges recorded.
        conn.execute(text("INSERT INTO customers (id, name) SELECT g, 'loaded'"
                          " FROM generate_series(1, 10) g"))  # fmt: skip
        conn.execute(
            text("INSERT INTO strangler_loaded_ranges (source, source_table, target_table,"
                 " key_column, low, high) VALUES ('mono', :s, 'customers', 'id', :lo, :hi)"),
            [{"s": "main.customers", "lo": None, "hi": 6},
             {"s": "main.others", "lo": 6, "hi": None}],
        )  # fmt: skip
    # A loaded row changed by the stream has an entry from then on.
    assert service.apply("mono", [full(2, 10, nm="streamed")], {"p": 1}).total("applied") == 1
    assert service.apply("mono", [event("t", 0, 20)], {"p": 2}).total("applied") == 1

    assert [r[0] for r in rows(service, "SELECT id FROM customers ORDER BY 1")] == list(
        range(6, 11)
    )
    graveyard = rows(service, "SELECT row_key FROM strangler_positions p JOIN"
                              " strangler_row_tables t ON t.id = p.tbl WHERE t.name ="
                              " 'customers' AND deleted_at IS NOT NULL ORDER BY 1")  # fmt: skip
    assert graveyard == [(str(i),) for i in range(1, 6)]
    # Older than the truncate: stale (its floor); newer: applied.
    assert service.apply("mono", [full(3, 15)], {"p": 3}).total("stale") == 1
    assert service.apply("mono", [full(3, 25)], {"p": 4}).total("applied") == 1
    assert rows(service, "SELECT name FROM customers WHERE id = 3") == [("n3",)]


@pytest.mark.parametrize(
    "key",
    [{"id": 42}, {"id": -7}, {"id": 0}, {"id": "42"}, {"id": 4.5}, {"id": True},
     {"a": 1, "b": 2}, {'we"ird:na,me': 12}, {"other": 42}],
)  # fmt: skip
def test_stored_keys_read_back_exactly(key: dict[str, Any]) -> None:
    full_text = key_text(key)
    stored = rowpos.stored_key(full_text, "id")
    assert rowpos.key_of(stored, "id") == full_text
    assert (stored == str(key.get("id"))) == (set(key) == {"id"} and type(key["id"]) is int)
    assert rowpos.int_key_name(full_text) == (
        next(iter(key)) if len(key) == 1 and type(next(iter(key.values()))) is int else None
    )


@pytest.mark.parametrize(
    "key",
    [{"id": 42}, {"id": -7}, {"id": "x\"y\u00e9"}, {'we"ird:na,me': 12}, {"id": True},
     {"id": 4.5}, {"b": 2, "a": 1}],
)  # fmt: skip
def test_a_key_has_one_text_whichever_path_makes_it(key: dict[str, Any]) -> None:
    # One-column keys take a fast path; their text must be the general form's, or a
    # stored position would not be found again under its key.
    general = json.dumps(encode_value(key), sort_keys=True, separators=(",", ":"))
    assert key_text(key) == key_text(dict(key)) == general
