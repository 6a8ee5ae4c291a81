"""Debezium PostgreSQL connector records (JSON converter) -> ChangeEvents, decoded exactly.

The fixtures follow the record shapes in the Debezium PostgreSQL connector docs,
with schemas enabled (``{"schema", "payload"}``) and disabled (bare payload)."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json
import random
from decimal import Decimal
from typing import Any

import pytest

from strangler.errors import ChangeEventError
from strangler.sync.codec import event_from_json, event_to_json
from strangler.sync.envelope import parse_envelope
from strangler.sync.model import Position

ROW_FIELDS = [
    {"type": "int32", "optional": False, "default": 0, "field": "id"},
    {"type": "string", "optional": True, "field": "name"},
    {"type": "bytes", "optional": True, "name": "org.apache.kafka.connect.data.Decimal",
     "version": 1, "parameters": {"scale": "2", "connect.decimal.precision": "10"},
     "field": "price"},
    {"type": "struct", "optional": True, "name": "io.debezium.data.VariableScaleDecimal",
     "version": 1, "doc": "Variable scaled decimal",
     "fields": [{"type": "int32", "optional": False, "field": "scale"},
                {"type": "bytes", "optional": False, "field": "value"}],
     "field": "ratio"},
    {"type": "int32", "optional": True, "name": "io.debezium.time.Date", "version": 1,
     "field": "born"},
    {"type": "int64", "optional": True, "name": "io.debezium.time.MicroTimestamp",
     "version": 1, "field": "seen_at"},
    {"type": "int64", "optional": True, "name": "io.debezium.time.NanoTimestamp",
     "version": 1, "field": "seen_ns"},
    {"type": "int64", "optional": True, "name": "io.debezium.time.Timestamp",
     "version": 1, "field": "seen_ms"},
    {"type": "string", "optional": True, "name": "io.debezium.time.ZonedTimestamp",
     "version": 1, "field": "paid_at"},
    {"type": "int64", "optional": True, "name": "io.debezium.time.MicroTime", "version": 1,
     "field": "opens"},
    {"type": "int32", "optional": True, "name": "io.debezium.time.Time", "version": 1,
     "field": "closes"},
    {"type": "bytes", "optional": True, "field": "photo"},
    {"type": "string", "optional": True, "field": "bio"},
]  # fmt: skip

SOURCE_FIELDS = [
    {"type": "string", "optional": False, "field": "version"},
    {"type": "string", "optional": False, "field": "connector"},
    {"type": "string", "optional": False, "field": "name"},
    {"type": "int64", "optional": False, "field": "ts_ms"},
    {"type": "string", "optional": True, "name": "io.debezium.data.Enum", "version": 1,
     "parameters": {"allowed": "true,last,false,incremental"}, "default": "false",
     "field": "snapshot"},
    {"type": "string", "optional": False, "field": "db"},
    {"type": "string", "optional": True, "field": "sequence"},
    {"type": "string", "optional": False, "field": "schema"},
    {"type": "string", "optional": False, "field": "table"},
    {"type": "int64", "optional": True, "field": "txId"},
    {"type": "int64", "optional": True, "field": "lsn"},
    {"type": "int64", "optional": True, "field": "xmin"},
]  # fmt: skip


def envelope_schema() -> dict[str, Any]:
    row = {"type": "struct", "fields": ROW_FIELDS, "optional": True,
           "name": "shop.public.products.Value"}  # fmt: skip
    return {
        "type": "struct",
        "fields": [
            {**row, "field": "before"},
            {**row, "field": "after"},
            {
                "type": "struct",
                "fields": SOURCE_FIELDS,
                "optional": False,
                "name": "io.debezium.connector.postgresql.Source",
                "field": "source",
            },
            {"type": "string", "optional": False, "field": "op"},
            {"type": "int64", "optional": True, "field": "ts_ms"},
        ],
        "optional": False,
        "name": "shop.public.products.Envelope",
        "version": 1,
    }


def source_block(
    lsn: int = 24023128, last_commit: int | None = 24023000, **extra: Any
) -> dict[str, Any]:
    return {
        "version": "3.0.0.Final",
        "connector": "postgresql",
        "name": "shop",
        "ts_ms": 1700000000123,
        "snapshot": "false",
        "db": "shop",
        "sequence": json.dumps([None if last_commit is None else str(last_commit), str(lsn)]),
        "schema": "public",
        "table": "products",
        "txId": 555,
        "lsn": lsn,
        "xmin": None,
        **extra,
    }


KEY: dict[str, Any] = {
    "schema": {"type": "struct", "name": "shop.public.products.Key", "optional": False,
               "fields": [{"type": "int32", "optional": False, "field": "id"}]},
    "payload": {"id": 7},
}  # fmt: skip

FULL_ROW = {
    "id": 7,
    "name": "Lamp",
    "price": "BNI=",  # unscaled 1234, scale 2
    "ratio": {"scale": 3, "value": "/2o="},  # unscaled -150, scale 3
    "born": 18262,
    "seen_at": 1577836800123456,
    "seen_ns": 1577836800123456789,
    "seen_ms": 1577836800123,
    "paid_at": "2020-01-01T10:00:00.5Z",
    "opens": 3723000000,
    "closes": 3723000,
    "photo": base64.b64encode(b"\x00\x01png").decode(),
    "bio": "long text",
}


def record(op: str, before: Any, after: Any, **source: Any) -> str:
    payload = {"before": before, "after": after, "source": source_block(**source),
               "op": op, "ts_ms": 1700000000200}  # fmt: skip
    return json.dumps({"schema": envelope_schema(), "payload": payload})


def test_schemas_on_create_decodes_every_logical_type_exactly() -> None:
    event = parse_envelope(record("c", None, FULL_ROW), json.dumps(KEY), source="shop")
    assert event is not None
    assert (event.table, event.op, dict(event.key)) == ("public.products", "c", {"id": 7})
    row = event.after
    assert row is not None
    assert row["price"] == Decimal("12.34") and str(row["price"]) == "12.34"
    assert row["ratio"] == Decimal("-0.150")
    assert row["born"] == dt.date(2020, 1, 1)
    assert row["seen_at"] == dt.datetime(2020, 1, 1, 0, 0, 0, 123456)
    assert row["seen_ns"] == dt.datetime(2020, 1, 1, 0, 0, 0, 123456)
    assert row["seen_ms"] == dt.datetime(2020, 1, 1, 0, 0, 0, 123000)
    assert row["paid_at"] == dt.datetime(2020, 1, 1, 10, 0, 0, 500000, tzinfo=dt.UTC)
    assert row["opens"] == dt.time(1, 2, 3)
    assert row["closes"] == dt.time(1, 2, 3)
    assert row["photo"] == b"\x00\x01png"
    assert event.position == Position(24023000, 24023128)
    assert (event.ts_ms, event.tx_id, event.snapshot) == (1700000000123, 555, False)


def test_schemas_off_uses_the_type_registry() -> None:
    payload = {
        "before": None,
        "after": {"id": 7, "price": "12.34", "born": 18262, "seen_at": 1577836800123456,
                  "paid_at": "2020-01-01T10:00:00Z", "raw": "BNI="},
        "source": source_block(), "op": "c", "ts_ms": 1,
    }  # fmt: skip
    types = {"public.products": {"price": "decimal", "born": "date", "seen_at": "timestamp_us",
                                 "paid_at": "timestamptz", "raw": "decimal:2"}}  # fmt: skip
    event = parse_envelope(json.dumps(payload), b'{"id": 7}', source="shop", types=types)
    assert event is not None and event.after is not None
    assert event.after["price"] == Decimal("12.34")
    assert event.after["raw"] == Decimal("12.34")
    assert event.after["born"] == dt.date(2020, 1, 1)
    assert event.after["seen_at"] == dt.datetime(2020, 1, 1, 0, 0, 0, 123456)
    assert event.after["paid_at"].utcoffset() == dt.timedelta(0)


def test_schemas_off_without_registry_passes_values_through() -> None:
    payload = {"before": None, "after": {"id": 1, "price": "12.30"}, "source": source_block(),
               "op": "c"}  # fmt: skip
    event = parse_envelope(json.dumps(payload).encode(), {"id": 1}, source="shop")
    assert event is not None and event.after == {"id": 1, "price": "12.30"}


def test_unchanged_toast_columns_are_left_out_never_written() -> None:
    after = {**FULL_ROW, "bio": "__debezium_unavailable_value",
             "photo": base64.b64encode(b"__debezium_unavailable_value").decode()}  # fmt: skip
    event = parse_envelope(record("u", None, after), json.dumps(KEY), source="shop")
    assert event is not None and event.after is not None
    assert "bio" not in event.after and "photo" not in event.after
    assert event.unavailable == {"bio", "photo"}
    assert event.after["name"] == "Lamp"


def test_array_toast_placeholder_is_left_out() -> None:
    payload = {"before": None, "after": {"id": 1, "tags": ["__debezium_unavailable_value"]},
               "source": source_block(), "op": "u"}  # fmt: skip
    event = parse_envelope(json.dumps(payload), {"id": 1}, source="shop")
    assert event is not None and event.after == {"id": 1} and event.unavailable == {"tags"}


def test_delete_has_before_and_no_after_and_tombstone_is_ignored() -> None:
    before = {"id": 7, "name": None, "price": None, "ratio": None, "born": None,
              "seen_at": None, "seen_ns": None, "seen_ms": None, "paid_at": None,
              "opens": None, "closes": None, "photo": None, "bio": None}  # fmt: skip
    event = parse_envelope(record("d", before, None), json.dumps(KEY), source="shop")
    assert event is not None and event.op == "d" and event.after is None
    assert event.before is not None and event.before["id"] == 7
    assert parse_envelope(None, json.dumps(KEY), source="shop") is None
    assert parse_envelope(b"", json.dumps(KEY), source="shop") is None
    assert parse_envelope(json.dumps({"schema": None, "payload": None}), None, source="s") is None


def test_message_events_are_ignored_and_unknown_ops_rejected() -> None:
    payload = {"op": "m", "source": source_block(), "message": {"prefix": "x", "content": ""}}
    assert parse_envelope(json.dumps(payload), None, source="shop") is None
    with pytest.raises(ChangeEventError, match="unknown op"):
        parse_envelope(json.dumps({**payload, "op": "z"}), None, source="shop")


def test_truncate_event_names_the_table() -> None:
    payload = {"before": None, "after": None, "source": source_block(), "op": "t", "ts_ms": 5}
    event = parse_envelope(json.dumps(payload), None, source="shop")
    assert event is not None and (event.op, event.table, dict(event.key)) == (
        "t",
        "public.products",
        {},
    )


def test_positions_order_transactions_by_commit_then_lsn() -> None:
    first_tx = parse_envelope(record("c", None, FULL_ROW, lsn=500, last_commit=100), KEY["payload"],
                              source="s")  # fmt: skip
    later_tx = parse_envelope(record("u", None, FULL_ROW, lsn=300, last_commit=200), KEY["payload"],
                              source="s")  # fmt: skip
    assert first_tx is not None and later_tx is not None
    assert first_tx.position < later_tx.position  # commit order wins over raw LSN


def test_positions_compare_hash_and_copy_as_commit_then_sequence() -> None:
    # The comparisons are written out (compiled: no tuple per comparison); they must
    # agree with (commit, seq) order everywhere, ties and equal commits included.
    rng = random.Random(7)
    values = [Position(rng.randint(0, 3), rng.randint(0, 3)) for _ in range(60)]
    for a in values:
        for b in values:
            pair = ((a.commit, a.seq), (b.commit, b.seq))
            assert (a < b, a <= b, a > b, a >= b) == (
                pair[0] < pair[1], pair[0] <= pair[1], pair[0] > pair[1], pair[0] >= pair[1]
            )  # fmt: skip
            assert (a == b, a != b) == (pair[0] == pair[1], pair[0] != pair[1])
            assert a != b or hash(a) == hash(b)
    assert sorted(values) == sorted(values, key=lambda p: (p.commit, p.seq))
    assert max(values) == max(values, key=lambda p: (p.commit, p.seq))
    assert len({Position(1, 2), Position(1, 2), Position(2, 1)}) == 2
    assert Position(1, 2) != (1, 2) and str(Position(1, 2)) == "1/2"
    event = parse_envelope(record("u", None, FULL_ROW), KEY, source="s")
    assert event is not None
    gone = dataclasses.replace(event, op="d", after=None)
    assert (gone.op, gone.after, gone.position, event.op) == ("d", None, event.position, "u")
    assert dataclasses.replace(gone, op="u", after=event.after) == event


def test_snapshot_reads_sort_before_any_streamed_change() -> None:
    snap = parse_envelope(
        record("r", None, FULL_ROW, lsn=900, last_commit=None, snapshot="true"), KEY, source="s"
    )
    streamed = parse_envelope(record("u", None, FULL_ROW, lsn=901, last_commit=10), KEY, source="s")
    assert snap is not None and streamed is not None and snap.snapshot
    assert snap.position == Position(0, 900) and snap.position < streamed.position


def test_primary_key_change_carries_the_old_key() -> None:
    headers = [("__debezium.oldkey", json.dumps({"id": 6}).encode())]
    event = parse_envelope(record("c", None, FULL_ROW), KEY, source="s", headers=headers)
    assert event is not None and event.old_key == {"id": 6}
    payload = {"before": {"id": 6, "name": "a"}, "after": {"id": 7, "name": "a"},
               "source": source_block(), "op": "u"}  # fmt: skip
    update = parse_envelope(json.dumps(payload), {"id": 7}, source="s")
    assert update is not None and update.old_key == {"id": 6}


def test_malformed_values_name_the_column() -> None:
    bad = {**FULL_ROW, "born": "not-a-number"}
    with pytest.raises(ChangeEventError, match="born"):
        parse_envelope(record("c", None, bad), KEY, source="s")
    with pytest.raises(ChangeEventError, match="not JSON"):
        parse_envelope(b"{nope", None, source="s")
    with pytest.raises(ChangeEventError, match="neither sequence nor lsn"):
        parse_envelope(
            json.dumps({"op": "c", "after": {}, "source": {"table": "t"}}), None, source="s"
        )


def test_decoded_events_survive_storage_round_trip() -> None:
    event = parse_envelope(record("c", None, FULL_ROW), KEY, source="shop")
    assert event is not None
    assert event_from_json(event_to_json(event)) == event
