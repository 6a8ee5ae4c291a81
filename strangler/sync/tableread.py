"""Reading tables for ``verify``: reflection, key order, streams through server-side
cursors in bounded batches, point lookups. Read-only; no comparison here."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, MetaData, String, Table, and_, select
from sqlalchemy.exc import SQLAlchemyError

from strangler.errors import SyncError
from strangler.sync.db import db_error
from strangler.sync_config import ColumnMap

YIELD_PER = 5000
"""Rows fetched per round trip from each server-side cursor."""

Where = tuple[str, Any, Any] | None
"""(key column, low, high): rows with low <= key < high (None: unbounded); None: all."""


def order(cmap: ColumnMap, source: Table) -> tuple[str, ...] | None:
    """Source columns whose order is the target key's order (renamed, not transformed)."""
    back = {new: old for old, new in cmap.rename.items()}
    columns = []
    for column in cmap.key:
        if column in cmap.cast or column in cmap.values:
            return None
        original = back.get(column, column)
        if original not in source.c:
            return None
        columns.append(original)
    return tuple(columns)


def reflect(conn: Connection, name: str, where: str) -> Table:
    schema, _, bare = name.rpartition(".")
    if conn.dialect.name == "sqlite" and schema == "main":
        schema = ""
    try:
        return Table(bare, MetaData(), autoload_with=conn, schema=schema or None)
    except SQLAlchemyError as exc:
        raise db_error(f"verify: reading {name} in {where}", exc) from exc


def source_key(table: Table, declared: Sequence[str]) -> tuple[str, ...]:
    keys = tuple(declared) or tuple(c.name for c in table.primary_key.columns)
    if not keys:
        raise SyncError(
            f"verify: {table.name} has no primary key; declare sync.tables[].source_key"
        )
    return keys


def ordered(conn: Connection, table: Table, columns: Sequence[str]) -> list[Any]:
    out: list[Any] = []
    for name in columns:
        column = table.c[name]
        if conn.dialect.name == "postgresql" and isinstance(column.type, String):
            out.append(column.collate("C"))  # code-point order, as Python compares
        else:
            out.append(column)
    return out


def stream_rows(
    conn: Connection, table: Table, order: Sequence[str], where: Where = None
) -> Iterator[dict[str, Any]]:
    query = select(table).order_by(*ordered(conn, table, order))
    if where is not None:
        column, low, high = where
        if low is not None:
            query = query.where(table.c[column] >= low)
        if high is not None:
            query = query.where(table.c[column] < high)
    result = conn.execution_options(stream_results=True, yield_per=YIELD_PER).execute(query)
    names = list(result.keys())
    for row in result:
        yield dict(zip(names, row, strict=True))


def stream(
    conn: Connection, table: Table, key_cols: tuple[str, ...], where: Where = None
) -> Iterator[tuple[tuple[Any, ...], dict[str, Any]]]:
    for row in stream_rows(conn, table, key_cols, where):
        yield tuple(row.get(c) for c in key_cols), row


def lookup(table: Table, where: Mapping[str, Any]) -> Any:
    return select(table).where(and_(*(table.c[c] == v for c, v in where.items())))
