"""Column kinds from the catalog for schema-less events: Debezium's adaptive precision,
and a declared ``types:`` entry (by full or bare name) wins over the catalog."""

from __future__ import annotations

from strangler.sync.sources.pg_types import kind, merged


def test_kinds_follow_debeziums_defaults() -> None:
    assert kind("timestamp", -1) == "timestamp_us" and kind("timestamp", 3) == "timestamp_ms"
    assert kind("time", 6) == "time_us" and kind("date", -1) == "date"
    assert kind("numeric", -1) == "decimal" and kind("bytea", -1) == "bytes"
    assert kind("int4", -1) is None and kind("text", -1) is None


def test_declared_types_win_by_full_or_bare_name() -> None:
    catalog = {"sales.orders": {"placed": "date"}, "public.items": {"at": "timestamp_us"}}
    out = merged(catalog, {"orders": {"placed": "string"}, "public.items": {"x": "int"}})
    assert out["sales.orders"] == {"placed": "string"}
    assert out["public.items"] == {"at": "timestamp_us", "x": "int"}
