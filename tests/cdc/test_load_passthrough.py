"""The bulk initial load's pass-through: a table whose mapping only renames columns of
the same types goes from the monolith to the service as COPY text, never through
Python values, and must land exactly as the converting path would land it — awkward
text (tabs, newlines, backslashes, quotes, non-ASCII), NULLs, numerics, dates,
timestamps with zones, bytea, arrays, JSON; straight into the target table when the
chunk's key range is empty there, through the staging table and a merge otherwise. A
table whose types differ takes the converting path. Rows staged get a position each;
a chunk COPYed straight into an empty range records the range instead."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from strangler.devstack.localstack import LogicalPostgres
from strangler.sync.adapters import AdapterSet
from strangler.sync.sink import Sink
from strangler.sync.snapshot import BulkLoad
from strangler.sync.staging import passthrough
from strangler.sync_config import SyncConfig
from tests.cdc.harness import execute, rows

MONOLITH_DDL = (
    "CREATE TABLE things (id bigint PRIMARY KEY, name text, note text, price numeric(10,2),"
    " born date, seen timestamptz, raw bytea, tags text[], doc jsonb, flag boolean)",
    "CREATE TABLE odd (id int PRIMARY KEY, amount numeric)",
    "INSERT INTO things SELECT g, 'name ' || g, CASE g % 5 WHEN 0 THEN NULL"
    " WHEN 1 THEN E'tab\\there\\nnew line' WHEN 2 THEN E'back\\\\slash \"quoted\" ''single'''"
    " WHEN 3 THEN 'Zoë ünïcødé ✓' ELSE '' END, g * 1.25, date '2020-02-29' + g,"
    " timestamptz '2026-03-29 01:30:00+01' + g * interval '37 minutes',"
    " CASE WHEN g % 3 = 0 THEN NULL ELSE decode(lpad(to_hex(g), 8, '0'), 'hex') END,"
    " ARRAY['a,b', NULL, E'c\\\\d'], jsonb_build_object('n', g, 's', E'x\\ty'), g % 2 = 0"
    " FROM generate_series(1, 2500) g",
    "INSERT INTO odd SELECT g, g / 7.0 FROM generate_series(1, 1200) g",
)
SERVICE_DDL = (
    "CREATE TABLE items (item_id bigint PRIMARY KEY, name text, note text,"
    " price numeric(10,2), born date, seen timestamptz, raw bytea, tags text[], doc jsonb,"
    " flag boolean)",
    "CREATE TABLE odds (id int PRIMARY KEY, amount text)",
    # A row already there: its chunk is staged and merged (the others go straight in).
    "INSERT INTO items (item_id, name) VALUES (1, 'stale')",
)


@pytest.fixture
def dbs(logical_pg: LogicalPostgres) -> Iterator[tuple[str, str]]:
    admin = logical_pg.dsn("postgres")
    for name in ("monolith_p", "service_p"):
        execute(admin, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", f"CREATE DATABASE {name}")
    execute(logical_pg.dsn("monolith_p"), *MONOLITH_DDL)
    execute(logical_pg.dsn("service_p"), *SERVICE_DDL)
    yield logical_pg.dsn("monolith_p"), logical_pg.dsn("service_p")
    execute(admin, "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
                   " WHERE slot_name = 'strangler_passthrough'")  # fmt: skip


def test_pass_through_lands_the_same_rows_as_the_converting_path(
    logical_pg: LogicalPostgres, dbs: tuple[str, str]
) -> None:
    monolith, service = dbs
    config = SyncConfig.model_validate({
        "sources": [{"name": "mono", "kind": "debezium",
                     "options": {"database": logical_pg.url("monolith_p", "postgresql")}}],
        "targets": {"svc": logical_pg.url("service_p", "postgresql")},
        "tables": [
            {"source": "public.things", "target": "svc",
             "adapter": {"table": "items", "key": ["item_id"], "rename": {"id": "item_id"}}},
            {"source": "public.odd", "target": "svc", "adapter": {"table": "odds", "key": ["id"]}},
        ],
    })  # fmt: skip
    adapters = AdapterSet(config)
    sink = Sink("svc", config.targets["svc"], adapters)
    sink.setup()
    sink.close()
    with psycopg.connect(monolith) as src, psycopg.connect(service) as dst:
        things = adapters.route("mono", "public.things")
        odd = adapters.route("mono", "public.odd")
        assert things is not None and odd is not None
        assert passthrough(things[1], src, dst, "public.things") is not None
        assert passthrough(odd[1], src, dst, "public.odd") is None  # numeric -> text

    result = BulkLoad("mono", config.sources[0].options["database"], "strangler_passthrough",
                      ["public.things", "public.odd"], adapters, dict(config.targets),
                      chunk_rows=1000, parallel=2).run()  # fmt: skip

    assert result.rows == 2500 + 1200
    columns = "name, note, price, born, seen, raw, tags, doc, flag"
    assert rows(service, f"SELECT item_id, {columns} FROM items ORDER BY 1") == rows(
        monolith, f"SELECT id, {columns} FROM things ORDER BY 1"
    )
    assert rows(service, "SELECT id, amount FROM odds ORDER BY 1") == [
        (i, str(a)) for i, a in rows(monolith, "SELECT id, amount FROM odd ORDER BY 1")
    ]
    # The chunks COPYed straight into an empty range record the range, not a position per
    # row; the one staged (a row was there) has a position per row: 1000 of items', and
    # every row of odds (converted).
    positions = dict(
        rows(
            service,
            "SELECT t.name, count(*) FROM strangler_positions p"
            " JOIN strangler_row_tables t ON t.id = p.tbl GROUP BY 1",
        )
    )
    assert positions == {"items": 1000, "odds": 1200}
    keys = {r[0] for r in rows(service, "SELECT row_key FROM strangler_positions p"
                                        " JOIN strangler_row_tables t ON t.id = p.tbl"
                                        " WHERE t.name = 'items'")}  # fmt: skip
    assert keys == {str(i) for i in range(1, 1000)} | {"1000"}
    ranges = rows(service, "SELECT target_table, key_column, low, high FROM"
                           " strangler_loaded_ranges ORDER BY low NULLS FIRST")  # fmt: skip
    assert [r[:2] for r in ranges] == [("items", "item_id")] * 2
    assert {(r[2], r[3]) for r in ranges} == {(1001, 2001), (2001, None)}
    assert rows(service, "SELECT count(*), bool_and(done) FROM strangler_initial_loads")[0] == (
        5,
        True,
    )
