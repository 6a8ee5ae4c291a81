"""Records that cannot be parsed, and truncates overtaken by older events, against real
targets (PostgreSQL and SQLite).

A poison record is dead-lettered in ``strangler_raw_dead_letters`` together with the
offsets that move past it — never only logged — and ``retry_dead`` re-parses it once
the type registry is fixed. A truncate sets a floor for its source table: an older
event arriving after it (from another partition) is stale and resurrects nothing,
while a newer one still applies."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import text

from strangler.sync.adapters import AdapterSet
from strangler.sync.model import ChangeEvent, Position
from strangler.sync.poison import Poison, make_poison, parse_or_poison
from strangler.sync.sink import Sink
from tests.sync.conftest import sync_config
from tests.sync.rowadapters import SERVICE_DDL
from tests.sync.test_sink import customers, full, rows

ADAPTER = "tests.sync.rowadapters:CustomerRows"


def make_sink(target_url: str, types: dict[str, str] | None = None) -> Sink:
    config = sync_config(target_url, ADAPTER)
    if types is not None:
        data = config.model_dump()
        data["tables"][0]["types"] = types
        config = type(config).model_validate(data)
    return Sink("svc", target_url, AdapterSet(config), retries=1)


@pytest.fixture
def sink(target_url: str) -> Iterator[Sink]:
    made = make_sink(target_url)
    with made.engine.begin() as conn:
        for ddl in SERVICE_DDL:
            conn.execute(text(ddl))
    made.setup()
    yield made
    made.close()


def truncate(commit: int) -> ChangeEvent:
    return ChangeEvent(
        "mono", "main.customers", "t", {}, None, None, Position(commit, commit), 1_700_000_000_000
    )


def envelope(ident: int, lsn: int, **after: Any) -> str:
    row = {"id": ident, "nm": f"n{ident}", "st": "A", "cents": "100", **after}
    source = {"schema": "main", "table": "customers", "lsn": lsn, "ts_ms": 1}
    return json.dumps({"op": "c", "before": None, "after": row, "source": source})


# ------------------------------------------------------------------ truncate floor


def test_an_older_event_after_a_truncate_is_stale_and_resurrects_nothing(sink: Sink) -> None:
    sink.apply("mono", [full(1, 10), full(2, 11)], {"p/0": 2})
    applied = sink.apply("mono", [truncate(20)], {"p/1": 1})
    assert applied.total("applied") == 1 and customers(sink) == []

    # Overtaken by the truncate on another partition: older than it, never seen before.
    late = sink.apply("mono", [full(3, 15), full(1, 12, op="u", nm="back")], {"p/2": 5})
    assert late.total("stale") == 2 and late.total("applied") == 0
    assert customers(sink) == []
    assert rows(sink, "SELECT COUNT(*) FROM addresses") == [(0,)]

    # The same truncate from the other partitions: stale, not re-run.
    again = sink.apply("mono", [truncate(20), truncate(20)], {"p/2": 7})
    assert again.total("stale") == 2

    newer = sink.apply("mono", [full(4, 25), full(1, 26, nm="new")], {"p/0": 3})
    assert newer.total("applied") == 2
    assert [r[:2] for r in customers(sink)] == [(1, "new"), (4, "n4")]


def test_the_floor_holds_inside_one_batch_and_only_for_its_table(sink: Sink) -> None:
    other = ChangeEvent(
        "mono", "main.others", "c", {"id": 9}, None, {"id": 9}, Position(5, 5), 1
    )  # not synced: ignored by the adapter routing, untouched by the floor
    result = sink.apply("mono", [full(1, 10), truncate(20), full(2, 15), other], {"p/0": 4})
    assert (result.total("applied"), result.total("stale")) == (2, 1)
    assert customers(sink) == []
    with sink.engine.connect() as conn:
        floors = list(conn.execute(text(
            "SELECT source, source_table, pos_commit FROM strangler_truncate_floors"
        )))  # fmt: skip
    assert [tuple(f) for f in floors] == [("mono", "main.customers", 20)]


# ------------------------------------------------------------------ poison records


def test_poison_is_stored_with_the_offsets_and_the_rest_flows_on(sink: Sink) -> None:
    bad = [
        make_poison(b"\xff\xfe not utf-8", b'{"id": 1}', "not UTF-8", "t/0@1"),
        parse_or_poison('{"op": "c", "after": {"id": 2}}', None, source="mono", location="t/0@2"),
    ]
    assert all(isinstance(p, Poison) for p in bad)
    poison = [p for p in bad if isinstance(p, Poison)]
    sink.apply("mono", [full(1, 10), full(3, 12)], {"t/0": 4}, poison)
    assert [r[0] for r in customers(sink)] == [1, 3]
    assert sink.offsets("mono") == {"t/0": 4}
    stored = rows(
        sink,
        "SELECT location, encoding, source_table, op, error FROM strangler_raw_dead_letters"
        " ORDER BY id",
    )
    assert [(s[0], s[1], s[3]) for s in stored] == [
        ("t/0@1", "base64", "unknown"),
        ("t/0@2", "utf-8", "c"),
    ]
    assert "source block" in stored[1][4]

    # A replay meets the same records again: still stored once.
    sink.apply("mono", [full(1, 10)], {"t/0": 4}, poison)
    assert rows(sink, "SELECT COUNT(*) FROM strangler_raw_dead_letters") == [(2,)]


def test_retry_dead_reparses_after_the_type_registry_is_fixed(sink: Sink, target_url: str) -> None:
    typo = make_sink(target_url, types={"note": "int"})  # note is text: a config mistake
    poison = parse_or_poison(
        envelope(5, 30, note="five"), '{"id": 5}', source="mono", location="changes#30",
        types=typo.adapters.types,
    )  # fmt: skip
    garbage = parse_or_poison("{{{", None, source="mono", location="changes#31")
    assert isinstance(poison, Poison) and isinstance(garbage, Poison)
    assert "cannot decode 'five' as int" in poison.error
    typo.apply("mono", [full(1, 10)], {"changes": 31}, [poison, garbage])

    assert typo.retry_dead().total("dead_letter") == 2  # still broken: both stay
    assert rows(sink, "SELECT attempts FROM strangler_raw_dead_letters ORDER BY id") == [
        (2,),
        (2,),
    ]
    typo.close()

    fixed = make_sink(target_url, types={"note": "string"})
    try:
        result = fixed.retry_dead()
        assert (result.total("applied"), result.total("dead_letter")) == (1, 1)
        assert [(r[0], r[4]) for r in customers(fixed)] == [(1, "x"), (5, "five")]
        open_rows = rows(
            fixed, "SELECT location FROM strangler_raw_dead_letters WHERE resolved_at IS NULL"
        )
        assert open_rows == [("changes#31",)]
        assert fixed.retry_dead().total("applied") == 0  # resolved ones are not re-applied
    finally:
        fixed.close()
