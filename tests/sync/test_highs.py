"""The stale check's look-ups spared where one ordered stream alone writes a table
(``highs.py``), on real targets: events above the bound are applied without reading
any row's position, a replay at or below it is still judged row by row, and a bound
read again after a restart sees what another writer stored meanwhile."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import text

from strangler.sync.adapters import AdapterSet
from strangler.sync.highs import exclusive_tables, kept_tables
from strangler.sync.sink import Sink
from strangler.sync_config import SyncConfig
from tests.sync.conftest import sync_config
from tests.sync.rowadapters import SERVICE_DDL
from tests.sync.test_sink import event, full

ADAPTER = "tests.sync.rowadapters:CustomerRows"


def make_sink(url: str, exclusive: tuple[str, ...]) -> Sink:
    return Sink("svc", url, AdapterSet(sync_config(url, ADAPTER)), 1, exclusive)


@pytest.fixture
def sink(target_url: str) -> Iterator[Sink]:
    made = make_sink(target_url, ("customers", "addresses"))
    with made.engine.begin() as conn:
        for ddl in SERVICE_DDL:
            conn.execute(text(ddl))
    made.setup()
    yield made
    made.close()


class RowLookups:
    """Statements reading rows' stored positions (the stale check's look-up)."""

    def __init__(self, sink: Sink) -> None:
        self.count = 0
        sa_event.listen(sink.engine, "before_cursor_execute", self._seen)

    def _seen(self, conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        if "FROM strangler_positions" in statement and "row_key" in statement.split("FROM")[1]:
            self.count += 1


def names(sink: Sink) -> list[tuple[Any, ...]]:
    with sink.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text("SELECT id, name FROM customers ORDER BY 1"))]


def test_events_above_the_bound_are_applied_without_look_ups(sink: Sink) -> None:
    first = sink.apply("mono", [full(1, 10), full(2, 11), full(3, 12)], {"p": 1})
    assert first.total("applied") == 3
    lookups = RowLookups(sink)
    later = sink.apply("mono", [full(1, 20, "u", nm="b"), full(2, 21, "u", nm="c")], {"p": 2})
    assert later.total("applied") == 2
    assert lookups.count == 0
    assert names(sink) == [(1, "b"), (2, "c"), (3, "n3")]


def test_a_replay_at_or_below_the_bound_is_still_judged_row_by_row(sink: Sink) -> None:
    sink.apply("mono", [full(1, 10), full(2, 11)], {"p": 1})
    sink.apply("mono", [full(1, 20, "u", nm="new")], {"p": 2})
    lookups = RowLookups(sink)
    # Redelivered after a restart: 11 and 20 were applied; 21 is new.
    replay = sink.apply(
        "mono",
        [full(2, 11), full(1, 20, "u", nm="new"), full(1, 21, "u", nm="newer")],
        {"p": 3},
    )
    assert replay.total("stale") == 2
    assert replay.total("applied") == 1
    assert lookups.count >= 1
    assert names(sink) == [(1, "newer"), (2, "n2")]


def test_a_bound_read_again_sees_what_another_writer_stored(sink: Sink) -> None:
    sink.apply("mono", [full(1, 10)], {"p": 1})
    other = make_sink(sink.url, ())  # another replica that had the stream meanwhile
    try:
        other.apply("mono", [full(1, 100, "u", nm="other")], {"p": 2})
    finally:
        other.close()
    sink.highs.forget()  # what the worker does when its stream (re)starts
    old = sink.apply("mono", [full(1, 50, "u", nm="old")], {"p": 3})
    assert old.total("stale") == 1
    assert names(sink) == [(1, "other")]


def _config(**changes: Any) -> SyncConfig:
    data: dict[str, Any] = {
        "sources": [
            {"name": "mono", "kind": "debezium",
             "options": {"database": "postgresql://x/m", "offset_target": "svc"}},
            {"name": "other", "kind": "debezium",
             "options": {"database": "postgresql://x/o", "offset_target": "svc"}},
        ],
        "targets": {"svc": "postgresql://x/s", "back": "postgresql://x/m"},
        "tables": [
            {"source": "public.customers", "target": "svc", "from_source": "mono",
             "adapter": {"table": "customers", "key": ["id"], "rename": {"nm": "name"}}},
            {"source": "public.orders", "target": "svc", "from_source": "other",
             "adapter": {"table": "orders", "key": ["id"]}},
        ],
    }  # fmt: skip
    data.update(changes)
    return SyncConfig.model_validate(data)


def test_which_tables_one_debezium_stream_alone_writes() -> None:
    assert exclusive_tables(_config()) == {"svc": frozenset({"customers", "orders"})}
    # Two sources into one table: neither alone.
    shared = _config()
    tables = [t.model_dump() for t in shared.tables]
    tables[1]["adapter"] = {"table": "customers", "key": ["id"]}
    assert exclusive_tables(_config(tables=tables)) == {}
    # A mapping without from_source takes any source's events: two sources, no bound.
    tables = [t.model_dump() for t in shared.tables]
    tables[0]["from_source"] = None
    assert exclusive_tables(_config(tables=tables)) == {"svc": frozenset({"orders"})}
    # A Python adapter may write any table of its target.
    tables = [t.model_dump() for t in shared.tables]
    tables[1]["adapter"] = ADAPTER
    assert exclusive_tables(_config(tables=tables)) == {}
    # A source read from Kafka topics is not one ordered reader.
    sources = [s.model_dump() for s in shared.sources]
    sources[0] = {
        "name": "mono",
        "kind": "kafka",
        "options": {"bootstrap_servers": "k:9092", "topics": ["m.public.customers"]},
    }
    assert exclusive_tables(_config(sources=sources)) == {"svc": frozenset({"orders"})}


def test_the_worker_gives_each_sink_its_exclusive_tables() -> None:
    from strangler.sync.worker import Worker

    worker = Worker(_config())
    assert worker.sinks["svc"].highs.tables == {"customers", "orders"}
    assert worker.sinks["back"].highs.tables == frozenset()


# ------------------------------------------------- tables kept by the stream's offsets


def test_which_tables_a_pgoutput_stream_keeps_without_row_entries() -> None:
    pgoutput = [  # the same two sources, read by the worker itself
        {"name": s.name, "kind": "pgoutput", "options": {"database": f"postgresql://x/{s.name}"}}
        for s in _config().sources
    ]
    assert kept_tables(_config(sources=pgoutput)) == {
        "svc": {"customers": "public.customers", "orders": "public.orders"}
    }
    # Debezium's stream is exclusive too, but the worker does not resume it by its own
    # offsets: its rows keep their entries.
    assert kept_tables(_config()) == {}
    # A source table named without its schema may be any schema's: a truncate of one
    # could not say which rows it fed.
    tables = [t.model_dump() for t in _config().tables]
    tables[0]["source"] = "customers"
    assert kept_tables(_config(sources=pgoutput, tables=tables)) == {
        "svc": {"orders": "public.orders"}
    }
    # Two source tables of the one stream into one target table: not kept.
    tables = [t.model_dump() for t in _config().tables]
    tables[1] = {**tables[1], "from_source": "mono",
                 "adapter": {"table": "customers", "key": ["id"]}}  # fmt: skip
    assert kept_tables(_config(sources=pgoutput, tables=tables)) == {}


def _kept_sink(url: str) -> Sink:
    config = SyncConfig.model_validate({
        "sources": [{"name": "mono", "kind": "pgoutput",
                     "options": {"database": "postgresql://x/m"}}],
        "targets": {"svc": url},
        "tables": [{"source": "main.customers", "target": "svc",
                    "adapter": {"table": "customers", "key": ["id"], "rename": {"nm": "name"},
                                "include": ["id", "nm"]}}],
    })  # fmt: skip
    made = Sink.for_target("svc", config, AdapterSet(config))
    with made.engine.begin() as conn:
        for ddl in SERVICE_DDL:
            conn.execute(text(ddl))
    made.setup()
    return made


def stream_offsets_of(commit: int) -> dict[str, int]:
    return {"commit_lsn": commit, "lsn": commit}


def entries(sink: Sink) -> int:
    with sink.engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM strangler_positions")).scalar_one())


def test_a_kept_table_stores_no_row_positions_and_drops_a_replay_by_offsets(
    target_url: str,
) -> None:
    sink = _kept_sink(target_url)
    try:
        assert sink.highs.kept == {"customers": "main.customers"}
        first = [full(1, 10), full(2, 11), full(3, 12)]
        assert sink.apply("mono", first, stream_offsets_of(12)).total("applied") == 3
        second = [full(1, 20, "u", nm="b"), full(2, 21, "d")]
        assert sink.apply("mono", second, stream_offsets_of(21)).total("applied") == 2
        assert names(sink) == [(1, "b"), (3, "n3")]
        assert entries(sink) == 0  # the offsets say it all: no position row per data row
        # The stream again from an older point (another target was behind, or the stream
        # restarted): what this target committed is stale, whatever the table; the rest
        # applies. Without a row's entry, only the offsets can tell 10 and 20 are old.
        sink.highs.forget()  # a restart: read from the stored offsets
        replay = sink.apply("mono", [full(1, 10), *second, full(4, 30)], stream_offsets_of(30))
        assert replay.total("stale") == 3
        assert replay.total("applied") == 1
        assert names(sink) == [(1, "b"), (3, "n3"), (4, "n4")]
        # A truncate empties the kept table whole (no entries to find its rows by).
        wipe = event("t", 0, 40)
        assert sink.apply("mono", [wipe, full(5, 41)], stream_offsets_of(41)).total("applied") == 2
        assert names(sink) == [(5, "n5")]
    finally:
        sink.close()
