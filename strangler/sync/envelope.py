"""One Debezium change-event record (JSON converter) -> one ``ChangeEvent``, or None.

Handles both converter shapes: schemas enabled (``{"schema": ..., "payload": ...}``,
types decoded from the Connect schema) and disabled (the bare payload, types from
the ``types:`` registry). ``op`` c/u/d/r/t become events; ``m`` (logical-decoding
messages), tombstones (a null value after a delete) and heartbeats return None —
deletes are taken from ``op=d``, never from tombstones. Unchanged TOAST columns are
left out of ``after`` and named in ``event.unavailable``.

The event's ``Position`` for PostgreSQL is ``(last_commit_lsn, lsn)`` from
``source.sequence``: it orders events across transactions by commit and within one
by LSN. Snapshot reads get ``(0, lsn)`` so any streamed change after them wins.

Pure parsing: no I/O, never guesses a type it was not told.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeGuard

from strangler.errors import ChangeEventError
from strangler.sync.decode import UNAVAILABLE, decode, kind_of
from strangler.sync.fastjson import load_document, loads
from strangler.sync.model import ChangeEvent, Op, Position

TypeRegistry = Mapping[str, Mapping[str, str]]
"""Source table (``schema.table`` or bare ``table``) -> column -> kind (see decode.KINDS)."""

_OPS: frozenset[str] = frozenset({"c", "u", "d", "r", "t"})
_SNAPSHOT_TRUE = frozenset({"true", "first", "last", "first_in_data_collection",
                            "last_in_data_collection", "incremental"})  # fmt: skip
Headers = Mapping[str, Any] | Iterable[tuple[str, Any]]
_NONE: Mapping[str, str | None] = {}
_ALL_SENT: frozenset[str] = frozenset()


def parse_envelope(
    value: bytes | str | Mapping[str, Any] | None,
    key: bytes | str | Mapping[str, Any] | None = None,
    *,
    source: str,
    types: TypeRegistry | None = None,
    headers: Headers | None = None,
) -> ChangeEvent | None:
    """Parse one record; None for tombstones, ``op=m`` and anything without a change.

    Raises ``ChangeEventError`` for a record that is a change but malformed."""
    document = _load(value)
    if document is None:
        return None
    schema, payload = _split(document)
    if payload is None or not _is_mapping(payload):
        return None
    op = payload.get("op")
    if op == "m" or op is None:
        return None
    if op not in _OPS:
        raise ChangeEventError(f"unknown op {op!r}")
    src = payload.get("source")
    if not _is_mapping(src):
        raise ChangeEventError("change event has no source block")
    table = qualified_table(src)
    columns = _table_types(types, table)
    field_schemas = _field_schemas(schema)
    before, _ = _row(payload.get("before"), field_schemas.get("before"), columns)
    after, unavailable = _row(payload.get("after"), field_schemas.get("after"), columns)
    key_values = _key(key, columns)
    old_key = _old_key(op, key_values, before, headers, columns)
    ts_ms = src.get("ts_ms", payload.get("ts_ms"))
    return ChangeEvent(
        source=source,
        table=table,
        op=op,  # checked against _OPS above
        key=key_values,
        before=before,
        after=after,
        position=position_of(src, op),
        ts_ms=int(ts_ms) if ts_ms is not None else 0,
        tx_id=_int_or_none(src.get("txId")),
        snapshot=_is_snapshot(src.get("snapshot")),
        old_key=old_key,
        unavailable=frozenset(unavailable) if unavailable else _ALL_SENT,
    )


def qualified_table(src: Mapping[str, Any]) -> str:
    table = src.get("table")
    if not table:
        raise ChangeEventError("source block names no table")
    schema = src.get("schema")
    return f"{schema}.{table}" if schema else str(table)


def position_of(src: Mapping[str, Any], op: Op | str = "c") -> Position:
    """``Position(commit, seq)`` from ``source.sequence`` / ``source.lsn``."""
    lsn = _int_or_none(src.get("lsn"))
    last_commit: int | None = None
    sequence = src.get("sequence")
    if sequence:
        try:
            parts = loads(sequence) if isinstance(sequence, str) else list(sequence)
            last_commit = _int_or_none(parts[0])
            lsn = _int_or_none(parts[-1]) if parts[-1] is not None else lsn
        except (ValueError, TypeError, IndexError) as exc:
            raise ChangeEventError(f"source.sequence {sequence!r} is not [commit, lsn]") from exc
    if lsn is None:
        raise ChangeEventError("source block has neither sequence nor lsn: cannot order it")
    if op == "r" or _is_snapshot(src.get("snapshot")):
        return Position(0, lsn)
    return Position(last_commit if last_commit is not None else lsn, lsn)


def _load(value: bytes | str | Mapping[str, Any] | None) -> Any:
    if value is None:
        return None
    if isinstance(value, str):
        return _load_text(value)
    if isinstance(value, bytes | bytearray | memoryview):
        if len(value) == 0:
            return None
        text = bytes(value)
        try:
            text.decode("utf-8")  # orjson would say "not JSON"; name the real fault
        except UnicodeDecodeError as exc:
            raise ChangeEventError(f"not UTF-8: {exc}") from exc
        return _load_text(text)
    if _is_mapping(value):
        return value
    raise ChangeEventError(f"not JSON: a {type(value).__name__}")


def _load_text(value: str | bytes) -> Any:
    if not value:
        return None
    try:
        return load_document(value)
    except ValueError as exc:
        raise ChangeEventError(f"not JSON: {exc}") from exc


def _is_mapping(value: object) -> TypeGuard[Mapping[str, Any]]:
    # A dict first: the ABC check alone was ~0.4 µs, a few times per record.
    return type(value) is dict or isinstance(value, Mapping)


def _split(document: Any) -> tuple[Mapping[str, Any] | None, Any]:
    if _is_mapping(document) and "payload" in document and "schema" in document:
        schema = document["schema"]
        return (schema if _is_mapping(schema) else None), document["payload"]
    return None, document


_Kinds = dict[str, dict[str, str | None]]
_shapes: dict[int, tuple[Mapping[str, Any], _Kinds]] = {}


def _field_schemas(schema: Mapping[str, Any] | None) -> _Kinds:
    """``{"before": {column: kind}, "after": {...}}`` from a value schema. Computed once
    per schema object (``fastjson`` hands every record of one schema the same object)."""
    if schema is None:
        return {}
    hit = _shapes.get(id(schema))
    if hit is not None and hit[0] is schema:
        return hit[1]
    out: _Kinds = {}
    for part in schema.get("fields") or ():
        name = part.get("field")
        if name in ("before", "after"):
            out[name] = {f["field"]: kind_of(f) for f in part.get("fields") or () if "field" in f}
    if len(_shapes) > 512:
        _shapes.clear()
    _shapes[id(schema)] = (schema, out)
    return out


def _table_types(types: TypeRegistry | None, table: str) -> Mapping[str, str]:
    if not types:
        return {}
    return types.get(table) or types.get(table.rpartition(".")[2]) or {}


def _row(
    raw: Any, kinds: Mapping[str, str | None] | None, columns: Mapping[str, str]
) -> tuple[dict[str, Any] | None, list[str]]:
    if raw is None:
        return None, []
    if not _is_mapping(raw):
        raise ChangeEventError(f"row image is not an object: {raw!r}")
    row: dict[str, Any] = {}
    unavailable: list[str] = []
    for column, value in raw.items():
        kind = (kinds or _NONE).get(column) or columns.get(column)
        decoded = decode(value, kind, column)
        if decoded is UNAVAILABLE:
            unavailable.append(column)  # never written: the target keeps its value
        else:
            row[column] = decoded
    return row, unavailable


def _key(raw: bytes | str | Mapping[str, Any] | None, columns: Mapping[str, str]) -> dict[str, Any]:
    document = _load(raw)
    if document is None:
        return {}
    schema, payload = _split(document)
    if not _is_mapping(payload):
        raise ChangeEventError(f"key is not an object: {payload!r}")
    fields = {f["field"]: f for f in (schema or {}).get("fields") or () if "field" in f}
    return {c: decode(v, kind_of(fields.get(c)) or columns.get(c), c) for c, v in payload.items()}


def _old_key(
    op: str,
    key: Mapping[str, Any],
    before: Mapping[str, Any] | None,
    headers: Headers | None,
    columns: Mapping[str, str],
) -> dict[str, Any] | None:
    for name, value in _header_items(headers):
        if name == "__debezium.oldkey" and value is not None:
            return _key(value, columns) or None
    if op == "u" and before and key and all(c in before for c in key):
        old = {c: before[c] for c in key}
        if old != dict(key):
            return old
    return None


def _header_items(headers: Headers | None) -> Iterable[tuple[str, Any]]:
    if headers is None:
        return ()
    if isinstance(headers, Mapping):
        return headers.items()
    return headers


def _is_snapshot(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return isinstance(value, str) and value.lower() in _SNAPSHOT_TRUE


def _int_or_none(value: Any) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise ChangeEventError(f"{value!r} is not an integer") from exc
