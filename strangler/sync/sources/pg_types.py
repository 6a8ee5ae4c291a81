"""Column kinds read from the monolith's catalog, for change events without schemas.

With the JSON converter's schemas off (the ``debezium`` source's default) an event
says nothing of its columns' types: a date is a day number, a timestamp microseconds.
Instead of the schema travelling with every record, the types are read once from
``pg_attribute`` when the source starts and kept as the ``types:`` registry (entries
in ``sync.tables[].types`` still win). The mapping follows Debezium's defaults
(``time.precision.mode=adaptive``, ``decimal.handling.mode=string``). A column added
later is read with the registry as it was at start until the worker restarts; one
the mapping does not use is left out anyway (``schema.py``). Read-only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import psycopg

from strangler.errors import SyncError
from strangler.sync.keys import libpq_url, split_table

_QUERY = """
SELECT a.attname, t.typname, a.atttypmod
FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
"""


def kind(typname: str, typmod: int) -> str | None:
    """Decode kind of a PostgreSQL type as Debezium (adaptive precision) sends it."""
    precision = typmod if typmod >= 0 else 6
    if typname == "date":
        return "date"
    if typname == "timestamp":
        return "timestamp_ms" if precision <= 3 else "timestamp_us"
    if typname == "timestamptz":
        return "timestamptz"
    if typname == "time":
        return "time_ms" if precision <= 3 else "time_us"
    if typname == "timetz":
        return "timetz"
    if typname in ("numeric", "money"):
        return "decimal"
    if typname == "bytea":
        return "bytes"
    return None


def catalog_types(url: str, tables: Sequence[str]) -> dict[str, dict[str, str]]:
    """``schema.table`` -> column -> kind, for the columns that need decoding."""
    out: dict[str, dict[str, str]] = {}
    try:
        with psycopg.connect(libpq_url(url), autocommit=True, connect_timeout=10) as conn:
            for table in tables:
                schema, name = split_table(table)
                found: Mapping[str, Any] = {
                    str(column): kind(str(typname), int(typmod))
                    for column, typname, typmod in conn.execute(_QUERY, (f'"{schema}"."{name}"',))
                }
                out[f"{schema}.{name}"] = {c: k for c, k in found.items() if k}
    except psycopg.Error as exc:
        raise SyncError(f"cannot read column types from the monolith: {exc}".strip()) from exc
    return out


def merged(
    catalog: Mapping[str, Mapping[str, str]], declared: Mapping[str, Mapping[str, str]]
) -> dict[str, dict[str, str]]:
    """Catalog kinds with the declared ``types:`` on top (declared by bare or full name)."""
    out = {table: dict(columns) for table, columns in catalog.items()}
    for table, columns in declared.items():
        if "." in table:
            out.setdefault(table, {}).update(columns)
            continue
        out.setdefault(f"public.{table}", {})
        for full in out:
            if full.rpartition(".")[2] == table:
                out[full].update(columns)
    return out
